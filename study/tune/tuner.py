"""The Ray Tune objects of a study: the Tuner (new or restored), its scheduler and trial names."""

from __future__ import annotations

from study.config.search_space import planned_trials
from study.config.spec import StudySpec
from study.tune import ray_internals
from study.tune.plan import Plan
from study.tune.rebuild import REBUILT_KEY
from wt_base.budgets import BUDGET_KINDS
from wt_base.layout import TUNE_DIR
from wt_base.schema import FINISHED_STATUSES
from wt_base.storage import Location

# How often Tune saves its experiment state (TUNE_GLOBAL_CHECKPOINT_S), by store and study size: see
# `experiment_state_period_s` and docs/performance.md (Experiment state).
STATE_PERIOD_S = {"local": 5.0, "object store": 30.0}  # the shortest period on each kind of store
STATE_TRIALS_PER_S = {"local": 100.0, "object store": 20.0}  # trials in the study per second of period above it
STATE_PERIOD_MAX_S = 300.0


def make_tuner(plan_: Plan, *, restore: bool, print_fn, trainable=None, rebuilt: bool = False):
    """The Tuner of `plan_`; `trainable` (default: study.tune.trainable.trainable) has its signature, tests pass
    a wrapper of it. `rebuilt`: a resume without Tune's experiment state (study.tune.rebuild): a fresh Tuner over
    the stored trials, finished ones ended unrun, the others started from their own newest checkpoint."""
    from ray import tune

    from study.tune.callbacks import ProgressCallback, ResultsCallback, TrimFinishedTrials, best_from_rows
    from study.tune.tracker_callbacks import make_trackers

    if trainable is None:
        from study.tune.trainable import trainable
    spec = plan_.spec
    fn = tune.with_resources(
        tune.with_parameters(trainable, corpus=plan_.corpus, cpus=spec.resources.cpus, gpus=spec.resources.gpus),
        {"cpu": spec.resources.cpus, "gpu": spec.resources.gpus},
    )
    tune_loc = plan_.tune_location
    total = planned_total(plan_)
    rows = _rows(plan_) if restore or rebuilt or spec.search.is_search else []
    finished = frozenset(row["trial_id"] for row in rows if row.get("status") in FINISHED_STATUSES)
    callbacks = [
        ResultsCallback(
            plan_.location.uri, spec.name, spec=spec.to_dict(), token_unit=getattr(plan_.corpus, "unit", None)
        ),
        ProgressCallback(total=total, print_fn=print_fn, finished=finished, best=best_from_rows(rows)),
        *make_trackers(spec, plan_.location),  # loggers: TensorBoard, MLflow, W&B (study.tune.trackers)
        TrimFinishedTrials(),  # last: the others have seen the finished trial
    ]
    if restore:
        from study.tune.restore import rehome, restored_trials

        search_alg = _search_alg(plan_, rows, restored_trials(tune_loc)) if spec.search.is_search else None
        tuner = tune.Tuner.restore(
            tune_loc.path,
            trainable=fn,
            resume_unfinished=True,
            resume_errored=True,
            storage_filesystem=tune_loc.fs,
        )
        # the study may have moved since it started
        rehome(tuner, callbacks, plan_.location, max_concurrent=spec.max_concurrent, search_alg=search_alg)
        # a fresh scheduler (Tune keeps none of a scheduler's state across a restore) that never starts a trial
        # whose row says it finished, which Tune's saved trial list may still call unfinished
        scheduler = _scheduler(spec)
        scheduler.skip_finished(finished)
        ray_internals.restored_scheduler(tuner, scheduler)
        return tuner
    run_config = tune.RunConfig(
        name=TUNE_DIR,
        storage_path=plan_.location.path,
        storage_filesystem=plan_.location.fs,
        callbacks=callbacks,
        failure_config=tune.FailureConfig(max_failures=spec.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=3),
        verbose=0,
    )
    names = {"trial_name_creator": _trial_name, "trial_dirname_creator": _trial_name}
    scheduler = _scheduler(spec)
    scheduler.skip_finished(finished)  # a rebuilt study's finished trials (none in a new one)
    extra = {REBUILT_KEY: plan_.location.uri} if rebuilt else {}  # the trials' own checkpoints (study.tune.rebuild)
    if spec.search.is_search:  # trials made as the study runs (study.tune.searcher), concurrency limited there
        search_alg = _search_alg(plan_, rows, restored={})
        tune_config = tune.TuneConfig(search_alg=search_alg, num_samples=total, scheduler=scheduler, **names)
        return tune.Tuner(fn, param_space=extra, tune_config=tune_config, run_config=run_config)
    tune_config = tune.TuneConfig(max_concurrent_trials=spec.max_concurrent or None, scheduler=scheduler, **names)
    # a rebuilt study's finished trials are left out: a trial ended unrun would hold its concurrency slot
    todo = [t.to_dict() for t in plan_.trials if t.trial_id not in finished]
    return tune.Tuner(
        fn,
        param_space={"trial": tune.grid_search(todo), **extra},
        tune_config=tune_config,
        run_config=run_config,
    )


