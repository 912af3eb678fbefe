"""One code path the compiler captures whole: no graph breaks, compiled = eager, the CPU kernels' switch, and
FlexAttention's worker mask against SDPA's dense one.

CPU tests compile with `backend="aot_eager"` (Dynamo + AOT autograd, no code generation: seconds for a tiny
model). The CUDA tests run where a GPU is visible (benchmarks/gpu_speed.py runs this file there).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import flex_attention
from wt_tiny import tiny_config, tiny_model, tokens

from wt_model import build_model, evaluate_batch
from wt_model.fused import use_cpu_kernels
from wt_model.layers import GatedAttention, PrefixMask, attention
from wt_model.positions import worker_position_list
from wt_model.worker import worker_block_mask

SMALL = dict(n_embd=16, n_layer=1, block_size=32)  # the smallest model with every layer: fast to compile
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
no_flex_eager_warning = pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()  # each test compiles its own models; no recompile limit carried over
    yield
    torch._dynamo.reset()


def _offset(model) -> int | None:
    return 2 if model.cfg.arch == "worker" else None


def _loss_and_grads(forward, model, idx, targets):
    model.zero_grad(set_to_none=True)
    _, loss = forward(idx, targets, worker_offset=_offset(model))
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}


def test_cpu_kernels_run_only_in_eager_mode_on_a_cpu():
    x = torch.ones(3)
    assert use_cpu_kernels(x)
    assert not use_cpu_kernels(torch.ones(3, device="meta"))  # any other device: the plain ops
    compiled = torch.compile(lambda t: t + 1 if use_cpu_kernels(t) else t - 1, backend="eager", fullgraph=True)
    assert torch.equal(compiled(x), x - 1)


@pytest.mark.parametrize("arch", ["standard", "worker"])
def test_training_forward_has_no_graph_breaks(arch):
    model = tiny_model(arch=arch, dropout=0.1, random_worker_phase=arch == "worker", **SMALL).train()
    idx, targets = tokens(2, 12), tokens(2, 12, seed=2)
    explained = torch._dynamo.explain(model)(idx, targets, worker_offset=_offset(model))
    assert explained.graph_break_count == 0, explained.break_reasons
    assert explained.graph_count == 1


def test_a_random_phase_model_compiles_whole_and_never_draws_inside_forward():
    """random_worker_phase used to draw the phase inside forward with .item(): two graphs and a break, hidden by
    every caller passing worker_offset. Now the caller draws it (draw_phase) and the model compiles whole
    (fullgraph=True) at that phase; a training call without it fails loudly, compiled or not, instead of
    running in pieces or eagerly. Evaluation without a phase is phase 0, one graph."""
    model = tiny_model(arch="worker", random_worker_phase=True, **SMALL).train()
    idx, targets = tokens(2, 12), tokens(2, 12, seed=2)
    whole = torch.compile(model, backend="aot_eager", fullgraph=True, dynamic=False)
    _, loss = whole(idx, targets, worker_offset=model.draw_phase())
    loss.backward()
    explained = torch._dynamo.explain(model)(idx, targets, worker_offset=model.draw_phase())
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons
    # torch 2.5's Dynamo says "Observed exception" at the line that raised; later ones carry our message
    said = r"model\.draw_phase\(\)" if torch.__version__ >= "2.6" else r"Observed exception"
    with pytest.raises(torch._dynamo.exc.Unsupported, match=said):
        whole(idx, targets)
    with pytest.raises(ValueError, match=r"worker_offset=None is invalid .* model\.draw_phase\(\)"):
        torch.compile(model, backend="aot_eager", dynamic=False)(idx, targets)  # Dynamo gives up; eager raises
    explained = torch._dynamo.explain(model.eval())(idx)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons


@pytest.mark.parametrize("arch", ["standard", "worker"])
def test_compiled_training_step_equals_eager(arch):
    """fullgraph=True fails on any break, in the forward or in AOT autograd's backward."""
    model = tiny_model(arch=arch, dropout=0.0, **SMALL).train()
    idx, targets = tokens(2, 13), tokens(2, 13, seed=2)  # 13: the worker's last position is not a regular one
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True, dynamic=False)
    loss_c, grads_c = _loss_and_grads(compiled, model, idx, targets)
    loss_e, grads_e = _loss_and_grads(model, model, idx, targets)
    torch.testing.assert_close(loss_c, loss_e, rtol=0, atol=1e-6)
    for name, grad in grads_e.items():
        torch.testing.assert_close(grads_c[name], grad, rtol=0, atol=1e-5, msg=name)
    assert all(grad.abs().sum() > 0 for grad in grads_c.values())


