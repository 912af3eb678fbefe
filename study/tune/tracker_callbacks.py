"""Driver-side Ray Tune callbacks that log a study to TensorBoard, MLflow and W&B: one point per evaluation.

Like study.tune.callbacks, they hold plain settings until they first log (Tune pickles them into tuner.pkl) and
a restored study gets fresh ones (study.tune.restore.rehome). Each logs only evaluation results (`is_eval`:
checkpoint-only and status reports carry no evaluation metric, study.tune.trainable), at the training step, the
periodic evaluations under their own names and the final one (the whole validation split) under `final/`. A
trial's config, flattened ("model.n_embd"), is its parameters; the study name is the experiment (W&B: project).

Attempts: a trial attempt that resumed from a checkpoint at step S (or restarted from scratch, S = 0) redoes the
training after S, so what an earlier attempt logged after S is superseded, as the Parquet reader drops it
(analysis.load.superseded). TensorBoard hides it itself: each attempt's writer starts with a purge at step S + 1
(a SessionLog START, after which TensorBoard drops the earlier events at or after that step). MLflow cannot
delete a metric point, so a run holding points after S is rebuilt without them: a new run with the same tags,
parameters and points up to S, then the old one is deleted (`REBUILDING` marks a copy until it is complete, so a
driver killed meanwhile leaves one whole run). W&B keeps such points (offline runs cannot be rewound).
"""

from __future__ import annotations

import hashlib
import math
import os
import time

from ray.tune import Callback

from study.tune.trackers import TENSORBOARD_DIR, mlflow_uri, tracker_root, wandb_mode, wandb_project
from wt_base.storage import Location

TRIAL_TAG = "wt_trial_id"  # the MLflow tag a trial's run is found by on resume
REBUILDING = "wt_rebuilding"  # an MLflow run being copied without superseded points (its value: the old run)
KEYS = ("trial_id", "attempt", "resumed_from_step", "step", "is_final")  # what a point is, not what it measured


def flat_config(trial_dict: dict) -> dict:
    """A trial's Tune config (`trial` entry) as flat parameters: trial_id, arch, model.n_embd, train.lr, ..."""
    out = {"trial_id": trial_dict["trial_id"], "arch": trial_dict["arch"]}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else key, inner)
        else:
            out[prefix] = value

    walk("", trial_dict["run"])
    return out


def eval_metrics(result: dict) -> dict:
    """The numbers an evaluation result measured, named as the tracker shows them (`final/...` for the final)."""
    from study.results.sink import METRIC_FIELDS

    prefix = "final/" if result.get("is_final") else ""
    out = {}
    for name in METRIC_FIELDS:
        value = result.get(name)
        if name not in KEYS and isinstance(value, (int, float)) and not isinstance(value, bool):
            out[prefix + name] = float(value)
    return out


class TrackerCallback(Callback):
    """One point per evaluation for one tracker (`tracker`: a TensorBoardTracker, MlflowTracker or WandbTracker):
    only `is_eval` results, each attempt of a trial opened once (told the step it resumed from), a periodic step of
    an attempt logged once, and the trial closed when Tune ends it."""

    def __init__(self, tracker):
        self.tracker = tracker  # holds plain settings until it first logs
        self._attempts: dict[str, object] = {}  # trial_id -> the attempt being logged
        self._last_step: dict[str, int] = {}  # trial_id -> the last periodic step that attempt logged

    def __getstate__(self) -> dict:
        return {"tracker": self.tracker}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    def setup(self, **info) -> None:
        self.tracker.start()

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        trial_dict = trial.config["trial"]
        trial_id, attempt = trial_dict["trial_id"], result.get("attempt")
        if trial_id not in self._attempts or self._attempts[trial_id] != attempt:
            if trial_id in self._attempts:
                self.tracker.close(trial_id, ok=False)  # a crashed attempt that Tune retries in this driver
            self.tracker.open(trial_id, flat_config(trial_dict), int(result.get("resumed_from_step") or 0), attempt)
            self._attempts[trial_id], self._last_step[trial_id] = attempt, -1
        if not result.get("is_eval"):
            return
        step = int(result["step"])
        if not result.get("is_final"):
            if step <= self._last_step[trial_id]:
                return  # Tune repeating a result
            self._last_step[trial_id] = step
        self.tracker.log(trial_id, step, eval_metrics(result))

    def _end(self, trial, ok: bool) -> None:
        trial_id = trial.config["trial"]["trial_id"]
        if self._attempts.pop(trial_id, None) is not None:
            self.tracker.close(trial_id, ok)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._end(trial, ok=True)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._end(trial, ok=False)

    def on_experiment_end(self, trials, **info) -> None:
        for trial_id in list(self._attempts):
            del self._attempts[trial_id]
            self.tracker.close(trial_id, ok=False)


