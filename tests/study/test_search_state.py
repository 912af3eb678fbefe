"""The search of each arm and cell (study.tune.search_state), Ray-free: the same number of settings for every
arm, each on the tune seeds, then the test seeds at the setting the analysis' own rule chooses; no setting run
twice; and a resume rebuilt from the trials the study has."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from study.config.search_space import setting_key, setting_of, units
from study.config.specfile import parse_spec
from study.tune.samplers import CountedSampler
from study.tune.search_state import FINISHED, Outcome, SearchState, chosen_setting
from tests.study.conftest import TINY_SPEC, deep_update

LR = {"distribution": "loguniform", "low": 1.0e-4, "high": 1.0e-2}
SEARCH = {"algorithm": "tpe", "samples": 3, "lr": LR}
SPEC = parse_spec(
    deep_update(TINY_SPEC, {"tune_seeds": [100, 101], "seeds": [0, 1], "max_concurrent": 0, "search": SEARCH})
)


class ListSampler(CountedSampler):
    """Proposes the given lrs in order (repeats included) and records what it is told."""

    def __init__(self, lrs, samples):
        super().__init__(samples)
        self.lrs, self.told, self.replayed = list(lrs), [], []

    def propose(self, sample_id, tried):
        return {"lr": self.lrs.pop(0)}

    def tell(self, sample_id, value, kind):
        self.told.append((sample_id, value, kind))

    def tell_replayed(self, setting, value, kind):
        self.replayed.append((setting["lr"], value, kind))


def new_state(lrs=(1e-3, 2e-3, 4e-3), spec=SPEC):
    samplers = {u.key: ListSampler(lrs, spec.search.samples) for u in units(spec)}
    return SearchState(spec, samplers, max_concurrent=spec.max_concurrent), samplers


def drain(state):
    """Every trial the state hands out before it must wait (or finish)."""
    out = []
    while (trial := state.next_trial()) not in (None, FINISHED):
        out.append(trial)
    return out


def loss_of(lr: float, seed: int) -> float:
    return abs(math.log(lr / 2e-3)) + seed * 1e-4  # 2e-3 is best


def test_each_arm_tries_the_same_number_of_settings_on_the_tune_seeds_then_tests_the_chosen_one():
    state, samplers = new_state()
    handed = drain(state)
    assert len(handed) == 2 * 3 * 2  # both arms, 3 settings, 2 tune seeds: none waits for a result
    assert {t.run.train.seed for t in handed} == {100, 101}
    assert state.next_trial() is None  # the test seeds wait for the tune seeds' results
    for trial in handed:
        state.finished(trial.trial_id, Outcome("completed", loss_of(trial.run.train.lr, trial.run.train.seed)))
    tests = drain(state)
    assert sorted((t.arch, t.run.train.seed) for t in tests) == [
        ("standard", 0),
        ("standard", 1),
        ("worker", 0),
        ("worker", 1),
    ]
    assert {t.run.train.lr for t in tests} == {2e-3}
    assert state.next_trial() == FINISHED and not state.complete()  # handed out, not yet ended
    for trial in tests:
        state.finished(trial.trial_id, Outcome("completed", 1.0))
    assert state.complete()
    means = [("complete", pytest.approx((loss_of(lr, 100) + loss_of(lr, 101)) / 2)) for lr in (1e-3, 2e-3, 4e-3)]
    for sampler in samplers.values():  # told each setting once: the mean over the tune seeds
        assert [(kind, value) for _, value, kind in sampler.told] == means


def test_arms_take_turns_and_max_concurrent_holds_back():
    spec = SPEC.replace(max_concurrent=3)
    state, _ = new_state(spec=spec)
    handed = drain(state)
    assert [t.arch for t in handed] == ["standard", "standard", "worker"]  # a setting's tune seeds, then the next arm
    state.finished(handed[0].trial_id, Outcome("completed", 2.0))
    assert state.next_trial().arch == "worker"


def test_a_setting_proposed_again_is_told_failed_and_not_run_twice():
    state, samplers = new_state(lrs=(1e-3, 1e-3, 1e-3, 2e-3, 4e-3))
    handed = drain(state)
    assert len(handed) == 12 and len({t.trial_id for t in handed}) == 12
    standard = samplers[units(SPEC)[0].key]
    assert [kind for _, _, kind in standard.told] == ["fail", "fail"]


def test_an_arm_without_an_eligible_setting_runs_no_test_seed():
    state, _ = new_state()
    for trial in drain(state):
        worker = trial.arch == "worker"
        state.finished(trial.trial_id, Outcome("diverged", math.nan) if worker else Outcome("completed", 2.0))
    tests = drain(state)
    assert {t.arch for t in tests} == {"standard"} and state.next_trial() == FINISHED
    assert any(
        "worker k=4, seq_len 32: 3 settings tried; chosen none (no eligible setting)" in s for s in state.summary()
    )


def test_the_chosen_setting_is_the_analysis_rule():
    """Lowest mean over the tune seeds among settings whose every tune seed completed; analysis.tuning picks the
    same configuration from a frame of the same trials."""
    from analysis.tuning import choose_settings

    outcomes = {
        "a": {100: Outcome("completed", 2.0), 101: Outcome("completed", 2.2)},
        "b": {100: Outcome("completed", 1.0), 101: Outcome("diverged", math.nan)},  # best seed, but ineligible
        "c": {100: Outcome("completed", 2.1), 101: Outcome("completed", 2.0)},
        "d": {100: Outcome("stopped"), 101: Outcome("completed", 0.5)},  # stopped early by ASHA: ineligible
    }
    assert chosen_setting(outcomes) == "c"
    keys = {"cell_key": "x", "arm_key": "y", "arch": "worker", "seed_role": "tune"}
    frame = pd.DataFrame(
        [
            {
                **keys,
                "config_id": k,
                "tuned": k,
                "seed": s,
                "status": o.status,
                "final_loss": o.final if o.eligible else math.nan,
            }
            for k, by_seed in outcomes.items()
            for s, o in by_seed.items()
        ]
    )
    assert choose_settings(frame)["config_id"].tolist() == ["c"]
    assert chosen_setting({"a": {100: Outcome("failed")}, "b": {100: Outcome("stopped")}}) is None


def test_a_replayed_search_continues_with_the_remaining_settings():
    """Killed after the standard arm's first setting ended, its second was running (Tune resumes it) and the
    worker's first had started unknown to Tune: the rebuilt search counts all three, runs the unknown one again
    under its id, and proposes only the settings still missing."""
    first, _ = new_state()
    handed = drain(first)
    by = {(t.arch, t.run.train.lr, t.run.train.seed): t for t in handed}
    rebuilt, samplers = new_state(lrs=(5e-3, 6e-3, 7e-3))
    for seed in (100, 101):
        rebuilt.replay(by[("standard", 1e-3, seed)], Outcome("completed", 2.0 + seed / 1000), running=False)
        rebuilt.replay(by[("standard", 2e-3, seed)], None, running=True)
        rebuilt.replay(by[("worker", 1e-3, seed)], None, running=False)
    rebuilt.replayed()
    standard = samplers[units(SPEC)[0].key]
    assert standard.replayed == [(1e-3, pytest.approx(2.1005), "complete")] and standard.told == []
    again = drain(rebuilt)
    assert [t.trial_id for t in again[:2]] == [by[("worker", 1e-3, s)].trial_id for s in (100, 101)]
    settings = sorted((t.arch, t.run.train.lr) for t in again[2:] if t.run.train.seed == 100)
    assert settings == [("standard", 5e-3), ("worker", 5e-3), ("worker", 6e-3)]  # 3 settings per arm in all


def test_a_replayed_search_keeps_its_test_seeds_at_the_setting_they_started_with():
    first, _ = new_state()
    for trial in drain(first):
        first.finished(trial.trial_id, Outcome("completed", loss_of(trial.run.train.lr, trial.run.train.seed)))
    tests = drain(first)
    rebuilt, _ = new_state()
    for trial in [*drain(new_state()[0])]:  # the same tune trials, all finished
        rebuilt.replay(trial, Outcome("completed", loss_of(trial.run.train.lr, trial.run.train.seed)), running=False)
    rebuilt.replay(tests[0], Outcome("completed", 1.0), running=False)  # one test seed of the standard arm ended
    rebuilt.replayed()
    rest = drain(rebuilt)
    assert sorted(t.trial_id for t in rest) == sorted(t.trial_id for t in tests[1:])
    assert {setting_key(setting_of(SPEC, t)) for t in rest} == {setting_key({"lr": 2e-3})}


def test_a_setting_known_by_one_tune_seed_gets_its_other_seeds_after_a_resume():
    """Tune held the first tune seed's trial of a setting when the driver died; the searcher still held the
    second (it hands Tune one trial at a time), which nothing else records: the rebuilt search queues it."""
    handed = drain(new_state()[0])
    rebuilt, _ = new_state(lrs=(5e-3, 6e-3, 7e-3))
    rebuilt.replay(handed[0], None, running=True)
    rebuilt.replayed()
    assert rebuilt.next_trial().trial_id == handed[1].trial_id  # the same setting, the other tune seed


def test_a_search_that_would_wait_for_nothing_raises_instead_of_hanging():
    state, _ = new_state()
    drain(state)
    state._live.clear()  # as if Tune had lost every trial the search handed out
    with pytest.raises(RuntimeError, match="the search waits for results but no trial of it is running"):
        state.next_trial()
