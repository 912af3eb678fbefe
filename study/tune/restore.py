"""A restored Tuner, pointed at where its study is now.

`Tuner.restore` brings back the Tuner pickled when the study started (tune/tuner.pkl) and Tune's trial
generator (tune/basic-variant-state-*.json for a grid, tune/search_gen_state-*.json for a search study,
study.tune.searcher). Both name the directory the study started in: the driver-side callbacks hold its URI, and
the generator creates the trials it has not started yet with that experiment's storage.
Tune moves the trials it had already created to the directory it is restored from, but not those two, so a
study that moved since it started (copied to another disk or bucket, as the upgrade fixture is) would write its
results to the old place and start its remaining trials there. `rehome` replaces the callbacks with fresh ones
for the study's current location and gives Tune a generator that re-homes every trial it creates (a search
study's is rebuilt from its trials, study.tune.searcher.replayed_state).

The Tune internals this takes (the restored TunerInternal's config, a trial's storage) are behind
study.tune.ray_internals, whose tests name the one a Ray release changes; the moved-fixture test (tests/upgrade)
checks the whole of it.

Pickled names a study's tune/tuner.pkl refers to, and so must keep: study.tune.tuner._trial_name,
study.tune.callbacks.ResultsCallback, ProgressCallback and TrimFinishedTrials, study.tune.schedulers.PerArmASHA
and StudyFIFO (a resume replaces the scheduler with a fresh one, study.tune.tuner), for a search study
study.tune.searcher.StudySearchGenerator and placeholder_generator, and for a study with
loggers study.tune.tracker_callbacks.TrackerCallback, TensorBoardTracker, MlflowTracker and WandbTracker. The
trackers are among the fresh callbacks too, so a resumed study logs to the same runs (tracker_callbacks).
"""

from __future__ import annotations

import contextlib
import logging

from ray.tune.search.basic_variant import BasicVariantGenerator

from study.tune import ray_internals
from wt_base.layout import TUNE_DIR
from wt_base.storage import Location


class RehomingVariants(BasicVariantGenerator):
    """Tune's grid generator, whose trials live where the study is now: a restore (set_state) brings back the
    pickled generator, whose not-yet-created trials carry the storage of the run that started the study; this
    one moves every trial it creates to `home` (filesystem, storage path, experiment directory name)."""

    def __init__(self, home: tuple, **kwargs):
        super().__init__(**kwargs)
        self._home = home

    def set_state(self, state: dict) -> None:
        home = self._home
        super().set_state(state)
        self._home = home  # a restored state names the storage of the run that saved it

    def next_trial(self):
        trial = super().next_trial()
        if trial is not None:
            rehome_trial(trial, self._home)
        return trial


def rehome_trial(trial, home: tuple) -> None:
    """Move a trial Tune just created to `home` (filesystem, storage path, experiment directory name)."""
    fs, path, experiment = home
    if ray_internals.trial_home(trial)[1:] != (path, experiment):
        ray_internals.move_trial(trial, fs, path, experiment)


def home_of(study: Location) -> tuple:
    return (study.fs, study.path, TUNE_DIR)


def rehome(tuner, callbacks: list, study: Location, max_concurrent: int, search_alg=None) -> None:
    """Fresh `callbacks` and a re-homing trial generator for a Tuner that `Tuner.restore` returned for `study`:
    `search_alg` for a search study (study.tune.searcher.StudySearchGenerator, made with `home_of(study)`), else a
    grid generator."""
    ray_internals.restored_callbacks(tuner, callbacks)
    if search_alg is None:
        search_alg = RehomingVariants(home_of(study), max_concurrent=max_concurrent)
    ray_internals.restored_search_alg(tuner, search_alg)


def restored_trials(tune: Location) -> dict:
    """The trials in Tune's saved experiment state under `tune` (the list `Tuner.restore` resumes): our trial id
    -> (Tune's trial id, Tune's status, the trial dict). Read through Tune's own reader, which unpickles the same
    state `Tuner.restore` does (README, Security)."""
    from ray.tune import ExperimentAnalysis

    with quiet_trial_reader():
        analysis = ExperimentAnalysis(tune.path, storage_filesystem=tune.fs)
    return {t.config["trial"]["trial_id"]: (t.trial_id, t.status, t.config["trial"]) for t in analysis.trials}


@contextlib.contextmanager
def quiet_trial_reader():
    """Silence Tune's result reader (ExperimentAnalysis, also run by Tuner.restore and at the end of fit), which
    warns for each trial that has no result files in its Tune directory: a resumed study's trials that started
    just before a kill, or that it ended without running (study.tune.schedulers). Their results are the
    study's Parquet rows, which it does not read."""
    reader = logging.getLogger(ray_internals.ANALYSIS_LOGGER)
    level = reader.level
    reader.setLevel(logging.ERROR)
    try:
        yield
    finally:
        reader.setLevel(level)
