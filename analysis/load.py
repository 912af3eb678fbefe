"""The only reader: a study's Parquet results (local path or URI) -> tidy pandas frames.

Layout (wt_base.schema): `<study>/results/metrics/*.parquet` and `<study>/results/trials/*.parquet`, many small
files whose names sort in write order. The last written row per key wins (file name, then row order), so a
resumed trial that re-reports a step, or a trial row updated from "running" to "completed", counts once.
"""

from __future__ import annotations

import dataclasses
import posixpath
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from wt_base.errors import StudyError
from wt_base.fields import BY_COLUMN
from wt_base.layout import METRICS_DIR, RESULTS_DIR, TRIALS_DIR
from wt_base.schema import (
    METRICS_KEY,
    METRICS_SCHEMA,
    SCHEMA_VERSION,
    TRIALS_KEY,
    TRIALS_SCHEMA,
    UNFINISHED_STATUSES,
)
from wt_base.storage import Location, list_parquet, resolve

EARLY_STOP_NOTE = "stopped early by the scheduler"  # the note of a scheduler-stopped trial (study.tune.callbacks)
READ_ATTEMPTS = 3


@dataclass(frozen=True)
class Study:
    """A study's results as read at one moment."""

    name: str  # the study name (from the rows, else the directory name)
    path: str  # the study directory as given
    metrics: pd.DataFrame  # one row per (trial_id, step), sorted by trial_id then step
    trials: pd.DataFrame  # one row per trial_id, sorted by trial_id
    partial: bool  # some trials are still pending or running
    skipped_files: list[str] = field(default_factory=list)  # unreadable files, "name: reason"


def load_study(path: str, empty_ok: bool = False) -> Study:
    """Read a study directory `<storage>/<study_name>` (a local path or a URI such as s3://bucket/study).
    Without trial rows or evaluation points it is a StudyError unless `empty_ok` (status early in a run)."""
    location = resolve(path, "PATH")  # the filesystem and its path, resolved as the study wrote it
    if not location.is_dir():
        kind = location.fs.get_file_info(location.path).type
        if kind == pafs.FileType.File:
            raise StudyError(f"{path} is a file, not a study directory: give the folder <storage>/<study name>.")
        raise StudyError(f"no study at {path}: the directory does not exist.")
    results = location.join(RESULTS_DIR)
    for attempt in range(READ_ATTEMPTS):
        skipped: list[str] = []
        try:
            metrics = _read_dir(results, METRICS_DIR, METRICS_SCHEMA, METRICS_KEY, skipped)
            trials = _read_dir(results, TRIALS_DIR, TRIALS_SCHEMA, TRIALS_KEY, skipped)
            break
        except _Vanished:
            # A file listed a moment ago is gone: the sink compacted the directory meanwhile. Read again.
            if attempt == READ_ATTEMPTS - 1:
                raise StudyError(f"the results at {path} keep changing while being read: try again.") from None
    if (trials.empty or metrics.empty) and not empty_ok:
        missing = "trial rows" if trials.empty else "evaluation points"
        damaged = f" that could be read (skipped {'; '.join(skipped)})" if skipped else " yet"
        raise StudyError(
            f"no results to analyse at {path}: {posixpath.join(RESULTS_DIR, '{metrics,trials}')} "
            f"holds no {missing}{damaged}."
        )
    names = trials["study"].dropna().unique()
    name = str(names[0]) if len(names) == 1 else posixpath.basename(location.path.rstrip("/"))
    return Study(
        name=name,
        path=path,
        metrics=_tidy_metrics(metrics),
        trials=_tidy_trials(trials),
        partial=bool(trials["status"].isin(UNFINISHED_STATUSES).any()),
        skipped_files=skipped,
    )


def _read_dir(results: Location, sub, schema, key, skipped) -> pd.DataFrame:
    """All readable files of one results directory, the last row per key kept."""
    tables = []
    for file in list_parquet(results, sub):
        table = _read_file(results.fs, file, schema, key, skipped)
        if table is not None:
            tables.append(table)
    if not tables:
        return schema.empty_table().to_pandas()
    table = pa.concat_tables(tables)
    del tables
    # split_blocks: one block per column, so the conversion never holds a second, consolidated copy
    frame = table.to_pandas(split_blocks=True)
    del table
    if sub == METRICS_DIR:
        dropped = superseded(frame)
        if dropped.any():  # filtering copies every column: only when something is dropped
            frame = frame[~dropped]
    # file order then row order is write order, so keep="last" keeps the latest row for each key
    repeated = _repeated_keys(frame, list(key))
    if repeated.any():
        frame = frame[~repeated]
    return frame.reset_index(drop=True)


