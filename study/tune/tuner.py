"""The Ray Tune objects of a study: the Tuner (new or restored), its scheduler and trial names."""

from __future__ import annotations

import os

from study.config.spec import StudySpec
from study.tune.plan import Plan
from wt_base.budgets import BUDGET_KINDS
from wt_base.layout import TUNE_DIR


def make_tuner(plan_: Plan, *, restore: bool, print_fn, trainable=None):
    """The Tuner of `plan_`; `trainable` (default: study.tune.trainable.trainable) has its signature, tests pass
    a wrapper of it."""
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
    callbacks = [
        ResultsCallback(plan_.location.uri, spec.name),
        ProgressCallback(total=len(plan_.trials), print_fn=print_fn),
        *make_trackers(spec, plan_.location),  # loggers: TensorBoard, MLflow, W&B (study.tune.trackers)
    ]
    if restore:
        from study.tune.restore import rehome

        tuner = tune.Tuner.restore(
            tune_loc.path,
            trainable=fn,
            resume_unfinished=True,
            resume_errored=True,
            storage_filesystem=tune_loc.fs,
        )
        rehome(
            tuner, callbacks, plan_.location, max_concurrent=spec.max_concurrent
        )  # the study may have moved since it started
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
    tune_config = tune.TuneConfig(
        max_concurrent_trials=spec.max_concurrent or None,
        scheduler=_scheduler(spec),
        trial_name_creator=_trial_name,
        trial_dirname_creator=_trial_name,
    )
    return tune.Tuner(
        fn,
        param_space={"trial": tune.grid_search([t.to_dict() for t in plan_.trials])},
        tune_config=tune_config,
        run_config=run_config,
    )


def _trial_name(trial) -> str:  # named in every study's tune/tuner.pkl: keep its module and name
    return trial.config["trial"]["trial_id"]


def _scheduler(spec: StudySpec):
    """FIFO, or ASHA with one bracket per arm (architecture and worker interval), ranking only the tuning seeds'
    trials when there are tuning seeds: see study.tune.schedulers."""
    from ray.tune.schedulers import FIFOScheduler

    from study.tune.schedulers import PerArmASHA

    if spec.scheduler.kind == "fifo":
        return FIFOScheduler()
    return PerArmASHA(
        time_attr=BUDGET_KINDS[spec.budget.kind].metric,
        metric=spec.scheduler.metric,
        mode="min",
        grace_period=spec.scheduler.grace_period_s,
        reduction_factor=spec.scheduler.reduction_factor,
        full_budget_seeds=spec.seeds if spec.tune_seeds else (),  # test seeds run to the end when others tune
    )
