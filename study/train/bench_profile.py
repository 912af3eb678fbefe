"""`wt-study bench` as a machine profile (the contract: wt_base.profile): the shapes of a study's trials, the
bench results as profile rows, and the profile file.

A profile row says how long a training step of one shape takes on this machine (median, p10 and p90 of the
timed samples), how long evaluation takes per validation position, tokens/s and MFU. The analysis re-times a
step-budgeted trial's curve with it (`wt-study analyze --timing`).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timezone
from importlib import metadata

import pandas as pd
import pyarrow.parquet as pq
import torch

from study.config.run import RunConfig
from study.train.bench import BenchCase, BenchResult
from study.train.device import device_name
from wt_base.budgets import BUDGET_KINDS
from wt_base.errors import StudyError
from wt_base.profile import PROFILE_SCHEMA, PROFILE_SCHEMA_VERSION
from wt_base.profile_check import check_rows
from wt_base.schema import conform
from wt_base.storage import write_local_atomic
from wt_model import archs
from wt_model.config import label_settings


def shape_of(case: BenchCase) -> dict:
    """The case's SHAPE_KEY values as trials rows hold them (null where the architecture has no such setting)."""
    cfg, arch = case.cfg, case.cfg.arch
    return {
        "arch": case.arch_label,
        "worker_interval": cfg.worker_interval if archs.applies("worker_interval", arch) else None,
        "seq_len": case.seq_len,
        "n_embd": cfg.n_embd,
        "n_layer": cfg.n_layer,
        "n_head": cfg.n_head,
        "ffn_hidden": cfg.ffn_width,
        "batch_size": case.batch_size,
        "attention": cfg.attention,
        "dropout": float(cfg.dropout),
        "conv_kernel": cfg.conv_kernel if archs.applies("conv_kernel", arch) else None,
    }


def study_cases(trials: pd.DataFrame, compiles: tuple[str, ...]) -> list[BenchCase]:
    """One case per distinct shape of the trials whose curves can be re-timed (a steps, tokens or FLOPs budget)
    and per compile mode, each model rebuilt from its trial's stored configuration (config_json, with its arch
    label's settings: wt_model.config.label_settings). The first trial of a shape stands for it."""
    counted = trials["budget_kind"].map(lambda kind: kind in BUDGET_KINDS and not BUDGET_KINDS[kind].measured)
    counted = trials[counted.fillna(False).astype(bool)]
    if counted.empty:
        kinds = ", ".join(sorted(trials["budget_kind"].dropna().unique())) or "none"
        raise StudyError(
            f"--for-study: the study has no steps, tokens or flops budgeted trial to profile (budget kinds: {kinds}); "
            "seconds-budget trials are never re-timed."
        )
    shapes: dict[str, BenchCase] = {}
    for trial_id, text in zip(counted["trial_id"], counted["config_json"], strict=True):
        if not isinstance(text, str) or not text:
            raise StudyError(f"--for-study: trial {trial_id!r} has no config_json, so its model cannot be rebuilt.")
        stored = json.loads(text)
        run = RunConfig.from_dict(stored["run"])
        model = replace(run.model, **label_settings(stored["arch"]))
        case = BenchCase(model, run.train.batch_size, model.block_size, label=stored["arch"])
        shapes.setdefault(json.dumps(shape_of(case)), case)
    return [replace(case, compile=mode) for mode in compiles for case in shapes.values()]


def package_version() -> str:
    try:
        return metadata.version("wt-study")
    except metadata.PackageNotFoundError:
        return "unknown"


def profile_row(result: BenchResult, peak_tflops: float, device: torch.device, clock: str, measured_at) -> dict:
    """One profile row (PROFILE_SCHEMA) of this copy's result on `device`."""
    case = result.case
    return {
        "schema_version": PROFILE_SCHEMA_VERSION,
        "device_name": device_name(device),
        "dtype": "bfloat16" if device.type == "cuda" else "float32",  # the bench trains in bf16 autocast on CUDA
        **shape_of(case),
        "compile": case.compile,
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "step_time_s_median": result.step_ms / 1e3,
        "step_time_s_p10": result.step_ms_p10 / 1e3,
        "step_time_s_p90": result.step_ms_p90 / 1e3,
        "step_time_s_n": result.n_samples,
        "eval_time_per_token_s": result.eval_s_per_token,
        "tokens_per_s": result.tokens_per_s,
        "mfu": result.tflops_per_s / peak_tflops if peak_tflops > 0 else None,
        "source": f"measured by wt-study bench {package_version()} ({clock} clock, median of {result.n_samples} "
        "samples)",
        "measured_at": measured_at,
    }


def write_profile(results: list[BenchResult], peak_tflops: float, device: torch.device, clock: str, path) -> int:
    """Write this copy's results as a profile to the Parquet file `path`, atomically, after checking every row as
    the analysis reads it (wt_base.profile_check); returns the number of rows."""
    now = datetime.now(timezone.utc)
    rows = [profile_row(r, peak_tflops, device, clock, now) for r in results if r.version == ""]
    check_rows(rows, str(path))  # a bench never writes a profile the analysis would refuse
    table = conform(rows, PROFILE_SCHEMA)
    write_local_atomic(path, lambda f: pq.write_table(table, f))
    return len(rows)
