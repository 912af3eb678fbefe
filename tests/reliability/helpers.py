"""Shared checks of the reliability tests: raw rows, the reader's view, and the study-level guarantees."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds

from wt_base.schema import METRICS_SCHEMA, TRIALS_SCHEMA

REPO = Path(__file__).resolve().parents[2]


def run_spec(spec_path: Path, **kwargs) -> int:
    """`wt-study run SPEC` in this process, with run_study's keywords (e.g. a test's `trainable`)."""
    from study.config.specfile import load_spec
    from study.tune.plan import plan
    from study.tune.runner import run_study

    return run_study(plan(load_spec(spec_path)), **kwargs)


def raw_rows(study_dir: Path, kind: str) -> pd.DataFrame:
    """Every row of every visible file under results/<kind>/, in write order (no dedup, nothing dropped)."""
    folder = Path(study_dir) / "results" / kind
    files = sorted(p for p in folder.glob("*.parquet") if not p.name.startswith("."))
    schema = METRICS_SCHEMA if kind == "metrics" else TRIALS_SCHEMA
    if not files:
        return schema.empty_table().to_pandas()
    return ds.dataset([str(f) for f in files], schema=schema, format="parquet").to_table().to_pandas()


def final_trials(study_dir: Path) -> pd.DataFrame:
    return raw_rows(study_dir, "trials").drop_duplicates("trial_id", keep="last").set_index("trial_id")


def metric_keys(rows: pd.DataFrame) -> set:
    return set(zip(rows.trial_id, rows.attempt, rows.step, strict=True))


def wait_for(predicate, timeout_s: float, what: str, poll_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (OSError, ValueError):  # a file listed a moment ago is being replaced: look again
            pass
        time.sleep(poll_s)
    raise AssertionError(f"timed out waiting for {what}")


def kill_driver_when(spec_path: Path, ray_tmp: str, predicate, timeout_s: float, what: str, env: dict) -> None:
    """Start `wt-study run SPEC` (through tests.reliability.driver) in a session of its own, wait for `predicate`,
    then SIGKILL the driver's process group: the driver and the Ray it started."""
    driver = subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.driver", "run", str(spec_path), "--ray-temp-dir", ray_tmp],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(predicate, timeout_s, what)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(30)


def step_time_s(trial) -> float:
    return trial.train_time_s / max(1, trial.steps)


def check_budget(trial, budget_s: float) -> None:
    """The budget was spent once, neither restarted from zero nor run twice: the clock stops at the first step
    that reaches the budget, so it ends within one step of it. A step's time varies on a shared CPU, and under
    load the last one can take many times the mean (a CI run beside a study once saw 0.29 s against a 0.042 s
    mean): 3 mean steps plus 10% of the budget of slack, still far below the second budget a double run adds."""
    step_s = step_time_s(trial)
    slack = 3 * step_s + max(0.05, 0.1 * budget_s)
    assert budget_s <= trial.train_time_s <= budget_s + slack, (trial.train_time_s, step_s)


def lost_training_s(raw: pd.DataFrame) -> dict[str, float]:
    """Per resumed trial: training seconds redone after a resume (steps of the interrupted attempt beyond the
    checkpoint the next attempt resumed from, times the mean step time). A lower bound within one evaluation
    interval: steps after the interrupted attempt's last evaluation point are not observable."""
    out: dict[str, float] = {}
    for trial_id, group in raw.groupby("trial_id"):
        attempts = group.groupby("attempt")
        if attempts.ngroups < 2:
            continue
        order = sorted(attempts.groups)
        lost = 0.0
        for before, after in zip(order, order[1:], strict=False):
            prev = group[group.attempt == before]
            resumed = int(group[group.attempt == after].resumed_from_step.min())
            last = prev.sort_values("step").iloc[-1]
            step_s = last.train_time_s / max(1, last.step)
            lost = max(lost, max(0, int(last.step) - resumed) * step_s)
        out[trial_id] = lost
    return out


def check_study_guarantees(study_dir: Path, budget_s: float, before: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every trial completed, nothing duplicated (reader and raw files), nothing written before lost, each
    budget spent once. Returns the final trial rows."""
    from analysis.load import load_study

    rows = final_trials(study_dir)
    assert (rows["status"] == "completed").all(), rows[["status", "error"]].to_dict()
    raw = raw_rows(study_dir, "metrics")
    assert not raw.duplicated(["trial_id", "attempt", "step"]).any(), "a row was written twice by one attempt"
    if before is not None:
        missing = metric_keys(before) - metric_keys(raw)
        assert not missing, f"{len(missing)} evaluation points written before the kill were lost"
    study = load_study(str(study_dir))
    metrics = study.metrics
    assert not study.skipped_files, study.skipped_files
    assert not metrics.duplicated(["trial_id", "step"]).any()
    assert set(metrics.trial_id) == set(rows.index)
    for trial_id, group in metrics.groupby("trial_id"):
        assert group["train_time_s"].is_monotonic_increasing, trial_id
        assert group["is_final"].sum() == 1, trial_id
        check_budget(rows.loc[trial_id], budget_s)
    return rows


def check_no_gaps(study_dir: Path, every_s: float, budget_s: float) -> None:
    """The reader's curve of each trial has no hole: consecutive evaluation points are at most ~2 evaluation
    intervals of training time apart (a lost, never rewritten point leaves a wider gap)."""
    from analysis.load import load_study

    metrics = load_study(str(study_dir)).metrics
    for trial_id, group in metrics.groupby("trial_id"):
        times = [0.0, *group.sort_values("step").train_time_s.tolist()]
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert max(gaps) <= 2 * every_s + 0.5, (trial_id, times)
        assert times[-1] >= budget_s
