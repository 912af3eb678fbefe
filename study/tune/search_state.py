"""Where a search study stands and what it runs next (Ray-free: study.tune.searcher is its Ray Tune face).

Each unit (study.config.search_space: an arm in a cell) runs the settings its own sampler (study.tune.samplers)
proposes one at a time (random draws or TPE: `search.samples` of them; a bracket: as many as its walk takes),
each on every tune seed; once the sampler has no more and all of them have ended, its test seeds run at the
unit's *chosen* setting. The chosen setting is the rule the analysis reports by, wt_base.choice (called by
`chosen_setting`; analysis.tuning calls it too): the lowest mean final `search.metric` over the
tune seeds among the settings whose every tune seed completed (a diverged, failed or stopped seed makes a setting
ineligible); ties go to the smaller setting key. With no eligible setting the unit runs no test seed, and the
report says "no eligible setting". A sampler is told a setting's result once all its tune seeds have ended: the
mean final metric when all completed, else a failure (a diverged or failed seed) or a pruned point (stopped by
ASHA).

Units take turns: the next setting goes to the unit with the fewest so far, so every arm gets the same effort
at any time, and test seeds run as soon as their unit is decided. No setting runs twice in a unit: a sampler
that proposes one already tried is told it failed (no new evidence) and asked again.

With search.ladder the units of one arm at one budget (a profile, study.config.search_space.Profile) are sizes
of a ladder: once every size tried is decided, the ladder rule (wt_base.ladder) is given each size's value (the
mean over the tune seeds at its chosen setting) and may add the next rung beyond the sizes tried, as a new unit
with its own sampler, until the minimum is interior, at the ladder's end or at max_sizes (the summary says
which). A new size has no settings yet, so it takes the next turn.

Resume rebuilds the state (`replay`) from the trials the study has, instead of unpickling a saved searcher: a
finished trial gives its outcome (and its setting counts as tried; a size the ladder had added is added
again), a trial Tune restored unfinished is running
(Tune resumes it from its checkpoint), a trial with a row that Tune's saved trial list lacks (it started in the
seconds after Tune last saved) is run again under the same id, and a known setting's tune seeds that no trial
was made for yet (the searcher hands Tune one trial at a time) are queued. So a killed search continues with the
remaining samples, and no trial that finished is run again.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field

from study.config.search_space import (
    Profile,
    Unit,
    all_units,
    profiles,
    search_trial,
    setting_key,
    setting_of,
    unit_key,
    units,
)
from study.config.space import Trial
from study.config.spec import StudySpec
from wt_base import choice
from wt_base.errors import StudyError
from wt_base.ladder import STOP_WORDS as LADDER_WORDS
from wt_base.ladder import LadderStep, next_rungs
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
        return choice.eligible(self.status, self.final)

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
        self._profiles = profiles(spec)  # search.ladder: the arms and budgets whose sizes climb it
        # the sizes a ladder may add, each with its sampler, until the rule adds them (all_units: every key)
        self._reserve = {u.key: (u, samplers[u.key]) for u in all_units(spec) if u.key not in self._units}
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
            self._climb()
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
        if key in self._reserve:  # a size the ladder had added before the study stopped
            self._add(key)
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
        climbing = any(self._ladder_step(p).rungs for p in self._profiles)
        return units_done and not climbing and not self._queue and not self._live

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
        return lines + [self._ladder_line(p) for p in self._profiles]

    def _ladder_line(self, profile: Profile) -> str:
        """A profile's sizes in one line: which rungs ran, where the minimum is and why it stopped climbing."""
        told, pending = self._ladder_results(profile)
        ran = sorted({*told, *pending})
        head = f"{profile.name}: ladder rungs {', '.join(map(str, ran))} of {len(profile.rungs)} tried"
        eligible = {r: v for r, v in told.items() if v is not None}
        best = min(eligible, key=lambda r: (eligible[r], r), default=None)
        at = ""
        if best is not None:
            size = ", ".join(f"{n} {profile.rungs[best].point[n]}" for n in self.spec.search.ladder.keys)
            at = f"; minimum at rung {best} ({size}: {eligible[best]:.4f})"
        stop = self._ladder_step(profile).stop
        return f"{head}{at}; ladder: {LADDER_WORDS[stop] if stop else 'climbing'}"

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

    def _add(self, key: str) -> None:
        unit, sampler = self._reserve.pop(key)
        self._units[key] = _Unit(unit, sampler)

    def _climb(self) -> None:
        """Add the sizes the ladder rule asks for (wt_base.ladder), each with its own search."""
        for profile in self._profiles:
            for rung in self._ladder_step(profile).rungs:
                key = profile.rungs[rung].key
                if key not in self._units:
                    self._add(key)  # within the profile's reach: the rule adds only a rung next to those tried

    def _ladder_results(self, profile: Profile) -> tuple[dict, set]:
        """(rung -> the size's value once its search is decided, the rungs still searched)."""
        told, pending = {}, set()
        for rung in profile.reach:
            state = self._units.get(profile.rungs[rung].key)
            if state is None:
                continue
            sample = state.samples.get(setting_key(state.chosen)) if state.chosen is not None else None
            outcomes = sample.outcomes if sample is not None else {}
            if not state.decided or (state.chosen is not None and len(outcomes) < len(self.spec.tune_seeds)):
                pending.add(rung)  # still searched (or, on resume, a tune seed of its chosen setting runs again)
            else:  # the mean over the tune seeds at the chosen setting (None: none eligible): the profile's point
                told[rung] = _mean(outcomes.values()) if state.chosen is not None else None
        return told, pending

    def _ladder_step(self, profile: Profile) -> LadderStep:
        told, pending = self._ladder_results(profile)
        ladder = self.spec.search.ladder
        return next_rungs(told, pending, profile.start, len(profile.rungs), ladder.max_sizes, ladder.margin)

    def _tell(self, state: _Unit, sample: _Sample) -> None:
        outcomes = [sample.outcomes[seed] for seed in self.spec.tune_seeds]
        if all(o.eligible for o in outcomes):
            value, kind = _mean(outcomes), "complete"
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

    state = SearchState(spec, {u.key: looking_sampler(spec) for u in all_units(spec)})
    replay_rows(state, rows, restored={})
    return state


def chosen_setting(outcomes: dict) -> str | None:
    """The setting (key) a unit's test seeds run at, by the rule the analysis reports (wt_base.choice) on the
    unit's tune seeds: `outcomes` maps each setting key to {tune seed: Outcome}. None: no eligible setting."""
    return choice.choose({key: _mean(by_seed.values()) for key, by_seed in outcomes.items()})


def _mean(outcomes) -> float | None:
    """A setting's mean final metric over its tune seeds' outcomes (None: not eligible), by wt_base.choice."""
    return choice.setting_mean((o.status, o.final) for o in outcomes)


def _describe(setting: dict | None) -> str:
    if setting is None:
        return "none (no eligible setting)"
    return ", ".join(f"{n} {v:.4g}" if isinstance(v, float) else f"{n} {v}" for n, v in setting.items())
