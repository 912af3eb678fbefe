"""State dicts in the original repository's layout load into our models and compute what the original computes.

The reference (original_reference.py) runs on the original dict itself, with the original's interleaved RoPE.
The random weights are scaled so that attention is far from uniform: a skipped RoPE reorder, or Q, K, V and
the gate read from the wrong rows, moves the logits by far more than the 1e-5 tolerance (checked below).
"""

from __future__ import annotations

import math

import pytest
import torch
from original_reference import original_forward
from wt_tiny import tokens

import wt_model.original as original
from wt_model import InplaceWorkerTransformer, ModelConfig
from wt_model.original import config_from_original, convert_original_state_dict, load_original

VOCAB, DIM = 37, 32


def original_state_dict(
    arch: str, n_layer: int = 2, ffn: int = 4 * DIM, kernel: int = 3, scale: float = 1.0, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Random weights in the original's layout: linear weights N(0, scale^2 / fan_in), norm weights near one."""
    gen = torch.Generator().manual_seed(seed)
    C = DIM

    def linear(rows: int, cols: int) -> torch.Tensor:
        return torch.randn(rows, cols, generator=gen) * scale / math.sqrt(cols)

    def vector(n: int, mean: float = 0.0, std: float = 0.2) -> torch.Tensor:
        return mean + std * torch.randn(n, generator=gen)

    sd = {"token_embedding.weight": torch.randn(VOCAB, C, generator=gen)}
    if arch == "worker":
        sd["worker_type_emb"] = torch.randn(1, 1, C, generator=gen)
    for i in range(n_layer):
        p = f"layers.{i}."
        if arch == "worker":
            sd[p + "token_mixer.weight"] = torch.randn(C, 1, kernel, generator=gen) / math.sqrt(kernel)
            sd[p + "token_mixer.bias"] = vector(C)
            sd[p + "ln1.weight"] = vector(C, mean=1.0)
            sd[p + "token_kv_proj.weight"] = linear(2 * C, C)
            sd[p + "worker_q_proj.weight"] = linear(C, C)
            sd[p + "worker_gate_proj.weight"] = linear(C, C)
        else:
            sd[p + "ln1.weight"] = vector(C, mean=1.0)
            sd[p + "attn_proj.weight"] = linear(3 * C, C)
            sd[p + "gate_proj.weight"] = linear(C, C)
        sd[p + "out_proj.weight"] = linear(C, C)
        sd[p + "ln2.weight"] = vector(C, mean=1.0)
        sd[p + "ffn.0.weight"], sd[p + "ffn.0.bias"] = linear(ffn, C), vector(ffn)
        sd[p + "ffn.2.weight"], sd[p + "ffn.2.bias"] = linear(C, ffn), vector(C)
    sd["ln_f.weight"] = vector(C, mean=1.0)
    sd["lm_head.weight"] = linear(VOCAB, C)
    return sd


# (arch, n_layer, n_head, interval, seq_len, ffn, kernel, scale)
# Scale 1 is PyTorch's default init, scale 1.5 sharper attention; at 2 the fp32 rounding of the RoPE tables alone
# (ours and the reference's) reaches 1e-5 in the logits; all in float64, tables included, they agree to 1e-14.
CASES = [
    ("worker", 1, 2, 4, 16, 4 * DIM, 3, 1.5),
    ("worker", 2, 2, 3, 17, 4 * DIM, 3, 1.0),  # ragged: the last position is an extra worker
    ("worker", 2, 4, 1, 9, 48, 3, 1.5),  # every position a worker; FFN width not 4 * n_embd
    ("worker", 2, 2, 8, 29, 4 * DIM, 5, 1.0),  # interval 8, ragged again (T=29), and a wider token mixer
    ("standard", 1, 2, 4, 16, 4 * DIM, 3, 1.0),
    ("standard", 2, 4, 4, 21, 48, 3, 1.5),
]


def _logits(sd, case, saved=None):
    """(our logits after `load_original(saved or sd)`, the reference's on `sd`) for the case's tokens."""
    _, _, n_head, interval, T, _, _, _ = case
    idx = tokens(2, T, vocab=VOCAB)
    model = load_original(saved or sd, n_head=n_head, worker_interval=interval, block_size=64, dropout=0.0).eval()
    with torch.no_grad():
        return model(idx)[0], original_forward(sd, idx, n_head=n_head, worker_interval=interval)


def _case_dict(case):
    arch, n_layer, _, _, _, ffn, kernel, scale = case
    return original_state_dict(arch, n_layer=n_layer, ffn=ffn, kernel=kernel, scale=scale)


@pytest.mark.parametrize("case", CASES)
def test_loaded_model_matches_original_reference(case):
    logits, ref = _logits(_case_dict(case), case)
    assert logits.shape == ref.shape
    torch.testing.assert_close(logits, ref, rtol=0, atol=1e-5)


def _swap_halves(tensor: torch.Tensor) -> torch.Tensor:
    first, second = tensor.chunk(2)
    return torch.cat([second, first])


def _swap_q_k(sd: dict[str, torch.Tensor]) -> None:
    for name in [name for name in sd if name.endswith("attn.qg.weight")]:
        kv = name.replace("qg", "kv")
        (q, gate), (k, v) = sd[name].chunk(2), sd[kv].chunk(2)
        sd[name], sd[kv] = torch.cat([k, gate]), torch.cat([q, v])


CORRUPTIONS = {
    "swap_q_gate": lambda sd: sd.update({n: _swap_halves(t) for n, t in sd.items() if n.endswith("attn.qg.weight")}),
    "swap_k_v": lambda sd: sd.update({n: _swap_halves(t) for n, t in sd.items() if n.endswith("attn.kv.weight")}),
    "swap_q_k": _swap_q_k,
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("mistake", ["skip_rope_reorder", *CORRUPTIONS])
def test_a_wrong_mapping_is_caught(case, mistake, monkeypatch):
    """Each case above would fail with the RoPE reorder skipped or Q, K, V and the gate mixed up."""
    if mistake == "skip_rope_reorder":
        monkeypatch.setattr(original, "interleaved_to_halves", lambda weight, n_head: weight)
    else:
        convert = original.convert_original_state_dict

        def corrupted(state_dict, cfg):
            converted = convert(state_dict, cfg)
            CORRUPTIONS[mistake](converted)
            return converted

        monkeypatch.setattr(original, "convert_original_state_dict", corrupted)
    logits, ref = _logits(_case_dict(case), case)
    assert (logits - ref).abs().max() > 1e-3


def test_reorder_moves_rows_within_each_head():
    weight = torch.arange(8.0)[:, None].expand(8, 3)  # row r holds r; 2 heads of dim 4
    reordered = original.interleaved_to_halves(weight, n_head=2)
    assert reordered[:, 0].tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "_orig_mod.module."])
