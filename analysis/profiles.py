"""Machine profiles: how long one training step of a shape takes on one machine (the contract and its checks).

A profile row is keyed by PROFILE_KEY: the machine part (MACHINE_KEY: device, dtype, compile mode, threads, torch)
and the shape part (SHAPE_KEY, the trials columns a step's cost depends on). Three formats, rows numbered from 1:
  - Parquet, written by `wt-study bench --for-study`: exactly PROFILE_SCHEMA's columns, one row per shape;
  - YAML, hand-written (published speeds): a mapping whose keys apply to every shape, and `shapes:`, a list of
    mappings that add or override keys; row n is the n-th shape;
  - CSV, hand-written: a header of HAND_COLUMNS names, one shape per row; row n is the n-th non-blank row under
    the header, and an empty cell is a column left out.
The contract itself (PROFILE_SCHEMA, SHAPE_KEY, ...) is wt_base.profile's: the bench writes it, this module checks
and reads it. Hand-written rows give `steps_per_s`: the median step time is 1 / steps_per_s, its spread is unknown
(p10 = p90 = median, n = 0), and HAND_DEFAULTS fill what they leave out: dtype "unknown", attention "sdpa",
compile "off", torch "unknown", dropout 0.1 (the original's), conv_kernel 3 (the original's) where the
architecture has a token mixer (wt_model.archs) and null where it has none, ffn_hidden 4 * n_embd, source "hand-
written profile <file>". worker_interval is required where the architecture has one and refused where it has none.

  device_name: "original's GPU"
  source: "the original's README table"
  seq_len: 1024
  n_embd: 256
  n_layer: 4
  n_head: 4
  batch_size: 16
  shapes:
    - {arch: standard, steps_per_s: 3.22}
    - {arch: worker, worker_interval: 4, steps_per_s: 8.02}

Only `read_profiles` reads files; everything else is pure. A row that is no profile row is one StudyError
sentence naming the file, the row and the field.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from analysis.configs import canonical
from wt_base.errors import StudyError
from wt_base.profile import (  # noqa: F401  (SHAPE_KEY, MACHINE_KEY, ...: re-exported for the analysis)
    COMPILE_MODES,
    DTYPES,
    MACHINE_KEY,
    PROFILE_KEY,
    PROFILE_SCHEMA,
    PROFILE_SCHEMA_VERSION,
    SHAPE_KEY,
    STEP_TIME_COLUMNS,
    shipped_profiles,
)
from wt_base.profile_check import (  # noqa: F401  (re-exported for the analysis)
    ARCH_FIELDS,
    HAND_COLUMNS,
    check_rows,
    describe_shape,
    machine_label,
    refuse_unknown,
)
from wt_base.yamlio import parse_yaml

SUFFIXES = (".parquet", ".yaml", ".yml", ".csv")
FRAME_COLUMNS = PROFILE_SCHEMA.names + ["machine", "profile_file", "profile_row", "n_profiles", "median_ratio"]
# the range a run's mean step time is drawn from (verdict intervals, covered budgets): one profile's p10-p90 (single
# steps: wide), or the lowest to the highest median of pooled profiles (how far the machine itself moved)
RUN_RANGE = ["step_time_s_low", "step_time_s_high"]
FRAME_COLUMNS += RUN_RANGE


def read_profiles(paths) -> pd.DataFrame:
    """Every profile in `paths` (files, or directories of .parquet/.yaml/.yml/.csv files), checked and side by side.

    Columns: PROFILE_SCHEMA's, then machine (machine_label), profile_file (the path as given; several, pooled),
    profile_row, n_profiles, median_ratio and RUN_RANGE (pool_rows). The same machine and shape in several files
    is pooled into one row; a file reached twice (itself and its directory) is read once.
    """
    files = {}  # each file once, as first given
    for path in paths:
        for file in _profile_files(Path(path)):
            files.setdefault(file.resolve(), file)
    return combine_profiles([_read_one(file) for file in files.values()])


def profile_paths(items, flag: str = "--timing") -> list[Path]:
    """Each of `items` as a path: a file or directory that exists, else the shipped profile of that name
    (wt_base.profile.SHIPPED_DIR: `original` is the original's GPU); anything else is one sentence naming `flag`."""
    shipped = shipped_profiles()
    paths = []
    for item in items:
        path = Path(item).expanduser()
        if path.exists():
            paths.append(path)
        elif item in shipped:
            paths.append(shipped[item])
        else:
            names = ", ".join(shipped) or "none"
            raise StudyError(
                f"{flag} {item!r} is invalid: no such file or directory, and no shipped profile of that name "
                f"(shipped: {names})."
            )
    return paths


def _profile_files(path: Path) -> list[Path]:
    if not path.is_dir():
        return [path]
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file())
    if not files:
        raise StudyError(f"profile directory {str(path)!r} holds no {', '.join(SUFFIXES)} file.")
    return files


