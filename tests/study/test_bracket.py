"""The bracketing search (wt_base.bracket, study.tune.samplers.BracketSampler), Ray-free, on a stub objective:
from a start below, above or around the optimum each arm ends with its best interior, in the number of points
the walk must take; a bound and a cap are kept and reported; a search killed at any moment and rebuilt from its
trial rows runs no point twice and walks to the same points."""

from __future__ import annotations

import json
import math

import pytest

from study.config.search_space import planned_trials, setting_of, units
from study.config.specfile import parse_spec
from study.tune.samplers import BracketSampler
from study.tune.search_state import FINISHED, Outcome, SearchState, replay_rows, rows_progress
from tests.study.conftest import TINY_SPEC, deep_update
from wt_base.bracket import next_step
from wt_base.errors import StudyError

BEST_LR = {"standard": 6e-3, "worker": 1.5e-3}  # the stub's optimum per arm (a parabola in log lr)


def spec_of(**bracket) -> object:
    search = {"algorithm": "bracket", "lr": {"start": [1e-3, 2e-3, 4e-3], **bracket}}
    doc = deep_update(TINY_SPEC, {"tune_seeds": [100, 101], "seeds": [0, 1], "max_concurrent": 0, "search": search})
    return parse_spec(doc)


def loss(trial) -> float:
    """The stub objective: lowest at the arm's BEST_LR, a little seed noise that never reorders the points."""
    lr, seed = trial.run.train.lr, trial.run.train.seed
    return 1.5 + math.log(lr / BEST_LR[trial.arch]) ** 2 + (seed % 7) * 1e-4


def drain(state):
    out = []
    while (trial := state.next_trial()) not in (None, FINISHED):
        out.append(trial)
    return out


def run_search(spec, objective=loss, state=None):
    """Run the search to its end, each handed-out trial finishing at once; returns (state, every trial run)."""
    state = state or SearchState(spec, {u.key: BracketSampler(spec) for u in units(spec)})
    ran = []
    while (batch := drain(state)) or state.next_trial() != FINISHED:
        for trial in batch:
            ran.append(trial)
            state.finished(trial.trial_id, objective(trial))
    return state, ran


def completed(trial) -> Outcome:
    return Outcome("completed", loss(trial))


def tune_lrs(ran, arch) -> list:
    return sorted({t.run.train.lr for t in ran if t.arch == arch and t.run.train.seed >= 100})


def test_a_start_wholly_below_the_optimum_walks_up_until_the_best_is_interior():
    state, ran = run_search(spec_of(), completed)
    assert tune_lrs(ran, "standard") == [1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2]  # optimum 6e-3: 8e-3 beats 4e-3 and 1.6e-2
    assert tune_lrs(ran, "worker") == [1e-3, 2e-3, 4e-3]  # optimum 1.5e-3 lies inside the start: no walk
    tests = sorted((t.arch, t.run.train.seed, t.run.train.lr) for t in ran if t.run.train.seed < 100)
    assert tests == [("standard", 0, 8e-3), ("standard", 1, 8e-3), ("worker", 0, 2e-3), ("worker", 1, 2e-3)]
    assert all("the best is interior" in line for line in state.summary())


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        ([1e-4, 2e-4, 4e-4], [1e-4, 2e-4, 4e-4, 8e-4, 1.6e-3, 3.2e-3, 6.4e-3, 1.28e-2]),  # below: walks up 5 steps
        ([5e-2, 1e-1, 2e-1], [3.125e-3, 6.25e-3, 1.25e-2, 2.5e-2, 5e-2, 1e-1, 2e-1]),  # above: walks down 4 steps
        ([3e-3, 6e-3, 1.2e-2], [3e-3, 6e-3, 1.2e-2]),  # around: nothing to walk
    ],
)
def test_below_above_and_around_each_end_interior_with_the_points_the_walk_needs(start, expected):
    state, ran = run_search(spec_of(start=start, max_points=12), completed)
    assert tune_lrs(ran, "standard") == pytest.approx(expected)
    best = min(expected, key=lambda lr: abs(math.log(lr / BEST_LR["standard"])))
    assert [t.run.train.lr for t in ran if t.arch == "standard" and t.run.train.seed < 100] == pytest.approx([best] * 2)
    assert "the best is interior" in state.summary()[0]
    assert len([t for t in ran if t.arch == "standard"]) == 2 * len(expected) + 2  # each point on 2 tune seeds


