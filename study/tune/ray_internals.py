"""Every Ray Tune internal the project relies on, behind one function or name each (checked against Ray 2.60.0,
the version pyproject.toml pins). Nothing else in the project touches them; tests/study/test_ray_internals.py
has one test per internal, which fails with a message naming it when a Ray release changes it.

Internal (Ray 2.60.0)                             What we use it for
-----------------------------------------------   --------------------------------------------------------------
Tuner._local_tuner (TunerInternal)                a restored Tuner's config, replaced before fit (`restored_*`)
TunerInternal._tune_config .scheduler /           a fresh scheduler, a re-homing trial generator and no Tune-side
  .search_alg / .max_concurrent_trials              concurrency limit for a resume (study.tune.restore, tuner)
TunerInternal.get_run_config().callbacks          fresh callbacks for a resume (the study may have moved)
TuneController._set_trial_status                  end, unrun, a trial whose row says it finished (`end_unrun`)
Trial.storage (.storage_filesystem,               move a trial Tune created to where the study is now
  .storage_fs_path, .experiment_dir_name),          (`trial_home`, `move_trial`)
  Trial.set_storage
Trial.run_metadata (.last_result,                 what the driver keeps of a finished trial (`trim_finished_trial`,
  .metric_analysis, .metric_n_steps)                ray-project/ray#64231)
ray.tune.utils.util._atomic_save /                a search generator's own state file (`save_generator_state`,
  _load_newest_checkpoint                           `load_newest_generator_state`)
SearchGenerator._total_samples, ._experiment      a search generator's trial count and restored experiment
Tune's state files: tuner.pkl (a pickle),         what a resume restores and a rebuild checks and sets aside
  experiment_state-*.json (JSON),                   (`TUNER_PICKLE`, `STATE_PREFIXES`, `state_loader`;
  basic-variant-state-*.json and                    study.tune.rebuild). Ray calls tuner.pkl's contents
  search_gen_state-*.json (pickles, despite         implementation details (ray-project/ray#40491); the names our
  the name)                                         classes pickle under are listed in study.tune.restore
environment: TUNE_GLOBAL_CHECKPOINT_S,            Tune's switches for one fit (`tune_environment`)
  TUNE_DISABLE_STRICT_METRIC_CHECKING,
  TUNE_DISABLE_AUTO_CALLBACK_LOGGERS,
  RAY_AIR_NEW_OUTPUT,
  TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S
logger names and message fragments                Ray's notices dropped (`RAY_NOTICES`) and Tune's readers and
                                                    writers quietened (study.tune.runner, restore)
OptunaSearch._ot_study                            the Optuna study behind a TPE sampler (tests only)
ray.autoscaler._private.util.prepare_config /     `ray up`'s offline checks of cluster*.yaml (tests only)
  validate_config

Every import of Ray happens inside a function, so importing this module costs nothing.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import pickle  # noqa: S403  (the study's own Tune state, as Tune itself loads it)

RAY_CHECKED = "2.60.0"  # the Ray release every internal here was read and tested against

# ---- environment ----
STATE_PERIOD_VAR = "TUNE_GLOBAL_CHECKPOINT_S"  # seconds between saves of Tune's experiment state (or "auto")
TUNE_SWITCHES = {
    "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",  # checkpoint-only reports carry no loss (study.tune.trainable)
    "RAY_AIR_NEW_OUTPUT": "0",  # with verbose=0 Tune prints nothing: our ProgressCallback reports
    # Tune forces a save every num_to_keep checkpoints of a trial and warns when that is often: it is meant
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    # no result.json / progress.csv / TensorBoard files per trial: nothing reads them (the study's rows are its
    # results), and their callbacks keep every trial's last result in the driver (ray-project/ray#64231)
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
}


@contextlib.contextmanager
def tune_environment(experiment_state_period_s: float):
    """Tune's switches (TUNE_SWITCHES, and `experiment_state_period_s` as TUNE_GLOBAL_CHECKPOINT_S) set for one
    `Tuner.fit` in this process, where the driver reads them; a variable the user set keeps the user's value.
    Restored afterwards, so two studies in one process each get their own period."""
    wanted = {**TUNE_SWITCHES, STATE_PERIOD_VAR: f"{experiment_state_period_s:g}"}
    ours = {name: value for name, value in wanted.items() if name not in os.environ}
    os.environ.update(ours)
    try:
        yield {name: os.environ[name] for name in wanted}
    finally:
        for name in ours:
            os.environ.pop(name, None)


# ---- a restored Tuner ----
def _internal(tuner):
    internal = getattr(tuner, "_local_tuner", None)
    if internal is None:
        raise RuntimeError(
            "Tuner._local_tuner is None: a study resumes with its driver on the Ray cluster (--address auto), "
            "not through Ray Client (ray://)"
        )
    return internal


def restored_callbacks(tuner, callbacks: list) -> None:
    """Replace the callbacks a restored Tuner unpickled (TunerInternal.get_run_config().callbacks)."""
    _internal(tuner).get_run_config().callbacks = callbacks


def restored_search_alg(tuner, search_alg) -> None:
    """Replace a restored Tuner's trial generator; the generator limits concurrency (Tune warns otherwise)."""
    config = _internal(tuner)._tune_config
    config.search_alg = search_alg
    config.max_concurrent_trials = None


