"""The rules a machine-profile row must meet, in the one place both sides import: `wt-study bench` checks every
row it writes with them (study.train.bench_profile), and the analysis reads every profile through them
(analysis.profiles), so a bench never writes a profile the analysis would refuse. Rows are plain dicts.
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime, timezone

from wt_base.errors import StudyError, is_int
from wt_base.profile import (
    COMPILE_MODES,
    DTYPES,
    PROFILE_KEY,
    PROFILE_SCHEMA,
    PROFILE_SCHEMA_VERSION,
    SHAPE_KEY,
    STEP_TIME_COLUMNS,
)
from wt_model import archs
from wt_model.config import default_ffn_width

MEASURES = ["steps_per_s", "eval_time_per_token_s", "mfu", "source", "measured_at"]
HAND_COLUMNS = PROFILE_KEY + MEASURES  # what a hand-written row may say
HAND_REQUIRED = ["device_name", "arch", "seq_len", "n_embd", "n_layer", "n_head", "batch_size", "steps_per_s"]
# and: ffn_hidden 4 * n_embd, source "hand-written profile <file>", every other column left out null
HAND_DEFAULTS = {"dtype": "unknown", "attention": "sdpa", "compile": "off", "torch_version": "unknown"}
HAND_DEFAULTS |= {"dropout": 0.1, "conv_kernel": 3}  # the original's; conv_kernel only where the arch has a mixer
# null where the architecture has no such setting (worker_interval, conv_kernel), or when unknown / unmeasured
OPTIONAL = {"worker_interval", "conv_kernel", "threads", "eval_time_per_token_s", "tokens_per_s", "mfu"}
OPTIONAL |= {"measured_at"}
ARCH_FIELDS = ("worker_interval", "conv_kernel")  # shape fields that only some architectures have
_INTS = {"worker_interval", "seq_len", "n_embd", "n_layer", "n_head", "ffn_hidden", "batch_size", "threads"}
_INTS |= {"conv_kernel"}
_TIMES = {*STEP_TIME_COLUMNS[:3], "steps_per_s", "eval_time_per_token_s", "tokens_per_s"}  # > 0 when given


def machine_label(row) -> str:
    """'NVIDIA H100 (bfloat16, compile default, 8 threads, torch 2.5.1)': the device and the known machine fields
    (dtype "unknown", compile "off", no threads and torch "unknown" are left out), so different machines differ."""
    parts = [] if row["dtype"] == "unknown" else [row["dtype"]]
    parts += [] if row["compile"] == "off" else [f"compile {row['compile']}"]
    threads = None if _missing(row["threads"]) else int(row["threads"])
    parts += [] if threads is None else [f"{threads} thread" + "s" * (threads != 1)]
    parts += [] if row["torch_version"] == "unknown" else [f"torch {row['torch_version']}"]
    return f"{row['device_name']} ({', '.join(parts)})" if parts else str(row["device_name"])


def describe_shape(row) -> str:
    """'worker k=4, seq_len 1024, n_embd 256, n_layer 4, n_head 4, ffn_hidden 1024, batch_size 16, attention sdpa,
    dropout 0.1, conv_kernel 3' (conv_kernel left out where it is null)."""
    rest = [c for c in SHAPE_KEY if c not in ("arch", "worker_interval")]
    sizes = ", ".join(f"{c} {_plain(row[c])}" for c in rest if _plain(row[c]) is not None)
    interval = _plain(row["worker_interval"])
    return f"{row['arch']}{'' if interval is None else f' k={interval}'}, {sizes}"


def check_rows(rows: list[dict], name: str, hand_written: bool = False) -> list[dict]:
    """Check row dicts of one file (`name`) and complete them as profile rows (PROFILE_SCHEMA's columns and
    machine, profile_file, profile_row).

    Bench rows (hand_written=False) carry every PROFILE_SCHEMA column (OPTIONAL ones may be null); hand-written
    rows carry HAND_COLUMNS, HAND_REQUIRED at least. Raises StudyError naming the file, the row and the field.
    """
    checked, seen = [], {}
    for n, raw in enumerate(rows, start=1):
        where = f"profile {name!r} row {n}"
        row = _hand_row(raw, name, where) if hand_written else _bench_row(raw, where)
        row.update(machine=machine_label(row), profile_file=name, profile_row=n)
        key = _key(row)
        if key in seen:
            shape = describe_shape(row)
            raise StudyError(f"{where} repeats the shape of row {seen[key]} on {row['machine']!r} ({shape}).")
        seen[key] = n
        checked.append(row)
    return checked


def _hand_row(raw: dict, name: str, where: str) -> dict:
    refuse_unknown(raw, HAND_COLUMNS, where)
    given = {k: v for k, v in raw.items() if not _missing(v)}
    _required(given, HAND_REQUIRED, where)
    row = {**dict.fromkeys(HAND_COLUMNS), **HAND_DEFAULTS, "source": f"hand-written profile {name}", **given}
    row = {k: _check(k, v, where) for k, v in row.items()}
    if not _has(row["arch"], "conv_kernel", where) and "conv_kernel" not in given:
        row["conv_kernel"] = None  # the default kernel only where the architecture has a mixer
    if row["ffn_hidden"] is None:
        row["ffn_hidden"] = default_ffn_width(row["n_embd"])
    median = 1.0 / row.pop("steps_per_s")
    row.update(schema_version=PROFILE_SCHEMA_VERSION, step_time_s_median=median, step_time_s_n=0)
    row.update(step_time_s_p10=median, step_time_s_p90=median, tokens_per_s=None)
    return _finish(row, where)


