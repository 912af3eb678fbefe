"""A search study on Ray Tune: the searcher that hands Tune the trials of study.tune.search_state, its samplers
(random draws and the bracket's walk from study.tune.samplers, or Optuna's TPE through Ray Tune's OptunaSearch),
and the rebuilt state of a resumed search.

Tune asks `StudySearch.suggest` for each trial it creates; the answer is a whole trial (`{"trial": Trial dict}`,
as the grid hands them), so its id (a hash of what it computes, study.config.space) is made then, and the
results callback writes its row when it starts. Tune tells the searcher each result and how each trial ended;
the searcher turns that into an `Outcome` by the rule the trial rows follow (study.tune.rows.end_fields).

Resume: `StudySearchGenerator` saves no searcher state (only the experiment Tune creates trials from); the
searcher is rebuilt from the study's trial rows and Tune's restored trial list (`replayed_search`), and the TPE
sampler is given every finished setting as an evaluated point (OptunaSearch.add_evaluated_point). Why not Tune's
searcher save and restore: Tune saves it with its trial list every few seconds, so the trials started since (whose
rows exist) would be unknown to a restored searcher, which would run other settings in their place and leave
them orphaned; the rows are written as trials start and end, so they are the record to rebuild from.
"""

from __future__ import annotations

from ray.tune.search import Searcher, SearchGenerator

from study.config.search_space import all_units
from study.tune.ray_internals import (
    load_newest_generator_state,
    save_generator_state,
    set_generator_experiment,
    set_generator_total,
)
from study.tune.rows import end_fields
from study.tune.samplers import BracketSampler, CountedSampler, RandomSampler
from study.tune.search_state import FINISHED, Outcome, SearchState, replay_rows
from wt_base.errors import StudyError

OBJECTIVE = "objective"  # the inner Optuna study's metric: the mean final metric over the tune seeds


class TpeSampler(CountedSampler):
    """search.algorithm tpe: one Ray Tune OptunaSearch (Optuna's TPESampler, seeded by search.seed, random for the
    first startup_samples settings) per unit, minimising the mean final metric over the tune seeds."""

    def __init__(self, spec):
        super().__init__(spec.search.samples)
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per told setting otherwise
        search = spec.search
        space = {name: _optuna_distribution(dist) for name, dist in search.axes.items()}
        sampler = optuna.samplers.TPESampler(seed=search.seed, n_startup_trials=search.tpe_startup)
        self._optuna = OptunaSearch(space=space, metric=OBJECTIVE, mode="min", sampler=sampler)

    def propose(self, sample_id: str, samples: dict) -> dict:
        return self._optuna.suggest(sample_id)

    def tell(self, sample_id: str, value: float | None, kind: str) -> None:
        result = {OBJECTIVE: value} if kind == "complete" else None
        self._optuna.on_trial_complete(sample_id, result=result, error=kind == "fail")

    def tell_replayed(self, setting: dict, value: float | None, kind: str) -> None:
        self._optuna.add_evaluated_point(setting, value, error=kind == "fail", pruned=kind == "pruned")


def _optuna_distribution(dist):
    import optuna

    if dist.distribution == "choice":
        return optuna.distributions.CategoricalDistribution(list(dist.values))
    return optuna.distributions.FloatDistribution(dist.low, dist.high, log=dist.distribution == "loguniform")


SAMPLERS = {"random": RandomSampler, "tpe": TpeSampler, "bracket": BracketSampler}  # search.algorithm -> sampler


def new_state(spec) -> SearchState:
    """A search with nothing run yet: one sampler per unit."""
    sampler = SAMPLERS.get(spec.search.algorithm)
    if sampler is None:
        raise StudyError(
            f"search.algorithm={spec.search.algorithm!r} has no sampler: expected one of {', '.join(SAMPLERS)}."
        )
    samplers = {u.key: sampler(spec) for u in all_units(spec)}  # a ladder's every reachable size among them
    return SearchState(spec, samplers, max_concurrent=spec.max_concurrent)


