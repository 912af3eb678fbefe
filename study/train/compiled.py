"""How a run's model is compiled (`train.compile`) and how its training losses reach the host.

Modes (TrainConfig.compile): "off" (eager), "default" (torch.compile: Inductor's fused kernels), "reduce-overhead"
(the same, with the compiled forward and backward captured as CUDA graphs and replayed, so a step costs a few
launches instead of hundreds; on a CPU it is "default"), "auto" (reduce-overhead on CUDA, off on a CPU). YAML's
`compile: true` is "default" and `false` is "off", as before. The model code has no graph breaks and no host
syncs in a training or evaluation pass (tests/wt_model/test_compile.py), so each (worker phase, train or eval)
is one graph at the one batch shape a run uses: the loop passes the random worker phase as a plain int, and
evaluation pads its short last batch to the training batch size (study/train/evaluation.py). The loop's warm-up
compiles (and on CUDA records) every one of them off the clock; tests/study/test_compiled.py counts them over a
whole trial. Clipping and AdamW (fused on CUDA) run eagerly after the graphs: a handful of multi-tensor kernels.

On CUDA, reading a loss with `.item()` after every step would stall the host until the GPU is done, so the
launches of the next step could not overlap this one. `LossWindow` keeps the losses on the device and hands
them over in one read every few steps (the loop reads its clock and checks divergence at the same points).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from wt_model.dynamo import recompile_limit

CUDA_READ_EVERY = 16  # steps between host reads of the clock and the losses on CUDA (1 on a CPU)
RECOMPILE_LIMIT = 64  # graphs per model: (train, eval) x worker phases (2k: 32 at k=16), with room to spare


def compile_mode(setting: bool | str, device: torch.device) -> str:
    """The mode `train.compile` asks for on `device`: "off", "default" or "reduce-overhead"."""
    if setting is True or setting == "default":
        return "default"
    if setting is False or setting == "off":
        return "off"
    if setting == "auto":
        return "reduce-overhead" if device.type == "cuda" else "off"
    if setting == "reduce-overhead":
        return setting if device.type == "cuda" else "default"  # CUDA graphs need CUDA
    raise ValueError(
        f"train.compile={setting!r} is invalid: expected true, false, off, default, reduce-overhead or auto."
    )


def compile_model(model: nn.Module, mode: str) -> Callable:
    """A callable with `model`'s signature that runs it as `mode` says (`compile_mode`'s result).

    One compiled wrapper serves training and evaluation: Dynamo guards on the shapes, the worker phase and the
    module's training flag, and compiles a graph per combination (first use, which the loop's warm-up does
    outside the budget clock). Under CUDA graphs every call starts a new step for the graph trees: the outputs
    of the previous call may then be overwritten, so callers consume them (backward, a copy) before calling
    again, as the loop and `evaluate_batch` do. Before each call, a model with a `prepare(T, device)` (the
    worker's FlexAttention block masks) builds on the host what its graph takes as input, once per length."""
    if mode == "off":
        return model
    compiled = torch.compile(model, mode=mode, dynamic=False)
    prepare = getattr(model, "prepare", None)  # a baseline copy of wt_model (bench --baseline-src) may lack it

    @recompile_limit(RECOMPILE_LIMIT)  # for these calls only: the process-wide setting is left alone
    def run(idx: torch.Tensor, *args, **kwargs):
        if prepare is not None:
            prepare(idx.shape[1], idx.device)  # eager, outside the graph: a dict lookup after the first call
        if mode == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()
        return compiled(idx, *args, **kwargs)

    return run


class LossWindow:
    """The training losses of the steps since the last read, kept where they were computed (no host sync)."""

    def __init__(self, size: int, device: torch.device):
        self.size = size  # steps between reads
        self._losses = torch.empty(size, device=device)  # (size,) float32
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def full(self) -> bool:
        return self._count >= self.size

    def add(self, loss: torch.Tensor) -> None:
        """Keep a step's loss (a device copy, so a CUDA graph replay cannot overwrite it)."""
        self._losses[self._count].copy_(loss.detach())
        self._count += 1

    def read(self) -> list[float]:
        """The kept losses in step order, as floats (one host sync), and an empty window."""
        values = self._losses[: self._count].tolist()
        self._count = 0
        return values
