"""One test per Ray Tune internal in study.tune.ray_internals: each fails, naming the internal, when a Ray release
changes what the project relies on (the name exists, and behaves as used). The cheap ones read Ray's objects
directly; the others run two tiny experiments on one in-process Ray (`experiment`, about 15 s)."""

from __future__ import annotations

import importlib
import inspect
import os
import shutil
from pathlib import Path

import pytest
from ray import tune
from ray.tune.schedulers import FIFOScheduler

from study.tune import ray_internals as ri


def _fail(internal: str, what: str) -> str:
    return f"Ray {internal} changed ({what}); checked against Ray {ri.RAY_CHECKED}: see study/tune/ray_internals.py"


# ---- environment ----
def test_auto_callback_loggers_switch():
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, TBXLoggerCallback
    from ray.tune.utils.callback import _create_default_callbacks

    loggers = (CSVLoggerCallback, JsonLoggerCallback, TBXLoggerCallback)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", raising=False)
        default = _create_default_callbacks([], air_verbosity=None)
        with ri.tune_environment(5.0):
            switched = _create_default_callbacks([], air_verbosity=None)
    assert any(isinstance(c, loggers) for c in default), _fail("auto loggers", "none added by default any more")
    assert not any(isinstance(c, loggers) for c in switched), _fail(
        "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "=1 no longer leaves out the JSON/CSV/TensorBoard loggers"
    )


def test_new_output_switch():
    from ray.tune.experimental.output import get_air_verbosity

    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("RAY_AIR_NEW_OUTPUT", raising=False)
        with ri.tune_environment(5.0):
            verbosity = get_air_verbosity(0)
    assert verbosity is None, _fail("RAY_AIR_NEW_OUTPUT", "=0 no longer selects the old, silent output")


def test_experiment_state_period_and_forced_saves():
    """TUNE_GLOBAL_CHECKPOINT_S is the period the experiment-state saver gets, and it still forces a save once a
    trial has checkpointed num_to_keep times (the resume guarantee of study.tune.tuner.experiment_state_period_s),
    and TUNE_WARN_EXCESSIVE_..._THRESHOLD_S=0 silences its warning about those forced saves."""
    from ray.tune.execution import tune_controller
    from ray.tune.execution.experiment_state import _ExperimentCheckpointManager

    source = inspect.getsource(tune_controller.TuneController.__init__)
    assert 'os.getenv("TUNE_GLOBAL_CHECKPOINT_S"' in source, _fail(
        "TUNE_GLOBAL_CHECKPOINT_S", "TuneController no longer reads it"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", raising=False)
        with ri.tune_environment(123.0) as env:
            manager = _ExperimentCheckpointManager(
                storage=None, checkpoint_period=env[ri.STATE_PERIOD_VAR], sync_every_n_trial_checkpoints=3
            )
    assert manager._checkpoint_period == 123.0, _fail("TUNE_GLOBAL_CHECKPOINT_S", "not read as seconds")
    assert manager._excessive_sync_threshold == 0, _fail(
        "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "not the saver's warning threshold"
    )
    trial = object()
    for _ in range(2):
        manager.on_trial_checkpoint(trial)
    assert not manager._should_force_sync_up
    manager.on_trial_checkpoint(trial)
    assert manager._should_force_sync_up, _fail(
        "_ExperimentCheckpointManager", "no forced experiment-state save after num_to_keep trial checkpoints"
    )


def test_tune_environment_leaves_a_users_value_and_restores_the_rest(monkeypatch):
    monkeypatch.setenv(ri.STATE_PERIOD_VAR, "1")
    monkeypatch.delenv("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", raising=False)
    with ri.tune_environment(60.0) as env:
        assert env[ri.STATE_PERIOD_VAR] == "1" and os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] == "1"
    assert os.environ[ri.STATE_PERIOD_VAR] == "1" and "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS" not in os.environ