def test_a_common_prefix_is_stripped(prefix):
    case = CASES[1]
    sd = _case_dict(case)
    logits, ref = _logits(sd, case, saved={prefix + name: tensor for name, tensor in sd.items()})
    torch.testing.assert_close(logits, ref, rtol=0, atol=1e-5)


def test_config_is_inferred_from_the_shapes():
    sd = {"module." + k: v for k, v in original_state_dict("worker", n_layer=2, ffn=48, kernel=5).items()}
    cfg = config_from_original(sd, n_head=4, worker_interval=3, block_size=128, dropout=0.0, init="nanogpt")
    assert cfg == ModelConfig(
        arch="worker",
        vocab_size=VOCAB,
        n_embd=DIM,
        n_layer=2,
        ffn_hidden=48,
        conv_kernel=5,
        n_head=4,
        worker_interval=3,
        block_size=128,
        dropout=0.0,
        init="nanogpt",
    )
    standard = config_from_original(original_state_dict("standard", n_layer=1), n_head=2)
    assert (standard.arch, standard.n_layer, standard.ffn_hidden, standard.ffn_width) == ("standard", 1, 0, 4 * DIM)
    assert (standard.worker_interval, standard.block_size, standard.dropout) == (4, 1024, 0.1)  # the defaults


def test_load_original_returns_the_model_as_built():
    model = load_original(original_state_dict("standard", n_layer=1), n_head=2)
    assert model.training and model.cfg.dropout == 0.1