def _key_codes(frame: pd.DataFrame, key: list[str]) -> np.ndarray | None:
    """One int64 per row that orders and identifies rows as `key` does (trial_id, then an integer step), or None
    where that cannot be done exactly (missing values, a non-integer step, too large a range): a hash of ints
    and a numeric sort are much faster than ones over strings at millions of rows."""
    codes, _ = pd.factorize(frame[key[0]], sort=True)  # sorted uniques: codes order as the strings do
    if (codes < 0).any():
        return None
    if len(key) == 1:
        return codes.astype(np.int64)
    step = frame[key[1]]
    if len(key) != 2 or not pd.api.types.is_integer_dtype(step.dtype) or step.isna().any():
        return None
    step = step.to_numpy(np.int64)
    low, span = (int(step.min()), int(step.max()) - int(step.min()) + 1) if len(step) else (0, 1)
    if (int(codes.max()) + 1 if len(codes) else 1) * span >= 2**62:
        return None
    return codes.astype(np.int64) * span + (step - low)


def _repeated_keys(frame: pd.DataFrame, key: list[str]) -> pd.Series:
    """frame.duplicated(subset=key, keep="last"), through integer codes where they exist."""
    codes = _key_codes(frame, key)
    if codes is None:
        return frame.duplicated(subset=key, keep="last")
    return pd.Series(pd.Index(codes).duplicated(keep="last"), index=frame.index)