# ---- state files, generators, loggers ----
def test_state_file_names():
    from ray.tune.execution.tune_controller import TuneController
    from ray.tune.impl.tuner_internal import _TUNER_PKL
    from ray.tune.search import BasicVariantGenerator, SearchGenerator

    assert _TUNER_PKL == ri.TUNER_PICKLE, _fail("tuner.pkl", f"now {_TUNER_PKL}")
    names = [c.CKPT_FILE_TMPL.format("x") for c in (TuneController, BasicVariantGenerator, SearchGenerator)]
    for name, prefix in zip(names, ri.STATE_PREFIXES, strict=True):
        assert name == f"{prefix}x.json", _fail("state file names", f"{name}, not {prefix}*.json")


def test_generator_state_files(tmp_path):
    pattern = "search_gen_state-*.json"
    assert ri.load_newest_generator_state(str(tmp_path), pattern) is None, _fail("_load_newest_checkpoint", "none")
    ri.save_generator_state({"n": 1}, str(tmp_path), "search_gen_state-2026-01-01_00-00-00.json")
    ri.save_generator_state({"n": 2}, str(tmp_path), "search_gen_state-2026-01-02_00-00-00.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "search_gen_state-2026-01-01_00-00-00.json",
        "search_gen_state-2026-01-02_00-00-00.json",
    ], _fail("_atomic_save", "not one file under the given name")
    loaded = ri.load_newest_generator_state(str(tmp_path), pattern)
    assert loaded == {"n": 2}, _fail("_atomic_save / _load_newest_checkpoint", f"newest loads as {loaded}")
    assert ri.state_loader("search_gen_state-")((tmp_path / "search_gen_state-2026-01-02_00-00-00.json").read_bytes())


def test_search_generator_fields():
    from ray.tune.search import Searcher, SearchGenerator

    generator = SearchGenerator(Searcher(metric="loss", mode="min"))
    ri.set_generator_total(generator, 7)
    experiment = object()
    ri.set_generator_experiment(generator, experiment)
    state = generator.get_state()
    assert generator.total_samples == 7 and state["total_samples"] == 7, _fail("SearchGenerator._total_samples", "")
    assert state["experiment"] is experiment, _fail("SearchGenerator._experiment", "not its saved experiment")


@pytest.mark.parametrize(
    "name, fragments",
    [
        *ri.RAY_NOTICES.items(),
        (ri.CONTROLLER_LOGGER, ()),
        (ri.EXPERIMENT_STATE_LOGGER, ()),
        (ri.ANALYSIS_LOGGER, ()),
    ],
)
def test_logger_names_and_notices(name, fragments):
    module = importlib.import_module(name)
    assert getattr(module, "logger", None) is not None and module.logger.name == name, _fail(name, "no such logger")
    source = inspect.getsource(module)
    for fragment in fragments:
        assert fragment in source, _fail(name, f"no longer logs {fragment!r}")


