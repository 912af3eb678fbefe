"""The published peers (wt_model.hourglass, wt_model.mod): causality, hand-counted FLOPs and parameters, slow loop
references of the shortening and the routing, training, compile and `wt-study train`."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_flops import CPU_SDPA
from torch.utils.flop_counter import FlopCounterMode
from wt_tiny import tiny_config, tiny_model, tokens

from study.cli import main
from wt_model import ModelConfig, build_model, evaluate_batch
from wt_model.flops import (
    count_params,
    forward_flops_per_sequence,
    mod_evaluation_flops_per_sequence,
    n_workers,
    routed_capacity,
    training_flops_per_sequence,
    training_flops_per_token,
)
from wt_model.hourglass import shorten
from wt_model.mod import RoutedBlock

T = 19  # not a multiple of the factors: the last shortened group and the capacity's rounding are exercised
HOURGLASS = dict(arch="hourglass", n_layer=3)  # (1@1, 1@k, 1@1)


def _changed_after(idx: torch.Tensor, t: int) -> torch.Tensor:
    changed = idx.clone()
    changed[:, t + 1 :] = (changed[:, t + 1 :] + 7) % 65
    return changed


def _logits(model, idx):
    torch.manual_seed(0)  # the same dropout masks for both inputs in training mode
    return model(idx)[0]


def _assert_causal(model):
    idx = tokens(2, T)
    before = _logits(model, idx)
    for t in (0, 3, 4, 5, 11, T - 2):
        after = _logits(model, _changed_after(idx, t))
        torch.testing.assert_close(after[:, : t + 1], before[:, : t + 1], rtol=0, atol=1e-6)
        assert not torch.allclose(after[:, -1], before[:, -1], atol=1e-6)  # the check can fail


@pytest.mark.parametrize("k", [1, 3, 4, 8])
@pytest.mark.parametrize("attention", ["sdpa", "naive"])
@pytest.mark.parametrize("train_mode", [False, True], ids=["eval", "train-dropout"])
def test_hourglass_never_sees_the_future(k, attention, train_mode):
    model = tiny_model(**HOURGLASS, worker_interval=k, attention=attention, dropout=0.1).train(train_mode)
    _assert_causal(model)


@pytest.mark.parametrize("k", [1, 3, 4])
@pytest.mark.parametrize("route_every", [1, 2])
@pytest.mark.parametrize("attention", ["sdpa", "naive"])
def test_mod_evaluation_never_sees_the_future(k, route_every, attention):
    """Evaluation routes by the causal predictor (training's top-k is not causal, and is never evaluated)."""
    model = tiny_model(arch="mod", worker_interval=k, mod_route_every=route_every, attention=attention, dropout=0.1)
    _assert_causal(model.eval())


@pytest.mark.parametrize("overrides", [dict(HOURGLASS, worker_interval=4), dict(arch="mod", worker_interval=3)])
def test_evaluation_loss_equals_prefix_passes(overrides):
    """evaluate_batch's one pass over every position equals predicting each position from its own prefix."""
    model = tiny_model(**overrides).eval()
    x, y = tokens(2, T), tokens(2, T, seed=2)
    with torch.no_grad():
        brute = sum(F.cross_entropy(model(x[:, : t + 1])[0][:, -1], y[:, t], reduction="sum") for t in range(T))
    assert evaluate_batch(model, x, y).loss_sum_all == pytest.approx(brute.item(), rel=1e-5)


# -- references ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2, 4, 5])
def test_shorten_equals_a_loop_over_groups(k):
    x = torch.randn(2, T, 6)
    expected = torch.zeros(2, -(-T // k), 6)
    for j in range(expected.shape[1]):
        for p in range(j * k - k + 1, j * k + 1):  # shortened token j: positions jk-k+1 .. jk, zeros before 0
            if p >= 0:
                expected[:, j] += x[:, p] / k
    torch.testing.assert_close(shorten(x, k), expected)


@pytest.mark.parametrize("k", [1, 3, 4])
def test_hourglass_equals_a_slow_loop_over_positions(k):
    """The whole forward against one that pools, upsamples and adds position by position (the model's modules)."""
    model = tiny_model(**HOURGLASS, worker_interval=k).eval()
    idx = tokens(2, T)
    rope = model.rotary.tables(T)
    with torch.no_grad():
        x = model.tok_emb(idx)
        for block in model.pre:
            x = block(x, rope)
        S = -(-T // k)
        z = torch.stack([sum(x[:, p] for p in range(j * k - k + 1, j * k + 1) if p >= 0) / k for j in range(S)], 1)
        positions = torch.tensor([j * k for j in range(S)])
        for block in model.shortened:
            z = block(z, model.rotary.tables(positions))
        up = model.upsample(model.shortened_norm(z))  # (B, S, k*C)
        C = model.cfg.n_embd
        rows = [model.upsample_norm(up[:, p // k, (p % k) * C : (p % k + 1) * C]) for p in range(T)]
        x = x + torch.stack(rows, 1)
        for block in model.post:
            x = block(x, rope)
        expected = model.lm_head(model.norm(x))
        torch.testing.assert_close(model(idx)[0], expected, rtol=1e-5, atol=1e-5)


def _routed_block(k: int, seed: int = 0) -> tuple[RoutedBlock, torch.nn.Module]:
    model = tiny_model(arch="mod", worker_interval=k, seed=seed)
    return model.blocks[0], model.rotary


@pytest.mark.parametrize("k", [1, 3, 4])
def test_top_k_routing_equals_the_masked_dense_pass(k):
    """Training's gather / top-k / scatter path against every row computed with top-k membership as the mask."""
    block, rotary = _routed_block(k)
    block.train()  # dropout is 0 in the tiny config
    x = torch.randn(3, T, 32)
    routed, aux = block.route_top_k(x, rotary)
    logits = block.router(x).squeeze(-1)
    chosen = torch.zeros(3, T, dtype=torch.bool)
    chosen.scatter_(1, logits.topk(-(-T // k), dim=1).indices, True)
    torch.testing.assert_close(routed, block.route_masked(x, rotary.tables(T), chosen), rtol=1e-5, atol=1e-5)
    assert torch.equal(routed[~chosen], x[~chosen])  # passed by: unchanged
    predicted = block.predictor(x).squeeze(-1)
    assert aux.item() == pytest.approx(F.binary_cross_entropy_with_logits(predicted, chosen.float()).item())


@pytest.mark.parametrize("k", [2, 4])
def test_causal_routing_equals_a_loop_over_chosen_subsequences(k):
    """Evaluation's masked pass against running the block on each sequence's chosen tokens alone."""
    block, rotary = _routed_block(k, seed=3)
    block.eval()
    x = torch.randn(3, T, 32)
    with torch.no_grad():
        chosen = block.predictor(x).squeeze(-1) > 0
        assert 0 < chosen.sum() < chosen.numel()  # some routed, some passed by: the comparison means something
        expected = x.clone()
        for b in range(3):
            pos = chosen[b].nonzero().squeeze(-1)
            if len(pos) == 0:
                continue
            rows = x[b : b + 1, pos]  # (1, n, C)
            weight = torch.sigmoid(block.router(rows))  # (1, n, 1)
            expected[b, pos] = (rows + weight * block.update(rows, rotary.tables(pos), mask=None))[0]
        torch.testing.assert_close(block.route_causal(x, rotary.tables(T)), expected, rtol=1e-5, atol=1e-5)


# -- counts ------------------------------------------------------------------------------------------------------

# By hand, C=32, F=128, V=65, T=16. A block whose R rows attend over themselves:
# kv 4*R*C^2 + qg 4*R*C^2 + out 2*R*C^2 + attention 4*R^2*C + FFN 4*R*C*F.
BLOCK_16 = 65536 + 65536 + 32768 + 32768 + 262144  # 458,752
BLOCK_4 = 16384 + 16384 + 8192 + 2048 + 65536  # 108,544 (4 rows: ceil(16 / 4))
HEAD_16 = 2 * 16 * 32 * 65  # 66,560
GATES_16 = 2 * 16 * 32 + 2 * 16 * 32 * 4 + 2 * 16 * 4  # router, predictor C -> 4 -> 1 on 16 rows: 5,248
# Torch's SDPA backward formula also recomputes the scores (one more L x S x head_dim product per head, the same
# FLOPs as the forward's scores, 2*R^2*C per block); under naive attention the counter sees the plain 2x.
SCORES_16, SCORES_4 = 2 * 16 * 16 * 32, 2 * 4 * 4 * 32
# (config, forward, training, parameters, scores recomputed by SDPA's backward); a block has 2 RMSNorms (64),
# 5 C^2 attention (5,120), FFN with biases (8,352): 13,536; vocabulary 2 * 65 * 32 = 4,160; final norm 32
HAND = {
    "hourglass": (
        dict(arch="hourglass", n_layer=3, worker_interval=4),
        2 * BLOCK_16 + BLOCK_4 + 2 * 4 * 32 * (4 * 32) + HEAD_16,  # + linear upsampling, 4 rows C -> 4C: 1,125,376
        3 * (2 * BLOCK_16 + BLOCK_4 + 32768 + HEAD_16),
        3 * 13536 + 4160 + 32 + 4 * 32 * 32 + 2 * 32,  # + upsampling weight and its two norms: 48,960
        2 * SCORES_16 + SCORES_4,
    ),
    "mod": (
        dict(arch="mod", n_layer=2, worker_interval=4),
        2 * (BLOCK_4 + GATES_16) + HEAD_16,  # 294,144
        3 * (2 * (BLOCK_4 + GATES_16) + HEAD_16) - 2 * (2 * 16 * 32 * 4),  # no input gradient into the predictor
        2 * 13536 + 4160 + 32 + 2 * (32 + 32 * 4 + 4 + 4 + 1),  # + router and predictor per block: 31,602
        2 * SCORES_4,
    ),
    "mod-interleaved": (
        dict(arch="mod", n_layer=2, worker_interval=4, mod_route_every=2),
        BLOCK_16 + BLOCK_4 + GATES_16 + HEAD_16,  # the first block standard, the second routed
        3 * (BLOCK_16 + BLOCK_4 + GATES_16 + HEAD_16) - 2 * 16 * 32 * 4,
        2 * 13536 + 4160 + 32 + (32 + 32 * 4 + 4 + 4 + 1),
        SCORES_16 + SCORES_4,
    ),
}


def _counted(model, idx, targets, backward):
    with FlopCounterMode(display=False, custom_mapping=CPU_SDPA) as counter:
        _, loss = model(idx, targets)
        if backward:
            loss.backward()
    return counter.get_total_flops()


@pytest.mark.parametrize("name", list(HAND))
@pytest.mark.parametrize("attention", ["sdpa", "naive"])
def test_flops_and_parameters_match_hand_counts_and_the_model(name, attention):
    overrides, forward, training, params, scores = HAND[name]
    cfg = tiny_config(**overrides, attention=attention)
    model = build_model(cfg).train()
    assert forward_flops_per_sequence(cfg, 16) == forward
    assert training_flops_per_sequence(cfg, 16) == training
    assert training_flops_per_token(cfg, 16) == pytest.approx(training / 16)
    assert count_params(cfg).total == params == sum(p.numel() for p in model.parameters())
    idx, targets = tokens(2, 16), tokens(2, 16, seed=2)
    assert _counted(model, idx, targets, backward=False) == 2 * forward  # torch's counter sees the same matmuls
    recomputed = scores if attention == "sdpa" else 0
    assert _counted(model, idx, targets, backward=True) == 2 * (training + recomputed)


def test_mod_routes_as_many_tokens_as_the_worker_has_workers():
    for seq_len in (1, 3, 4, 5, 16, 19, 64):
        assert routed_capacity(seq_len, 4) == n_workers(tiny_config(arch="worker", worker_interval=4), seq_len)


def test_mod_evaluation_flops_are_the_dense_pass_plus_the_gates():
    cfg = tiny_config(arch="mod", n_layer=2, worker_interval=4)
    assert mod_evaluation_flops_per_sequence(cfg, 16) == 2 * BLOCK_16 + HEAD_16 + 2 * GATES_16
    counted = _counted(build_model(cfg).eval(), tokens(2, 16), tokens(2, 16, seed=2), backward=False)
    assert counted == 2 * mod_evaluation_flops_per_sequence(cfg, 16)


# -- configuration, training, compile, CLI -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (dict(arch="hourglass", n_layer=2), r"hourglass_outer_layers=1 is invalid: expected at most 0 with n_layer=2"),
        (dict(arch="hourglass", hourglass_outer_layers=-1), r"hourglass_outer_layers=-1 .* integer >= 0"),
        (dict(arch="mod", mod_route_every=5), r"mod_route_every=5 is invalid: expected at most n_layer=4"),
        (dict(arch="mod", mod_route_every=0), r"mod_route_every=0 .* integer >= 1"),
    ],
)
def test_bad_peer_fields_are_one_clear_error(fields, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**fields)
    if fields.get("n_layer") == 2:
        ModelConfig(**{**fields, "arch": "standard"})  # the split only binds the hourglass


def _agreement(block: RoutedBlock, x: torch.Tensor) -> float:
    """Share of tokens where the predictor's causal decision equals training's top-k membership."""
    logits = block.router(x).squeeze(-1)
    member = torch.zeros_like(logits, dtype=torch.bool).scatter_(
        1, logits.topk(-(-x.shape[1] // block.k)).indices, True
    )
    return ((block.predictor(x).squeeze(-1) > 0) == member).float().mean().item()


@pytest.fixture
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matmuls: one thread is fastest, and the machine may be busy
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("overrides", [HOURGLASS, dict(arch="mod")])
def test_a_short_training_run_lowers_the_loss(_one_thread, overrides):
    """A fixed batch, 100 AdamW steps: the training loss falls, and the evaluation loss with it. For mod, whose
    evaluation routes by the predictor, the predictor has learnt top-k membership (0.75 would be "pass by" for
    every token at k=4; it reaches 0.91-0.96 over seeds 0-2), and the returned loss is the CE alone."""
    model = tiny_model(**overrides, worker_interval=4)
    x, y = tokens(4, 32), tokens(4, 32, seed=2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first_eval = evaluate_batch(model.eval(), x, y).loss_sum_all / (4 * 32)
    model.train()
    losses = []
    for _ in range(100):
        _, loss = model(x, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 2.0
    assert evaluate_batch(model.eval(), x, y).loss_sum_all / (4 * 32) < first_eval - 2.0
    if overrides["arch"] == "mod":
        with torch.no_grad():
            assert _agreement(model.blocks[0], model.tok_emb(x)) > 0.85
        logits, loss = model.train()(x, y)  # the predictor's BCE adds its gradient, not its value
        assert loss.item() == pytest.approx(F.cross_entropy(logits.reshape(-1, 65), y.reshape(-1)).item())


@pytest.fixture
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("overrides", [HOURGLASS, dict(arch="mod"), dict(arch="mod", mod_route_every=2)])
@pytest.mark.parametrize("train_mode", [True, False], ids=["train", "eval"])
def test_one_graph_no_breaks(_fresh_dynamo, overrides, train_mode):
    model = tiny_model(**overrides, dropout=0.1, n_embd=16, block_size=32).train(train_mode)
    idx, targets = tokens(2, 12), tokens(2, 12, seed=2)
    explained = torch._dynamo.explain(model)(idx, targets)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons


@pytest.mark.parametrize(
    "arch", [["--arch", "hourglass", "--n-layer", "3"], ["--arch", "mod"], ["--arch", "mod-interleaved"]]
)
def test_wt_study_train_runs_the_peers(tmp_path, capsys, excerpt, arch):
    flags = ["--data", excerpt, "--device", "cpu", "--threads", "1", "--seq-len", "32", "--n-embd", "32"]
    flags += ["--batch-size", "8", "--budget-kind", "steps", "--budget", "4", "--no-final-full"]
    assert main(["train", *flags, *arch, "--checkpoint-dir", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"training: {arch[1].split('-')[0]}") and "done: completed | 4 steps" in out


def test_wt_study_train_says_how_to_fit_the_hourglass(tmp_path, capsys, excerpt):
    assert main(["train", "--arch", "hourglass", "--data", excerpt, "--checkpoint-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "hourglass_outer_layers=1 is invalid" in err and "n_layer=2" in err and err.count("\n") == 1
