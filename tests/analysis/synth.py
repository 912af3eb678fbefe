"""A synthetic study writer: valid Parquet results (via wt_base.schema.conform) with known structure.

Loss follows a smooth curve in steps plus a size term, the worker model runs 1.5x more steps per second and
ends a little lower, each seed adds its own small offset. Trial rows carry every column of schema version 2,
config_json (a real RunConfig) included. Files are split like the sink's flushes (trial rows
first written as "running", then "completed"), optionally with duplicated rows as after a resume.
"""

from __future__ import annotations

import itertools
import json
import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from study.config.run import BudgetConfig, EvalConfig, RunConfig, TrainConfig
from wt_base.layout import METRICS_DIR, RESULTS_DIR, TRIALS_DIR
from wt_base.schema import (
    METRICS_SCHEMA,
    SCHEMA_VERSION,
    TRIALS_SCHEMA,
    conform,
)
from wt_model import archs as registry
from wt_model.config import ModelConfig

VOCAB = 65
TRAIN_TOKENS = 1_000_000  # length of the synthetic training split (epochs = tokens / this)
NOW = datetime(2025, 1, 1, tzinfo=timezone.utc)


def trial_configs(
    archs, intervals, seq_lens, n_embds, n_layers, attentions, seeds, budget_s, lrs=(3e-4,), weight_decays=(0.01,),
    inits=("torch",), tune_seeds=(), budget_kind="seconds", budget_values=None,
):  # fmt: skip
    configs = []
    for arch, seq_len, n_embd, n_layer, attention, init, lr, wd, budget, seed in itertools.product(
        archs, seq_lens, n_embds, n_layers, attentions, inits, lrs, weight_decays, budget_values or (budget_s,),
        (*tune_seeds, *seeds),
    ):  # fmt: skip
        reads = registry.of_label(arch).name
        for interval in intervals if registry.applies("worker_interval", reads) else (None,):
            configs.append(
                dict(
                    arch=arch,
                    attention=attention,
                    init=init,
                    worker_interval=interval,
                    random_worker_phase=arch == "worker-random-phase",
                    seq_len=seq_len,
                    n_embd=n_embd,
                    n_layer=n_layer,
                    n_head=4,
                    ffn_hidden=4 * n_embd,
                    conv_kernel=3 if registry.applies("conv_kernel", reads) else None,
                    dropout=0.0,
                    batch_size=16,
                    lr=lr,
                    weight_decay=wd,
                    schedule="constant",
                    warmup_frac=0.0,
                    seed=seed,
                    seed_role="tune" if seed in tune_seeds else "test",
                    budget_kind=budget_kind,
                    budget_value=float(budget),
                    count_eval_in_budget=False,
                    eval_protocol="stream",
                    corpus="tinyshakespeare",
                )
            )
    return configs