def test_optuna_study():
    optuna = pytest.importorskip("optuna")
    from ray.tune.search.optuna import OptunaSearch

    search = OptunaSearch(space={"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2)}, metric="m", mode="min")
    assert isinstance(ri.optuna_study(search), optuna.Study), _fail("OptunaSearch._ot_study", "not its Study")


def test_cluster_config_checks():
    import yaml

    config = yaml.safe_load((Path(__file__).resolve().parents[2] / "cluster.yaml").read_text())
    prepared = ri.prepare_cluster_config(config)
    assert set(config) < set(prepared), _fail("autoscaler prepare_config", "fills no defaults")
    ri.validate_cluster_config(prepared)
    with pytest.raises(ValueError):  # jsonschema's ValidationError is a ValueError too
        ri.validate_cluster_config({**prepared, "head_node_type": "no-such-type"})


# ---- two tiny experiments: a run with one failing trial, restored from a copy in another folder ----
def tiny_trainable(config: dict) -> None:
    """Three reports with a checkpoint each; x=2's first attempt fails after its first checkpoint."""
    import tempfile

    start = 0
    resumed = tune.get_checkpoint()
    if resumed is not None:
        with resumed.as_directory() as folder:
            start = int((Path(folder) / "step").read_text())
    for step in range(start, 3):
        if config["x"] == 2 and step == 1 and resumed is None:
            raise RuntimeError("the first attempt fails after one checkpoint")
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "step").write_text(str(step + 1))
            metrics = {"loss": 1.0 / (step + 1), "step": step + 1, "is_final": step == 2}
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


class Seen(tune.Callback):
    def __init__(self):
        self.started: list = []

    def on_trial_start(self, iteration, trials, trial, **info):
        self.started.append(trial.config["x"])


def _run_config(storage: Path, callbacks: list) -> tune.RunConfig:
    return tune.RunConfig(
        name="exp",
        storage_path=str(storage),
        callbacks=callbacks,
        checkpoint_config=tune.CheckpointConfig(num_to_keep=3),
        verbose=0,
    )


class Asked(FIFOScheduler):
    def __init__(self):
        super().__init__()
        self.asked = 0

    def choose_trial_to_run(self, tune_controller):
        self.asked += 1
        return super().choose_trial_to_run(tune_controller)


@pytest.fixture(scope="module")
def experiment(ray_session, tmp_path_factory):
    """A two-trial experiment (x=2 fails after one checkpoint), trimmed by TrimFinishedTrials, copied elsewhere,
    then restored there with fresh callbacks, scheduler and generator (ray_internals.restored_*)."""
    from study.tune.callbacks import TrimFinishedTrials
    from study.tune.restore import RehomingVariants, home_of
    from wt_base.storage import resolve

    class Restored(RehomingVariants):
        def set_state(self, state: dict) -> None:
            super().set_state(state)
            self.restored = True

    first, moved = tmp_path_factory.mktemp("first"), tmp_path_factory.mktemp("moved")
    with ri.tune_environment(1.0):
        tune.Tuner(
            tiny_trainable,
            param_space={"x": tune.grid_search([1, 2])},
            run_config=_run_config(first, [TrimFinishedTrials()]),
        ).fit()
    shutil.copytree(first / "exp", moved / "exp")
    pickled = (moved / "exp" / ri.TUNER_PICKLE).read_bytes()
    seen, scheduler = Seen(), Asked()
    generator = Restored(home_of(resolve(str(moved))), max_concurrent=1)
    with ri.tune_environment(1.0):
        restored = tune.Tuner.restore(str(moved / "exp"), trainable=tiny_trainable, resume_errored=True)
        ri.restored_callbacks(restored, [seen, TrimFinishedTrials()])
        ri.restored_scheduler(restored, scheduler)
        ri.restored_search_alg(restored, generator)
        grid = restored.fit()
    return {"first": first, "moved": moved, "pickled": pickled, "seen": seen, "grid": grid, "scheduler": scheduler,
            "generator": generator}  # fmt: skip


def test_tuner_pickle_format(experiment):
    state = ri.state_loader(ri.TUNER_PICKLE)(experiment["pickled"])
    assert isinstance(state, dict) and "_tune_config" in state and "_run_config" in state, _fail(
        "tuner.pkl", "no longer a pickled dict of TunerInternal's fields"
    )
    assert any(type(c).__name__ == "TrimFinishedTrials" for c in state["_run_config"].callbacks), _fail(
        "tuner.pkl", "the run's callbacks are not pickled in it (study.tune.restore lists our pickled names)"
    )


def test_state_file_formats(experiment):
    folder = experiment["first"] / "exp"
    for kind in ri.STATE_PREFIXES[:2]:
        (path,) = folder.glob(f"{kind}*.json")
        assert ri.state_loader(kind)(path.read_bytes()), _fail(f"{kind}*.json", "does not load as it used to")


def test_local_tuner_and_restored_config(experiment):
    """The replaced callbacks, scheduler and generator are the ones the restored fit used: x=2 (failed) ran
    again with our callback told, and our generator was restored from Tune's saved grid state."""
    assert experiment["seen"].started == [2], _fail(
        "Tuner._local_tuner / get_run_config().callbacks", f"our callbacks saw {experiment['seen'].started}"
    )
    assert experiment["scheduler"].asked, _fail("TunerInternal._tune_config.scheduler", "our scheduler unused")
    assert getattr(experiment["generator"], "restored", False), _fail(
        "TunerInternal._tune_config.search_alg", "our generator was not restored from Tune's saved grid state"
    )
    assert not experiment["grid"].errors, _fail("Tuner.restore with resume_errored", "the failed trial failed again")


def test_restored_trials_live_where_the_copy_is(experiment):
    """Tune moves the trials it restores (Trial.set_storage, as ray_internals.move_trial calls it): the re-run
    trial's checkpoints were written in the copy."""
    from ray.tune import ExperimentAnalysis

    (trial,) = [t for t in ExperimentAnalysis(str(experiment["moved"] / "exp")).trials if t.config["x"] == 2]
    assert str(experiment["moved"]) in trial.checkpoint.path, _fail("Trial.set_storage", trial.checkpoint.path)


def test_move_trial(experiment):
    from ray.tune import ExperimentAnalysis

    trial = ExperimentAnalysis(str(experiment["first"] / "exp")).trials[0]
    fs, _, _ = ri.trial_home(trial)
    ri.move_trial(trial, fs, "/elsewhere", "exp2")
    assert ri.trial_home(trial)[1:] == ("/elsewhere", "exp2"), _fail("Trial.storage", "not moved")
    assert trial.checkpoint.path.startswith("/elsewhere/exp2/"), _fail(
        "Trial.set_storage", f"tracked checkpoints not moved: {trial.checkpoint.path}"
    )


def test_finished_trials_are_trimmed_in_the_saved_state(experiment):
    from ray.tune import ExperimentAnalysis

    trials = ExperimentAnalysis(str(experiment["moved"] / "exp")).trials
    assert [t.status for t in trials] == ["TERMINATED", "TERMINATED"]
    for trial in trials:
        assert set(trial.last_result) <= set(ri.TUNE_RESULT_FIELDS) | {"is_final", "done_status"}, _fail(
            "Trial.run_metadata.last_result", f"kept {sorted(trial.last_result)}"
        )
        assert trial.last_result["is_final"] and trial.metric_analysis == {}, _fail("Trial.run_metadata", "")
        assert trial.checkpoint is not None, _fail("trim_finished_trial", "lost the trial's checkpoint")


def test_end_unrun(ray_session, tmp_path):
    """A scheduler ends a pending trial without starting it (TuneController._set_trial_status, through Tune's
    wrapper of the controller), as study.tune.schedulers.StudyFIFO does for a trial whose row says it finished."""

    class EndsTwo(FIFOScheduler):
        def choose_trial_to_run(self, tune_controller):
            for trial in tune_controller.get_trials():
                if trial.status == "PENDING" and trial.config["x"] == 2:
                    ri.end_unrun(tune_controller, trial)
            return super().choose_trial_to_run(tune_controller)

    seen = Seen()
    with ri.tune_environment(1.0):  # tune.run: a Tuner's result grid cannot show a trial that never had a folder
        analysis = tune.run(
            tiny_trainable,
            config={"x": tune.grid_search([1, 2])},
            scheduler=EndsTwo(),
            storage_path=str(tmp_path),
            name="exp",
            callbacks=[seen],
            verbose=0,
        )
    assert seen.started == [1], _fail("TuneController._set_trial_status", f"started {seen.started}")
    statuses = sorted((t.config["x"], t.status) for t in analysis.trials)
    assert statuses == [(1, "TERMINATED"), (2, "TERMINATED")], _fail("TuneController._set_trial_status", statuses)
