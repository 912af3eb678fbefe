"""Experiment trackers (`loggers:` in the spec): where each one writes, the packages it needs, and its callback.

The callbacks themselves (study.tune.tracker_callbacks, whose make_trackers builds them) run in the driver
beside the Parquet sink. This module imports neither Ray nor a tracker package, so the plan (study.tune.plan)
refuses a missing package before anything starts and a dry run can say where the trackers would write.

Where: TensorBoard event files and the default MLflow store live in the study directory (`<study>/tensorboard/
<trial_id>/`, `sqlite:///<study>/mlflow.db`); W&B writes its offline runs to `<study>/wandb/`. A study in a
bucket keeps them in `./wt_trackers/<name>/` beside the driver instead (neither TensorBoard's writer nor MLflow's
store writes into a bucket here). MLflow's tracking URI: the spec's `mlflow.tracking_uri`, else
$MLFLOW_TRACKING_URI, else the SQLite file. W&B runs offline unless WANDB_MODE says otherwise.
"""

from __future__ import annotations

import importlib.util
import os

from wt_base.errors import StudyError
from wt_base.storage import Location

LOCAL_ROOT = "wt_trackers"  # beside the driver, for a study whose storage is a bucket
TENSORBOARD_DIR = "tensorboard"
MLFLOW_DB = "mlflow.db"
# tracker -> (the modules it imports, the extra that installs them)
PACKAGES = {
    "tensorboard": (("tensorboardX",), "tensorboard"),
    "mlflow": (("mlflow",), "mlflow"),
    "wandb": (("wandb",), "wandb"),
}
SQL_STORE_MODULES = ("sqlalchemy", "alembic")  # what MLflow's SQLite store needs beyond mlflow-skinny


def tracker_root(location: Location) -> str:
    """The local folder the trackers write into: the study directory, or ./wt_trackers/<name> for a bucket."""
    if location.is_local:
        return location.path
    return os.path.abspath(os.path.join(LOCAL_ROOT, location.path.rstrip("/").rsplit("/", 1)[-1]))


def mlflow_uri(spec, root: str) -> str:
    """The spec's tracking URI, else $MLFLOW_TRACKING_URI, else a SQLite file in the study directory."""
    return spec.mlflow.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{root}/{MLFLOW_DB}"


def wandb_mode() -> str:
    """WANDB_MODE when the user set it (online, offline, disabled), else offline: a study never uploads unasked."""
    return os.environ.get("WANDB_MODE") or "offline"


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def check_tracker_packages(spec, location: Location) -> None:
    """Refuse, before anything starts, a tracker whose package is not installed (one sentence naming the extra)."""
    for name in spec.loggers:
        modules, extra = PACKAGES[name]
        missing = [m for m in modules if not _installed(m)]
        if missing:
            raise StudyError(
                f"loggers: {name} needs the {missing[0]} package: pip install 'wt-study[{extra}]'"
                + ("" if missing[0] == name else f" (or pip install {missing[0]})")
                + "."
            )
        if name == "mlflow" and mlflow_uri(spec, tracker_root(location)).startswith("sqlite:"):
            lacking = [m for m in SQL_STORE_MODULES if not _installed(m)]
            if lacking:
                raise StudyError(
                    f"loggers: mlflow's SQLite store ({mlflow_uri(spec, tracker_root(location))}) needs the "
                    f"{' and '.join(lacking)} packages: pip install 'wt-study[mlflow]', or give mlflow.tracking_uri."
                )


def _tensorboard_line(spec, root: str) -> str:
    folder = os.path.join(root, TENSORBOARD_DIR)
    return f"TensorBoard: {folder}/<trial_id>/ (view: tensorboard --logdir {folder})"


def _mlflow_line(spec, root: str) -> str:
    uri = mlflow_uri(spec, root)
    return f"MLflow: experiment {spec.name!r} at {uri} (view: mlflow ui --backend-store-uri {uri})"


def _wandb_line(spec, root: str) -> str:
    mode = wandb_mode()
    note = " (upload later: wandb sync)" if mode == "offline" else ""
    return f"W&B: project {wandb_project(spec)!r}, mode {mode}, files in {root}/wandb/{note}"


DESCRIBED = {"tensorboard": _tensorboard_line, "mlflow": _mlflow_line, "wandb": _wandb_line}  # logger -> its line


def describe(spec, location: Location) -> list[str]:
    """One line per tracker: where it writes and how to look at it (a logger with no entry in DESCRIBED is an
    error, not described as another one)."""
    root = tracker_root(location)
    unknown = [name for name in spec.loggers if name not in DESCRIBED]
    if unknown:
        raise StudyError(f"loggers: {unknown[0]!r} has no description: expected one of {', '.join(DESCRIBED)}.")
    return [DESCRIBED[name](spec, root) for name in spec.loggers]


def wandb_project(spec) -> str:
    """$WANDB_PROJECT when set, else the study name."""
    return os.environ.get("WANDB_PROJECT") or spec.name