def test_refine_adds_one_point_halfway_to_each_neighbour():
    state, ran = run_search(spec_of(start=[3e-3, 6e-3, 1.2e-2], refine=True), completed)
    lrs = tune_lrs(ran, "standard")
    assert lrs == pytest.approx([3e-3, 4.24264e-3, 6e-3, 8.48528e-3, 1.2e-2])


def test_a_bound_and_a_cap_are_kept_and_reported():
    state, ran = run_search(spec_of(start=[1e-4, 2e-4, 4e-4], high=1e-3), completed)
    assert tune_lrs(ran, "standard")[-1] == 8e-4  # 1.6e-3 would pass the bound
    assert "stopped at its bound, the best at the edge" in state.summary()[0]
    state, ran = run_search(spec_of(start=[1e-4, 2e-4, 4e-4], max_points=5), completed)
    assert len(tune_lrs(ran, "standard")) == 5
    assert "stopped at its cap on points, the best at the edge" in state.summary()[0]


def test_diverged_points_count_as_worse_and_none_eligible_stops_the_walk():
    def diverge_high(trial):  # the standard model diverges above 5e-3: its best (4e-3) has a worse neighbour
        if trial.run.train.lr > 5e-3:
            return Outcome("diverged", math.nan)
        return completed(trial)

    _, ran = run_search(spec_of(), diverge_high)
    assert tune_lrs(ran, "standard") == [1e-3, 2e-3, 4e-3, 8e-3]
    state, ran = run_search(spec_of(), lambda t: Outcome("diverged", math.nan))
    assert [t for t in ran if t.run.train.seed < 100] == [] and "no eligible point" in state.summary()[0]


def test_the_dry_run_counts_start_and_most():
    spec = spec_of(max_points=6)
    assert planned_trials(spec) == 2 * (6 * 2 + 2)  # 2 arms x (6 points x 2 tune seeds + 2 test seeds)


@pytest.mark.parametrize("stop_after", [1, 5, 11, 17, 23])
def test_a_search_killed_and_rebuilt_from_its_rows_runs_nothing_twice_and_walks_the_same(stop_after):
    """Run `stop_after` trials, keep the finished ones as rows (and one handed out but unfinished, run again
    under its id), rebuild, finish: every trial id runs once and the points are those of an unbroken run."""
    spec = spec_of(start=[1e-4, 2e-4, 4e-4], max_points=12)
    _, unbroken = run_search(spec, completed)
    state = SearchState(spec, {u.key: BracketSampler(spec) for u in units(spec)})
    done, pending = [], []
    while len(done) < stop_after and (batch := drain(state)):
        for trial in batch:
            if len(done) < stop_after:
                state.finished(trial.trial_id, completed(trial))
                done.append(trial)
            else:
                pending.append(trial)
    rows = [_row(t, "completed", loss(t)) for t in done] + [_row(t, "running", None) for t in pending[:1]]
    rebuilt = rows_progress(spec, rows)  # as status sees it: nothing more known than the rows
    assert not rebuilt.complete()
    state = SearchState(spec, {u.key: BracketSampler(spec) for u in units(spec)})
    replay_rows(state, rows, restored={})
    _, rest = run_search(spec, completed, state=state)
    ids = [t.trial_id for t in done] + [t.trial_id for t in rest]
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(t.trial_id for t in unbroken)