class _Settings:
    """A tracker pickles as its settings (Tune pickles callbacks into tuner.pkl); its clients are rebuilt."""

    def __getstate__(self) -> dict:
        return dict(self.settings)

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    def start(self) -> None:
        """Called once when the study (or its resume) starts."""


class TensorBoardTracker(_Settings):
    """Event files in <root>/tensorboard/<trial_id>/, flushed after every evaluation (a killed driver loses none)."""

    def __init__(self, study: str, root: str):
        self.settings = {"study": study, "root": root}
        self.root = root
        self._writers: dict = {}

    def folder(self, trial_id: str) -> str:
        return os.path.join(self.root, TENSORBOARD_DIR, trial_id)

    def open(self, trial_id, params, resumed_from_step, attempt) -> None:
        from tensorboardX import SummaryWriter
        from tensorboardX.summary import hparams

        folder = self.folder(trial_id)
        fresh = not (os.path.isdir(folder) and os.listdir(folder))
        # purge_step: TensorBoard drops what earlier attempts logged at or after it (see the module docstring)
        writer = SummaryWriter(
            logdir=folder, purge_step=resumed_from_step + 1, flush_secs=10, filename_suffix=f".{attempt}"
        )
        if fresh:  # the HParams dashboard's row for this trial, written once
            for summary in hparams(params, {"val_loss": None, "final/val_loss": None}):
                writer.file_writer.add_summary(summary)
        self._writers[trial_id] = writer

    def log(self, trial_id, step, metrics) -> None:
        writer = self._writers[trial_id]
        for name, value in metrics.items():
            writer.add_scalar(name, value, global_step=step)
        writer.flush()

    def close(self, trial_id, ok) -> None:
        writer = self._writers.pop(trial_id, None)
        if writer is not None:
            writer.close()


class MlflowTracker(_Settings):
    """One MLflow run per trial (tagged with its trial id, found again on resume) in the study's experiment."""

    def __init__(self, study: str, root: str, tracking_uri: str):
        self.settings = {"study": study, "root": root, "tracking_uri": tracking_uri}
        self.study = study
        self._client = None
        self._experiment_id = ""
        self._runs: dict[str, str] = {}

    @property
    def client(self):
        if self._client is None:
            import warnings

            from mlflow.tracking import MlflowClient

            with warnings.catch_warnings():  # SQLAlchemy 2.1 deprecates a loader MLflow's SQL store still uses
                warnings.simplefilter("ignore", DeprecationWarning)
                self._client = MlflowClient(tracking_uri=self.settings["tracking_uri"])
                experiment = self._client.get_experiment_by_name(self.study)
            if experiment is None:
                self._experiment_id = self._client.create_experiment(self.study)
            else:
                self._experiment_id = experiment.experiment_id
                if experiment.lifecycle_stage == "deleted":
                    self._client.restore_experiment(self._experiment_id)
        return self._client

    def start(self) -> None:
        _ = self.client  # open (or create) the store before the first trial starts

    def open(self, trial_id, params, resumed_from_step, attempt) -> None:
        run_id = self.find_run(trial_id)
        if run_id is None:
            run_id = self.client.create_run(self._experiment_id, tags={TRIAL_TAG: trial_id}, run_name=trial_id)
            run_id = run_id.info.run_id
            self._batches(run_id, params=[_param(k, v) for k, v in params.items()])
        else:
            run_id = self.drop_superseded(run_id, resumed_from_step)
            self.client.update_run(run_id, status="RUNNING")
        self._runs[trial_id] = run_id

    def find_run(self, trial_id: str) -> str | None:
        """The active run of `trial_id`; a copy left half-made by a killed rebuild is deleted, one whose original
        is gone (the copy was complete) is kept."""
        client = self.client
        runs = client.search_runs([self._experiment_id], filter_string=f"tags.{TRIAL_TAG} = '{trial_id}'")
        whole = [r.info.run_id for r in runs if REBUILDING not in r.data.tags]
        copies = [r.info.run_id for r in runs if REBUILDING in r.data.tags]
        if whole:
            for run_id in copies:
                client.delete_run(run_id)
            return whole[0]
        if copies:
            client.delete_tag(copies[0], REBUILDING)
            return copies[0]
        return None

    def drop_superseded(self, run_id: str, after_step: int) -> str:
        """`run_id`, or when it holds points after `after_step` (redone by this attempt) a copy without them."""
        from mlflow.entities import Metric

        client = self.client
        run = client.get_run(run_id)
        history = [m for key in run.data.metrics for m in client.get_metric_history(run_id, key)]
        if all(m.step <= after_step for m in history):
            return run_id
        tags = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
        copy = client.create_run(self._experiment_id, tags={**tags, REBUILDING: run_id}, run_name=run.info.run_name)
        copy_id = copy.info.run_id
        kept = [Metric(m.key, m.value, m.timestamp, m.step) for m in history if m.step <= after_step]
        self._batches(copy_id, params=[_param(k, v) for k, v in run.data.params.items()], metrics=kept)
        client.delete_run(run_id)
        client.delete_tag(copy_id, REBUILDING)
        return copy_id

    def _batches(self, run_id: str, params=(), metrics=()) -> None:
        """log_batch within MLflow's limits (100 parameters, 1000 metrics a call)."""
        params, metrics = list(params), list(metrics)
        for i in range(0, len(params), 100):
            self.client.log_batch(run_id, params=params[i : i + 100])
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(run_id, metrics=metrics[i : i + 1000])

    def log(self, trial_id, step, metrics) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        points = [Metric(name, value, now, step) for name, value in metrics.items()]
        self._batches(self._runs[trial_id], metrics=points)

    def close(self, trial_id, ok) -> None:
        run_id = self._runs.pop(trial_id, None)
        if run_id is not None and ok:
            self.client.set_terminated(run_id, "FINISHED")
        # not ok (a crash Tune retries, a study interrupted): the run stays RUNNING until the trial ends


