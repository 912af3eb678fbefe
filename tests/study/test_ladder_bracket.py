"""The bracketed scaling ladder (wt_base.ladder, search.ladder), Ray-free, on a stub objective: a profile whose
true minimum lies below, above or inside its start sizes ends with it interior, in the sizes the rule must add,
each size with its own lr bracket; the ladder's end and max_sizes are kept and reported; a search killed at any
moment and rebuilt from its trial rows runs nothing twice and adds the same sizes; the dry run's counts."""

from __future__ import annotations

import json
import math

import pytest

from study.cli.run import search_plan
from study.config.search_space import all_units, planned_trials, profiles, units
from study.config.specfile import parse_spec
from study.tune.samplers import BracketSampler
from study.tune.search_state import FINISHED, Outcome, SearchState, replay_rows, rows_progress
from tests.study.conftest import TINY_SPEC, deep_update
from wt_base.errors import StudyError
from wt_base.ladder import next_rungs, reach

WIDTHS = tuple(16 * (i + 1) for i in range(10))  # the ladder's rungs: n_embd 16 ... 160, one layer, two heads
BEST_RUNG = {"standard": 5, "worker": 2}  # the stub's compute-optimal size per arm (n_embd 96 and 48)
LR_START = [2e-3, 4e-3, 8e-3]


def spec_of(start=(0, 1, 2), widths=WIDTHS, **ladder) -> object:
    rungs = [{"n_embd": w, "n_layer": 1, "n_head": 2} for w in widths]
    search = {
        "algorithm": "bracket",
        "lr": {"start": LR_START, "max_points": 8},
        "ladder": {"rungs": rungs, **ladder},
    }
    doc = deep_update(TINY_SPEC, {"tune_seeds": [100, 101], "seeds": [0, 1], "max_concurrent": 0, "search": search})
    doc["model"] = {"dropout": 0.0}  # the size comes from the ladder
    doc["sizes"] = [rungs[r] for r in start]
    return parse_spec(doc)


def best_lr(n_embd: int) -> float:
    return 4e-3 * 64 / n_embd  # smaller models want a larger lr: every size needs its own bracket


def loss(trial) -> float:
    """Lowest at the arm's BEST_RUNG and each size's best_lr; the size term (0.5 per rung squared) outweighs what
    a factor-2 lr grid can miss ((ln sqrt 2)^2 = 0.12), and the seed noise reorders nothing."""
    m, t = trial.run.model, trial.run.train
    rung = m.n_embd // 16 - 1
    return 1.5 + 0.5 * (rung - BEST_RUNG[trial.arch]) ** 2 + math.log(t.lr / best_lr(m.n_embd)) ** 2 + t.seed * 1e-5


def completed(trial) -> Outcome:
    return Outcome("completed", loss(trial))


def new_state(spec) -> SearchState:
    return SearchState(spec, {u.key: BracketSampler(spec) for u in all_units(spec)})


def drain(state) -> list:
    out = []
    while (trial := state.next_trial()) not in (None, FINISHED):
        out.append(trial)
    return out


def run_search(spec, objective=completed, state=None):
    """Run the search to its end, each handed-out trial finishing at once; returns (state, every trial run)."""
    state = state or new_state(spec)
    ran = []
    while (batch := drain(state)) or state.next_trial() != FINISHED:
        for trial in batch:
            ran.append(trial)
            state.finished(trial.trial_id, objective(trial))
    return state, ran


