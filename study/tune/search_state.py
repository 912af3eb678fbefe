"""Where a search study stands and what it runs next (Ray-free: study.tune.searcher is its Ray Tune face).

Each unit (study.config.search_space: an arm in a cell) runs the settings its own sampler (study.tune.samplers)
proposes one at a time (random draws or TPE: `search.samples` of them; a bracket: as many as its walk takes),
each on every tune seed; once the sampler has no more and all of them have ended, its test seeds run at the
unit's *chosen* setting. The chosen setting is the analysis' own rule,
`analysis.tuning.choose_settings` (called by `chosen_setting`): the lowest mean final `search.metric` over the
tune seeds among the settings whose every tune seed completed (a diverged, failed or stopped seed makes a setting
ineligible); ties go to the smaller setting key. With no eligible setting the unit runs no test seed, and the
report says "no eligible setting". A sampler is told a setting's result once all its tune seeds have ended: the
mean final metric when all completed, else a failure (a diverged or failed seed) or a pruned point (stopped by
ASHA).

Units take turns: the next setting goes to the unit with the fewest so far, so every arm gets the same effort
at any time, and test seeds run as soon as their unit is decided. No setting runs twice in a unit: a sampler
that proposes one already tried is told it failed (no new evidence) and asked again.

Resume rebuilds the state (`replay`) from the trials the study has, instead of unpickling a saved searcher: a
finished trial gives its outcome (and its setting counts as tried), a trial Tune restored unfinished is running
(Tune resumes it from its checkpoint), a trial with a row that Tune's saved trial list lacks (it started in the
seconds after Tune last saved) is run again under the same id, and a known setting's tune seeds that no trial
was made for yet (the searcher hands Tune one trial at a time) are queued. So a killed search continues with the
remaining samples, and no trial that finished is run again.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field

from study.config.search_space import Unit, search_trial, setting_key, setting_of, unit_key, units
from study.config.space import Trial
from study.config.spec import StudySpec
from wt_base.errors import StudyError
from wt_base.schema import FINISHED_STATUSES

FINISHED = "FINISHED"  # next_trial: the search has handed out every trial it will run
STOP_WORDS = {  # why a bracket's walk ended (wt_base.bracket.STOPS), as the summary says it
    "interior": "the best is interior",
    "bound": "stopped at its bound, the best at the edge",
    "cap": "stopped at its cap on points, the best at the edge",
    "no eligible point": "no eligible point",
}
MAX_PROPOSALS = 100  # proposals of already tried settings, in a row, before the first untried one is taken


@dataclass(frozen=True)
class Outcome:
    """How a trial ended: its status and its final search metric (None without a final evaluation)."""

    status: str  # completed, stopped, diverged or failed
    final: float | None = None

    @property
    def eligible(self) -> bool:
        return self.status == "completed" and self.final is not None and math.isfinite(self.final)

    @classmethod
    def from_row(cls, row: dict, metric: str) -> Outcome | None:
        """A trial row's outcome; None while the trial is unfinished (pending, running, or failed: a resume runs
        a failed trial again)."""
        if row.get("status") not in FINISHED_STATUSES:
            return None
        return cls(status=row["status"], final=row.get(metric))


@dataclass
class _Sample:
    setting: dict  # searched axis -> value
    sample_id: str | None  # the sampler's id of it; None: proposed before a resume (told as a replayed point)
    outcomes: dict = field(default_factory=dict)  # tune seed -> Outcome
    seeds: set = field(default_factory=set)  # the tune seeds it has a trial for (handed out or known)
    told: bool = False  # every tune seed has ended and the sampler was told
    value: float | None = None  # once told: the mean final metric over the tune seeds (None: not eligible)
    kind: str | None = None  # once told: complete, fail or pruned


@dataclass
class _Unit:
    unit: Unit
    sampler: object  # study.tune.samplers: propose(sample_id, samples), more(samples), tell, tell_replayed
    samples: dict = field(default_factory=dict)  # setting key -> _Sample, in proposal order
    proposals: int = 0  # sampler ids handed out, duplicates included
    chosen: dict | None = None  # the test seeds' setting once decided (None: none eligible, or not decided)
    decided: bool = False
    tests: dict = field(default_factory=dict)  # test seed -> Outcome, or None while it runs


class SearchState:
    """The search of every unit of `spec`; `samplers` maps each unit key to its sampler."""

    def __init__(self, spec: StudySpec, samplers: dict, max_concurrent: int = 0):
        self.spec = spec
        self._units = {u.key: _Unit(u, samplers[u.key]) for u in units(spec)}
        self._trials: dict[str, tuple[str, str, int]] = {}  # trial id -> (unit key, setting key, seed)
        self._live: set[str] = set()
        self._queue: list[Trial] = []
        self._max_concurrent = max_concurrent

    # ---- running -------------------------------------------------------------------------------------------
    def next_trial(self) -> Trial | str | None:
        """The next trial to start, FINISHED when the search has handed out all it will run, or None to wait
        (for results it needs, or a free slot under max_concurrent)."""
        if self._max_concurrent and len(self._live) >= self._max_concurrent:
            return None
        if not self._queue:
            for state in self._units.values():
                self._decide(state)
        if not self._queue:
            open_units = [s for s in self._units.values() if s.sampler.more(s.samples)]
            if open_units:
                self._propose(min(open_units, key=lambda s: len(s.samples)))  # the first of the least searched
        if self._queue:
            trial = self._queue.pop(0)
            self._live.add(trial.trial_id)
            return trial
        if all(s.decided for s in self._units.values()):
            return FINISHED
        if not self._live:  # waiting for results no trial will bring: an error, not a study that never ends
            raise RuntimeError(f"the search waits for results but no trial of it is running: {self.summary()}")
        return None

    def finished(self, trial_id: str, outcome: Outcome) -> None:
        """A trial of this search ended. A finished outcome stays; a failed one may be replaced by a retry's."""
        self._live.discard(trial_id)
        if trial_id not in self._trials:
            return
        unit_key_, key, seed = self._trials[trial_id]
        state = self._units[unit_key_]
        if seed not in self.spec.tune_seeds:
            state.tests[seed] = outcome
            return
        sample = state.samples[key]
        previous = sample.outcomes.get(seed)
        if previous is not None and previous.status != "failed":
            return
        sample.outcomes[seed] = outcome
        if len(sample.outcomes) == len(self.spec.tune_seeds) and not sample.told:
            self._tell(state, sample)

    # ---- resume ---------------------------------------------------------------------------------------------
    def replay(self, trial: Trial, outcome: Outcome | None, running: bool) -> None:
        """A trial the study already has: finished (`outcome`), being run by Tune (`running`: restored
        unfinished), or neither (unknown to Tune's saved trial list: it is run again, under the same id)."""
        key = unit_key(self.spec, trial)
        if key not in self._units:
            raise StudyError(f"trial {trial.trial_id} belongs to no arm and cell of this study's search.")
        state, seed = self._units[key], trial.run.train.seed
        setting = setting_of(self.spec, trial)
        self._trials[trial.trial_id] = (key, setting_key(setting), seed)
        if seed in self.spec.tune_seeds:
            state.samples.setdefault(setting_key(setting), _Sample(setting, sample_id=None)).seeds.add(seed)
        else:
            state.chosen, state.decided = setting, True
            state.tests[seed] = None
        if outcome is not None:
            self.finished(trial.trial_id, outcome)
        elif running:
            self._live.add(trial.trial_id)
        else:
            self._queue.append(trial)

    def replayed(self) -> None:
        """After the last `replay`: queue the tune seeds a known setting has no trial for (the searcher had not
        handed them to Tune yet), tell the samplers the settings whose tune seeds all ended, queue the test seeds a
        decided unit has not started, and decide the units whose tune seeds have all ended."""
        for state in self._units.values():
            for key, sample in state.samples.items():
                for seed in self.spec.tune_seeds:
                    if seed not in sample.seeds:
                        trial = search_trial(self.spec, state.unit, sample.setting, seed)
                        self._trials[trial.trial_id] = (state.unit.key, key, seed)
                        sample.seeds.add(seed)
                        self._queue.append(trial)
                if len(sample.outcomes) == len(self.spec.tune_seeds) and not sample.told:
                    self._tell(state, sample)
            if state.chosen is not None:
                self._queue_tests(state)
            else:
                self._decide(state)

    def complete(self) -> bool:
        """Every unit decided and every trial handed out has ended (nothing to resume)."""
        units_done = all(s.decided and None not in s.tests.values() for s in self._units.values())
        return units_done and not self._queue and not self._live

    def summary(self) -> list[str]:
        """One line per unit: settings tried, and the chosen one."""
        lines = []
        for state in self._units.values():
            tried = f"{state.unit.name}: {len(state.samples)} settings tried"
            if not state.decided:
                told = [s for s in state.samples.values() if s.told and s.value is not None]
                best = min(told, key=lambda s: s.value, default=None)
                so_far = f"; best so far {_describe(best.setting)} ({best.value:.4f})" if best else ""
                lines.append(f"{tried}{so_far}; not yet chosen")
                continue
            stopped = state.sampler.stopped(state.samples)
            why = f" (bracket: {STOP_WORDS[stopped]})" if stopped else ""
            lines.append(f"{tried}; chosen {_describe(state.chosen)}{why}")
        return lines

    # ---- inside ---------------------------------------------------------------------------------------------
    def _propose(self, state: _Unit) -> None:
        for _ in range(MAX_PROPOSALS):
            sample_id = f"{state.unit.key}-{state.proposals}"
            state.proposals += 1
            setting = state.sampler.propose(sample_id, state.samples)
            trials = [search_trial(self.spec, state.unit, setting, seed) for seed in self.spec.tune_seeds]
            setting = setting_of(self.spec, trials[0])  # as the trials hold it (axis types applied)
            if setting_key(setting) not in state.samples and trials[0].trial_id not in self._trials:
                break
            state.sampler.tell(sample_id, None, "fail")  # tried already: not run twice, and no new evidence
        else:
            sample_id, setting = None, self._untried(state)
            trials = [search_trial(self.spec, state.unit, setting, seed) for seed in self.spec.tune_seeds]
        key = setting_key(setting)
        state.samples[key] = _Sample(setting, sample_id, seeds=set(self.spec.tune_seeds))
        for trial in trials:
            self._trials[trial.trial_id] = (state.unit.key, key, trial.run.train.seed)
        self._queue.extend(trials)

    def _untried(self, state: _Unit) -> dict:
        """The first setting of a choice-only space the unit has not tried (a sampler that keeps proposing tried
        ones); a continuous space always has one, so a sampler stuck on tried settings there is an error."""
        if self.spec.search.distinct_settings() is None:
            raise StudyError(
                f"the {self.spec.search.algorithm} search of {state.unit.name} proposed only settings it had "
                f"tried, {MAX_PROPOSALS} times in a row."
            )
        names = list(self.spec.search.axes)
        for values in itertools.product(*(self.spec.search.axes[n].values for n in names)):
            trial = search_trial(self.spec, state.unit, dict(zip(names, values, strict=True)), self.spec.tune_seeds[0])
            setting = setting_of(self.spec, trial)
            if setting_key(setting) not in state.samples:
                return setting
        raise AssertionError("search.samples is validated against the distinct settings")

    def _tell(self, state: _Unit, sample: _Sample) -> None:
        outcomes = [sample.outcomes[seed] for seed in self.spec.tune_seeds]
        if all(o.eligible for o in outcomes):
            value, kind = sum(o.final for o in outcomes) / len(outcomes), "complete"
        elif any(o.status in ("failed", "diverged") or (o.status == "completed" and not o.eligible) for o in outcomes):
            value, kind = None, "fail"
        else:
            value, kind = None, "pruned"  # stopped early by ASHA
        sample.told, sample.value, sample.kind = True, value, kind
        if sample.sample_id is None:
            state.sampler.tell_replayed(sample.setting, value, kind)
        else:
            state.sampler.tell(sample.sample_id, value, kind)

    def _decide(self, state: _Unit) -> None:
        n_seeds = len(self.spec.tune_seeds)
        if state.decided or any(len(s.outcomes) < n_seeds for s in state.samples.values()):
            return
        if not state.samples or state.sampler.more(state.samples):
            return
        state.decided = True
        key = chosen_setting({k: s.outcomes for k, s in state.samples.items()})
        if key is not None:
            state.chosen = state.samples[key].setting
            self._queue_tests(state)

    def _queue_tests(self, state: _Unit) -> None:
        for seed in self.spec.seeds:
            if seed in state.tests:
                continue
            trial = search_trial(self.spec, state.unit, state.chosen, seed)
            self._trials[trial.trial_id] = (state.unit.key, setting_key(state.chosen), seed)
            state.tests[seed] = None
            self._queue.append(trial)


