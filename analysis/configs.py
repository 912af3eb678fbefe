"""What a trial's configuration is, and which parts of it a comparison holds fixed (pure functions).

A trial's *configuration* is its whole run configuration (trials column `config_json`: {"trial_id", "arch",
"run": {model, train, budget, eval, data, checkpoint_every_s}}) except its seed and the settings that do not
change the math (IGNORED_PATHS). Two trials with the same configuration differ only by seed, so no setting can
ever be pooled as if it were a seed, including an axis added after this code was written. Its fields split in
three:
  - *arm* fields (ARM_FIELDS): what tells the compared architectures apart (arch, worker interval, ...);
  - *tuned* fields (TUNED_FIELDS): optimisation settings each arm may choose for itself (lr, weight decay, ...);
  - *cell* fields: everything else (shape, init, attention, batch, budget, data, evaluation). A comparison holds
    them fixed. A field nobody classified is a cell field, so an unknown axis separates comparisons rather than
    pooling them.
Trials columns and config_json agree where both exist; a column wins when set, config_json fills it when null
(older studies had no column for some swept settings), and a frame without config_json uses its columns only.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd

from wt_base.budgets import BUDGET_KINDS
from wt_base.fields import EXECUTION_PATHS, FIELDS, TUNED
from wt_model import archs
from wt_model.config import ModelConfig

# trials column -> its path in config_json (the axis table, wt_base.fields)
COLUMN_PATHS = {f.column: tuple(f.path.split(".")) for f in FIELDS}
# never part of a configuration: the seed itself, the id, and settings that leave the math unchanged
IGNORED_PATHS = {("trial_id",), ("run", "train", "seed"), *(tuple(path.split(".")) for path in EXECUTION_PATHS)}
STANDARD = archs.REFERENCE  # the architecture every other one is compared against
# trials columns of how a trial ran that change what its budget buys (study.train.device.execution_settings)
EXECUTION_COLUMNS = ("device_name", "dtype", "compile_mode", "threads", "attention_backend")
TUNED_FIELDS = [*TUNED, "train.beta1", "train.beta2", "train.grad_clip"]  # wt_base.fields.TUNED and no axis's
SIZE_FIELDS = ["n_embd", "n_layer", "n_head", "ffn_hidden"]  # what a scaling series varies
_PATH_FIELDS = {path: column for column, path in COLUMN_PATHS.items()}
# what tells arms apart (null where an arch has none): the label and each arch's own fields, by their field names
ARM_FIELDS = ["arch", "model.arch", *(_PATH_FIELDS.get(("run", "model", n), f"model.{n}") for n in archs.ARM_FIELDS)]
# ModelConfig's defaults: a trial stored before a field existed ran at its default (wt_model.config is torch-free)
MODEL_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ModelConfig)}


def config_fields(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per trial (same index), one column per configuration field, seed and ignored settings excluded.

    Fields with a trials column take its name; the others are their config_json path without "run."
    (e.g. "train.beta1", "model.vocab_size"). Fields an architecture does not read (wt_model.archs) are null
    for it.
    """
    parsed = [_flatten(text) for text in _json_column(trials)]
    columns = {c: trials[c].astype(object).tolist() for c in COLUMN_PATHS if c != "seed" and c in trials.columns}
    rows = []
    for i, extra in enumerate(parsed):
        row = dict(extra)
        for column, values in columns.items():
            if not _missing(values[i]) or column not in row:
                row[column] = None if _missing(values[i]) else values[i]
        if extra:  # a model field newer than the trial's version: it ran at the default, as a newer trial does
            for name, default in MODEL_DEFAULTS.items():
                row.setdefault(model_column(name), default)
        row.update(dict.fromkeys(_not_read_by(row.get("arch"))))
        rows.append(row)
    fields = pd.DataFrame(rows, index=trials.index)
    fields = fields.join(execution_fields(trials, fields))
    return fields.reindex(columns=sorted(fields.columns))


def execution_fields(trials: pd.DataFrame, fields: pd.DataFrame) -> pd.DataFrame:
    """The execution settings that change what a trial's budget buys, as configuration fields ("exec.<column>"):
    for a clock budget (seconds) every EXECUTION_COLUMNS entry, since a T4 and an H100, eager and compiled, get
    different numbers of steps in the same seconds; for any budget the dtype, which changes the arithmetic.
    Trials on different settings are then different cells, never seeds of one. A trial that has not reported
    its settings yet takes those of the other trials of its configuration when they all agree."""
    clocked = trials["budget_kind"].map(lambda kind: kind in BUDGET_KINDS and BUDGET_KINDS[kind].measured)
    clocked = clocked.fillna(False).astype(bool)
    out = pd.DataFrame(index=trials.index)
    others = keys_of(fields, list(fields.columns))
    for column in EXECUTION_COLUMNS:
        if column not in trials.columns:
            continue
        values = trials[column].astype(object).where(trials[column].notna(), None)
        if column != "dtype":
            values = values.where(clocked, None)
        known = values.dropna().groupby(others[values.notna()]).agg(lambda v: v.iloc[0] if v.nunique() == 1 else None)
        values = values.where(values.notna(), others.map(known))
        out[f"exec.{column}"] = values.where(values.notna(), None).astype(object)
    return out


