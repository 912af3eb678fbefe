"""End to end on a local Ray: a small study writes its Parquet results, records faults, and survives SIGKILL.

Each test starts Ray in-process (or in a subprocess driver) with its own short temp dir and shuts it down.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.dataset as ds

from study.cli import main
from study.config.space import expand
from study.config.spec import load_spec
from study.results.schema import METRICS_SCHEMA, TRIALS_SCHEMA

REPO = Path(__file__).resolve().parents[2]


def raw_rows(study_dir: Path, kind: str):
    folder = study_dir / "results" / kind
    files = sorted(p for p in folder.glob("*.parquet") if not p.name.startswith("."))
    schema = METRICS_SCHEMA if kind == "metrics" else TRIALS_SCHEMA
    table = ds.dataset([str(f) for f in files], schema=schema, format="parquet").to_table()
    assert table.schema.equals(schema)
    return table.to_pandas()


def final_trials(study_dir: Path):
    trials = raw_rows(study_dir, "trials")
    return trials.drop_duplicates("trial_id", keep="last").set_index("trial_id")


def check_budget_respected(trial, budget_s: float):
    step_s = trial.train_time_s / max(1, trial.steps)
    assert budget_s <= trial.train_time_s <= budget_s + 3 * step_s + 0.05, (trial.train_time_s, step_s)


def test_study_end_to_end_with_faults(write_spec, tmp_path, ray_tmp, fault_env, capsys):
    spec_path = write_spec(
        axes={"arch": ["standard", "worker"], "worker_interval": [4], "seq_len": [32], "lr": [0.001, 1.0e30]},
        max_failures=0,
    )
    trials = expand(load_spec(spec_path).replace(model=load_spec(spec_path).model))
    raising = next(t.trial_id for t in trials if t.arch == "worker" and t.run.train.lr == 0.001)
    os.environ["WT_FAULTS"] = json.dumps({raising: {"kind": "raise", "at_report": 2}})

    code = main(["run", str(spec_path), "--ray-temp-dir", ray_tmp])
    out = capsys.readouterr().out
    assert code == 0, out
    study_dir = tmp_path / "results" / "tiny"
    rows = final_trials(study_dir)
    assert len(rows) == 4
    by_lr = {(r.arch, r.lr): (tid, r) for tid, r in rows.iterrows()}
    standard_id, standard = by_lr[("standard", 0.001)]
    assert standard.status == "completed" and standard.error == ""
    check_budget_respected(standard, 3.0)
    assert rows.loc[raising, "status"] == "failed"
    assert "injected fault" in rows.loc[raising, "error"]
    for arch in ("standard", "worker"):
        assert by_lr[(arch, 1.0e30)][1].status == "diverged", by_lr[(arch, 1.0e30)][1].error
    assert (rows["n_params"] > 0).all() and (rows["flops_per_token"] > 0).all()
    assert rows.loc[standard_id, "device_name"].startswith("cpu")
    assert rows.loc[standard_id, "git_sha"] != ""

    metrics = raw_rows(study_dir, "metrics")
    assert not metrics.duplicated(["trial_id", "step"]).any()
    assert set(metrics["trial_id"]) <= set(rows.index)
    for _, group in metrics.groupby("trial_id"):
        assert group["train_time_s"].is_monotonic_increasing
        assert group["step"].is_monotonic_increasing
    finals = metrics[(metrics.trial_id == standard_id) & metrics.is_final]
    assert len(finals) == 1 and finals.iloc[0].val_loss < 4.2


def _wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_driver_sigkill_then_resume_loses_and_duplicates_nothing(write_spec, tmp_path, ray_tmp, capsys):
    budget = 6.0
    spec_path = write_spec(
        budget={"kind": "seconds", "value": budget},
        axes={"arch": ["standard", "worker"], "worker_interval": [2, 4], "seq_len": [32]},
    )
    study_dir = tmp_path / "results" / "tiny"
    # Tune snapshots its experiment state (which checkpoint each trial has) every second here, so the kill
    # below lands after the snapshot that records the trials' first checkpoints.
    env = {**os.environ, "PYTHONPATH": str(REPO), "TUNE_GLOBAL_CHECKPOINT_S": "1"}
    driver = subprocess.Popen(
        [sys.executable, "-m", "study.cli", "run", str(spec_path), "--ray-temp-dir", ray_tmp],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )

    def checkpointed():
        if not any((study_dir / "tune").glob("*/checkpoint_*/state.pt")):
            return False
        try:
            rows = raw_rows(study_dir, "metrics")
        except (OSError, ValueError):
            return False
        return len(rows) >= 2 and rows.train_time_s.max() >= 2.5

    try:
        _wait_for(checkpointed, 180, "a checkpoint and evaluation rows")
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and every Ray process it started
        driver.wait(30)
    before = raw_rows(study_dir, "metrics")
    assert len(before) >= 2
    before_keys = set(zip(before.trial_id, before.attempt, before.step, strict=True))

    code = main(["resume", str(study_dir), "--ray-temp-dir", ray_tmp + "b"])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = final_trials(study_dir)
    assert (rows["status"] == "completed").all(), rows["status"].to_dict()

    after = raw_rows(study_dir, "metrics")
    after_keys = set(zip(after.trial_id, after.attempt, after.step, strict=True))
    assert before_keys <= after_keys, "evaluation points written before the kill were lost"
    assert not after.duplicated(["trial_id", "attempt", "step"]).any()

    from analysis.load import load_study

    metrics = load_study(str(study_dir)).metrics
    assert not metrics.duplicated(["trial_id", "step"]).any()
    for trial_id, group in metrics.groupby("trial_id"):
        assert group["train_time_s"].is_monotonic_increasing, trial_id
        check_budget_respected(rows.loc[trial_id], budget)
    resumed = after[after.resumed_from_step > 0]
    assert len(resumed) > 0, "no trial continued from its checkpoint"
    for trial_id, group in resumed.groupby("trial_id"):
        first = group.sort_values("step").iloc[0]
        assert first.train_time_s > 0.5, "the resumed trial restarted its budget"
        assert rows.loc[trial_id, "train_time_s"] < 2 * budget

    code = main(["resume", str(study_dir)])
    assert code == 0 and "already finished" in capsys.readouterr().out
