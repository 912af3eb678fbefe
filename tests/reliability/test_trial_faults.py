"""Faults inside trials: a killed trial process is retried from its checkpoint; a trial that raises, diverges or
runs out of (GPU or host) memory is recorded with its status and error text, and `status` / `analyze` show it.

The faults come from the test's own trainable (tests/faults.py wraps the product's); both studies run on one Ray
started for the module.
"""

from __future__ import annotations

import pandas as pd
import pytest

from study.cli import main
from study.config.specfile import load_spec
from study.tune.plan import plan
from tests.faults import Fault, with_faults
from tests.reliability.helpers import check_budget, check_study_guarantees, final_trials, raw_rows, run_spec

BUDGET_S = 3.0


def _ids(spec_path) -> dict:
    """(arch, worker_interval or None, lr, seed) -> trial_id, as the study will name its trials."""
    out = {}
    for t in plan(load_spec(spec_path)).trials:
        k = t.run.model.worker_interval if t.arch == "worker" else None
        out[(t.arch, k, t.run.train.lr, t.run.train.seed)] = t.trial_id
    return out


@pytest.mark.slow
def test_killed_trial_process_is_retried_from_its_checkpoint(write_spec, tmp_path, ray_session, capsys):
    """Fault kind "exit": the trial's process calls os._exit at its 4th report (after at least one
    checkpoint), as a SIGKILL or the OOM killer would end it. Tune retries it (max_failures 2) from the last
    checkpoint Tune recorded; the retry does not fire the fault again (first_attempt_only)."""
    spec_path = write_spec(
        budget={"kind": "seconds", "value": BUDGET_S},
        axes={"arch": ["standard", "worker"], "worker_interval": [4], "seq_len": [32]},
        max_failures=2,
    )
    ids = _ids(spec_path)
    victim = ids[("worker", 4, 0.001, 0)]
    faults = with_faults({victim: Fault("exit", at_report=4, first_attempt_only=True)})

    code = run_spec(spec_path, trainable=faults)
    out = capsys.readouterr().out
    assert code == 0, out
    study_dir = tmp_path / "results" / "tiny"
    rows = check_study_guarantees(study_dir, BUDGET_S)
    assert rows.loc[victim, "restarts"] >= 1
    raw = raw_rows(study_dir, "metrics")
    attempts = raw[raw.trial_id == victim].groupby("attempt").resumed_from_step.min()
    assert len(attempts) == 2 and attempts.iloc[0] == 0 and attempts.iloc[1] > 0, attempts
    # the retry started from the checkpoint, so its first evaluation point is not back at the start
    retry = raw[(raw.trial_id == victim) & (raw.attempt == attempts.index[1])].sort_values("step")
    assert retry.iloc[0].train_time_s > 0.5


@pytest.mark.integration
def test_raise_diverge_and_out_of_memory_are_recorded_and_shown(write_spec, tmp_path, ray_session, capsys):
    spec_path = write_spec(
        budget={"kind": "seconds", "value": 1.5},
        axes={"arch": ["standard", "worker"], "worker_interval": [4], "seq_len": [32], "lr": [0.001, 1.0e30]},
        seeds=[0, 1],
        max_failures=0,
    )
    ids = _ids(spec_path)
    faults = {
        ids[("worker", 4, 0.001, 0)]: ("oom", "CUDA out of memory"),
        ids[("worker", 4, 0.001, 1)]: ("memory", "MemoryError"),
        ids[("standard", None, 0.001, 1)]: ("raise", "injected fault: the trial raised"),
    }
    trainable = with_faults({tid: Fault(kind, at_report=2) for tid, (kind, _) in faults.items()})

    code = run_spec(spec_path, trainable=trainable)
    out = capsys.readouterr().out
    assert code == 0, out  # failed and diverged trials are finished trials: the study completed
    assert "1 completed, 4 diverged, 3 failed" in out.replace("Trials: ", ""), out
    study_dir = tmp_path / "results" / "tiny"
    rows = final_trials(study_dir)
    for trial_id, (_, text) in faults.items():
        assert rows.loc[trial_id, "status"] == "failed"
        assert text in rows.loc[trial_id, "error"], rows.loc[trial_id, "error"]
        assert pd.notna(rows.loc[trial_id, "finished_at"])  # a timestamp column: NaT, not None, when missing
    diverged = rows[rows.lr > 1]
    assert len(diverged) == 4 and (diverged.status == "diverged").all()
    assert diverged.error.str.contains("nan|inf", case=False).all(), diverged.error.tolist()
    healthy = ids[("standard", None, 0.001, 0)]
    assert rows.loc[healthy, "status"] == "completed"
    check_budget(rows.loc[healthy], 1.5)

    assert main(["status", str(study_dir)]) == 0
    status = capsys.readouterr().out
    assert "1 completed, 0 stopped, 0 running, 0 pending, 4 diverged, 3 failed" in status, status
    for trial_id, (_, text) in faults.items():
        line = next(line for line in status.splitlines() if trial_id in line)
        assert "failed" in line and text in line, line

    report_dir = tmp_path / "report"
    assert main(["analyze", str(study_dir), "--out", str(report_dir)]) == 0
    analyze = capsys.readouterr().out
    assert "8 trials" in analyze
    report = (report_dir / "report.md").read_text()
    assert "3 failed" in report and "4 diverged" in report, report[:2000]