def _row(trial, status, value):
    return {"trial_id": trial.trial_id, "status": status, "val_loss": value, "config_json": json.dumps(trial.to_dict())}


def test_the_rule_replays_its_walk_from_results_in_any_order():
    told = {1e-3: 3.0, 2e-3: 2.0, 4e-3: 1.0, 8e-3: 0.5, 1.6e-2: 0.7}
    step = next_step(told, set(), (1e-3, 2e-3, 4e-3), 2.0, 0.0, 0.0, 10, False)
    assert step.stop == "interior" and step.points == ()
    step = next_step({1e-3: 3.0, 2e-3: 2.0}, {4e-3}, (1e-3, 2e-3, 4e-3), 2.0, 0.0, 0.0, 10, False)
    assert step.stop is None and step.points == ()  # waits for the pending start point


@pytest.mark.parametrize(
    ("bracket", "message"),
    [
        ({"start": [1e-3, 1e-3]}, "search.lr.start=[0.001, 0.001] repeats a value"),
        ({"start": [-1e-3]}, "a log-scale walk needs numbers > 0"),
        ({"start": [1e-3], "factor": 1.0}, "search.lr.factor=1.0 is invalid"),
        ({"start": [1e-3], "low": 2e-3}, "lies outside its bounds"),
        ({"start": [1e-3, 2e-3], "max_points": 1}, "search.lr.max_points=1 is invalid"),
        ({"begin": [1e-3]}, "search.lr.begin is not a known key"),
    ],
)
def test_bad_brackets_get_one_sentence(bracket, message):
    with pytest.raises(StudyError) as info:
        spec_of(**bracket)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_the_setting_is_stored_as_the_trials_hold_it():
    spec = spec_of()
    state = SearchState(spec, {u.key: BracketSampler(spec) for u in units(spec)})
    standard = [t for t in drain(state) if t.arch == "standard"]
    assert [setting_of(spec, t)["lr"] for t in standard] == [1e-3, 1e-3, 2e-3, 2e-3, 4e-3, 4e-3]


def test_a_tiny_bracket_study_runs_end_to_end_and_its_report_marks_the_edges(write_spec, tmp_path, ray_tmp, capsys):
    """On Ray, on the CPU: a start wholly below any sensible lr walks up to its cap (3 points: the study is tiny),
    each arm's test seed runs at its best point, the search says why it stopped, and the analysis calls the
    verdict not comparable (both arms ended at the top of what they tried)."""
    from study.cli import main
    from tests.reliability.helpers import final_trials

    spec = write_spec(
        budget={"kind": "steps", "value": 30},
        eval={"every_s": 0.0, "every_steps": 15, "val_tokens": 512},
        search={"algorithm": "bracket", "lr": {"start": [1e-4, 2e-4], "max_points": 3}},
        tune_seeds=[100],
        seeds=[0],
    )
    assert main(["run", str(spec), "--ray-temp-dir", ray_tmp]) == 0
    out = capsys.readouterr().out
    assert out.count("(bracket: stopped at its cap on points, the best at the edge)") == 2, out
    rows = final_trials(tmp_path / "results" / "tiny")
    assert (rows.status == "completed").all() and len(rows) == 2 * (3 + 1)
    for arch, group in rows.groupby("arch"):
        assert sorted(group[group.seed_role == "tune"].lr) == pytest.approx([1e-4, 2e-4, 4e-4]), arch
        assert group[group.seed_role == "test"].lr.tolist() == pytest.approx([4e-4]), arch
    assert main(["analyze", str(tmp_path / "results" / "tiny"), "--out", str(tmp_path / "report")]) == 0
    printed = capsys.readouterr().out
    assert "not comparable: worker k=4's lr at the top of the tried range (0.0001-0.0004)" in printed
    assert (tmp_path / "report" / "tuning.png").exists() and (tmp_path / "report" / "tuning.csv").exists()