@pytest.mark.parametrize("arch", ["standard", "worker"])
def test_compiled_training_with_dropout_runs_whole(arch):
    """With dropout the compiled and eager RNG streams differ; the compiled step must still be one graph with a
    finite loss and gradients, and dropout must act (two steps differ)."""
    model = tiny_model(arch=arch, dropout=0.3, **SMALL).train()
    idx, targets = tokens(2, 12), tokens(2, 12, seed=2)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True, dynamic=False)
    loss_1, grads = _loss_and_grads(compiled, model, idx, targets)
    loss_2, _ = _loss_and_grads(compiled, model, idx, targets)
    assert torch.isfinite(loss_1) and all(torch.isfinite(g).all() for g in grads.values())
    assert loss_1 != loss_2


@pytest.mark.parametrize("arch", ["standard", "worker"])
def test_compiled_evaluation_equals_eager(arch):
    model = tiny_model(arch=arch, dropout=0.1, **SMALL).eval()
    x, y = tokens(2, 14), tokens(2, 14, seed=2)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True, dynamic=False)
    eager, comp = evaluate_batch(model, x, y), evaluate_batch(model, x, y, forward=compiled)
    assert comp.n_all == eager.n_all == 2 * 14
    assert comp.loss_sum_all == pytest.approx(eager.loss_sum_all, rel=1e-6)
    assert comp.loss_sum_seed == pytest.approx(eager.loss_sum_seed, rel=1e-6)


def _dense_worker_mask(T: int, k: int, offset: int) -> torch.Tensor:
    pos = torch.tensor(worker_position_list(T, k, offset))
    return torch.arange(T)[None, :] <= pos[:, None]  # (W, T)


@pytest.mark.parametrize(("T", "k"), [(37, 4), (2, 4), (16, 1), (40, 3)])
def test_worker_block_mask_is_the_dense_worker_mask(T, k):
    for offset in range(k):
        block_mask = worker_block_mask(T, k, offset, torch.device("cpu"))
        dense = _dense_worker_mask(T, k, offset)
        W = dense.shape[0]
        # torch >= 2.6 keeps the true lengths; 2.5 reports them rounded up to whole blocks
        assert tuple(getattr(block_mask, "seq_lengths", (W, T))) == (W, T)
        q_idx, kv_idx = torch.arange(W)[:, None], torch.arange(T)[None, :]
        assert torch.equal(block_mask.mask_mod(0, 0, q_idx, kv_idx), dense), (T, offset)


@no_flex_eager_warning
@pytest.mark.parametrize(("T", "k", "offset"), [(37, 4, 0), (37, 4, 3), (300, 4, 1), (3, 4, 0)])
def test_flex_worker_attention_equals_sdpa_forward(T, k, offset):
    """FlexAttention has no backward on CPU: the forward here (its unfused reference, and through our dispatch
    under compile), forward and backward on CUDA below."""
    dense = _dense_worker_mask(T, k, offset)
    W = dense.shape[0]
    g = torch.Generator().manual_seed(0)
    q, key, v = (torch.randn(2, 2, n, 8, generator=g) for n in (W, T, T))
    expected = F.scaled_dot_product_attention(q, key, v, attn_mask=dense)
    block_mask = worker_block_mask(T, k, offset, torch.device("cpu"))
    torch.testing.assert_close(flex_attention(q, key, v, block_mask=block_mask), expected, rtol=0, atol=1e-5)
    mask = PrefixMask(dense=dense, n_keys=tuple(dense.sum(-1).tolist()), block_mask=block_mask)
    dispatched = torch.compile(lambda q, key, v: attention(q, key, v, mask, 0.0, "flex"), backend="aot_eager")
    torch.testing.assert_close(dispatched(q, key, v), expected, rtol=0, atol=1e-5)