def _not_read_by(label) -> list[str]:
    """The arm fields the architecture of spec label `label` does not read (none for an unknown label)."""
    if label not in archs.LABELS:
        return []
    return [model_column(n) for n in archs.ARM_FIELDS if not archs.applies(n, archs.of_label(label).name)]


def _json_column(trials: pd.DataFrame) -> list:
    if "config_json" not in trials.columns:
        return [None] * len(trials)
    return trials["config_json"].tolist()


def _flatten(text) -> dict:
    """config_json -> {field: value} for every leaf except IGNORED_PATHS; {} when there is no JSON."""
    if _missing(text) or not text:
        return {}
    out = {}

    def walk(node, path):
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, (*path, key))
        elif path not in IGNORED_PATHS:
            name = _PATH_FIELDS.get(path) or ".".join(path[1:] if path[0] == "run" else path)
            out[name] = tuple(node) if isinstance(node, list) else node

    walk(json.loads(text), ())
    return out


def _missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def canonical(value):
    """A value as it goes into a key: numbers as float (3 and 3.0 alike), nulls as None."""
    if _missing(value):
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        number = float(value)
        return int(number) if number.is_integer() else number
    return value if isinstance(value, (str, tuple)) else str(value)


def keys_of(fields: pd.DataFrame, names: list[str]) -> pd.Series:
    """A canonical text key per row over the columns `names` (equal settings give equal keys)."""
    names = sorted(n for n in names if n in fields.columns)
    values = fields[names].astype(object).to_numpy()
    keys = [json.dumps({n: canonical(v) for n, v in zip(names, row, strict=True)}) for row in values]
    return pd.Series(keys, index=fields.index, dtype=object)


def reference_of(label) -> str | None:
    """The spec label of the arm whose verdicts compare `label` with it (wt_model.archs: the entry's `reference`);
    None for a reference itself. A label the registry no longer knows (an older study) is compared with the
    standard model, as every arm was before arms named their reference."""
    if label in archs.LABELS:
        return archs.of_label(label).reference
    return None if label == STANDARD else STANDARD


def model_column(name: str) -> str:
    """The configuration-field name (config_fields' column) of ModelConfig field `name`."""
    return _PATH_FIELDS.get(("run", "model", name), f"model.{name}")


def differing_fields(fields: pd.DataFrame) -> list[str]:
    """The configuration fields in which an arm present may differ from its reference (its registry entry's
    `settings` and `differs`), where that reference's own rows hold one value of the field: they tell arms apart,
    so the arm and its reference share a cell. Where the reference varies the field (a ladder of FFN widths for
    every arm), the field stays a cell field: the arm's rows could not say which reference is theirs."""
    if "arch" not in fields.columns:
        return []
    out = []
    for label in fields["arch"].dropna().unique():
        reference = reference_of(label)
        if label not in archs.LABELS or reference is None:
            continue
        own = fields["arch"].eq(reference)
        for column in map(model_column, archs.of_label(label).differing):
            if column in fields.columns and column not in out and fields.loc[own, column].map(canonical).nunique() <= 1:
                out.append(column)
    return out


def split_fields(fields: pd.DataFrame) -> tuple[list[str], list[str], list[str]]:
    """(cell, arm, tuned) field names present in `fields`.

    The budget value joins the arm fields when each architecture has its own budget (spec `budget_by_arch`):
    every arch label then has one budget value and the labels differ. Otherwise it is a cell field. So do the
    fields an arm differs in from its reference (differing_fields).
    """
    arm = [f for f in ARM_FIELDS if f in fields.columns]
    arm += [f for f in differing_fields(fields) if f not in arm]
    tuned = [f for f in TUNED_FIELDS if f in fields.columns]
    if {"arch", "budget_value"} <= set(fields.columns):
        per_arch = fields.groupby("arch", dropna=False)["budget_value"].nunique(dropna=False)
        if (per_arch == 1).all() and fields["budget_value"].nunique(dropna=False) > 1:
            arm.append("budget_value")
    cell = [f for f in fields.columns if f not in arm and f not in tuned]
    return cell, arm, tuned


def varying(fields: pd.DataFrame, names: list[str]) -> list[str]:
    """The names among `names` whose values differ between rows of `fields`, in the given order."""
    return [n for n in names if n in fields.columns and fields[n].map(canonical).astype(str).nunique() > 1]


def describe(fields: pd.DataFrame, names: list[str]) -> pd.Series:
    """'lr 0.001, weight_decay 0.1' per row over `names` (empty text when `names` is empty)."""

    def one(row) -> str:
        return ", ".join(f"{n} {_short(row[n])}" for n in names)

    if not names:
        return pd.Series("", index=fields.index, dtype=object)
    return fields.apply(one, axis=1).astype(object)


def set_apart(fields: pd.DataFrame, names) -> list[str]:
    """Per row, "init nanogpt, lr 0.001": the names among `names` whose known values differ between rows. A
    missing value (the conv kernel of a standard model) is no difference and is not shown."""
    shown = [n for n in names if n in fields.columns and fields[n].dropna().map(canonical).astype(str).nunique() > 1]
    return [
        ", ".join(f"{n} {_short(row[n])}" for n in shown if canonical(row[n]) is not None)
        for _, row in fields.iterrows()
    ]


def _short(value) -> str:
    value = canonical(value)
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