def _read_one(path: Path) -> pd.DataFrame:
    """One file's rows (the only I/O of the module)."""
    name, suffix = str(path), path.suffix.lower()
    if suffix not in SUFFIXES:
        raise StudyError(f"profile {name!r} is invalid: expected a {', '.join(SUFFIXES)} file.")
    if not path.is_file():
        raise StudyError(f"profile {name!r} does not exist or is not a file.")
    try:
        if suffix == ".parquet":
            return profile_rows(pq.read_table(path).to_pylist(), name)
        text = path.read_text(encoding="utf-8")
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StudyError(f"profile {name!r} cannot be read: {reason}.") from None
    return yaml_profile(text, name) if suffix in (".yaml", ".yml") else csv_profile(text, name)


def yaml_profile(text: str, name: str) -> pd.DataFrame:
    """A hand-written YAML profile (the module docstring's layout), parsed strictly (safe loader, no key twice)."""
    data = parse_yaml(text, f"profile {name!r}")
    if not isinstance(data, dict) or not isinstance(data.get("shapes"), list) or not data["shapes"]:
        raise StudyError(f"profile {name!r} is invalid: expected a mapping with a non-empty list under 'shapes'.")
    top = {k: v for k, v in data.items() if k != "shapes"}
    refuse_unknown(top, HAND_COLUMNS, f"profile {name!r} top level")
    rows = []
    for n, shape in enumerate(data["shapes"], start=1):
        if not isinstance(shape, dict):
            raise StudyError(
                f"profile {name!r} row {n}: the shape {shape!r} is invalid: expected a mapping of columns."
            )
        rows.append({**top, **shape})
    return profile_rows(rows, name, hand_written=True)


def csv_profile(text: str, name: str) -> pd.DataFrame:
    """A hand-written CSV profile: a header of HAND_COLUMNS names, one shape per row; an empty cell is left out."""
    lines = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    if len(lines) < 2:
        raise StudyError(f"profile {name!r} is invalid: expected a header row and at least one shape row.")
    header = [cell.strip() for cell in lines[0]]
    if len(set(header)) < len(header):
        twice = next(h for h in header if header.count(h) > 1)
        raise StudyError(f"profile {name!r} header: the column {twice!r} is given twice.")
    refuse_unknown(dict.fromkeys(header), HAND_COLUMNS, f"profile {name!r} header")
    rows = []
    for n, cells in enumerate(lines[1:], start=1):
        if len(cells) > len(header):
            raise StudyError(f"profile {name!r} row {n}: {len(cells)} cells under a header of {len(header)}.")
        rows.append({h: c.strip() for h, c in zip(header, cells, strict=False) if c.strip()})
    return profile_rows(rows, name, hand_written=True)


def _key(row: dict) -> str:
    return json.dumps([canonical(row[c]) for c in PROFILE_KEY])


