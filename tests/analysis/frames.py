"""Hand-built trial frames for the statistics tests: one cell by default, every setting explicit."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.stats import final_values
from wt_model import archs

CELL = dict(
    seq_len=64,
    n_embd=64,
    n_layer=2,
    n_head=4,
    ffn_hidden=256,
    batch_size=16,
    init="torch",
    attention="sdpa",
    budget_kind="seconds",
    budget_value=20.0,
    count_eval_in_budget=False,
    eval_protocol="stream",
    corpus="tiny",
)
SETTINGS = dict(lr=1e-3, weight_decay=0.01, schedule="constant", warmup_frac=0.0, dropout=0.0)
METRIC_COLUMNS = ["trial_id", "step", "tokens", "train_time_s", "is_final", "val_loss", "val_loss_seed"]
METRIC_COLUMNS += ["epochs", "train_minus_val", "val_tokens"]


def trials_frame(rows: list[dict]) -> pd.DataFrame:
    """Trial rows from dicts with at least arch and seed (and usually val_loss); the rest defaults to one cell,
    worker interval 4 for the architectures that read one, status completed, seed role test."""
    out = []
    for i, row in enumerate(rows):
        arch = row["arch"]
        base = dict(CELL, **SETTINGS, trial_id=f"t{i:03d}", status="completed", seed_role="test")
        interval = 4 if archs.applies("worker_interval", archs.of_label(arch).name) else None
        base.update(worker_interval=interval, random_worker_phase=False, conv_kernel=None)
        base.update(
            equivalence_margin=0.01, n_params=1000, flops_per_token=6000.0, val_loss=np.nan, val_loss_seed=np.nan
        )
        out.append(dict(base, **row))
    frame = pd.DataFrame(out)
    frame["worker_interval"] = frame["worker_interval"].astype("Int64")
    frame["seed"] = frame["seed"].astype("Int64")
    return frame


def empty_metrics() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=float) for c in METRIC_COLUMNS})
    frame["trial_id"] = frame["trial_id"].astype(object)
    frame["is_final"] = frame["is_final"].astype(bool)
    return frame


def final_frame(rows: list[dict], metrics: pd.DataFrame | None = None) -> pd.DataFrame:
    """stats.final_values of hand-built trial rows."""
    return final_values(trials_frame(rows), empty_metrics() if metrics is None else metrics)


def arm_rows(arch: str, losses, start_seed: int = 0, **settings) -> list[dict]:
    """One completed trial per loss, seeds start_seed, start_seed + 1, ..."""
    return [dict(arch=arch, seed=start_seed + i, val_loss=float(v), **settings) for i, v in enumerate(losses)]