def rungs_run(ran, arch) -> list:
    return sorted({t.run.model.n_embd // 16 - 1 for t in ran if t.arch == arch})


def ladder_lines(state) -> dict:
    return {line.split(",")[0].split(" k=")[0]: line for line in state.summary() if ": ladder rungs" in line}


@pytest.mark.parametrize(
    ("start", "standard", "worker"),
    [
        ((0, 1, 2), [0, 1, 2, 3, 4, 5, 6], [0, 1, 2, 3]),  # below both minima: climbs to one size past each
        ((6, 7, 8), [4, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6, 7, 8]),  # above both: climbs down
        ((4, 5, 6), [4, 5, 6], [1, 2, 3, 4, 5, 6]),  # around the standard model's: nothing to add for it
    ],
)
def test_below_above_and_inside_each_end_interior_with_the_sizes_the_rule_adds(start, standard, worker):
    spec = spec_of(start)
    state, ran = run_search(spec)
    assert rungs_run(ran, "standard") == standard and rungs_run(ran, "worker") == worker
    lines = ladder_lines(state)
    assert all("ladder: the minimum is interior" in line for line in lines.values()), lines
    assert f"minimum at rung {BEST_RUNG['standard']} (n_embd 96," in lines["standard"]
    assert len(ran) <= planned_trials(spec)  # Tune's generator is told the most
    for arch in ("standard", "worker"):  # each size walked its own lr: its test seeds run at its own best
        for rung in rungs_run(ran, arch):
            width = WIDTHS[rung]
            mine = [t for t in ran if t.arch == arch and t.run.model.n_embd == width]
            tried = sorted({t.run.train.lr for t in mine if t.run.train.seed >= 100})
            nearest = min(tried, key=lambda lr: abs(math.log(lr / best_lr(width))))
            assert [t.run.train.lr for t in mine if t.run.train.seed < 100] == pytest.approx([nearest] * 2)
            assert abs(math.log(tried[0] / best_lr(width))) > 0 and tried[0] < best_lr(width) < tried[-1]


def test_the_ladders_end_is_a_bound_and_max_sizes_a_cap_and_each_is_reported():
    state, ran = run_search(spec_of((0, 1, 2), widths=WIDTHS[:4]))  # the standard minimum lies past rung 3
    assert rungs_run(ran, "standard") == [0, 1, 2, 3]
    assert "ladder: stopped at the ladder's end, the minimum at the edge" in ladder_lines(state)["standard"]
    assert "ladder: the minimum is interior" in ladder_lines(state)["worker"]  # rung 3 was there for it
    state, ran = run_search(spec_of((0, 1, 2), max_sizes=5))
    assert rungs_run(ran, "standard") == [0, 1, 2, 3, 4]
    assert "ladder: stopped at max_sizes, the minimum at the edge" in ladder_lines(state)["standard"]
    assert rungs_run(ran, "worker") == [0, 1, 2, 3]  # under the cap: interior as without it


def test_a_margin_of_two_wants_two_sizes_on_each_side_of_the_minimum():
    state, ran = run_search(spec_of((4, 5, 6), margin=2))
    assert rungs_run(ran, "standard") == [3, 4, 5, 6, 7]  # below first on a tie, then above
    assert "ladder: the minimum is interior" in ladder_lines(state)["standard"]


def test_a_size_without_an_eligible_lr_counts_as_worse():
    def diverge_large(trial):  # every lr of the standard model's rung 4 and up diverges: its minimum is rung 3
        if trial.arch == "standard" and trial.run.model.n_embd >= WIDTHS[4]:
            return Outcome("diverged", math.nan)
        return completed(trial)

    state, ran = run_search(spec_of((0, 1, 2)), diverge_large)
    assert rungs_run(ran, "standard") == [0, 1, 2, 3, 4]
    assert "minimum at rung 3" in ladder_lines(state)["standard"]


@pytest.mark.parametrize("stop_after", [1, 13, 40, 77, 100, 118])
def test_a_search_killed_and_rebuilt_from_its_rows_runs_nothing_twice_and_adds_the_same_sizes(stop_after):
    """Run `stop_after` trials (some of the sizes the ladder added among them), keep the finished ones as rows
    and one handed out but unfinished (run again under its id), rebuild, finish: every trial id runs once and the
    trials are those of an unbroken run."""
    spec = spec_of((6, 7, 8))
    _, unbroken = run_search(spec)
    assert len(unbroken) == 122  # 13 sizes: the start 6 and 7 the ladder adds
    state, done, pending = new_state(spec), [], []
    while len(done) < stop_after and (batch := drain(state)):
        for trial in batch:
            if len(done) < stop_after:
                state.finished(trial.trial_id, completed(trial))
                done.append(trial)
            else:
                pending.append(trial)
    rows = [_row(t, "completed", loss(t)) for t in done] + [_row(t, "running", None) for t in pending[:1]]
    assert not rows_progress(spec, rows).complete()  # as status sees it: nothing more known than the rows
    state = new_state(spec)
    replay_rows(state, rows, restored={})
    _, rest = run_search(spec, state=state)
    ids = [t.trial_id for t in done] + [t.trial_id for t in rest]
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(t.trial_id for t in unbroken)
    everything = [_row(t, "completed", loss(t)) for t in unbroken]
    assert rows_progress(spec, everything).complete()
    start_only = [row for row, t in zip(everything, unbroken, strict=True) if t.run.model.n_embd >= WIDTHS[6]]
    assert not rows_progress(spec, start_only).complete()  # every start size decided, but the ladder climbs on


def _row(trial, status, value):
    return {"trial_id": trial.trial_id, "status": status, "val_loss": value, "config_json": json.dumps(trial.to_dict())}


def test_the_dry_run_counts_the_start_and_the_most():
    spec = spec_of((0, 1, 2))
    (standard, worker) = profiles(spec)
    assert standard.start == (0, 1, 2) and standard.reach == tuple(range(10)) and standard.most_added == 7
    per_unit = 8 * 2 + 2  # 8 lr points on 2 tune seeds, then 2 test seeds
    assert len(units(spec)) == 6 and planned_trials(spec) == 2 * (3 + 7) * per_unit
    words = search_plan(spec)
    assert "it starts with 36 trials (3 points per arm and cell)" in words  # 6 sizes x 3 lr x 2 tune seeds
    assert f"runs at most {2 * 10 * per_unit}" in words and "at most 14 sizes more in all" in words
    capped = spec_of((0, 1, 2), max_sizes=5)
    assert planned_trials(capped) == 2 * 5 * per_unit and "at most 5 sizes each" in search_plan(capped)


def test_the_rule_replays_from_results_and_a_lone_start_at_the_bottom_climbs_up():
    assert next_rungs({0: 2.0, 1: 1.5}, {2}, (0, 1, 2), 10, 0).rungs == ()  # waits for the pending size
    assert next_rungs({0: 2.0, 1: 1.5, 2: 1.0}, set(), (0, 1, 2), 10, 0).rungs == (3,)
    assert next_rungs({0: 2.0, 1: 1.5, 2: 1.0, 3: 1.2}, set(), (0, 1, 2), 10, 0).stop == "interior"
    assert next_rungs({0: 1.0}, set(), (0,), 10, 0).rungs == (1,)  # nothing below rung 0: the other side
    assert next_rungs({0: None, 1: None}, set(), (0, 1), 10, 0).stop == "no eligible point"
    assert next_rungs({}, set(), (4, 5), 10, 0).rungs == (4, 5)
    assert reach((4, 5, 6), 10, 5) == ((2, 3, 4, 5, 6, 7, 8), 2)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"sizes": [{"n_embd": 40, "n_layer": 1, "n_head": 2}]},
            "sizes[0] (n_embd 40, n_layer 1, n_head 2) is not a rung",
        ),
        ({"search": {"ladder": {"max_sizes": 2}}}, "search.ladder.max_sizes=2 is below the 3 sizes"),
        ({"search": {"ladder": {"margin": 0}}}, "search.ladder.margin=0 is invalid"),
        ({"search": {"ladder": {"rungs": [{"n_embd": 32}, {"n_embd": 16}]}}}, "list the rungs smallest first"),
        ({"search": {"ladder": {"rungs": [{"lr": 1e-3}, {"lr": 2e-3}]}}}, "search.ladder.rungs[0].lr is not an axis"),
        ({"search": {"ladder": {"steps": 3}}}, "search.ladder.steps is not a known key"),
        ({"sizes": []}, "search.ladder needs sizes"),
    ],
)
def test_bad_ladders_get_one_sentence(change, message):
    doc = spec_of().to_dict()
    doc = deep_update(doc, change)
    if "rungs" in change.get("search", {}).get("ladder", {}):
        doc["sizes"] = [{"n_embd": 32}]
    with pytest.raises(StudyError) as info:
        parse_spec(doc)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_grid_takes_no_ladder():
    doc = deep_update(spec_of().to_dict(), {"search": {"algorithm": "grid", "lr": None}})
    doc["search"] = {"algorithm": "grid", "ladder": doc["search"]["ladder"]}
    with pytest.raises(StudyError, match="search.ladder is invalid with algorithm grid"):
        parse_spec(doc)


def test_the_dry_run_of_a_ladder_counts_its_most_and_gives_hours_on_cpus(write_spec, capsys):
    from study.cli import main
    from study.config.specfile import load_spec

    rungs = [{"n_embd": w, "n_layer": 1, "n_head": 2} for w in WIDTHS[:6]]
    path = write_spec(
        budget={"kind": "flops", "value": 1e9},
        model={"dropout": 0.0},
        tune_seeds=[100, 101],
        seeds=[0],
        sizes=rungs[2:4],
        search={"algorithm": "bracket", "lr": {"start": LR_START, "max_points": 4}, "ladder": {"rungs": rungs}},
    )
    assert main(["run", str(path), "--dry-run", "--cpus", "2"]) == 0
    out = capsys.readouterr().out
    most = planned_trials(load_spec(path))
    assert most == 2 * (2 + 4) * (4 * 2 + 1)  # per arm: 2 start sizes and 4 more, 4 lr points x 2 tune + 1 test
    assert f"{most} trials x 1e+09 FLOPs" in out and "it starts with 24 trials" in out
    assert "at most 8 sizes more in all (72 trials, counted in the most above)" in out
    assert "On CPUs, 2 at a time: about" in out