def experiment_state_period_s(location: Location, trials: int) -> float:
    """Seconds between saves of Tune's experiment state for a study of `trials` trials stored at `location`.

    Each save writes every trial's state (about 20 KB a finished trial, trimmed by TrimFinishedTrials) as one
    file, uploaded whole to an object store, so the period grows with the study: on a local disk 5 s, or one
    second per 100 trials; on an object store 30 s, or one second per 20 trials; at most 300 s. Resuming loses
    nothing by it: a trial's row says whether it finished (a finished trial Tune still calls unfinished is ended
    unrun, study.tune.schedulers), and Tune saves the state whenever a trial has checkpointed CheckpointConfig
    .num_to_keep times since the last save, so an interrupted trial resumes from one of its last 3 checkpoints
    whatever the period. An explicit TUNE_GLOBAL_CHECKPOINT_S in the environment wins."""
    kind = "local" if location.is_local else "object store"
    return min(STATE_PERIOD_MAX_S, max(STATE_PERIOD_S[kind], trials / STATE_TRIALS_PER_S[kind]))


def planned_total(plan_: Plan) -> int:
    """Trials the study runs: its grid's, or as many as its search may make."""
    return planned_trials(plan_.spec) if plan_.spec.search.is_search else len(plan_.trials)


def _rows(plan_: Plan) -> list[dict]:
    from study.results.sink import ParquetSink

    sink = ParquetSink(plan_.location, plan_.spec.name)
    sink.load_existing()
    return sink.trial_rows()


def _search_alg(plan_: Plan, rows: list[dict], restored: dict):
    """A search study's trial generator: its search rebuilt from the trial rows the study has (none for a new
    study) and Tune's `restored` trials (study.tune.restore.restored_trials)."""
    from study.tune.restore import home_of
    from study.tune.searcher import StudySearch, StudySearchGenerator, replayed_state

    state, tune_ids = replayed_state(plan_.spec, rows, restored)
    searcher = StudySearch(state, metric=plan_.spec.search.metric, tune_ids=tune_ids)
    return StudySearchGenerator(searcher, total=planned_trials(plan_.spec), home=home_of(plan_.location))


def _trial_name(trial) -> str:  # named in every study's tune/tuner.pkl: keep its module and name
    return trial.config["trial"]["trial_id"]


def _scheduler(spec: StudySpec):
    """FIFO, or ASHA with one bracket per arm (architecture and worker interval), ranking only the tuning seeds'
    trials when there are tuning seeds: see study.tune.schedulers."""
    from study.tune.schedulers import PerArmASHA, StudyFIFO

    if spec.scheduler.kind == "fifo":
        return StudyFIFO()
    return PerArmASHA(
        time_attr=BUDGET_KINDS[spec.budget.kind].metric,
        metric=spec.scheduler.metric,
        mode="min",
        grace_period=spec.scheduler.grace_period_s,
        reduction_factor=spec.scheduler.reduction_factor,
        full_budget_seeds=spec.seeds if spec.tune_seeds else (),  # test seeds run to the end when others tune
    )
