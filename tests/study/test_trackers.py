"""Experiment trackers (`loggers:`): one point per evaluation, the same run after a resume, superseded points hidden,
and a missing package refused before anything starts. The kill + resume scenario is in
tests/reliability/test_tracker_resume.py."""

from __future__ import annotations

import shutil
import tempfile
from types import SimpleNamespace

import pytest
import yaml

from study.cli import main
from study.config.specfile import dump_spec, parse_spec
from study.tune import tracker_callbacks, trackers
from study.tune.trainable import report_metrics
from tests.study.conftest import TINY_SPEC, deep_update
from tests.study.tracker_readers import check_trackers_match, mlflow_points, require, tensorboard_points
from wt_base.errors import StudyError
from wt_base.storage import resolve
from wt_base.yamlio import parse_yaml


def _trial(trial_id: str = "worker_k4_T32_d32_s0_abcd1234"):
    spec = parse_spec(TINY_SPEC)
    from study.config.space import expand

    trial = next(t for t in expand(spec) if t.arch == "worker").to_dict()
    trial["trial_id"] = trial_id
    return SimpleNamespace(config={"trial": trial})


def _result(step: int, attempt: int = 1, resumed: int = 0, is_eval: bool = True, final: bool = False) -> dict:
    base = {"step": step, "tokens": 10 * step, "train_time_s": 0.1 * step, "wall_time_s": 0.2 * step}
    base |= {"attempt": attempt, "resumed_from_step": resumed, "is_eval": is_eval}
    if is_eval:
        base |= {"val_loss": 3.0 - step / 100, "val_loss_seed": 3.1, "lr": 1e-3, "is_final": final}
    return base


class FakeTracker:
    def __init__(self):
        self.calls = []

    def start(self):
        self.calls.append(("start",))

    def open(self, trial_id, params, resumed_from_step, attempt):
        self.calls.append(("open", trial_id, resumed_from_step, attempt, params["model.n_embd"]))

    def log(self, trial_id, step, metrics):
        self.calls.append(("log", step, sorted(k for k in metrics if "loss" in k)))

    def close(self, trial_id, ok):
        self.calls.append(("close", ok))


def test_a_checkpoint_only_report_carries_no_evaluation_metric():
    base = {"attempt": 7, "resumed_from_step": 0}
    state = {"counters": {"step": 40, "tokens": 640, "train_time_s": 1.5, "wall_time_s": 2.0, "lr": 1e-3}}
    metrics = report_metrics(None, state, base)
    assert metrics == {"step": 40, "tokens": 640, "train_time_s": 1.5, "wall_time_s": 2.0, **base, "is_eval": False}
    record = SimpleNamespace(to_dict=lambda: {"step": 30, "val_loss": 2.5, "is_final": False})
    evaluation = report_metrics(record, state, base)
    assert evaluation == {"step": 30, "val_loss": 2.5, "is_final": False, **base, "is_eval": True}


def test_the_callback_logs_each_evaluation_once_and_reopens_a_new_attempt():
    fake = FakeTracker()
    callback = tracker_callbacks.TrackerCallback(fake)
    callback.setup()
    trial = _trial()
    for result in (
        _result(10),
        _result(15, is_eval=False),  # a checkpoint-only report: no point
        _result(20),
        _result(20),  # Tune repeating a result
        _result(20, attempt=2, resumed=15, is_eval=False),  # the resumed attempt's first report
        _result(25, attempt=2, resumed=15),
        _result(30, attempt=2, resumed=15, final=True),
    ):
        callback.on_trial_result(0, [], trial, result)
    callback.on_trial_complete(0, [], trial)
    assert fake.calls == [
        ("start",),
        ("open", trial.config["trial"]["trial_id"], 0, 1, 32),
        ("log", 10, ["val_loss", "val_loss_seed"]),
        ("log", 20, ["val_loss", "val_loss_seed"]),
        ("close", False),
        ("open", trial.config["trial"]["trial_id"], 15, 2, 32),
        ("log", 25, ["val_loss", "val_loss_seed"]),
        ("log", 30, ["final/val_loss", "final/val_loss_seed"]),
        ("close", True),
    ]


def test_tensorboard_hides_what_a_resumed_attempt_redid(tmp_path):
    require("tensorboardX", "tensorboard"), require("tensorboard", "tensorboard")
    trial = _trial()
    callback = tracker_callbacks.TrackerCallback(tracker_callbacks.TensorBoardTracker("t", str(tmp_path)))
    for step in (10, 20, 30):  # the killed attempt logged 30 after its last checkpoint, at step 20
        callback.on_trial_result(0, [], trial, _result(step))
    callback.on_experiment_end([])
    callback = tracker_callbacks.TrackerCallback(tracker_callbacks.TensorBoardTracker("t", str(tmp_path)))
    for step in (25, 35):  # a fresh callback (a resumed driver), the attempt resumed from step 20
        callback.on_trial_result(0, [], trial, _result(step, attempt=2, resumed=20))
    callback.on_trial_complete(0, [], trial)
    folder = tmp_path / "tensorboard" / trial.config["trial"]["trial_id"]
    assert [s for s, _ in tensorboard_points(folder, "val_loss")] == [10, 20, 25, 35]
    assert len(list(folder.iterdir())) == 2  # one event file per attempt