def replay_rows(state: SearchState, rows: list[dict], restored: dict) -> dict:
    """Rebuild `state` from the study's trial rows and Tune's restored trials (`restored`: our trial id ->
    (Tune's trial id, Tune's status, the trial dict); study.tune.restore.restored_trials). A finished row gives
    an outcome; an unfinished one is running where Tune restored it, else it is run again; a trial Tune created
    but never started (no row) is Tune's to start. Returns Tune's id -> ours for the trials Tune will run."""
    from study.tune.rows import end_fields

    metric, tune_ids = state.spec.search.metric, {}
    for row in rows:
        trial = Trial.from_dict(json.loads(row["config_json"]))
        tune_id, tune_status, _ = restored.get(trial.trial_id, (None, None, None))
        outcome = Outcome.from_row(row, metric)
        if outcome is None and tune_status == "TERMINATED":  # Tune ended it; its row missed the last update
            outcome = Outcome(status=end_fields(row)["status"], final=row.get(metric))
        running = outcome is None and tune_status is not None
        if running:
            tune_ids[tune_id] = trial.trial_id
        state.replay(trial, outcome, running=running)
    stored = {row["trial_id"] for row in rows}
    for trial_id, (tune_id, tune_status, trial_dict) in restored.items():
        if trial_id not in stored:
            tune_ids[tune_id] = trial_id
            state.replay(Trial.from_dict(trial_dict), None, running=tune_status != "TERMINATED")
    state.replayed()
    return tune_ids


