"""Read back what the trackers wrote, with each tool's own reader (TensorBoard's EventAccumulator, MLflow's client),
and the evaluation points the study keeps, to compare them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def require(module: str, extra: str):
    """The module, or skip the test saying which extra installs it."""
    return pytest.importorskip(module, reason=f"needs {module}: pip install 'wt-study[{extra}]' (in .[dev])")


def tensorboard_points(folder: str | Path, tag: str) -> list[tuple[int, float]]:
    """(step, value) of `tag` as TensorBoard shows it (superseded events purged, as its UI does)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})  # 0: keep every point
    acc.Reload()
    if tag not in acc.Tags()["scalars"]:
        return []
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def mlflow_runs(tracking_uri: str, experiment: str) -> dict:
    """trial id -> its active MLflow run, for the experiment (study) name."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no MLflow experiment {experiment!r} at {tracking_uri}"
    runs = client.search_runs([found.experiment_id])
    by_trial: dict = {}
    for run in runs:
        trial_id = run.data.tags["wt_trial_id"]
        assert trial_id not in by_trial, f"two active runs for {trial_id}"
        by_trial[trial_id] = run
    return by_trial


def mlflow_points(tracking_uri: str, run_id: str, key: str) -> list[tuple[int, float]]:
    from mlflow.tracking import MlflowClient

    history = MlflowClient(tracking_uri=tracking_uri).get_metric_history(run_id, key)
    return sorted((m.step, m.value) for m in history)


def kept_points(study_dir: str | Path, final: bool = False) -> dict:
    """trial id -> [(step, val_loss)] of the evaluation points the study keeps (the Parquet reader's view)."""
    from analysis.load import load_study

    metrics = load_study(str(study_dir)).metrics
    metrics = metrics[metrics.is_final == final]
    return {
        trial_id: sorted(zip(group.step.astype(int), group.val_loss.astype(float), strict=True))
        for trial_id, group in metrics.groupby("trial_id")
    }


def check_trackers_match(study_dir: Path, experiment: str) -> dict:
    """TensorBoard and MLflow show, for every trial, exactly the evaluation points the study keeps: one point per
    periodic evaluation (same steps, same values) and one final point. Returns the points per trial."""
    periodic, final = kept_points(study_dir), kept_points(study_dir, final=True)
    runs = mlflow_runs(f"sqlite:///{study_dir}/mlflow.db", experiment)
    assert set(runs) == set(periodic)
    for trial_id, points in periodic.items():
        folder = Path(study_dir) / "tensorboard" / trial_id
        for tag, expected in (("val_loss", points), ("final/val_loss", final[trial_id])):
            shown = tensorboard_points(folder, tag)
            assert [s for s, _ in shown] == [s for s, _ in expected], (trial_id, tag, shown, expected)
            assert [v for _, v in shown] == pytest.approx([v for _, v in expected], rel=1e-6)  # float32 events
            logged = mlflow_points(f"sqlite:///{study_dir}/mlflow.db", runs[trial_id].info.run_id, tag)
            assert [s for s, _ in logged] == [s for s, _ in expected], (trial_id, tag, logged, expected)
            assert [v for _, v in logged] == pytest.approx([v for _, v in expected])
        assert runs[trial_id].data.params["model.n_embd"] == "32" and runs[trial_id].info.status == "FINISHED"
        assert os.listdir(folder)
    return periodic
