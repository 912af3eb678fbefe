"""Run and resume studies on Ray Tune.

`plan.plan()` does every check that needs no cluster and writes nothing; `run_study` and `resume_study` then
start or join Ray, check the machine or cluster (`checks`), record the study (study.yaml + pending trial rows)
and hand the trials to a Tuner (`tuner`) whose driver-side callbacks stream results to Parquet.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import threading

from study.config.specfile import dump_spec
from study.tune.checks import check_cluster, check_local_resources, with_resolved_gpus
from study.tune.plan import Plan, load_saved_spec, plan
from study.tune.ray_internals import CONTROLLER_LOGGER, EXPERIMENT_STATE_LOGGER, RAY_NOTICES, tune_environment
from study.tune.tuner import experiment_state_period_s, make_tuner, planned_total
from wt_base.errors import StudyError
from wt_base.layout import SPEC_FILE
from wt_base.schema import FINISHED_STATUSES
from wt_base.storage import write_text_atomic


class _DropNotices(logging.Filter):
    def __init__(self, fragments: tuple):
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(f in record.getMessage() for f in self.fragments)


class _DropFullStorage(logging.Filter):
    """Tune's traceback of a trial that failed because the storage is full: the driver stops the study and says
    so in one sentence (study.tune.callbacks.ResultsCallback), so the traceback tells nothing more."""

    def filter(self, record: logging.LogRecord) -> bool:
        from wt_base.storage import storage_full

        error = record.exc_info[1] if record.exc_info else None
        return not (error is not None and storage_full(error) or storage_full(record.getMessage()))


def quiet_ray_notices() -> None:
    """Drop RAY_NOTICES from Ray's loggers, and Tune's tracebacks of a full disk (once per process; the filters
    are the only state)."""
    filters = {name: _DropNotices(fragments) for name, fragments in RAY_NOTICES.items()}
    filters[CONTROLLER_LOGGER] = _DropFullStorage()
    filters[EXPERIMENT_STATE_LOGGER] = _DropFullStorage()
    for name, new in filters.items():
        logger = logging.getLogger(name)
        if not any(type(f) is type(new) for f in logger.filters):
            logger.addFilter(new)


def start_ray(address: str | None, temp_dir: str | None) -> bool:
    """Start Ray in-process (address None) or join a cluster. Returns True when this process started Ray."""
    import ray

    quiet_ray_notices()
    if ray.is_initialized():
        return False
    kwargs = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    temp_dir = temp_dir or os.environ.get("WT_RAY_TMPDIR")
    if address is None:
        if temp_dir:
            kwargs["_temp_dir"] = os.path.abspath(temp_dir)
        ray.init(**kwargs)
        return True
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise StudyError(f"--address {address!r}: cannot join a Ray cluster there: {exc}") from None
    return False


def _record_study(plan_: Plan, *, new: bool) -> None:
    """A pending row per trial without one, then (for a new study) study.yaml, once the study is certain to start.

    The rows are the study's trial list (resume runs it), so they go first: a study.yaml on storage means its
    trials are recorded. A resumed study keeps the study.yaml it was started with."""
    from study.results.sink import ParquetSink
    from study.tune.rows import pending_row

    sink = ParquetSink(plan_.location, plan_.spec.name)
    sink.load_existing()
    for trial in plan_.trials:
        if sink.trial_row(trial.trial_id) is None:
            sink.update_trial(trial.trial_id, **pending_row(trial, plan_.spec, getattr(plan_.corpus, "unit", None)))
    sink.flush()
    if new:
        write_text_atomic(plan_.location, SPEC_FILE, dump_spec(plan_.spec))


def _execute(plan_: Plan, *, restore: bool, print_fn, trainable, rebuilt: bool = False) -> int:
    from study.tune.restore import quiet_trial_reader

    period_s = experiment_state_period_s(plan_.location, planned_total(plan_))
    try:
        with quiet_trial_reader(), _terminate_as_interrupt(), tune_environment(period_s):
            tuner = make_tuner(plan_, restore=restore, rebuilt=rebuilt, print_fn=print_fn, trainable=trainable)
            tuner.fit()
    except KeyboardInterrupt:
        _summarise(plan_, print_fn)
        return 130
    except Exception as exc:  # Tune may wrap what a callback raised
        full = _storage_full_in(exc)
        if full is None:
            raise
        print_fn(
            f"Stopped: the study's storage is full or read-only ({full}); every file written before is intact. Free "
            f"space, then resume with: wt-study resume {plan_.location.uri}"
        )
        return 1
    return _summarise(plan_, print_fn)


def _storage_full_in(exc: BaseException) -> str | None:
    """The reason of a StorageFull anywhere in `exc`'s chain (a callback's raise, as Tune passes it on)."""
    from wt_base.storage import StorageFull, caused_by

    found = caused_by(exc, StorageFull)
    return None if found is None else str(found)


@contextlib.contextmanager
def _terminate_as_interrupt():
    """SIGTERM (`kill PID`, a batch scheduler's preemption) stops the study as Ctrl-C does: through the callers'
    `finally`, so the Ray this process started is shut down with its trials. Without it the trial processes
    outlive the driver and go on training (and writing rows) beside a later resume."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _rows(plan_: Plan) -> list[dict]:
    from study.results.sink import ParquetSink

    sink = ParquetSink(plan_.location, plan_.spec.name)
    sink.load_existing()
    return sink.trial_rows()


def trial_statuses(plan_: Plan, rows: list[dict]) -> list[str]:
    """Each trial's status as the trial `rows` (`_rows`) say: the plan's trials ("pending" for one with no row
    yet), then the trials a search made as it ran."""
    rows = {row["trial_id"]: row.get("status") for row in rows}
    listed = {t.trial_id for t in plan_.trials}
    return [rows.get(t.trial_id, "pending") for t in plan_.trials] + [s for t, s in rows.items() if t not in listed]


def _search(plan_: Plan, rows: list[dict]):
    """A search study's state as its trial `rows` say (study.tune.search_state.rows_progress)."""
    from study.tune.search_state import rows_progress

    return rows_progress(plan_.spec, rows)


def _summarise(plan_: Plan, print_fn) -> int:
    rows = _rows(plan_)
    statuses = trial_statuses(plan_, rows)
    counts = {s: statuses.count(s) for s in sorted(set(statuses))}
    print_fn("Trials: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    search_done = True
    if plan_.spec.search.is_search:
        search = _search(plan_, rows)
        for line in search.summary():
            print_fn(f"Search, {line}")
        search_done = search.complete()
    unfinished = [s for s in statuses if s not in FINISHED_STATUSES]
    if unfinished or not search_done:
        print_fn(_unfinished_words(statuses, unfinished, search_done) + f" with: wt-study resume {plan_.location.uri}")
    print_fn(f"Results: {plan_.location.uri}   Analyze with: wt-study analyze {plan_.location.uri}")
    return 0 if search_done and not [s for s in statuses if s in ("pending", "running")] else 1


def _unfinished_words(statuses: list, unfinished: list, search_done: bool) -> str:
    """Why a study ended unfinished, and what a resume runs, in one sentence (the resume command follows)."""
    cut = [s for s in unfinished if s in ("pending", "running")]
    more = " and the trials its search has yet to make" if not search_done else ""
    if cut or not search_done:
        return (
            f"Interrupted: {len(statuses) - len(unfinished)} of {len(statuses)} trials finished; the other "
            f"{len(unfinished)}{more} run on resume ({unfinished.count('running')} from their last checkpoint). Resume"
        )
    return f"Not finished: {len(unfinished)} trials failed; a resume runs them again from their last checkpoint. Resume"


def _start(plan_: Plan, address, ray_temp_dir) -> tuple[Plan, bool]:
    """Resolve auto GPUs, check the machine (local) or cluster, start or join Ray. Nothing is written."""
    if address is None:
        import torch

        plan_ = with_resolved_gpus(plan_, torch.cuda.device_count())
        check_local_resources(plan_)
    started = start_ray(address, ray_temp_dir)
    try:
        import ray

        plan_ = with_resolved_gpus(plan_, ray.cluster_resources().get("GPU", 0))
        check_cluster(plan_)
    except BaseException:
        _stop_ray(started)
        raise
    return plan_, started


def _lease(plan_: Plan, command: str, print_fn):
    """The study's driver lease (wt_base.lease): held from before Ray starts until the driver ends. Should another
    driver take it (a race only object stores allow), this one stops as Ctrl-C stops it."""
    import _thread
    import time

    from wt_base.lease import Lease

    def lost(holder) -> None:
        who = holder.describe(time.time()) if holder is not None else "another driver"
        print_fn(f"This driver lost the study's lease to {who}: stopping, so that one driver runs the study.")
        _thread.interrupt_main()

    return Lease(plan_.location, command, on_lost=lost)


def run_study(plan_: Plan, *, address=None, ray_temp_dir=None, print_fn=print, trainable=None) -> int:
    """Run the planned study to its end; `trainable` replaces study.tune.trainable.trainable (tests wrap it)."""
    with _lease(plan_, "run", print_fn):
        plan_, started = _start(plan_, address, ray_temp_dir)
        try:
            _record_study(plan_, new=True)
            print_fn(f"Study {plan_.spec.name}: {_describe_trials(plan_)} -> {plan_.location.uri}")
            _print_trackers(plan_, print_fn)
            return _execute(plan_, restore=False, print_fn=print_fn, trainable=trainable)
        finally:
            _stop_ray(started)


def resume_study(path: str, *, spec_file=None, address=None, ray_temp_dir=None, print_fn=print, trainable=None) -> int:
    from study.config.specfile import load_spec

    spec, location = load_saved_spec(path)
    if spec_file is not None:
        given = load_spec(spec_file)
        given = given.replace(
            storage=spec.storage,
            model=dataclasses.replace(given.model, vocab_size=spec.model.vocab_size),  # set from the corpus
            resources=given.resources.with_gpus_for(spec.resources.gpus or 0),  # auto, resolved as it was
        )
        if dump_spec(given) != dump_spec(spec):
            raise StudyError(
                f"--spec {spec_file!r} differs from the spec this study was started with ({location.uri}/"
                f"{SPEC_FILE}): resume without --spec, or run the new spec as a new study."
            )
    plan_ = plan(spec, for_resume=True)
    rows = _rows(plan_)
    statuses = trial_statuses(plan_, rows)
    if all(s in FINISHED_STATUSES for s in statuses) and (not spec.search.is_search or _search(plan_, rows).complete()):
        print_fn(f"Study {spec.name} is already finished ({len(statuses)} trials): nothing to resume.")
        return 0
    with _lease(plan_, "resume", print_fn):
        return _resume(plan_, statuses, address, ray_temp_dir, print_fn, trainable)


def _resume(plan_: Plan, statuses: list, address, ray_temp_dir, print_fn, trainable) -> int:
    spec, location = plan_.spec, plan_.location
    plan_, started = _start(plan_, address, ray_temp_dir)
    try:
        from ray import tune

        restore = tune.Tuner.can_restore(plan_.tune_location.path, storage_filesystem=plan_.tune_location.fs)
        rebuilt = _set_aside_damaged(plan_, print_fn) if restore else bool(statuses)
        restore = restore and not rebuilt
        _record_study(plan_, new=False)
        done = sum(s in FINISHED_STATUSES for s in statuses)
        print_fn(f"Resuming study {spec.name}: {done}/{len(statuses)} trials finished -> {location.uri}")
        if plan_.note:
            print_fn(f"Note: {plan_.note}")
        _print_trackers(plan_, print_fn)
        return _execute(plan_, restore=restore, rebuilt=rebuilt, print_fn=print_fn, trainable=trainable)
    finally:
        _stop_ray(started)


def _set_aside_damaged(plan_: Plan, print_fn) -> bool:
    """True when Tune's experiment state cannot be restored (study.tune.rebuild): its files are set aside and the
    study is rebuilt from its trial rows and checkpoints."""
    from study.tune.rebuild import damaged_state, set_aside

    why = damaged_state(plan_.tune_location)
    if why is None:
        return False
    moved = set_aside(plan_.tune_location)
    print_fn(
        f"Note: Tune's experiment state is damaged ({why}); set aside as {', '.join(moved) or 'nothing'}. The study "
        "is rebuilt from its trial rows and checkpoints: finished trials are not run again, the others continue "
        "from their newest checkpoint."
    )
    return True


def _describe_trials(plan_: Plan) -> str:
    """'6 trials', or for a search study what it will run (its trials are made as it runs)."""
    search = plan_.spec.search
    if not search.is_search:
        return f"{len(plan_.trials)} trials"
    from study.config.search_space import planned_trials

    return f"{search.algorithm} search, up to {planned_trials(plan_.spec)} trials"


def _print_trackers(plan_: Plan, print_fn) -> None:
    from study.tune.trackers import describe

    for line in describe(plan_.spec, plan_.location):
        print_fn(f"Logging to {line}")


def _stop_ray(started: bool) -> None:
    if started:
        import ray

        ray.shutdown()