def _sorted_by_key(frame: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """frame.sort_values(key, kind="stable") (same rows, same order), without a copy when already sorted."""
    codes = _key_codes(frame, key)
    if codes is None:
        return frame.sort_values(key, kind="stable")
    if len(codes) < 2 or bool((codes[1:] >= codes[:-1]).all()):
        return frame
    return frame.take(np.argsort(codes, kind="stable"))


def superseded(metrics: pd.DataFrame) -> pd.Series:
    """True for evaluation points that a later attempt of the same trial redid (wt_base.schema's reading rule).

    A trial resumed from a checkpoint at step S (a later `attempt` with `resumed_from_step` S) redoes the
    training after S, so rows of earlier attempts with step > S describe lost work. They stay in storage and
    are dropped here. Rows without an attempt (none in practice) are never superseded.
    """
    if metrics.empty or metrics["attempt"].isna().all():
        return pd.Series(False, index=metrics.index)
    starts = (
        metrics.dropna(subset=["attempt"])
        .groupby(["trial_id", "attempt"], sort=True)["resumed_from_step"]
        .min()
        .reset_index()
        .sort_values(["trial_id", "attempt"], ascending=[True, False])
    )
    # the lowest resume step among the attempts after each attempt (reverse cumulative min, shifted by one)
    starts["limit"] = starts.groupby("trial_id")["resumed_from_step"].transform(lambda s: s.cummin().shift(1))
    limit = metrics.merge(starts[["trial_id", "attempt", "limit"]], on=["trial_id", "attempt"], how="left")["limit"]
    return pd.Series((metrics["step"].to_numpy() > limit.to_numpy()) & limit.notna().to_numpy(), index=metrics.index)


class _Vanished(Exception):
    """A results file disappeared between listing and reading (compaction)."""


def _read_file(fs, file: str, schema: pa.Schema, key, skipped: list[str]) -> pa.Table | None:
    name = posixpath.join(*file.split("/")[-3:])
    try:
        table = pq.read_table(file, filesystem=fs)
    except FileNotFoundError:
        raise _Vanished(file) from None
    except (pa.ArrowException, OSError, ValueError) as exc:
        if fs.get_file_info(file).type == pafs.FileType.NotFound:
            raise _Vanished(file) from None
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        skipped.append(f"{name}: {reason}")
        warnings.warn(f"skipped unreadable results file {name}: {reason}", stacklevel=3)
        return None
    _check_version(table, name)
    missing_key = [c for c in key if c not in table.column_names]
    if missing_key:
        skipped.append(f"{name}: no {missing_key[0]} column")
        warnings.warn(f"skipped results file {name}: no {missing_key[0]} column", stacklevel=3)
        return None
    columns = [
        table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(len(table), f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def _check_version(table: pa.Table, name: str) -> None:
    if "schema_version" not in table.column_names:
        raise StudyError(f"results file {name} has no schema_version column; it was not written by wt-study.")
    if len(table) == 0:
        return
    versions = pc.unique(table.column("schema_version")).to_pylist()
    # older versions lack some columns, which read as nulls; newer ones may mean something this reader can't know
    unknown = sorted({v for v in versions if v is None or v > SCHEMA_VERSION}, key=lambda v: (v is None, v or 0))
    if unknown:
        raise StudyError(
            f"results file {name} has schema_version {unknown[0]}, but this analysis reads version "
            f"{SCHEMA_VERSION}; upgrade wt-study to read it."
        )


def _tidy_metrics(metrics: pd.DataFrame) -> pd.DataFrame:
    metrics = _sorted_by_key(metrics, list(METRICS_KEY)).reset_index(drop=True)
    if metrics["is_final"].dtype != bool:  # nulls (older rows) read as False
        metrics["is_final"] = metrics["is_final"].fillna(False).astype(bool)
    return metrics


def _tidy_trials(trials: pd.DataFrame) -> pd.DataFrame:
    trials = trials.sort_values(list(TRIALS_KEY), kind="stable").reset_index(drop=True)
    for column in ("worker_interval", "seq_len", "n_embd", "n_layer", "n_head", "ffn_hidden", "conv_kernel"):
        trials[column] = trials[column].astype("Int64")
    for column in ("batch_size", "seed"):
        trials[column] = trials[column].astype("Int64")
    # Before schema version 2 a trial the scheduler stopped early was written "completed" with this note; its
    # last loss is no final loss, so it reads as "stopped".
    stopped = trials["status"].eq("completed") & trials["note"].fillna("").str.startswith(EARLY_STOP_NOTE)
    trials.loc[stopped, "status"] = "stopped"
    for column in ("random_worker_phase", "count_eval_in_budget"):
        trials[column] = trials[column].astype("boolean")
    return trials


def where_conditions(items: list[str]) -> dict:
    """`--where FIELD=VALUE` flags -> {trials column: value of the column's type}; one sentence for a bad one."""
    out = {}
    for item in items:
        field, sep, text = item.partition("=")
        if not sep or field not in BY_COLUMN:
            raise StudyError(
                f"--where {item!r} is invalid: expected FIELD=VALUE with FIELD one of {', '.join(BY_COLUMN)}."
            )
        kind = BY_COLUMN[field].kind
        try:
            out[field] = {"true": True, "false": False}[text.lower()] if kind is bool else kind(text)
        except (KeyError, ValueError):
            raise StudyError(f"--where {item!r} is invalid: {field} takes {kind.__name__} values.") from None
    return out


def _equals(column: pd.Series, value) -> pd.Series:
    """column == value, numbers compared as numbers (0.002 matches a stored 2e-3); missing values never match."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = pd.to_numeric(column, errors="coerce").astype(float)
        return ((number - float(value)).abs() <= 1e-12 * max(1.0, abs(float(value)))).fillna(False)
    return column.eq(value).fillna(False).astype(bool)


def restrict(study: Study, conditions: dict) -> Study:
    """The study's trials with every `conditions` setting (and their evaluation points); the study itself when
    there are none. No trial left is one sentence naming the conditions."""
    if not conditions:
        return study
    trials = study.trials
    keep = pd.Series(True, index=trials.index)
    for name, value in conditions.items():
        keep &= _equals(trials[name], value)
    if not keep.any():
        said = ", ".join(f"{k}={v}" for k, v in conditions.items())
        raise StudyError(f"no trial of {study.path} has {said}: check the values with `wt-study status`.")
    trials = trials[keep].reset_index(drop=True)
    metrics = study.metrics[study.metrics["trial_id"].isin(set(trials["trial_id"]))].reset_index(drop=True)
    partial = bool(trials["status"].isin(UNFINISHED_STATUSES).any())
    return dataclasses.replace(study, trials=trials, metrics=metrics, partial=partial)
