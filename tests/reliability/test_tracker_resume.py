"""A study logging to TensorBoard and MLflow, its driver SIGKILLed mid-trial and resumed: both trackers then show
each trial's kept evaluation points once each, in the trial's one run and folder (the kill of
tests/reliability/test_driver_kill.py, with loggers)."""

from __future__ import annotations

import pytest

from study.cli import main
from tests.reliability.helpers import check_study_guarantees, raw_rows
from tests.reliability.test_driver_kill import BUDGET_S, kill_at
from tests.study.tracker_readers import check_trackers_match, require


@pytest.mark.integration
def test_trackers_show_the_kept_points_once_after_a_driver_kill_and_resume(
    write_spec, tmp_path, ray_tmp, capsys, no_ray_left, monkeypatch
):
    for module, extra in (("tensorboardX", "tensorboard"), ("tensorboard", "tensorboard"), ("mlflow", "mlflow")):
        require(module, extra)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    study_dir = kill_at("mid_trial", write_spec, tmp_path, ray_tmp, loggers=["tensorboard", "mlflow"])
    before = raw_rows(study_dir, "metrics")
    code = main(["resume", str(study_dir), "--ray-temp-dir", ray_tmp + "b"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"Logging to TensorBoard: {study_dir}/tensorboard/<trial_id>/" in out
    check_study_guarantees(study_dir, BUDGET_S, before)
    raw = raw_rows(study_dir, "metrics")
    assert (raw.resumed_from_step > 0).any(), "no trial continued from its checkpoint"
    check_trackers_match(study_dir, "tiny")