@pytest.mark.parametrize(
    ("override", "match"),
    [({"n_embd": 64}, "cannot override n_embd: it is read from the state dict"), ({"dropuot": 0.0}, "'dropuot'")],
)
def test_config_rejects_an_override_of_an_inferred_or_unknown_field(override, match):
    with pytest.raises(ValueError, match=match):
        config_from_original(original_state_dict("worker"), n_head=2, **override)


def test_config_needs_a_recognisable_layout():
    with pytest.raises(ValueError, match="no 'worker_type_emb', 'token_kv_proj' or 'attn_proj' key"):
        config_from_original({"tok_emb.weight": torch.zeros(3, 4)}, n_head=2)


def _worker_cfg(**overrides) -> ModelConfig:
    fields = dict(arch="worker", vocab_size=VOCAB, n_embd=DIM, n_head=2, n_layer=2, block_size=64)
    return ModelConfig(**{**fields, **overrides})


def test_missing_key_is_named():
    sd = original_state_dict("worker")
    del sd["layers.1.ln2.weight"]
    with pytest.raises(ValueError, match=r"missing key 'module\.layers\.1\.ln2\.weight'"):
        convert_original_state_dict({"module." + k: v for k, v in sd.items()}, _worker_cfg())


def test_unexpected_key_is_named():
    sd = original_state_dict("worker", n_layer=3)
    message = r"unexpected key 'layers\.2\.token_mixer\.weight' for a worker model with n_layer=2\."
    with pytest.raises(ValueError, match=message):
        convert_original_state_dict(sd, _worker_cfg(n_layer=2))


def test_a_standard_dict_does_not_load_into_a_worker_model():
    with pytest.raises(ValueError, match=r"unexpected key 'layers\.0\.attn_proj\.weight' for a worker model"):
        convert_original_state_dict(original_state_dict("standard"), _worker_cfg())


def test_wrong_shape_is_named():
    sd = original_state_dict("worker")
    sd["layers.1.out_proj.weight"] = torch.zeros(DIM, DIM // 2)
    message = r"key 'layers\.1\.out_proj\.weight' has shape \(32, 16\), expected \(32, 32\) for n_embd=32\."
    with pytest.raises(ValueError, match=message):
        convert_original_state_dict(sd, _worker_cfg())
    with pytest.raises(ValueError, match=r"key 'layers\.0\.ffn\.0\.weight' has shape \(128, 32\), expected \(48, 32\)"):
        convert_original_state_dict(original_state_dict("worker"), _worker_cfg(ffn_hidden=48))


def test_seed_constructor_loads_converted_weights():
    sd = original_state_dict("worker", scale=1.5)
    model = InplaceWorkerTransformer(
        vocab_size=VOCAB, block_size=64, dim=DIM, num_heads=2, num_layers=2, worker_interval=4, dropout=0.0
    )
    model.load_state_dict(convert_original_state_dict(sd, model.cfg))
    idx = tokens(2, 19, vocab=VOCAB)
    with torch.no_grad():
        logits, _ = model.eval()(idx)
    torch.testing.assert_close(logits, original_forward(sd, idx, n_head=2, worker_interval=4), rtol=0, atol=1e-5)


def test_an_architecture_the_original_never_had_is_refused_by_name():
    cfg = ModelConfig(arch="standard-mixer", vocab_size=65, block_size=32, n_embd=32, n_head=2, n_layer=1)
    with pytest.raises(ValueError, match="standard-mixer.*no counterpart"):
        convert_original_state_dict({}, cfg)
