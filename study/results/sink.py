"""The Parquet sink: evaluation points and trial states written under `<study>/results/` as the study runs.

`ParquetSink` buffers rows and writes each flush as new, atomically written files (see `wt_base.storage`), so a
killed driver never leaves a half file and earlier files are never rewritten. It does not write duplicates:
within one attempt of a trial (one process lifetime, identified by `attempt`) steps only grow, so a row whose
step is not above the attempt's last written step is a re-report (Ray Tune repeats results after a restore) and
is dropped. Memory stays bounded by the number of trials and attempts, not rows.

When a trial resumes from a checkpoint at step S, evaluation points that an earlier attempt wrote after S are
kept (nothing is deleted) but superseded: readers drop rows of an earlier attempt whose step is above a later
attempt's `resumed_from_step` (see `analysis.load.superseded`).
"""

from __future__ import annotations

import logging
import posixpath
import time
import uuid
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq

from wt_base.layout import METRICS_DIR, RESULTS_DIR, TRIALS_DIR
from wt_base.schema import (
    METRICS_SCHEMA,
    SCHEMA_VERSION,
    TRIALS_SCHEMA,
    conform,
)
from wt_base.storage import Location, list_parquet, write_parquet_atomic

log = logging.getLogger(__name__)

MAX_FILE_ROWS = 20_000  # compaction merges small files into files of at most this many rows (a damaged one loses
# only its own); 20k evaluation points are about 2 MB of Parquet
METRIC_FIELDS = tuple(n for n in METRICS_SCHEMA.names if n not in ("schema_version", "study", "reported_at"))


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _stem() -> str:
    """File names sort in write order across processes and restarts: time first, then a random tag."""
    return f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"


