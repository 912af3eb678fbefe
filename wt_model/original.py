"""Load state dicts saved by the original WorkerTransformer repository (its `model.py` and `baseline.py`).

Names, original -> ours (layer i: `layers.i.` -> `blocks.i.`): token_embedding -> tok_emb, ln_f -> norm,
lm_head -> lm_head, ln1/ln2 -> norm1/norm2, ffn.0/ffn.2 -> ffn.up/ffn.down, out_proj -> attn.out.
Worker: worker_type_emb (1, 1, C) -> worker_emb (C,), token_mixer -> mixer.conv,
[worker_q_proj; worker_gate_proj] -> attn.qg, token_kv_proj (K rows, then V) -> attn.kv.
Standard: attn_proj (Q, K, V rows) and gate_proj -> attn.qg = [Q; gate], attn.kv = [K; V].

RoPE: the original rotates interleaved pairs (2j, 2j+1) of each head, we rotate halves (j, j + D/2), both by
angle p * base^(-2j/D). Reordering the Q and K rows of each head (new row j = old row 2j, new row j + D/2 =
old row 2j + 1) makes the two the same function: q.k is unchanged when q and k are permuted alike, and V and
the gate are not rotated, so they keep their order. The reorder depends on n_head, which no shape reveals.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

import torch
from torch import nn

from wt_model import build_model
from wt_model.config import ModelConfig

# the top-level names of the original's parameters: a common prefix above them (module., _orig_mod.) is stripped
_ROOTS = ("token_embedding", "worker_type_emb", "layers", "ln_f", "lm_head")
# per-layer tensors copied as they are: original name -> ours
_SAME = {
    "ln1.weight": "norm1.weight",
    "ln2.weight": "norm2.weight",
    "out_proj.weight": "attn.out.weight",
    "ffn.0.weight": "ffn.up.weight",
    "ffn.0.bias": "ffn.up.bias",
    "ffn.2.weight": "ffn.down.weight",
    "ffn.2.bias": "ffn.down.bias",
}
ORIGINAL_ARCHS = ("standard", "worker")  # the original's StdTransformer and InplaceWorkerTransformer
_INFERRED = ("arch", "vocab_size", "n_embd", "n_layer", "ffn_hidden", "conv_kernel")


def interleaved_to_halves(weight: torch.Tensor, n_head: int) -> torch.Tensor:
    """The rows of a Q or K projection (H * D, C) reordered per head from interleaved to rotate-half RoPE."""
    rows, C = weight.shape
    D = rows // n_head
    pairs = weight.reshape(n_head, D // 2, 2, C)  # (H, D/2, 2, C): [h, j, r] is old row h*D + 2j + r
    return pairs.transpose(1, 2).reshape(rows, C)  # (H, 2, D/2, C): new row h*D + r*D/2 + j


def original_shapes(cfg: ModelConfig) -> dict[str, tuple[tuple[int, ...], str]]:
    """Every key of the original's state dict for the model `cfg` describes -> (its shape, the fields fixing it)."""
    V, C, F, K = cfg.vocab_size, cfg.n_embd, cfg.ffn_width, cfg.conv_kernel
    c = f"n_embd={C}"
    f = f"ffn_hidden={F}, {c}" if cfg.ffn_hidden else f"ffn width 4 * n_embd = {F}, {c}"
    shapes = {"token_embedding.weight": ((V, C), f"vocab_size={V}, {c}")}
    if cfg.arch == "worker":
        shapes["worker_type_emb"] = ((1, 1, C), c)
    for i in range(cfg.n_layer):
        layer = {"ln1.weight": ((C,), c), "ln2.weight": ((C,), c), "out_proj.weight": ((C, C), c)}
        if cfg.arch == "worker":
            layer["token_mixer.weight"] = ((C, 1, K), f"{c}, conv_kernel={K}")
            layer["token_mixer.bias"] = ((C,), c)
            layer["token_kv_proj.weight"] = ((2 * C, C), c)
            layer["worker_q_proj.weight"] = ((C, C), c)
            layer["worker_gate_proj.weight"] = ((C, C), c)
        else:
            layer["attn_proj.weight"] = ((3 * C, C), c)
            layer["gate_proj.weight"] = ((C, C), c)
        layer["ffn.0.weight"], layer["ffn.0.bias"] = ((F, C), f), ((F,), f)
        layer["ffn.2.weight"], layer["ffn.2.bias"] = ((C, F), f), ((C,), c)
        shapes.update({f"layers.{i}.{name}": shape for name, shape in layer.items()})
    shapes["ln_f.weight"] = ((C,), c)
    shapes["lm_head.weight"] = ((V, C), f"vocab_size={V}, {c}")
    return shapes


def _strip_prefix(state_dict: Mapping[str, torch.Tensor]) -> tuple[str, dict[str, torch.Tensor]]:
    """(the prefix every key shares above the original's names, the dict without it)."""
    keys = list(state_dict)
    prefix = ""
    for segment in keys[0].split(".")[:-1] if keys else []:
        candidate = f"{prefix}{segment}."
        if segment in _ROOTS or not all(key.startswith(candidate) for key in keys):
            break
        prefix = candidate
    return prefix, {key[len(prefix) :]: value for key, value in state_dict.items()}


