"""Per-batch evaluation: the fair all-positions loss and the seed's metric, as sums so batches aggregate.

`loss_sums` keeps the sums on the device (float64, added in the order the host added Python floats before, so
the totals are the same numbers), for callers that read them once per evaluation pass; `evaluate_batch` reads
one batch's sums as floats.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from wt_model import archs
from wt_model.positions import regular_workers


@dataclass(frozen=True)
class EvalLosses:
    loss_sum_all: float  # next-token CE summed over every position of the batch
    n_all: int  # positions summed in loss_sum_all (B * T)
    loss_sum_seed: float  # the seed's metric: worker positions at phase 0 (worker), every position (standard)
    n_seed: int  # positions summed in loss_sum_seed


@dataclass(frozen=True)
class LossSums:
    """One batch's loss sums, still on the device."""

    sums: torch.Tensor  # (2,) float64: loss_sum_all, loss_sum_seed (as in EvalLosses)
    n_all: int  # positions summed in sums[0]
    n_seed: int  # positions summed in sums[1]


def _ce_sum(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Summed CE as a float64 scalar on the device: the float32 sum, widened as `.item()` would widen it."""
    flat = logits.reshape(-1, logits.shape[-1]).float()  # (N, V)
    return F.cross_entropy(flat, targets.reshape(-1), reduction="sum").double()


@torch.no_grad()
def loss_sums(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, forward: Callable | None = None, rows: int | None = None
) -> LossSums:
    """Loss sums on one batch x, y (B, T), on the device: no host sync. The caller sets model.eval(). `forward`
    runs the model's passes instead of `model` itself (its torch.compile'd wrapper, say). Only the first `rows`
    rows are scored (default: all): the rest pad a short last batch to the shape a compiled forward was built
    for, and are dropped from the logits before the loss, so they change no sum.

    A sparse architecture (wt_model.archs: the worker model): one pass per worker phase; in each pass only the
    regular workers of that phase (positions with p % k == (k - 1 - phase) % k) are scored, so every position
    is predicted by a worker exactly once (the last position in the pass where it is a regular worker). Phases
    with no position in [0, T) are skipped, except phase 0, which gives the seed's metric (all its workers, the
    last position included). Any other architecture: one pass over every position.
    """
    B, T = x.shape
    rows = B if rows is None else rows
    forward = model if forward is None else forward
    y = y[:rows]  # (rows, T)
    if not archs.get(model.cfg.arch).sparse:
        logits, _ = forward(x)  # (B, T, V)
        total = _ce_sum(logits[:rows], y)
        return LossSums(sums=torch.stack([total, total]), n_all=rows * T, n_seed=rows * T)

    k = model.cfg.worker_interval
    loss_all = torch.zeros((), dtype=torch.float64, device=x.device)
    n_all, loss_seed, n_seed = 0, loss_all, 0
    for offset in range(k):
        n_regular = len(regular_workers(T, k, offset))
        if n_regular == 0 and offset != 0:
            continue  # this phase has no regular worker in the sequence
        pos = model.worker_positions(T, offset, x.device)  # (W,): a sparse model's worker rows, built on the device
        logits, _ = forward(x, worker_offset=offset)  # (B, W, V)
        logits, y_w = logits[:rows], y.index_select(1, pos)  # (rows, W, V), (rows, W)
        if offset == 0:
            loss_seed, n_seed = _ce_sum(logits, y_w), rows * pos.numel()
        if n_regular > 0:  # the regular workers come first; the always-on last position may follow them
            loss_all = loss_all + _ce_sum(logits[:, :n_regular], y_w[:, :n_regular])  # (rows, n_regular, V)
            n_all += rows * n_regular
    return LossSums(sums=torch.stack([loss_all, loss_seed]), n_all=n_all, n_seed=n_seed)


@torch.no_grad()
def evaluate_batch(model: nn.Module, x: torch.Tensor, y: torch.Tensor, forward: Callable | None = None) -> EvalLosses:
    """`loss_sums` of one batch x, y (B, T), read as floats (one host read)."""
    losses = loss_sums(model, x, y, forward)
    loss_sum_all, loss_sum_seed = losses.sums.tolist()
    return EvalLosses(loss_sum_all=loss_sum_all, n_all=losses.n_all, loss_sum_seed=loss_sum_seed, n_seed=losses.n_seed)