def test_flex_block_masks_are_built_once_and_read_by_the_graph(monkeypatch):
    """prepare() builds every phase's block mask once per (T, device), outside the graph; the compiled passes
    take them as inputs and build none, one graph per phase, revisits included. The CUDA-only switch is opened
    on the CPU for this (forward only: FlexAttention has no CPU backward)."""
    import wt_model.worker as worker

    built = []
    real_build = worker.worker_block_mask
    monkeypatch.setattr(worker, "uses_flex", lambda cfg, device: cfg.attention == "flex")
    monkeypatch.setattr(worker, "worker_block_mask", lambda *args: (built.append(args[2]), real_build(*args))[1])
    model = tiny_model(arch="worker", attention="flex", **SMALL).eval()
    sdpa = tiny_model(arch="worker", attention="sdpa", **SMALL).eval()
    sdpa.load_state_dict(model.state_dict())
    x = tokens(2, 29)  # 29: the last position is not a regular worker in most phases
    model.prepare(29, x.device)
    model.prepare(29, x.device)  # a no-op once built
    assert built == [0, 1, 2, 3]
    graphs = []

    def counting(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    compiled = torch.compile(model, backend=counting, fullgraph=True, dynamic=False)
    with torch.no_grad():
        for offset in (0, 1, 2, 3, 0, 3):
            logits, _ = compiled(x, worker_offset=offset)
            torch.testing.assert_close(logits, sdpa(x, worker_offset=offset)[0], rtol=0, atol=1e-5)
    assert built == [0, 1, 2, 3] and len(graphs) == 4
    for gm in graphs:  # the prepared mask's tensors are graph inputs
        inputs = [node.name for node in gm.graph.nodes if node.op == "placeholder"]
        assert any("_block_masks" in name and "kv_indices" in name for name in inputs), inputs


def test_flex_applies_no_dropout_to_attention_weights():
    """attention="flex" trains without dropout on the weights (FlexAttention has none): the layer is
    deterministic in training mode, where the sdpa layer is not."""
    torch.manual_seed(0)
    flex = GatedAttention(tiny_config(attention="flex", dropout=0.5)).train()
    sdpa = GatedAttention(tiny_config(attention="sdpa", dropout=0.5)).train()
    sdpa.load_state_dict(flex.state_dict())
    x = torch.randn(2, 10, 32)
    rope = (torch.ones(10, 16), torch.zeros(10, 16))  # the identity rotation
    assert torch.equal(flex(x, x, rope, rope, None), flex(x, x, rope, rope, None))
    assert not torch.equal(sdpa(x, x, rope, rope, None), sdpa(x, x, rope, rope, None))
    torch.testing.assert_close(flex(x, x, rope, rope, None), sdpa.eval()(x, x, rope, rope, None))


@cuda
@pytest.mark.parametrize("compiled", [False, True])
def test_flex_worker_model_equals_sdpa_on_cuda(compiled):
    """Forward and backward of the worker model through FlexAttention's kernel against SDPA's dense mask (fp32,
    dropout 0), eager (flex compiled on its own) and inside a compiled model."""
    torch.manual_seed(0)
    sdpa = build_model(tiny_config(arch="worker", attention="sdpa", block_size=300)).cuda()
    flex = build_model(tiny_config(arch="worker", attention="flex", block_size=300)).cuda()
    flex.load_state_dict(sdpa.state_dict())
    forward = torch.compile(flex, dynamic=False) if compiled else flex
    idx, targets = tokens(2, 299).cuda(), tokens(2, 299, seed=2).cuda()
    for offset in range(4):
        sdpa.zero_grad(set_to_none=True)
        flex.zero_grad(set_to_none=True)
        _, loss_ref = sdpa(idx, targets, worker_offset=offset)
        _, loss = forward(idx, targets, worker_offset=offset)
        loss_ref.backward()
        loss.backward()
        torch.testing.assert_close(loss, loss_ref, rtol=0, atol=1e-5)
        for (name, p_ref), p in zip(sdpa.named_parameters(), flex.parameters(), strict=True):
            torch.testing.assert_close(p.grad, p_ref.grad, rtol=1e-3, atol=1e-4, msg=name)  # other sum orders


@cuda
@pytest.mark.parametrize("arch", ["standard", "worker"])
def test_cuda_graphs_training_equals_eager(arch):
    """mode="reduce-overhead" (CUDA graphs over the compiled forward and backward) computes what eager does."""
    torch.manual_seed(0)
    model = build_model(tiny_config(arch=arch, dropout=0.0)).cuda().train()
    compiled = torch.compile(model, mode="reduce-overhead", dynamic=False)
    idx, targets = tokens(4, 64).cuda(), tokens(4, 64, seed=2).cuda()
    for _ in range(3):  # the first calls record, later ones replay
        torch.compiler.cudagraph_mark_step_begin()
        loss_c, grads_c = _loss_and_grads(compiled, model, idx, targets)
    loss_e, grads_e = _loss_and_grads(model, model, idx, targets)
    torch.testing.assert_close(loss_c, loss_e, rtol=1e-5, atol=1e-5)
    for name, grad in grads_e.items():  # Inductor's kernels sum in other orders
        torch.testing.assert_close(grads_c[name], grad, rtol=1e-3, atol=1e-4, msg=name)


@cuda
@pytest.mark.parametrize("arch", ["standard", "worker"])
def test_cuda_graphs_evaluation_equals_eager(arch):
    """The evaluation passes (every worker phase) replayed as CUDA graphs give the eager loss sums."""
    torch.manual_seed(0)
    model = build_model(tiny_config(arch=arch, dropout=0.1)).cuda().eval()
    compiled = torch.compile(model, mode="reduce-overhead", dynamic=False)

    def replay(*args, **kwargs):
        torch.compiler.cudagraph_mark_step_begin()
        return compiled(*args, **kwargs)

    x, y = tokens(4, 64).cuda(), tokens(4, 64, seed=2).cuda()
    eager = evaluate_batch(model, x, y)
    for _ in range(3):  # record, then replay
        graphs = evaluate_batch(model, x, y, forward=replay)
    assert graphs.n_all == eager.n_all and graphs.n_seed == eager.n_seed
    assert graphs.loss_sum_all == pytest.approx(eager.loss_sum_all, rel=1e-4)
    assert graphs.loss_sum_seed == pytest.approx(eager.loss_sum_seed, rel=1e-4)