def profile_rows(rows: list[dict], name: str, hand_written: bool = False) -> pd.DataFrame:
    """Row dicts of one file (`name`), checked (wt_base.profile_check.check_rows), as profile rows (FRAME_COLUMNS).
    Raises StudyError naming the file, the row and the field."""
    return _frame(check_rows(rows, name, hand_written))


def _frame(rows: list[dict]) -> pd.DataFrame:
    single = {"n_profiles": 1, "median_ratio": 1.0}
    rows = [single | {"step_time_s_low": r["step_time_s_p10"], "step_time_s_high": r["step_time_s_p90"]} | r
            for r in rows]  # fmt: skip
    frame = pd.DataFrame(rows, columns=FRAME_COLUMNS)
    for column in ("worker_interval", "conv_kernel", "threads"):
        frame[column] = frame[column].astype("Int64")
    ints = ["seq_len", "n_embd", "n_layer", "n_head", "ffn_hidden", "batch_size", "step_time_s_n", "profile_row"]
    ints.append("n_profiles")
    frame = frame.astype({c: "int64" for c in ints} | {"schema_version": "int32"})
    floats = STEP_TIME_COLUMNS[:3] + ["dropout", "eval_time_per_token_s", "tokens_per_s", "mfu", "median_ratio"]
    floats += RUN_RANGE
    frame = frame.astype(dict.fromkeys(floats, "float64"))
    frame["measured_at"] = pd.to_datetime(frame["measured_at"], utc=True).astype("datetime64[us, UTC]")
    return frame


def combine_profiles(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Profiles of several files side by side. A machine and shape in several files is one row (pool_rows): they
    are measurements of one machine at different times, such as before and after a study."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return _frame([])
    out = pd.concat(frames, ignore_index=True)
    keys = pd.Series([_key(row) for row in out[PROFILE_KEY].to_dict("records")], index=out.index)
    if not keys.duplicated().any():
        return out
    pooled = [pool_rows(out.loc[index]) for index in keys.groupby(keys, sort=False).groups.values()]
    return _frame(pooled)


def pool_rows(rows: pd.DataFrame) -> dict:
    """One profile row from several measurements of one machine and shape (`rows`, in file order): the mean of
    their medians (each measurement one stretch of the machine's time, weighted alike), the lowest p10 and the
    highest p90, the samples summed; MFU and tokens/s at the pooled median. n_profiles counts them, median_ratio is
    their highest median over their lowest (how far the machine's speed moved between the measurements), and a
    run's mean step time is drawn between their lowest and highest median (RUN_RANGE): the machine's drift, not
    one step's spread, is what a run of hundreds of steps is uncertain by."""
    first = rows.iloc[0].to_dict()
    if len(rows) == 1:
        return first
    median = float(rows["step_time_s_median"].mean())
    mfu = (rows["mfu"] * rows["step_time_s_median"]).dropna()
    sources = "; ".join(dict.fromkeys(rows["source"]))
    return first | {
        "step_time_s_median": median,
        "step_time_s_p10": float(rows["step_time_s_p10"].min()),
        "step_time_s_p90": float(rows["step_time_s_p90"].max()),
        "step_time_s_n": int(rows["step_time_s_n"].sum()),
        "eval_time_per_token_s": rows["eval_time_per_token_s"].mean(),  # NaN when none measured it
        "tokens_per_s": first["batch_size"] * first["seq_len"] / median,
        "mfu": float(mfu.mean()) / median if len(mfu) else None,
        "source": f"pooled from {len(rows)} profiles (the mean of their medians): {sources}",
        "measured_at": rows["measured_at"].max(),
        "profile_file": ", ".join(dict.fromkeys(rows["profile_file"])),
        "n_profiles": len(rows),
        "median_ratio": float(rows["step_time_s_median"].max() / rows["step_time_s_median"].min()),
        "step_time_s_low": float(rows["step_time_s_median"].min()),
        "step_time_s_high": float(rows["step_time_s_median"].max()),
    }