@pytest.fixture(scope="module")
def mlflow_store():
    require("mlflow", "mlflow"), require("sqlalchemy", "mlflow")
    folder = tempfile.mkdtemp(prefix="wt-mlflow-")
    yield f"sqlite:///{folder}/mlflow.db"
    shutil.rmtree(folder, ignore_errors=True)


def test_mlflow_reuses_the_trials_run_and_drops_what_the_resumed_attempt_redid(mlflow_store):
    from mlflow.tracking import MlflowClient

    trial = _trial()
    trial_id = trial.config["trial"]["trial_id"]

    def driver():  # a fresh callback, as a resumed driver gets
        callback = tracker_callbacks.TrackerCallback(tracker_callbacks.MlflowTracker("resumed", "", mlflow_store))
        callback.setup()
        return callback

    callback = driver()
    for step in (10, 20, 30):
        callback.on_trial_result(0, [], trial, _result(step))
    (first,) = MlflowClient(mlflow_store).search_runs([callback.tracker._experiment_id])
    callback = driver()
    callback.on_trial_result(0, [], trial, _result(20, attempt=2, resumed=20, is_eval=False))
    callback.on_trial_result(0, [], trial, _result(40, attempt=2, resumed=20, final=True))
    callback.on_trial_complete(0, [], trial)
    (run,) = MlflowClient(mlflow_store).search_runs([callback.tracker._experiment_id])
    assert run.data.tags["wt_trial_id"] == trial_id and run.info.status == "FINISHED"
    assert run.info.run_id != first.info.run_id  # rebuilt without step 30: MLflow cannot delete a point
    assert [s for s, _ in mlflow_points(mlflow_store, run.info.run_id, "val_loss")] == [10, 20]
    assert [s for s, _ in mlflow_points(mlflow_store, run.info.run_id, "final/val_loss")] == [40]
    assert run.data.params["trial_id"] == trial_id and run.data.params["train.lr"] == "0.001"

    callback = driver()  # nothing after the resume step: the same run goes on
    callback.on_trial_result(0, [], trial, _result(40, attempt=3, resumed=40, is_eval=False))
    assert callback.tracker._runs[trial_id] == run.info.run_id


def test_mlflow_a_rebuild_cut_short_leaves_one_whole_run(mlflow_store):
    from mlflow.tracking import MlflowClient

    tracker = tracker_callbacks.MlflowTracker("cut-short", "", mlflow_store)
    tracker.start()
    client = MlflowClient(mlflow_store)
    tags = {"wt_trial_id": "t1"}
    whole = client.create_run(tracker._experiment_id, tags=tags).info.run_id
    partial = client.create_run(tracker._experiment_id, tags={**tags, "wt_rebuilding": whole}).info.run_id
    assert tracker.find_run("t1") == whole  # the copy was not finished: the original stays
    assert client.get_run(partial).info.lifecycle_stage == "deleted"
    copy = client.create_run(tracker._experiment_id, tags={**tags, "wt_rebuilding": whole}).info.run_id
    client.delete_run(whole)  # killed after deleting the original: the copy was complete
    assert tracker.find_run("t1") == copy and "wt_rebuilding" not in client.get_run(copy).data.tags


