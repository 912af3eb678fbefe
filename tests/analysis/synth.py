"""A synthetic study writer: valid Parquet results (via study.results.schema.conform) with known structure.

Loss follows a smooth curve in steps plus a size term, the worker model runs 1.5x more steps per second and
ends a little lower, each seed adds its own small offset. Files are split like the sink's flushes (trial rows
first written as "running", then "completed"), optionally with duplicated rows as after a resume.
"""

from __future__ import annotations

import itertools
import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from study.results.schema import (
    METRICS_DIR,
    METRICS_SCHEMA,
    RESULTS_DIR,
    SCHEMA_VERSION,
    TRIALS_DIR,
    TRIALS_SCHEMA,
    conform,
)

VOCAB = 65
NOW = datetime(2025, 1, 1, tzinfo=timezone.utc)


def trial_configs(archs, intervals, seq_lens, n_embds, n_layers, attentions, seeds, budget_s, lrs=(3e-4,)):
    configs = []
    for arch, seq_len, n_embd, n_layer, attention, lr, seed in itertools.product(
        archs, seq_lens, n_embds, n_layers, attentions, lrs, seeds
    ):
        for interval in (None,) if arch == "standard" else intervals:
            configs.append(
                dict(
                    arch=arch,
                    attention=attention,
                    worker_interval=interval,
                    random_worker_phase=arch == "worker-random-phase",
                    seq_len=seq_len,
                    n_embd=n_embd,
                    n_layer=n_layer,
                    n_head=4,
                    ffn_hidden=4 * n_embd,
                    dropout=0.0,
                    batch_size=16,
                    lr=lr,
                    schedule="constant",
                    seed=seed,
                    budget_kind="seconds",
                    budget_value=float(budget_s),
                    count_eval_in_budget=False,
                    eval_protocol="stream",
                    corpus="tinyshakespeare",
                )
            )
    return configs


def _curve(config, n_params, steps, seed_offset, worker_gain):
    size_term = 1.0 * (n_params / 1e5) ** -0.35
    loss = 1.2 + size_term + 1.5 * (1.0 + steps / 20.0) ** -0.5 + seed_offset
    return loss - (worker_gain if config["arch"] != "standard" else 0.0)


def write_study(
    root: Path,
    name: str = "synth",
    archs=("standard", "worker"),
    intervals=(2, 4),
    seq_lens=(64, 128),
    n_embds=(64,),
    n_layers=(2,),
    attentions=("sdpa",),
    seeds=(0, 1),
    lrs=(3e-4,),
    budget_s: float = 20.0,
    n_points: int = 8,
    n_files: int = 3,
    worker_gain: float = 0.05,
    noise: float = 0.01,
    duplicate: bool = False,
    status_of=None,
    device_name: str = "cpu",
) -> Path:
    """Write `<root>/<name>/results/...` and return the study directory.

    `status_of(index, config)` may return a final status other than "completed" ("running", "diverged").
    """
    rng = np.random.default_rng(0)
    study_dir = Path(root) / name
    configs = trial_configs(archs, intervals, seq_lens, n_embds, n_layers, attentions, seeds, budget_s, lrs)
    trials_running, trials_final, metrics = [], [], []
    for index, config in enumerate(configs):
        trial_id = f"t{index:05d}"
        status = status_of(index, config) if status_of else "completed"
        d, L = config["n_embd"], config["n_layer"]
        n_params = 12 * L * d * d + VOCAB * d
        flops_per_token = 6.0 * n_params
        steps_per_s = 40.0 * 64 / config["seq_len"] * (1.5 if config["arch"] != "standard" else 1.0)
        points = n_points if status != "running" else max(1, n_points // 2)
        times = budget_s * np.arange(1, points + 1) / n_points
        steps = np.maximum(1, np.round(times * steps_per_s)).astype(int)
        offset = noise * rng.standard_normal()
        loss = _curve(config, n_params, steps, offset, worker_gain)
        if status == "diverged":
            loss[points // 2 :] = np.nan
        tokens = steps * config["batch_size"] * config["seq_len"]
        base = dict(schema_version=SCHEMA_VERSION, study=name, trial_id=trial_id)
        for i in range(points):
            metrics.append(
                dict(
                    base,
                    step=int(steps[i]),
                    tokens=int(tokens[i]),
                    train_time_s=float(times[i]),
                    wall_time_s=float(times[i]) * 1.1,
                    flops=float(flops_per_token * tokens[i]),
                    lr=config["lr"],
                    train_loss=float(loss[i]) + 0.02,
                    val_loss=float(loss[i]),
                    val_loss_seed=float(loss[i]) - (0.03 if config["arch"] != "standard" else 0.0),
                    val_bpc=float(loss[i]) / math.log(2),
                    val_tokens=4096,
                    tokens_per_s=float(tokens[i] / times[i]),
                    is_final=status == "completed" and i == points - 1,
                    reported_at=NOW,
                )
            )
        row = dict(base, **config, n_params=n_params, n_params_non_embedding=n_params - VOCAB * d)
        row.update(flops_per_token=flops_per_token, device_name=device_name, torch_version="2.6.0")
        row.update(ray_version="2.60.0", git_sha="abc1234", started_at=NOW, updated_at=NOW, restarts=0)
        trials_running.append(dict(row, status="running"))
        final = dict(row, status=status, steps=int(steps[-1]), tokens=int(tokens[-1]))
        final.update(train_time_s=float(times[-1]), wall_time_s=float(times[-1]) * 1.1)
        if status == "completed":
            final.update(val_loss=float(loss[-1]), val_loss_seed=metrics[-1]["val_loss_seed"], finished_at=NOW)
        trials_final.append(final)
    _write_split(study_dir / RESULTS_DIR / METRICS_DIR, metrics, METRICS_SCHEMA, n_files, duplicate)
    _write_split(study_dir / RESULTS_DIR / TRIALS_DIR, trials_running, TRIALS_SCHEMA, 1, False, prefix="000000")
    _write_split(study_dir / RESULTS_DIR / TRIALS_DIR, trials_final, TRIALS_SCHEMA, n_files, duplicate)
    return study_dir


def _write_split(directory: Path, rows, schema, n_files, duplicate, prefix=None):
    """Write rows in `n_files` files named in write order; `duplicate` re-writes the middle file at the end."""
    directory.mkdir(parents=True, exist_ok=True)
    chunks = [list(c) for c in np.array_split(np.arange(len(rows)), n_files)]
    if duplicate:
        chunks.append(chunks[len(chunks) // 2])
    for i, chunk in enumerate(chunks):
        name = f"{prefix}-a.parquet" if prefix else f"{i + 1:06d}-b.parquet"
        pq.write_table(conform([rows[j] for j in chunk], schema), directory / name)
