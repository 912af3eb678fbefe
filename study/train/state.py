"""Checkpoint state of a training run: RNG capture/restore, CPU copies of tensors, atomic save and safe load.

A state is a plain dict of tensors and Python primitives, so `torch.load(..., weights_only=True)` reads it back
(no pickled classes). `train()` builds it; this module only knows how to copy, store and restore its parts.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from wt_base.errors import StudyError
from wt_base.storage import write_local_atomic


@dataclass
class Counters:
    """How far a run has got: the budget used, the clocks and the bookkeeping between evaluations."""

    step: int = 0  # optimizer steps done
    tokens: int = 0  # training tokens consumed (input positions)
    targets: int = 0  # supervised targets: positions the training loss was taken at (the worker rows)
    train_time_s: float = 0.0  # the budget clock: training steps only
    wall_time_s: float = 0.0  # everything since the run started (refreshed when a state is taken)
    eval_time_s: float = 0.0  # periodic evaluation time (eats the budget with count_eval_in_budget)
    lr: float = 0.0  # learning rate of the last step
    loss_sum: float = 0.0  # training losses summed since the last evaluation
    loss_count: int = 0  # steps summed in loss_sum
    tokens_at_eval: int = 0  # tokens at the last evaluation (for tokens_per_s)
    train_time_at_eval: float = 0.0  # train_time_s at the last evaluation
    next_eval_s: float = 0.0  # train_time_s of the next time-based evaluation
    last_record: dict | None = None  # the last evaluation record, as a dict


def cpu_copy(obj):
    """A deep copy of `obj` with every tensor detached and copied to the CPU (model/optimizer state dicts)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {key: cpu_copy(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(cpu_copy(value) for value in obj)
    return obj


def capture_rng() -> dict:
    """The global random states (Python, NumPy, torch CPU and every CUDA device) as weights-only-safe values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(rng: dict) -> None:
    """Put back the global random states `capture_rng` returned."""
    version, internal, gauss = rng["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = rng["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def save_state(state: dict, path: str | os.PathLike) -> None:
    """Write `state` to `path` atomically (complete or absent, see wt_base.storage.write_local_atomic)."""
    write_local_atomic(path, lambda f: torch.save(state, f))


def load_state(path: str | os.PathLike) -> dict:
    """Read a state written by `save_state` (weights_only=True: no code runs while loading)."""
    path = Path(path)
    if not path.is_file():
        raise StudyError(f"checkpoint {str(path)!r} does not exist: give the file a previous run saved.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which, not a pickle traceback
        raise StudyError(f"checkpoint {str(path)!r} could not be read ({type(exc).__name__}): {exc}") from None
