"""No host sync where the budget clock runs, on CUDA: batch sampling (across a chunk boundary), a training step
at every worker phase (forward, backward, clip, fused AdamW, the loss kept on the device), and an evaluation
pass that reads its sums once. `torch.cuda.set_sync_debug_mode` raises (or warns) at every synchronising call:
`.item()`, a copy from pageable memory, ... CUDA only (benchmarks/gpu_speed.py's cuda-tests step runs this
file); skipped on a CPU, where a host read is no device sync. Needs no conftest (gpu_speed runs --noconftest).
"""

from __future__ import annotations

import contextlib
import math
import warnings

import numpy as np
import pytest
import torch

from study.train.compiled import LossWindow
from study.train.data import BatchSampler, gather_windows, stream_window_starts
from study.train.evaluation import evaluate_windows
from wt_model import ModelConfig, build_model

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (the syncs checked are CUDA's)")


@contextlib.contextmanager
def sync_debug(mode: str):
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode(mode)
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode("default")


def _ids(n: int = 20_000) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 65, n, dtype=np.uint8)  # a uint8 corpus, as stored


@cuda
def test_sampling_does_not_sync_on_cuda():
    device = torch.device("cuda")
    sampler = BatchSampler(_ids(), batch_size=4, seq_len=32, seed=1, device=device)
    with sync_debug("error"):
        batches = [sampler.next()[0] for _ in range(BatchSampler.CHUNK_STEPS + 2)]  # two chunks, two host gathers
    on_cpu = BatchSampler(_ids(), batch_size=4, seq_len=32, seed=1, device=torch.device("cpu"))
    assert all(torch.equal(x.cpu(), on_cpu.next()[0]) for x in batches)  # the same batches as on a CPU


@cuda
@pytest.mark.parametrize("attention", ["sdpa", "flex"])
def test_training_steps_do_not_sync_on_cuda(attention):
    """As the loop steps between reads (after its warm-up has met every phase once)."""
    torch.manual_seed(0)
    cfg = ModelConfig(
        arch="worker", block_size=64, n_embd=32, n_head=2, n_layer=1, dropout=0.1, attention=attention,
        random_worker_phase=True,
    )  # fmt: skip
    model = build_model(cfg).cuda().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    sampler = BatchSampler(_ids(), batch_size=4, seq_len=64, seed=1, device=torch.device("cuda"))

    def step(phase: int) -> torch.Tensor:
        x, y = sampler.next()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            _, loss = model(x, targets=y, worker_offset=phase)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    for phase in range(cfg.worker_interval):  # the warm-up: lazy CUDA set-up, flex masks and kernels
        step(phase)
    losses = LossWindow(16, torch.device("cuda"))
    with sync_debug("error"):
        for _ in range(12):
            losses.add(step(model.draw_phase()))
    assert all(math.isfinite(value) for value in losses.read())


@cuda
@pytest.mark.parametrize("arch", ["standard", "worker"])
def test_an_evaluation_pass_syncs_once_on_cuda(arch):
    """11 windows in batches of 4 (the last one short), every worker phase: one read, at the end of the pass."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=arch, block_size=32, n_embd=32, n_head=2, n_layer=1)).cuda()
    ids = _ids(2_000)
    windows = gather_windows(ids, stream_window_starts(len(ids), 32, 11 * 32), 32, torch.device("cuda"))
    assert len(windows) == 11
    on_cpu = evaluate_windows(model.cpu(), windows.cpu(), 4, contextlib.nullcontext)
    model.cuda()
    evaluate_windows(model, windows, 4, contextlib.nullcontext)  # lazy CUDA set-up
    with sync_debug("warn"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        losses = evaluate_windows(model, windows, 4, contextlib.nullcontext)
    syncs = [w for w in caught if "synchronizing" in str(w.message)]
    assert len(syncs) == 1, [str(w.message) for w in syncs]
    assert losses == pytest.approx(on_cpu, rel=1e-4)