class WandbTracker(_Settings):
    """One W&B run per trial (a stable id, resumed on resume), offline unless WANDB_MODE says otherwise; the
    step is a metric of its own (`step`) that every other metric is plotted against."""

    def __init__(self, study: str, root: str, project: str, mode: str):
        self.settings = {"study": study, "root": root, "project": project, "mode": mode}
        self.study, self.root = study, root
        self._runs: dict = {}

    @staticmethod
    def run_id(study: str, trial_id: str) -> str:
        return hashlib.sha1(f"{study}/{trial_id}".encode()).hexdigest()[:16]

    def open(self, trial_id, params, resumed_from_step, attempt) -> None:
        import wandb

        os.makedirs(self.root, exist_ok=True)
        run = wandb.init(
            project=self.settings["project"],
            group=self.study,
            name=trial_id,
            id=self.run_id(self.study, trial_id),
            resume="allow",
            config=params,
            dir=self.root,
            mode=self.settings["mode"],
            reinit="create_new",  # several trials log at once from this one driver
            settings=wandb.Settings(console="off", silent=True),
        )
        run.define_metric("step")
        run.define_metric("*", step_metric="step")
        self._runs[trial_id] = run

    def log(self, trial_id, step, metrics) -> None:
        self._runs[trial_id].log({**metrics, "step": step})

    def close(self, trial_id, ok) -> None:
        run = self._runs.pop(trial_id, None)
        if run is not None:
            run.finish(exit_code=0 if ok else 1)


def _param(key: str, value):
    from mlflow.entities import Param

    text = "" if value is None else str(value)
    if isinstance(value, float) and math.isfinite(value):
        text = repr(value)
    return Param(key, text)


def make_trackers(spec, location: Location) -> list:
    """The tracker callbacks of `spec.loggers` for the study at `location` (fresh ones: they hold settings only)."""
    if not spec.loggers:
        return []
    root = tracker_root(location)
    made = {
        "tensorboard": lambda: TensorBoardTracker(spec.name, root),
        "mlflow": lambda: MlflowTracker(spec.name, root, mlflow_uri(spec, root)),
        "wandb": lambda: WandbTracker(spec.name, root, project=wandb_project(spec), mode=wandb_mode()),
    }
    return [TrackerCallback(made[name]()) for name in spec.loggers]