def convert_original_state_dict(state_dict: Mapping[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """The original's tensors under our names and RoPE convention, for `load_state_dict` of the model `cfg`
    describes. Raises ValueError naming the first key that does not fit: an unexpected key or a wrong shape
    (in the dict's order), else a missing one. A prefix shared by every key (`module.`, `_orig_mod.`) is ignored."""
    if cfg.arch not in ORIGINAL_ARCHS:
        raise ValueError(
            f"ModelConfig.arch={cfg.arch!r} has no counterpart in the original repository: expected one of "
            f"{', '.join(ORIGINAL_ARCHS)}."
        )
    prefix, sd = _strip_prefix(state_dict)
    expected = original_shapes(cfg)
    model = f"a {cfg.arch} model with n_layer={cfg.n_layer}"
    for name, tensor in sd.items():
        if name not in expected:
            raise ValueError(f"original state dict has unexpected key {prefix + name!r} for {model}.")
        shape, fields = expected[name]
        got = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
        if got != shape:
            raise ValueError(
                f"original state dict key {prefix + name!r} has shape {got}, expected {shape} for {fields}."
            )
    for name in expected:
        if name not in sd:
            raise ValueError(f"original state dict is missing key {prefix + name!r}, which {model} needs.")

    C, H = cfg.n_embd, cfg.n_head
    out = {"tok_emb.weight": sd["token_embedding.weight"]}
    if cfg.arch == "worker":
        out["worker_emb"] = sd["worker_type_emb"].reshape(C)  # (1, 1, C) -> (C,)
    for i in range(cfg.n_layer):
        old, new = f"layers.{i}.", f"blocks.{i}."
        if cfg.arch == "worker":
            out[new + "mixer.conv.weight"] = sd[old + "token_mixer.weight"]
            out[new + "mixer.conv.bias"] = sd[old + "token_mixer.bias"]
            q, gate = sd[old + "worker_q_proj.weight"], sd[old + "worker_gate_proj.weight"]
            k, v = sd[old + "token_kv_proj.weight"].split(C)  # (C, C) each
        else:
            q, k, v = sd[old + "attn_proj.weight"].split(C)  # (C, C) each
            gate = sd[old + "gate_proj.weight"]
        out[new + "attn.qg.weight"] = torch.cat([interleaved_to_halves(q, H), gate])  # (2C, C)
        out[new + "attn.kv.weight"] = torch.cat([interleaved_to_halves(k, H), v])  # (2C, C)
        out.update({new + ours: sd[old + theirs] for theirs, ours in _SAME.items()})
    out["norm.weight"] = sd["ln_f.weight"]
    out["lm_head.weight"] = sd["lm_head.weight"]
    return out


def _tensor(sd: dict[str, torch.Tensor], prefix: str, name: str, ndim: int) -> torch.Tensor:
    tensor = sd.get(name)
    if not isinstance(tensor, torch.Tensor) or tensor.ndim != ndim:
        found = "absent" if tensor is None else f"of shape {tuple(getattr(tensor, 'shape', ()))}"
        raise ValueError(f"original state dict key {prefix + name!r} is {found}: expected a {ndim}-d tensor.")
    return tensor


def config_from_original(
    state_dict: Mapping[str, torch.Tensor],
    *,
    n_head: int,
    worker_interval: int = 4,
    block_size: int = 1024,
    **overrides,
) -> ModelConfig:
    """The ModelConfig of the model that saved `state_dict` in the original's layout.

    arch (worker_type_emb / token_kv_proj vs attn_proj), vocab_size, n_embd, n_layer, ffn_hidden (0 when it is
    4 * n_embd) and conv_kernel are read from the keys and shapes. n_head, worker_interval and block_size leave
    no trace in the tensors, so they are given; `overrides` set any other field (dropout, attention, init, ...).
    """
    prefix, sd = _strip_prefix(state_dict)
    known = {field.name for field in dataclasses.fields(ModelConfig)}
    for name in overrides:
        if name in _INFERRED:
            raise ValueError(f"config_from_original cannot override {name}: it is read from the state dict.")
        if name not in known:
            allowed = ", ".join(sorted(known - set(_INFERRED) - {"n_head", "worker_interval", "block_size"}))
            raise ValueError(f"config_from_original got unknown override {name!r}: expected one of {allowed}.")
    if "worker_type_emb" in sd or any(name.endswith(".token_kv_proj.weight") for name in sd):
        arch = "worker"
    elif any(name.endswith(".attn_proj.weight") for name in sd):
        arch = "standard"
    else:
        raise ValueError("original state dict has no 'worker_type_emb', 'token_kv_proj' or 'attn_proj' key.")
    layers = {int(m.group(1)) for name in sd if (m := re.match(r"layers\.(\d+)\.", name))}
    V, C = _tensor(sd, prefix, "token_embedding.weight", 2).shape
    F = _tensor(sd, prefix, "layers.0.ffn.0.weight", 2).shape[0]
    fields = dict(
        arch=arch,
        vocab_size=V,
        n_embd=C,
        n_layer=max(layers) + 1,
        ffn_hidden=0 if F == 4 * C else F,
        n_head=n_head,
        worker_interval=worker_interval,
        block_size=block_size,
    )
    if arch == "worker":
        fields["conv_kernel"] = _tensor(sd, prefix, "layers.0.token_mixer.weight", 3).shape[-1]
    return ModelConfig(**fields, **overrides)


def load_original(
    state_dict: Mapping[str, torch.Tensor],
    *,
    n_head: int,
    worker_interval: int = 4,
    block_size: int = 1024,
    **overrides,
) -> nn.Module:
    """Our model with the original's weights (strict: every tensor accounted for). Returned as `build_model`
    returns it, in train mode with `cfg.dropout` (0.1 unless overridden): call `.eval()` for inference. The
    random init it builds first is overwritten, but advances torch's RNG."""
    cfg = config_from_original(
        state_dict, n_head=n_head, worker_interval=worker_interval, block_size=block_size, **overrides
    )
    model = build_model(cfg)
    model.load_state_dict(convert_original_state_dict(state_dict, cfg), strict=True)
    return model
