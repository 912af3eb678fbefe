"""Driver-side Ray Tune callbacks: the Parquet sink and the progress lines.

Ray Tune pickles callbacks into the experiment (tuner.pkl) and uses the unpickled copies after a restore, so
these hold only plain settings until `setup()` runs; runtime state (the sink, clocks) is rebuilt there from
what is already in storage.
"""

from __future__ import annotations

import logging
import math
import time

from ray.tune import Callback

from study.results.sink import METRIC_FIELDS, ParquetSink, utc_now
from study.tune.rows import end_fields
from wt_base.storage import StorageFull, resolve, storage_full

log = logging.getLogger(__name__)

FLUSH_EVERY_S = 2.0
TRIAL_INFO_FIELDS = ("node_id", "gpu_ids", "device_name", "torch_version", "ray_version", "restarts")
TRIAL_INFO_FIELDS += ("dtype", "compile_mode", "attention_backend", "threads")


def _trial_id(trial) -> str:
    return trial.config["trial"]["trial_id"]


class ResultsCallback(Callback):
    """Writes every evaluation point and every trial state change to the study's Parquet results.

    A trial without a row when it starts (a search study's: made by its searcher as the study runs) gets its
    whole row then, as `pending_row` makes a grid trial's before the study starts; `spec` (the study's spec as a
    mapping, StudySpec.to_dict) and `token_unit` (the corpus's) fill it."""

    def __init__(
        self,
        study_uri: str,
        study: str,
        flush_every_s: float = FLUSH_EVERY_S,
        spec: dict | None = None,
        token_unit: str | None = None,
    ):
        self.study_uri = study_uri
        self.study = study
        self.flush_every_s = flush_every_s
        self.spec = spec
        self.token_unit = token_unit
        self._sink: ParquetSink | None = None
        self._last_flush = 0.0

    def __getstate__(self) -> dict:
        settings = {"study_uri": self.study_uri, "study": self.study, "flush_every_s": self.flush_every_s}
        return {**settings, "spec": self.spec, "token_unit": self.token_unit}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    @property
    def sink(self) -> ParquetSink:
        if self._sink is None:
            self._sink = ParquetSink(resolve(self.study_uri), self.study)
            self._sink.load_existing()
        return self._sink

    def setup(self, **info) -> None:
        _ = self.sink

    def _flush(self, force: bool = False, final: bool = False) -> None:
        """Write buffered rows when due. A storage error (full disk, lost connection) must not end the study:
        the sink keeps its rows and they are retried on the next flush; only the last flush of the study
        raises, since after it nobody would retry."""
        now = time.monotonic()
        if force or now - self._last_flush >= self.flush_every_s:
            try:
                self.sink.flush()
            except OSError as exc:  # pyarrow's I/O errors are OSErrors
                full = storage_full(exc)
                if full:  # no retry can help: stop the study, resumable (study.tune.runner says so)
                    raise StorageFull(f"{full} at {self.sink.results.uri}") from exc
                if final:
                    raise
                log.warning("could not write results (kept in memory, retried at the next flush): %s", exc)
            self._last_flush = now

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        row = self.sink.trial_row(_trial_id(trial))
        if row is None and self.spec is not None:
            self.sink.update_trial(_trial_id(trial), **self._new_row(trial))
        row = row or {}
        fields = {"status": "running", "error": "", "finished_at": None}
        if row.get("started_at") is None:
            fields["started_at"] = utc_now()
        self.sink.update_trial(_trial_id(trial), **fields)
        self._flush(force=True)

    def _new_row(self, trial) -> dict:
        from study.config.space import Trial
        from study.config.specfile import parse_spec
        from study.tune.rows import pending_row

        return pending_row(Trial.from_dict(trial.config["trial"]), parse_spec(self.spec), self.token_unit)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        trial_id = _trial_id(trial)
        if result.get("is_eval"):
            # Tune puts its own "trial_id" in results; ours comes from the trial's config.
            self.sink.add_metric({**{name: result.get(name) for name in METRIC_FIELDS}, "trial_id": trial_id})
        fields = {name: result[name] for name in TRIAL_INFO_FIELDS if name in result}
        for name in ("steps", "tokens", "train_time_s", "wall_time_s"):
            source = "step" if name == "steps" else name
            if source in result:
                fields[name] = result[source]
        if result.get("is_final"):
            fields["val_loss"] = result.get("val_loss")
            fields["val_loss_seed"] = result.get("val_loss_seed")
        if "done_status" in result:
            fields["status"] = result["done_status"]
            fields["error"] = result.get("error", "")
        if fields:
            self.sink.update_trial(trial_id, **fields)
        self._flush()

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        trial_id = _trial_id(trial)
        row = self.sink.trial_row(trial_id) or {}
        # a trial that had finished before a resume (study.tune.schedulers.StudyFIFO) keeps its finish time
        self.sink.update_trial(trial_id, **end_fields(row), finished_at=row.get("finished_at") or utc_now())
        self._flush(force=True)

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        self._stop_if_full(trial)
        self.sink.update_trial(_trial_id(trial), status="running", error=_error_text(trial))
        self._flush(force=True)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._stop_if_full(trial)
        self.sink.update_trial(_trial_id(trial), status="failed", error=_error_text(trial), finished_at=utc_now())
        self._flush(force=True)

    def _stop_if_full(self, trial) -> None:
        """A trial that failed because the storage is full (writing its checkpoint) is no trial's fault: its row
        stays as it was (running), and the study stops, resumable, instead of retrying into the same wall."""
        full = storage_full(_error_text(trial))
        if full:
            raise StorageFull(f"{full} (trial {_trial_id(trial)} could not write its checkpoint)")

    def on_step_end(self, iteration, trials, **info) -> None:
        if self.sink.pending:
            self._flush()

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info) -> None:
        # Tune records the checkpoint right after this call; a resume starts from it and never redoes the steps
        # before it, so the evaluation points up to it must be on storage first (else a killed driver loses them).
        self._flush(force=True)

    def on_experiment_end(self, trials, **info) -> None:
        self._flush(force=True, final=True)
        sink = self.sink
        written = sink.files_written
        try:
            sink.compact()  # many small files make reading from object storage slow
        except OSError as exc:
            log.warning("could not compact the results files (they stay as they are, all valid): %s", exc)
        print(
            f"Parquet sink: {sink.rows_written} evaluation points in {written} files this session "
            f"(compacted), {sink.seconds_spent:.2f} s spent writing"
        )