def rows_progress(spec: StudySpec, rows: list[dict]) -> SearchState:
    """The search as its trial rows alone say it stands (no Ray, no Optuna): for `complete()` and `summary()`."""
    from study.tune.samplers import looking_sampler

    state = SearchState(spec, {u.key: looking_sampler(spec) for u in units(spec)})
    replay_rows(state, rows, restored={})
    return state


def chosen_setting(outcomes: dict) -> str | None:
    """The setting (key) a unit's test seeds run at, by the analysis' rule (analysis.tuning.choose_settings) on
    the unit's tune seeds: `outcomes` maps each setting key to {tune seed: Outcome}. None: no eligible setting."""
    import pandas as pd

    from analysis.tuning import choose_settings

    rows = [
        {
            "cell_key": "unit",
            "arm_key": "unit",
            "arm": "unit",
            "arch": "unit",
            "config_id": key,
            "tuned": key,
            "seed_role": "tune",
            "seed": seed,
            "status": outcome.status,
            "final_loss": outcome.final if outcome.eligible else math.nan,
        }
        for key, by_seed in outcomes.items()
        for seed, outcome in by_seed.items()
    ]
    chosen = choose_settings(pd.DataFrame(rows))["config_id"].iloc[0]
    return None if pd.isna(chosen) else chosen


def _describe(setting: dict | None) -> str:
    if setting is None:
        return "none (no eligible setting)"
    return ", ".join(f"{n} {v:.4g}" if isinstance(v, float) else f"{n} {v}" for n, v in setting.items())
