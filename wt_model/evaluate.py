"""Per-batch evaluation: the fair all-positions loss and the seed's metric, as sums so batches aggregate."""

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


def _ce_sum(logits: torch.Tensor, targets: torch.Tensor) -> float:
    flat = logits.reshape(-1, logits.shape[-1]).float()  # (N, V)
    return F.cross_entropy(flat, targets.reshape(-1), reduction="sum").item()


@torch.no_grad()
def evaluate_batch(model: nn.Module, x: torch.Tensor, y: torch.Tensor, forward: Callable | None = None) -> EvalLosses:
    """Loss sums on one batch x, y (B, T). The caller sets model.eval(). `forward` runs the model's passes
    instead of `model` itself (its torch.compile'd wrapper, say).

    A sparse architecture (wt_model.archs: the worker model): one pass per worker phase; in each pass only the
    regular workers of that phase (positions with p % k == (k - 1 - phase) % k) are scored, so every position
    is predicted by a worker exactly once (the last position in the pass where it is a regular worker). Phases
    with no position in [0, T) are skipped, except phase 0, which gives the seed's metric (all its workers, the
    last position included). Any other architecture: one pass over every position.
    """
    B, T = x.shape
    forward = model if forward is None else forward
    if not archs.get(model.cfg.arch).sparse:
        logits, _ = forward(x)  # (B, T, V)
        total = _ce_sum(logits, y)
        return EvalLosses(loss_sum_all=total, n_all=B * T, loss_sum_seed=total, n_seed=B * T)

    k = model.cfg.worker_interval
    loss_all, n_all, loss_seed, n_seed = 0.0, 0, 0.0, 0
    for offset in range(k):
        n_regular = len(regular_workers(T, k, offset))
        if n_regular == 0 and offset != 0:
            continue  # this phase has no regular worker in the sequence
        pos = model.worker_positions(T, offset, x.device)  # (W,): a sparse model's worker rows, built on the device
        logits, _ = forward(x, worker_offset=offset)  # (B, W, V)
        y_w = y.index_select(1, pos)  # (B, W)
        if offset == 0:
            loss_seed, n_seed = _ce_sum(logits, y_w), B * pos.numel()
        if n_regular > 0:  # the regular workers come first; the always-on last position may follow them
            loss_all += _ce_sum(logits[:, :n_regular], y_w[:, :n_regular])  # (B, n_regular, V)
            n_all += B * n_regular
    return EvalLosses(loss_sum_all=loss_all, n_all=n_all, loss_sum_seed=loss_seed, n_seed=n_seed)
