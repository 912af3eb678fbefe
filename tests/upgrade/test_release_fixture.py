"""A study started by an earlier release resumes to completion with this version, and analyses.

Each folder under fixtures/ is named after the release commit that made it (make_release_fixture.py: four trials
of a steps budget run one at a time, the driver's process group killed with two finished, one interrupted after
its second checkpoint and one never started). The test copies it to a new place first, so it also covers a study
that moved since it started, and resumes it: the stored trial ids, no phantom pending row, finished trials never
run again (their rows and evaluation points as the release left them), the interrupted trial continued from its
checkpoint, no evaluation point lost or doubled, each budget spent exactly once; then `status` and `analyze`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from study.cli import main
from tests.conftest import REPO
from tests.reliability.helpers import final_trials, metric_keys, raw_rows
from tests.upgrade import make_release_fixture

FIXTURES = Path(__file__).resolve().parent / "fixtures"
RELEASES = sorted(p for p in FIXTURES.iterdir() if p.is_dir())
UNTOUCHED = ["status", "steps", "val_loss", "val_loss_seed", "started_at", "finished_at", "config_json"]
# A new release adds its own fixture: `python tests/upgrade/make_release_fixture.py <checkout of it> fixtures/<sha>`.


@pytest.mark.parametrize("release", RELEASES, ids=[p.name for p in RELEASES])
def test_a_study_started_by_an_earlier_release_resumes_and_analyses(release, tmp_path, ray_tmp, monkeypatch, capsys):
    monkeypatch.chdir(REPO)  # its corpus is the committed excerpt, named relative to the checkout
    study = tmp_path / "moved" / "upgrade"
    shutil.copytree(release / "upgrade", study)
    _resume_and_check(study, tmp_path, ray_tmp, capsys)


@pytest.mark.integration
def test_a_study_started_by_this_version_moves_and_resumes(tmp_path, ray_tmp, monkeypatch, capsys):
    """The same story with this checkout as the release (what the next release's fixture will hold)."""
    monkeypatch.chdir(REPO)
    make_release_fixture.main(REPO, tmp_path / "made")
    study = tmp_path / "moved" / "upgrade"
    shutil.move(tmp_path / "made" / "upgrade", study)
    _resume_and_check(study, tmp_path, ray_tmp, capsys)


def _resume_and_check(study: Path, tmp_path: Path, ray_tmp: str, capsys) -> None:
    before, before_metrics = final_trials(study), raw_rows(study, "metrics")
    finished = sorted(before.index[before.status == "completed"])
    interrupted = sorted(before.index[before.status == "running"])
    assert len(finished) == 2 and len(interrupted) == 1 and (before.status == "pending").sum() == 1

    assert main(["resume", str(study), "--ray-temp-dir", ray_tmp]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "Note:" not in out, out  # this version expands the study's spec into the same trials

    after, metrics = final_trials(study), raw_rows(study, "metrics")
    assert sorted(after.index) == sorted(before.index)  # the stored ids: nothing pending forever
    assert (after.status == "completed").all(), after[["status", "error"]].to_dict()
    assert after.loc[finished, UNTOUCHED].equals(before.loc[finished, UNTOUCHED])
    assert metric_keys(metrics[metrics.trial_id.isin(finished)]) == metric_keys(
        before_metrics[before_metrics.trial_id.isin(finished)]
    ), "a finished trial was run again"
    assert not metric_keys(before_metrics) - metric_keys(metrics), "an evaluation point was lost"
    assert not metrics.duplicated(["trial_id", "attempt", "step"]).any()
    resumed = metrics[metrics.trial_id.isin(interrupted) & (metrics.resumed_from_step > 0)]
    assert len(resumed), "the interrupted trial did not continue from its checkpoint"
    assert (after.steps == after.budget_value).all()  # each budget spent exactly once

    assert main(["status", str(study)]) == 0
    out = capsys.readouterr().out
    assert "4 completed" in out and "Not finished" not in out, out
    assert main(["analyze", str(study), "--out", str(tmp_path / "report")]) == 0
    out = capsys.readouterr().out
    assert "partial" not in out and "4 trials" in out, out
    assert main(["resume", str(study)]) == 0 and "already finished" in capsys.readouterr().out
