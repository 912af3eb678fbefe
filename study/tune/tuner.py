"""The Ray Tune objects of a study: the Tuner (new or restored), its scheduler and trial names."""

from __future__ import annotations

import os

from study.config.search_space import planned_trials
from study.config.spec import StudySpec
from study.tune.plan import Plan
from study.tune.rebuild import REBUILT_KEY
from wt_base.budgets import BUDGET_KINDS
from wt_base.layout import TUNE_DIR
from wt_base.schema import FINISHED_STATUSES


def make_tuner(plan_: Plan, *, restore: bool, print_fn, trainable=None, rebuilt: bool = False):
    """The Tuner of `plan_`; `trainable` (default: study.tune.trainable.trainable) has its signature, tests pass
    a wrapper of it. `rebuilt`: a resume without Tune's experiment state (study.tune.rebuild): a fresh Tuner over
    the stored trials, finished ones ended unrun, the others started from their own newest checkpoint."""
    from ray import tune

    from study.tune.callbacks import ProgressCallback, ResultsCallback
    from study.tune.tracker_callbacks import make_trackers

    if trainable is None:
        from study.tune.trainable import trainable
    spec = plan_.spec
    fn = tune.with_resources(
        tune.with_parameters(trainable, corpus=plan_.corpus, cpus=spec.resources.cpus, gpus=spec.resources.gpus),
        {"cpu": spec.resources.cpus, "gpu": spec.resources.gpus},
    )
    tune_loc = plan_.tune_location
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "5")  # keep Tune's own experiment state fresh
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")  # checkpoint-only reports have no loss
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: Tune prints nothing, our callback reports
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    total = planned_trials(spec) if spec.search.is_search else len(plan_.trials)
    rows = _rows(plan_) if restore or rebuilt or spec.search.is_search else []
    finished = frozenset(row["trial_id"] for row in rows if row.get("status") in FINISHED_STATUSES)
    callbacks = [
        ResultsCallback(
            plan_.location.uri, spec.name, spec=spec.to_dict(), token_unit=getattr(plan_.corpus, "unit", None)
        ),
        ProgressCallback(total=total, print_fn=print_fn, finished=finished),
        *make_trackers(spec, plan_.location),  # loggers: TensorBoard, MLflow, W&B (study.tune.trackers)
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
        tuner._local_tuner._tune_config.scheduler = scheduler
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