def _bench_row(raw: dict, where: str) -> dict:
    refuse_unknown(raw, PROFILE_SCHEMA.names, where)
    _required(raw, PROFILE_SCHEMA.names, where)
    given = {k: v for k, v in raw.items() if not _missing(v)}
    _required(given, [c for c in PROFILE_SCHEMA.names if c not in OPTIONAL], where, "has no value for")
    row = {c: _check(c, given.get(c), where) for c in PROFILE_SCHEMA.names}
    return _finish(row, where)


def _finish(row: dict, where: str) -> dict:
    """Cross-field rules: the spread brackets the median; worker_interval and conv_kernel given exactly where the
    architecture has them (wt_model.archs)."""
    low, mid, high = row["step_time_s_p10"], row["step_time_s_median"], row["step_time_s_p90"]
    if not low <= mid <= high:
        raise StudyError(
            f"{where}: step times p10={low!r}, median={mid!r}, p90={high!r} are invalid: expected p10 <= median <= p90."
        )
    for field in ARCH_FIELDS:
        has = _has(row["arch"], field, where)
        if has and row[field] is None:
            raise StudyError(f"{where}: missing column {field} (arch {row['arch']} has one).")
        if not has and row[field] is not None:
            raise StudyError(f"{where}: {field}={row[field]!r} is invalid: expected none for arch {row['arch']}.")
    if row["schema_version"] > PROFILE_SCHEMA_VERSION:
        raise StudyError(
            f"{where}: schema_version={row['schema_version']!r} is invalid: expected at most {PROFILE_SCHEMA_VERSION} "
            "(upgrade wt-study to read it)."
        )
    if row["tokens_per_s"] is None:
        row["tokens_per_s"] = row["batch_size"] * row["seq_len"] / mid
    return row


def _has(label: str, field: str, where: str) -> bool:
    """Whether the architecture of spec label `label` has the setting `field`; an unknown label is an error."""
    if label not in archs.LABELS:
        raise StudyError(f"{where}: arch={label!r} is invalid: expected one of {', '.join(archs.LABELS)}.")
    return archs.applies(field, archs.of_label(label).name)


def refuse_unknown(raw: dict, allowed: list[str], where: str) -> None:
    """One sentence naming the first key of `raw` not among `allowed`."""
    extra = [k for k in raw if k not in allowed]
    if extra:
        raise StudyError(f"{where}: unknown column {extra[0]!r}: expected columns among {', '.join(allowed)}.")


def _required(given: dict, names: list[str], where: str, words: str = "missing column") -> None:
    absent = [c for c in names if c not in given]
    if absent:
        raise StudyError(f"{where}: {words} {absent[0]}.")


def _check(field: str, value, where: str):
    """The field's value, normalised (text from a CSV parsed), or one sentence saying what is allowed."""
    if value is None:
        return None
    bad = lambda allowed: StudyError(f"{where}: {field}={value!r} is invalid: expected {allowed}.")
    if field in ("dtype", "compile"):
        options = DTYPES if field == "dtype" else COMPILE_MODES
        if value not in options:
            raise bad(f"one of {', '.join(options)}")
        return value
    if field in ("device_name", "arch", "attention", "torch_version", "source"):
        if not isinstance(value, str) or not value.strip():
            raise bad("non-empty text")
        return value.strip()
    if field == "measured_at":
        stamp = _when(value)
        if stamp is None:
            raise bad("a date or time such as 2025-01-31 or 2025-01-31T12:00:00Z")
        return stamp
    number = _number(value)
    if field in _INTS or field in ("step_time_s_n", "schema_version"):
        low = 0 if field in ("step_time_s_n", "schema_version") else 1
        if number is None or not float(number).is_integer() or number < low:
            raise bad("an integer >= 1" if low else "an integer >= 0")
        return int(number)
    if field == "dropout":
        if number is None or not 0 <= number < 1:
            raise bad("a number in [0, 1)")
        return float(number)
    if number is None or not math.isfinite(number) or number < 0 or (field in _TIMES and number == 0):
        raise bad("a finite number > 0" if field in _TIMES else "a finite number >= 0")
    return float(number)


def _number(value) -> float | None:
    """A YAML/Parquet number or CSV text as a float; None when it is none (a bool is none)."""
    if isinstance(value, bool):
        return None
    if is_int(value) or isinstance(value, float):
        return float(value)
    try:
        return float(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _when(value) -> datetime | None:
    """A date or time (an object, or ISO text) in UTC, naive ones read as UTC; None when it is neither."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _missing(value) -> bool:
    """None, NaN, or pandas' missing markers (NaT, NA; named by type, since this module does without pandas)."""
    missing = type(value).__name__ in ("NaTType", "NAType")
    return missing or value is None or (isinstance(value, float) and math.isnan(value))


def _plain(value):
    """A value as it goes into a key or a message: whole numbers as int, nulls as None."""
    if _missing(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _key(row: dict) -> str:
    return json.dumps([_plain(row[c]) for c in PROFILE_KEY], default=str)