def replayed_state(spec, rows: list[dict], restored: dict) -> tuple[SearchState, dict]:
    """The search rebuilt, with its samplers, from the study's trial rows and Tune's restored trials
    (search_state.replay_rows); also Tune's id -> ours for the trials Tune will resume."""
    state = new_state(spec)
    return state, replay_rows(state, rows, restored)


class StudySearch(Searcher):
    """Ray Tune's face of a SearchState: whole trials out, outcomes in."""

    def __init__(self, state: SearchState, metric: str, tune_ids: dict | None = None):
        super().__init__(metric=metric, mode="min")
        self.state = state
        self._ours = dict(tune_ids or {})  # Tune's trial id -> our trial id
        self._final: dict[str, float | None] = {}  # Tune's trial id -> its final metric
        self._done: dict[str, str] = {}  # Tune's trial id -> the trainable's done_status

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True  # the search space is the spec's (study.config.sampling.SearchSpec)

    def suggest(self, trial_id: str):
        trial = self.state.next_trial()
        if trial == FINISHED:
            return Searcher.FINISHED
        if trial is None:
            return None
        self._ours[trial_id] = trial.trial_id
        return {"trial": trial.to_dict()}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self._note(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        result = result or {}
        self._note(trial_id, result)
        ours = self._ours.get(trial_id) or result.get("config/trial/trial_id")
        if ours is None:
            return
        if error:
            outcome = Outcome("failed")
        else:
            final = self._final.get(trial_id)
            status = end_fields({"status": self._done.get(trial_id), "val_loss": final})["status"]
            outcome = Outcome(status, final)
        self.state.finished(ours, outcome)

    def _note(self, trial_id: str, result: dict) -> None:
        if result.get("is_final"):
            self._final[trial_id] = result.get(self.metric)
        if "done_status" in result:
            self._done[trial_id] = result["done_status"]

    def save(self, checkpoint_path: str) -> None:
        raise NotImplementedError("a search is rebuilt from the study's trials on resume (StudySearchGenerator)")


class StudySearchGenerator(SearchGenerator):
    """Tune's trial generator around StudySearch. It saves only Tune's own part (the experiment spec trials are
    created from) and restores only that; a resumed search gets a StudySearch rebuilt by `replayed_state`. Trials
    it creates after a resume live where the study is now (`home`, as restore.RehomingVariants does for grids)."""

    def __init__(self, searcher: StudySearch, total: int, home: tuple | None = None):
        super().__init__(searcher)
        set_generator_total(self, total)  # Tune sets it from num_samples on a new run; a resume keeps this one
        self._home = home

    def __reduce__(self):
        # tune/tuner.pkl holds the Tuner's config, this generator included; a resume replaces it with one rebuilt
        # from the study's trials, so it pickles as an empty placeholder, not as the searcher and its samplers
        return (placeholder_generator, ())

    def save_to_dir(self, dirpath: str, session_str: str) -> None:
        name = self.CKPT_FILE_TMPL.format(session_str)
        save_generator_state(self.get_state(), dirpath, name)

    def restore_from_dir(self, dirpath: str) -> None:
        state = load_newest_generator_state(dirpath, self.CKPT_FILE_TMPL.format("*"))
        if state is None:
            raise RuntimeError(f"no search generator state in {dirpath}")
        # the counters restart: the searcher says when it is finished
        set_generator_experiment(self, state["experiment"])

    def create_trial_if_possible(self, experiment_spec: dict):
        from study.tune.restore import rehome_trial

        trial = super().create_trial_if_possible(experiment_spec)
        if trial is not None and self._home is not None:
            rehome_trial(trial, self._home)
        return trial


def placeholder_generator() -> StudySearchGenerator:
    """What tune/tuner.pkl unpickles a search study's generator as (the resume replaces it)."""
    return StudySearchGenerator(StudySearch(None, metric="val_loss"), total=0)
