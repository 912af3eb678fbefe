"""The driver SIGKILLed at five moments of a study, then `wt-study resume` finishes it with nothing lost or doubled.

Each case starts `wt-study run` as a subprocess driver in its own session (Ray's processes with it), watches the
study directory, SIGKILLs the whole process group at the chosen moment, then resumes in-process. Moments, and
what the trigger really observes (polling every 50 ms, so "at once" means within ~50 ms plus the kill):

- before_first_report: the study is recorded (study.yaml and the pending trial rows are on storage) and no
  evaluation point or checkpoint exists yet. Asserted after the kill.
- mid_trial: a trial's evaluation points on storage reach half the budget and no trial has finished.
- after_checkpoint: a trial's second (or later) checkpoint directory has just appeared under tune/ (the trial
  persisted it; the driver may or may not have recorded it in Tune's experiment state yet: a kill right after
  the first checkpoint, before Tune's experiment state records it, restarts the trial from scratch, which is
  within the bound below but would not show a resume).
- between_trials: with one trial at a time, a trial's `completed` row is on storage and another is `pending`.
- during_flush: the driver's metrics flushes are slowed (tests/reliability/driver.py): the temporary file is
  written, then the rename that publishes it waits 3 s; the kill lands in that window, i.e. between the write
  and the rename of an atomic flush (asserted: the hidden temporary file is left behind). A kill inside
  pq.write_table itself is not targeted; it leaves the same thing, an unpublished temporary file.

After each: every trial completed; no duplicate (trial_id, step) in the reader's frame nor (trial_id, attempt,
step) in the raw files; every raw row written before the kill is still there; no hole in any curve; a resumed
trial redid at most checkpoint_every_s + Tune's experiment-state period (+ one evaluation interval) of
training; every final train_time_s within one step of the budget.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from study.cli import main
from tests.reliability.helpers import (
    check_no_gaps,
    check_study_guarantees,
    final_trials,
    kill_driver_when,
    lost_training_s,
    raw_rows,
)

BUDGET_S = 4.0
CHECKPOINT_EVERY_S = 1.0
EVAL_EVERY_S = 1.0
TUNE_STATE_PERIOD_S = 1.0  # TUNE_GLOBAL_CHECKPOINT_S for the killed driver


def _files(study_dir: Path, kind: str) -> list[Path]:
    return sorted(p for p in (study_dir / "results" / kind).glob("*.parquet") if not p.name.startswith("."))


def _checkpoints(study_dir: Path) -> set[Path]:
    return set((study_dir / "tune").glob("*/checkpoint_*"))


def _trigger(moment: str, study_dir: Path, marker_dir: Path):
    """A predicate that becomes true at `moment`."""
    seen: dict = {}

    def before_first_report():
        return bool(_files(study_dir, "trials"))

    def mid_trial():
        if not _files(study_dir, "metrics"):
            return False
        started = raw_rows(study_dir, "metrics").train_time_s.max() >= BUDGET_S / 2
        return started and not (final_trials(study_dir).status == "completed").any()

    def after_checkpoint():
        now = _checkpoints(study_dir)
        first = seen.setdefault("initial", now)
        per_trial = [len(list(d.glob("checkpoint_*"))) for d in (study_dir / "tune").glob("*/")]
        return bool(now - first) and max(per_trial, default=0) >= 2

    def between_trials():
        if not _files(study_dir, "trials"):
            return False
        status = final_trials(study_dir).status
        return (status == "completed").any() and (status == "pending").any()

    def during_flush():
        return (marker_dir / "flushing").exists() and bool(_files(study_dir, "metrics"))

    return locals()[moment]


MOMENTS = ["before_first_report", "mid_trial", "after_checkpoint", "between_trials", "during_flush"]
DEFAULT_MOMENT = "during_flush"


def kill_at(moment: str, write_spec, tmp_path: Path, ray_tmp: str, **spec_changes):
    """Start a driver on a tiny spec (with `spec_changes`), SIGKILL it at `moment`; the study directory."""
    spec_path = write_spec(
        budget={"kind": "seconds", "value": BUDGET_S},
        eval={"every_s": EVAL_EVERY_S, "val_tokens": 1024},
        checkpoint_every_s=CHECKPOINT_EVERY_S,
        axes={"arch": ["standard", "worker"], "worker_interval": [4], "seq_len": [32]},
        max_concurrent=1,
        **spec_changes,
    )
    study_dir = tmp_path / "results" / "tiny"
    marker_dir = tmp_path / "markers"
    marker_dir.mkdir()
    env = {"TUNE_GLOBAL_CHECKPOINT_S": str(TUNE_STATE_PERIOD_S)}
    if moment == "during_flush":
        env["WT_TEST_SLOW_FLUSH"] = str(marker_dir)
    kill_driver_when(spec_path, ray_tmp, _trigger(moment, study_dir, marker_dir), 240, f"the moment {moment}", env)
    return study_dir


def _check_moment_hit(moment: str, study_dir: Path, before) -> None:
    if moment == "before_first_report":
        assert before.empty and not _checkpoints(study_dir), "the kill came after the first report"
    elif moment == "mid_trial":
        assert len(before) >= 1
    elif moment == "during_flush":
        temps = list((study_dir / "results" / "metrics").glob(".tmp-*.parquet"))
        assert temps, "the kill did not land inside a flush"


def _kill_and_resume(moment: str, write_spec, tmp_path: Path, ray_tmp: str, capsys) -> None:
    study_dir = kill_at(moment, write_spec, tmp_path, ray_tmp)
    before = raw_rows(study_dir, "metrics")
    _check_moment_hit(moment, study_dir, before)

    code = main(["resume", str(study_dir), "--ray-temp-dir", ray_tmp + "b"])
    out = capsys.readouterr().out
    assert code == 0, out

    check_study_guarantees(study_dir, BUDGET_S, before)
    check_no_gaps(study_dir, EVAL_EVERY_S, BUDGET_S)
    bound = CHECKPOINT_EVERY_S + TUNE_STATE_PERIOD_S + EVAL_EVERY_S
    lost = lost_training_s(raw_rows(study_dir, "metrics"))
    assert all(s <= bound for s in lost.values()), (lost, bound)
    if moment in ("mid_trial", "after_checkpoint", "during_flush"):
        resumed = raw_rows(study_dir, "metrics").query("resumed_from_step > 0")
        assert len(resumed), "no trial continued from its checkpoint"
    assert main(["resume", str(study_dir)]) == 0
    assert "already finished" in capsys.readouterr().out


def test_driver_killed_during_a_flush_then_resumed(write_spec, tmp_path, ray_tmp, capsys, no_ray_left):
    _kill_and_resume(DEFAULT_MOMENT, write_spec, tmp_path, ray_tmp, capsys)


@pytest.mark.slow
@pytest.mark.parametrize("moment", [m for m in MOMENTS if m != DEFAULT_MOMENT])
def test_driver_killed_at_each_moment_then_resumed(moment, write_spec, tmp_path, ray_tmp, capsys, no_ray_left):
    _kill_and_resume(moment, write_spec, tmp_path, ray_tmp, capsys)
