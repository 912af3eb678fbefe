"""The warm-up of a run, off the budget clock: compile every graph a trial will run (each worker phase's
training graph, the evaluation passes' padded batches) and, on CUDA, load the kernels and library handles that
the first step would otherwise pay for, leaving parameters, optimizer state, the sampler and every RNG untouched
(tests/study/test_train.py and test_compiled.py check both)."""

from __future__ import annotations

import torch

from study.train.evaluation import evaluate_windows
from study.train.state import capture_rng, restore_rng


def warm_up_once(run) -> None:
    """One training step per worker phase (three passes under CUDA graphs: warm up, record, replay), the
    evaluation passes when compiled, and the clip and AdamW step on clones of the parameters."""
    rng = capture_rng()
    sampler = run.sampler
    starts = torch.randint(sampler.n_offsets, (sampler.batch_size,), generator=torch.Generator())  # (B,)
    windows = sampler.windows_at(starts)  # (B, T+1), as in next()
    phases = range(run.phases) if run.phases else [None]  # each worker phase has its own compiled shapes
    passes = 3 if run.compile_mode == "reduce-overhead" else 1  # CUDA graph trees: warm up, record, replay
    for _ in range(passes):
        for phase in phases:
            run.optimizer.zero_grad(set_to_none=True)  # as in a step: no gradient outlives a graph replay
            with run.autocast():
                _, loss = run.step_model(windows[:, :-1], targets=windows[:, 1:], worker_offset=phase)
            loss.backward()
    loss.item()
    if run.compile_mode != "off":  # the evaluation passes' graphs: every batch has this shape (padded)
        for _ in range(passes):
            batch = run.val_windows[: sampler.batch_size]
            evaluate_windows(run.model, batch, sampler.batch_size, run.autocast, run.step_model)
    # the clip and the optimizer step run on clones, so the real optimizer state does not move
    params = [p for p in run.model.parameters() if p.grad is not None]
    clones = [p.detach().clone().requires_grad_() for p in params]
    for clone, p in zip(clones, params, strict=True):
        clone.grad = p.grad
    if run.cfg.train.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(clones, run.cfg.train.grad_clip)
    run._adamw(clones).step()
    run.optimizer.zero_grad(set_to_none=True)
    if run.cuda:
        torch.cuda.synchronize()
    restore_rng(rng)