def config_json(trial_id: str, config: dict, final_full: bool) -> str:
    """The trial's full run configuration as the study writes it (study.tune.rows: Trial.to_dict())."""
    model = ModelConfig(
        arch=registry.of_label(config["arch"]).name,
        vocab_size=VOCAB,
        block_size=config["seq_len"],
        n_embd=config["n_embd"],
        n_head=config["n_head"],
        n_layer=config["n_layer"],
        ffn_hidden=config["ffn_hidden"],
        dropout=config["dropout"],
        worker_interval=config["worker_interval"] or 1,
        random_worker_phase=config["random_worker_phase"],
        attention=config["attention"],
        init=config["init"],
    )
    train = TrainConfig(
        batch_size=config["batch_size"],
        lr=config["lr"],
        weight_decay=config["weight_decay"],
        schedule=config["schedule"],
        warmup_frac=config["warmup_frac"],
        seed=config["seed"],
    )
    budget = BudgetConfig(kind=config["budget_kind"], value=config["budget_value"])
    run = RunConfig(model=model, train=train, budget=budget, eval=EvalConfig(every_s=5.0, final_full=final_full))
    return json.dumps({"trial_id": trial_id, "arch": config["arch"], "run": run.to_dict()}, sort_keys=True)


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
    weight_decays=(0.01,),
    inits=("torch",),
    tune_seeds=(),
    budget_s: float = 20.0,
    n_points: int = 8,
    n_files: int = 3,
    worker_gain: float = 0.05,
    noise: float = 0.01,
    duplicate: bool = False,
    status_of=None,
    loss_of=None,
    final_full: bool = False,
    equivalence_margin: float | None = 0.01,
    device_name: str = "cpu",
    budget_kind: str = "seconds",
    budget_values=None,
) -> Path:
    """Write `<root>/<name>/results/...` and return the study directory.

    `status_of(index, config)` may return a final status other than "completed" ("running", "stopped",
    "diverged"). `loss_of(config, steps, default_loss)` may replace a trial's loss curve. `budget_kind` labels the
    budget (its value stays `budget_s`, or each of `budget_values`: the curves are the same whatever the kind).
    With `final_full` the final evaluation covers a larger validation set (more val_tokens, a loss 0.03 higher)
    than the periodic ones.
    """
    rng = np.random.default_rng(0)
    study_dir = Path(root) / name
    configs = trial_configs(
        archs, intervals, seq_lens, n_embds, n_layers, attentions, seeds, budget_s, lrs, weight_decays, inits,
        tune_seeds, budget_kind, budget_values,
    )  # fmt: skip
    trials_running, trials_final, metrics = [], [], []
    for index, config in enumerate(configs):
        trial_id = f"t{index:05d}"
        status = status_of(index, config) if status_of else "completed"
        d, L = config["n_embd"], config["n_layer"]
        n_params = 12 * L * d * d + VOCAB * d
        flops_per_token = 6.0 * n_params
        steps_per_s = 40.0 * 64 / config["seq_len"] * (1.5 if config["arch"] != "standard" else 1.0)
        points = n_points if status not in ("running", "stopped") else max(1, n_points // 2)
        times = budget_s * np.arange(1, points + 1) / n_points
        steps = np.maximum(1, np.round(times * steps_per_s)).astype(int)
        offset = noise * rng.standard_normal()
        loss = _curve(config, n_params, steps, offset, worker_gain)
        if loss_of is not None:
            loss = np.asarray(loss_of(config, steps, loss), float)
        if status == "diverged":
            loss[points // 2 :] = np.nan
        tokens = steps * config["batch_size"] * config["seq_len"]
        k = config["worker_interval"]
        targets = tokens if k is None else steps * config["batch_size"] * -(-config["seq_len"] // k)
        base = dict(schema_version=SCHEMA_VERSION, study=name, trial_id=trial_id)
        # one trial's evaluation points as columns (vectorised: a 10M-row benchmark study is written in seconds)
        index = np.arange(points)
        full = (index == points - 1) & (status == "completed") & final_full
        value = loss[:points] + np.where(full, 0.03, 0.0)
        seed_gap = 0.03 if config["arch"] != "standard" else 0.0
        metrics.append(
            dict(
                trial_index=np.full(points, len(metrics), np.int32),
                step=steps,
                tokens=tokens,
                train_time_s=times,
                wall_time_s=times * 1.1,
                flops=flops_per_token * tokens,
                lr=np.full(points, float(config["lr"])),
                train_loss=value + 0.02,
                val_loss=value,
                val_loss_seed=value - seed_gap,
                val_bpc=value / math.log(2),
                train_eval_loss=value - 0.02,
                train_minus_val=-0.02 - 0.05 * index / max(1, points - 1),  # falls by 0.05 over training
                epochs=tokens / TRAIN_TOKENS,
                targets=targets,
                target_epochs=targets / TRAIN_TOKENS,
                eval_time_s=np.full(points, 0.1),
                val_tokens=np.where(full, 65536, 4096),
                tokens_per_s=tokens / times,
                is_final=(index == points - 1) & (status == "completed"),
            )
        )
        row = dict(base, **config, n_params=n_params, n_params_non_embedding=n_params - VOCAB * d)
        row.update(config_json=config_json(trial_id, config, final_full), equivalence_margin=equivalence_margin)
        row.update(flops_per_token=flops_per_token, device_name=device_name, torch_version="2.6.0")
        row.update(ray_version="2.60.0", git_sha="abc1234", started_at=NOW, updated_at=NOW, restarts=0)
        trials_running.append(dict(row, status="running"))
        final = dict(row, status=status, steps=int(steps[-1]), tokens=int(tokens[-1]))
        final.update(train_time_s=float(times[-1]), wall_time_s=float(times[-1]) * 1.1)
        if status == "completed":
            last = metrics[-1]
            final.update(val_loss=float(last["val_loss"][-1]), val_loss_seed=float(last["val_loss_seed"][-1]))
            final.update(finished_at=NOW)
        trials_final.append(final)
    table = _metrics_table(metrics, [t["trial_id"] for t in trials_final], name)
    _write_split(study_dir / RESULTS_DIR / METRICS_DIR, table, None, n_files, duplicate)
    _write_split(study_dir / RESULTS_DIR / TRIALS_DIR, trials_running, TRIALS_SCHEMA, 1, False, prefix="000000")
    _write_split(study_dir / RESULTS_DIR / TRIALS_DIR, trials_final, TRIALS_SCHEMA, n_files, duplicate)
    return study_dir


def _metrics_table(parts: list[dict], trial_ids: list[str], name: str) -> pa.Table:
    """The trials' metric columns (one dict of arrays per trial, `trial_index` into `trial_ids`) as one table of
    METRICS_SCHEMA."""
    n_rows = sum(len(part["step"]) for part in parts)
    index = np.concatenate([part["trial_index"] for part in parts]) if parts else np.array([], np.int32)
    columns = {
        "schema_version": np.full(n_rows, SCHEMA_VERSION, np.int32),
        "study": pa.DictionaryArray.from_arrays(np.zeros(n_rows, np.int32), [name]).cast(pa.string()),
        "trial_id": pa.DictionaryArray.from_arrays(index, trial_ids).cast(pa.string()),
        "reported_at": pa.array(np.full(n_rows, np.datetime64(NOW.replace(tzinfo=None), "us")), pa.timestamp("us")),
    }
    for column in parts[0] if parts else ():
        if column not in columns and column != "trial_index":
            columns[column] = np.concatenate([part[column] for part in parts])
    arrays = [
        pa.array(columns[f.name], f.type) if f.name in columns else pa.nulls(n_rows, f.type) for f in METRICS_SCHEMA
    ]
    arrays[METRICS_SCHEMA.get_field_index("reported_at")] = columns["reported_at"].cast(
        METRICS_SCHEMA.field("reported_at").type
    )
    return pa.Table.from_arrays(arrays, schema=METRICS_SCHEMA)


def _write_split(directory: Path, rows, schema, n_files, duplicate, prefix=None):
    """Write rows (dicts of `schema`, or a pa.Table) in `n_files` files named in write order; `duplicate`
    re-writes the middle file at the end."""
    directory.mkdir(parents=True, exist_ok=True)
    chunks = [list(c) for c in np.array_split(np.arange(len(rows)), n_files)]
    if duplicate:
        chunks.append(chunks[len(chunks) // 2])
    for i, chunk in enumerate(chunks):
        name = f"{prefix}-a.parquet" if prefix else f"{i + 1:06d}-b.parquet"
        if isinstance(rows, pa.Table):  # chunks are consecutive rows
            table = rows.slice(chunk[0], len(chunk)) if chunk else rows.slice(0, 0)
        else:
            table = conform([rows[j] for j in chunk], schema)
        pq.write_table(table, directory / name)