def restored_scheduler(tuner, scheduler) -> None:
    """Replace a restored Tuner's scheduler (Tune keeps none of a scheduler's state across a restore)."""
    _internal(tuner)._tune_config.scheduler = scheduler


# ---- the controller and its trials ----
def end_unrun(tune_controller, trial) -> None:
    """Mark a pending trial terminated without starting it: one of the controller methods Tune lets a scheduler
    call (TrialRunnerWrapper's list); stop_trial would also tell the callbacks, and Tune's progress callback
    prints a line for each such trial."""
    from ray.tune.experiment import Trial

    tune_controller._set_trial_status(trial, Trial.TERMINATED)


def trial_home(trial) -> tuple:
    """(filesystem, storage path, experiment directory name) of a trial Tune created."""
    storage = trial.storage
    return storage.storage_filesystem, storage.storage_fs_path, storage.experiment_dir_name


def move_trial(trial, fs, path: str, experiment: str) -> None:
    """Point a trial at another storage path and experiment directory (with the checkpoints Tune tracks), as
    Tune moves the trials it restores."""
    storage = copy.copy(trial.storage)
    storage.storage_filesystem = fs
    storage.storage_fs_path = path
    storage.experiment_dir_name = experiment
    trial.set_storage(storage)


TUNE_RESULT_FIELDS = ("done", "training_iteration", "trial_id", "time_total_s")  # kept of a finished trial


def trim_finished_trial(trial, keep: tuple = ()) -> None:
    """Drop what the driver keeps of a finished trial that nothing reads again: its last result but Tune's own
    counters and the `keep` fields (the trial's whole config is in it), and the running statistics of every
    metric it reported (about 20 KB of Tune's experiment state per trial, several times that in memory). Its
    config, status and checkpoints stay, so the experiment state still resumes it as finished."""
    meta = trial.run_metadata
    last = meta.last_result or {}
    meta.last_result = {name: last[name] for name in TUNE_RESULT_FIELDS + tuple(keep) if name in last}
    meta.metric_analysis = {}
    meta.metric_n_steps = {}
    trial.invalidate_json_state()


# ---- a search generator's state ----
def save_generator_state(state: dict, dirpath: str, file_name: str) -> None:
    """Write a trial generator's state file atomically, as Tune's own generators do."""
    from ray.tune.utils.util import _atomic_save

    _atomic_save(state=state, checkpoint_dir=dirpath, file_name=file_name, tmp_file_name=f"tmp-{file_name}")


def load_newest_generator_state(dirpath: str, pattern: str) -> dict | None:
    """The newest (by name) generator state file in `dirpath` matching the glob `pattern`, or None."""
    from ray.tune.utils.util import _load_newest_checkpoint

    return _load_newest_checkpoint(dirpath, pattern)


def set_generator_total(generator, total: int) -> None:
    """A SearchGenerator's trial count (Tune sets it from num_samples on a new run only)."""
    generator._total_samples = total


def set_generator_experiment(generator, experiment) -> None:
    """A SearchGenerator's experiment (the spec its trials are created from), as restored from its state."""
    generator._experiment = experiment


# ---- Tune's state files ----
TUNER_PICKLE = "tuner.pkl"
EXPERIMENT_STATE_PREFIX = "experiment_state-"
STATE_PREFIXES = (EXPERIMENT_STATE_PREFIX, "basic-variant-state-", "search_gen_state-")  # each ends in .json


def state_loader(kind: str):
    """How a state file of `kind` (TUNER_PICKLE or one of STATE_PREFIXES) loads: the experiment state is JSON;
    tuner.pkl and the generators' states are pickles, the study's own files, which Tune unpickles anyway when it
    restores them (docs/results.md, Security)."""
    return json.loads if kind == EXPERIMENT_STATE_PREFIX else pickle.loads


# ---- Ray's loggers ----
TUNE_RUN_LOGGER = "ray.tune.tune"
TOKEN_LOGGER = "ray._private.authentication.authentication_token_setup"
CONTROLLER_LOGGER = "ray.tune.execution.tune_controller"
EXPERIMENT_STATE_LOGGER = "ray.tune.execution.experiment_state"
ANALYSIS_LOGGER = "ray.tune.analysis.experiment_analysis"  # warns for each trial without result files
# Ray's notices that would tell a wt-study user something wrong or nothing: its restore hint (Tuner.restore, not
# `wt-study resume`), its Ctrl-C notice (the driver's summary follows) and that token authentication is on by
# default (it stays on: a Ray port is remote code execution). logger name -> message fragments dropped.
RAY_NOTICES = {
    TUNE_RUN_LOGGER: ("Resume experiment with", "Stop signal received"),
    TOKEN_LOGGER: ("Token authentication is enabled for this Ray",),
}


# ---- used by tests only ----
def optuna_study(search):
    """The optuna.Study behind a Ray Tune OptunaSearch."""
    return search._ot_study


def prepare_cluster_config(config: dict) -> dict:
    """`ray up`'s offline preparation of a cluster config (the provider's defaults merged in)."""
    from ray.autoscaler._private.util import prepare_config

    return prepare_config(config)


def validate_cluster_config(config: dict) -> None:
    """`ray up`'s offline validation of a prepared cluster config (schema, head type, worker counts)."""
    from ray.autoscaler._private.util import validate_config

    validate_config(config)