def test_wandb_runs_offline_unless_the_user_chose_a_mode(monkeypatch, tmp_path):
    wandb = require("wandb", "wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    assert trackers.wandb_mode() == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert trackers.wandb_mode() == "disabled"
    monkeypatch.delenv("WANDB_MODE")
    seen = {}

    class Run:
        def define_metric(self, name, **kwargs):
            seen.setdefault("defined", []).append((name, kwargs))

        def log(self, data):
            seen.setdefault("logged", []).append(data)

        def finish(self, exit_code):
            seen["exit_code"] = exit_code

    monkeypatch.setattr(wandb, "init", lambda **kwargs: seen.update(init=kwargs) or Run())
    spec = parse_spec(deep_update(TINY_SPEC, {"loggers": ["wandb"], "storage": str(tmp_path)}))
    (callback,) = tracker_callbacks.make_trackers(spec, resolve(str(tmp_path)).join("tiny"))
    trial = _trial()
    for result in (_result(10), _result(15, is_eval=False), _result(20, final=True)):
        callback.on_trial_result(0, [], trial, result)
    callback.on_trial_complete(0, [], trial)
    init = seen["init"]
    assert init["mode"] == "offline" and init["project"] == "tiny" and init["resume"] == "allow"
    assert init["dir"] == str(tmp_path / "tiny") and init["config"]["model.n_embd"] == 32
    assert init["id"] == tracker_callbacks.WandbTracker.run_id("tiny", trial.config["trial"]["trial_id"])
    assert [d["step"] for d in seen["logged"]] == [10, 20] and "final/val_loss" in seen["logged"][1]
    assert ("*", {"step_metric": "step"}) in seen["defined"] and seen["exit_code"] == 0


def test_wandb_writes_an_offline_run_per_trial_without_the_network(monkeypatch, tmp_path):
    require("wandb", "wandb")
    for name in ("WANDB_MODE", "WANDB_PROJECT", "WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    spec = parse_spec(deep_update(TINY_SPEC, {"loggers": ["wandb"], "storage": str(tmp_path)}))
    (callback,) = tracker_callbacks.make_trackers(spec, resolve(str(tmp_path)).join("tiny"))
    trials = [_trial("worker_a"), _trial("standard_b")]
    for result in (_result(10), _result(20, final=True)):
        for trial in trials:  # two runs open at once, as concurrent trials are
            callback.on_trial_result(0, [], trial, result)
    for trial in trials:
        callback.on_trial_complete(0, [], trial)
    runs = sorted((tmp_path / "tiny" / "wandb").glob("offline-run-*/run-*.wandb"))
    ids = sorted(tracker_callbacks.WandbTracker.run_id("tiny", t.config["trial"]["trial_id"]) for t in trials)
    assert sorted(p.stem.removeprefix("run-") for p in runs) == ids


@pytest.mark.parametrize(
    ("missing", "loggers", "message"),
    [
        ("mlflow", ["mlflow"], "loggers: mlflow needs the mlflow package: pip install 'wt-study[mlflow]'."),
        ("tensorboardX", ["tensorboard"], "loggers: tensorboard needs the tensorboardX package"),
        ("wandb", ["tensorboard", "wandb"], "loggers: wandb needs the wandb package: pip install 'wt-study[wandb]'."),
        ("sqlalchemy", ["mlflow"], "loggers: mlflow's SQLite store (sqlite:///"),
    ],
)
def test_a_missing_tracker_package_is_one_sentence_before_anything_starts(
    missing, loggers, message, monkeypatch, write_spec, tmp_path, capsys
):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(trackers, "_installed", lambda module: module != missing)
    spec_path = write_spec(loggers=loggers)
    assert main(["run", str(spec_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "results").exists()


def test_loggers_round_trip_and_bad_values_get_one_sentence(monkeypatch):
    spec = parse_spec(deep_update(TINY_SPEC, {"loggers": ["mlflow", "tensorboard"], "mlflow": {"tracking_uri": "x"}}))
    assert parse_spec(parse_yaml(dump_spec(spec), "dumped")) == spec and spec.loggers == ("mlflow", "tensorboard")
    for bad, message in (
        (["neptune"], "loggers value='neptune' is invalid: expected one of tensorboard, mlflow, wandb."),
        ("mlflow", "loggers='mlflow' is invalid: expected a list of trackers"),
        (["mlflow", "mlflow"], "loggers=['mlflow', 'mlflow'] repeats a tracker"),
    ):
        with pytest.raises(StudyError, match=message.replace("[", r"\[").replace("(", r"\(")):
            parse_spec(deep_update(TINY_SPEC, {"loggers": bad}))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    location = resolve("/tmp/x").join("tiny")
    assert trackers.mlflow_uri(spec, location.path) == "x"  # the spec's first, then the environment
    assert trackers.mlflow_uri(spec.replace(mlflow=type(spec.mlflow)()), location.path) == "http://mlflow.example:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert trackers.mlflow_uri(spec.replace(mlflow=type(spec.mlflow)()), "/s/tiny") == "sqlite:////s/tiny/mlflow.db"


def test_a_tiny_study_logs_one_point_per_evaluation_to_tensorboard_and_mlflow(tmp_path, ray_tmp, monkeypatch):
    for module, extra in (("tensorboardX", "tensorboard"), ("tensorboard", "tensorboard"), ("mlflow", "mlflow")):
        require(module, extra)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    doc = deep_update(TINY_SPEC, {"storage": str(tmp_path / "results"), "loggers": ["tensorboard", "mlflow"]})
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(doc))
    assert main(["run", str(tmp_path / "spec.yaml"), "--ray-temp-dir", ray_tmp]) == 0
    points = check_trackers_match(tmp_path / "results" / "tiny", "tiny")
    assert len(points) == 2 and all(len(p) >= 2 for p in points.values())


def test_a_dry_run_says_where_the_trackers_would_write_and_what_is_missing(monkeypatch, write_spec, tmp_path, capsys):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setattr(trackers, "_installed", lambda module: module != "wandb")
    assert main(["run", str(write_spec(loggers=["tensorboard", "mlflow", "wandb"])), "--dry-run"]) == 0
    out = capsys.readouterr().out
    study = tmp_path / "results" / "tiny"
    assert f"Would log to TensorBoard: {study}/tensorboard/<trial_id>/" in out
    assert f"Would log to MLflow: experiment 'tiny' at sqlite:///{study}/mlflow.db" in out
    assert f"Would log to W&B: project 'tiny', mode offline, files in {study}/wandb/" in out
    assert "Note: loggers: wandb needs the wandb package: pip install 'wt-study[wandb]'." in out
    assert not (tmp_path / "results").exists()