class ParquetSink:
    """Buffered, deduplicating, atomic writer of one study's metrics and trial rows."""

    def __init__(self, study_dir: Location, study: str):
        self.results = study_dir.join(RESULTS_DIR)
        self.study = study
        self._metrics: list[dict] = []
        self._trials: dict[str, dict] = {}  # trial_id -> latest full row
        self._dirty: set[str] = set()
        self._last_step: dict[tuple[str, int], int] = {}  # (trial_id, attempt) -> last step written
        self.files_written = 0
        self.rows_written = 0
        self.seconds_spent = 0.0

    # ---- reading back what an earlier driver wrote (resume) ----
    def load_existing(self) -> None:
        start = time.perf_counter()
        for path in list_parquet(self.results, METRICS_DIR):
            table = self._read(path, ["trial_id", "attempt", "step"])
            if table is None:
                continue
            for trial_id, attempt, step in zip(*(table[c].to_pylist() for c in table.column_names), strict=True):
                key = (trial_id, attempt)
                self._last_step[key] = max(step, self._last_step.get(key, -1))
        for path in list_parquet(self.results, TRIALS_DIR):
            table = self._read(path, None)
            if table is None:
                continue
            for row in table.to_pylist():
                self._trials[row["trial_id"]] = row
        self.seconds_spent += time.perf_counter() - start

    def _read(self, path: str, columns: list[str] | None) -> pa.Table | None:
        try:
            return pq.read_table(path, filesystem=self.results.fs, columns=columns)
        except (OSError, pa.ArrowException) as exc:
            log.warning("skipping unreadable results file %s: %s", path, exc)
            return None

    # ---- rows ----
    def trial_row(self, trial_id: str) -> dict | None:
        return self._trials.get(trial_id)

    def trial_rows(self) -> list[dict]:
        """The latest row of every trial (as loaded and updated), in the order the trials first appeared."""
        return list(self._trials.values())

    def update_trial(self, trial_id: str, **fields) -> None:
        row = self._trials.setdefault(trial_id, {"trial_id": trial_id, "study": self.study})
        row.update(fields)
        row["updated_at"] = utc_now()
        self._dirty.add(trial_id)

    def add_metric(self, row: dict) -> bool:
        """Buffer one evaluation point; False (and nothing buffered) for a re-reported step."""
        key = (row["trial_id"], row["attempt"])
        if row["step"] <= self._last_step.get(key, -1):
            return False
        self._last_step[key] = row["step"]
        self._metrics.append({**row, "study": self.study, "reported_at": utc_now()})
        return True

    @property
    def pending(self) -> bool:
        return bool(self._metrics or self._dirty)

    def flush(self) -> None:
        """Write buffered rows as new files. On failure the buffers are kept (retried next flush), the earlier
        files are untouched, and the error propagates."""
        if not self.pending:
            return
        start = time.perf_counter()
        try:
            if self._metrics:
                rows = [{**r, "schema_version": SCHEMA_VERSION} for r in self._metrics]
                write_parquet_atomic(conform(rows, METRICS_SCHEMA), self.results, METRICS_DIR, _stem())
                self.rows_written += len(rows)
                self.files_written += 1
                self._metrics = []
            if self._dirty:
                rows = [{**self._trials[t], "schema_version": SCHEMA_VERSION} for t in sorted(self._dirty)]
                write_parquet_atomic(conform(rows, TRIALS_SCHEMA), self.results, TRIALS_DIR, _stem())
                self.files_written += 1
                self._dirty = set()
        finally:
            self.seconds_spent += time.perf_counter() - start

    def compact(self, min_files: int = 2, max_rows: int | None = None) -> int:
        """Merge each results directory's small files into files of at most `max_rows` rows (MAX_FILE_ROWS), in
        write order, then delete the merged files.

        Every row is kept (superseded rows too), so readers see exactly what they saw before. Each merged file
        holds a run of consecutive files and sorts right after the last of them, before anything written later.
        It is read back before its inputs are deleted: one that does not read back whole is removed and its inputs
        kept. Files already at the size bound are never merged again, so a damaged file loses at most its own
        rows. A crash between writing a merged file and deleting its inputs leaves identical rows twice, which
        last-row-wins reading makes harmless. Unreadable files are left where they are. Returns the number of
        files removed."""
        max_rows = max_rows or MAX_FILE_ROWS
        start, removed = time.perf_counter(), 0
        try:
            for directory, schema in ((METRICS_DIR, METRICS_SCHEMA), (TRIALS_DIR, TRIALS_SCHEMA)):
                for run in self._runs(directory, schema, max_rows):
                    if len(run) >= min_files:
                        removed += self._merge(directory, run)
        finally:
            self.seconds_spent += time.perf_counter() - start
        return removed

    def _runs(self, directory: str, schema: pa.Schema, max_rows: int) -> list[list[tuple[str, pa.Table]]]:
        """The directory's readable files below the size bound, as runs of consecutive files (in write order) of
        at most `max_rows` rows together; a full, unreadable or foreign file ends a run."""
        runs, run, rows = [], [], 0
        for path in list_parquet(self.results, directory):
            table = self._read(path, None)
            if table is None or not table.schema.equals(schema) or table.num_rows >= max_rows:
                runs.append(run)
                run, rows = [], 0
                continue
            if rows + table.num_rows > max_rows:
                runs.append(run)
                run, rows = [], 0
            run.append((path, table))
            rows += table.num_rows
        return [r for r in [*runs, run] if r]

    def _merge(self, directory: str, run: list[tuple[str, pa.Table]]) -> int:
        last = posixpath.basename(run[-1][0]).removesuffix(".parquet")
        merged = pa.concat_tables([table for _, table in run])
        written = write_parquet_atomic(merged, self.results, directory, f"{last}_compacted")
        back = self._read(written, None)
        if back is None or back.num_rows != merged.num_rows:  # not verified: keep the inputs, drop the copy
            log.warning("compaction of %s did not read back whole; its %d input files are kept", written, len(run))
            self.results.fs.delete_file(written)
            return 0
        for path, _ in run:
            self.results.fs.delete_file(path)
        return len(run)