def _error_text(trial) -> str:
    """The last line of the trial's error (the exception type and message), for the trial row."""
    path = trial.error_file
    text = ""
    if path:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError:
            text = ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "the trial process failed"


def best_from_rows(rows: list[dict]) -> dict[str, float]:
    """arch -> the lowest final val_loss among stored trial rows: where a resumed study's progress line starts."""
    best: dict[str, float] = {}
    for row in rows:
        loss, arch = row.get("val_loss"), row.get("arch")
        if isinstance(loss, (int, float)) and math.isfinite(loss) and arch is not None:
            best[arch] = min(float(loss), best.get(arch, math.inf))
    return best


class ProgressCallback(Callback):
    """One compact line every `every_s` seconds: trials done / running / pending / failed, best loss per arch.
    The run's last word is the driver's summary from the trial rows (study.tune.runner), not a line of Tune's
    statuses: after an interruption those would count the interrupted trials as ended."""

    def __init__(
        self,
        total: int = 0,
        every_s: float = 10.0,
        print_fn=print,
        finished: frozenset = frozenset(),
        best: dict | None = None,
    ):
        self.total = total  # trials in the study (Tune creates them lazily, so its list can be shorter)
        self.every_s = every_s
        self.print_fn = print_fn
        self.finished = finished  # trials that had finished before a resume (ended unrun: not "stopped early")
        self._start = 0.0
        self._last = 0.0
        # arch -> lowest val_loss seen; a resume starts from the stored trials' (best_from_rows), not from nothing
        self._best: dict[str, float] = dict(best or {})

    def __getstate__(self) -> dict:
        return {"total": self.total, "every_s": self.every_s, "finished": self.finished, "best": self._best}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    def setup(self, **info) -> None:
        self._start = self._last = time.monotonic()

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        loss = result.get("val_loss")
        if result.get("is_eval") and loss is not None and math.isfinite(loss):
            arch = trial.config["trial"]["arch"]
            self._best[arch] = min(loss, self._best.get(arch, math.inf))

    def on_step_end(self, iteration, trials, **info) -> None:
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            self.print_fn(self.line(trials))

    def line(self, trials) -> str:
        counts = {"TERMINATED": 0, "RUNNING": 0, "PENDING": 0, "ERROR": 0, "PAUSED": 0}
        for trial in trials:
            counts[trial.status] = counts.get(trial.status, 0) + 1
        stopped = sum(
            t.status == "TERMINATED" and not _reached_its_end(t.last_result or {}) and _trial_id(t) not in self.finished
            for t in trials
        )
        already = len(self.finished - {_trial_id(t) for t in trials})  # finished before a rebuild: not Tune's
        counts["TERMINATED"] += already
        total = max(self.total, len(trials) + already)
        counts["PENDING"] += total - len(trials) - already
        elapsed = time.monotonic() - self._start
        best = "  ".join(f"{arch} {loss:.3f}" for arch, loss in sorted(self._best.items())) or "-"
        early = f" ({stopped} stopped early)" if stopped else ""
        return (
            f"[{_clock(elapsed)}] {counts['TERMINATED']}/{total} done{early}, {counts['RUNNING']} running, "
            f"{counts['PENDING'] + counts['PAUSED']} pending, {counts['ERROR']} failed | best val_loss: {best}"
        )


class TrimFinishedTrials(Callback):
    """Last in the callback list: once every other callback has seen a finished trial, the driver drops what it
    kept of the trial that nothing reads again (study.tune.ray_internals.trim_finished_trial; ray-project/ray
    #64231): its last result but the fields ProgressCallback counts it by, and its metrics' running statistics.
    Its status, config and checkpoints stay, so a resume knows it finished."""

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        from study.tune.ray_internals import trim_finished_trial

        trim_finished_trial(trial, keep=END_FIELDS)


END_FIELDS = ("is_final", "done_status")  # what `_reached_its_end` reads of a trial's last result


def _reached_its_end(result: dict) -> bool:
    """A trial's last result shows it ran to its end (its final evaluation or the trainable's last report)."""
    return bool(result.get("is_final")) or "done_status" in result


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:d}:{minutes:02d}:{secs:02d}"
