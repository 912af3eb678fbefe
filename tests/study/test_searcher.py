"""A search study's Ray Tune side without a cluster: the searcher driven with Tune's calls (TPE through Ray Tune's
OptunaSearch), the search rebuilt from trial rows and Tune's restored list, a searcher trial's row written when it
starts, the generator's pickle, and the dry run."""

from __future__ import annotations

import io
import json
import math
import pickle

import pytest

from study.config.search_space import units
from study.config.specfile import parse_spec
from study.tune.ray_internals import optuna_study
from tests.study.conftest import TINY_SPEC, deep_update

pytest.importorskip("optuna", reason="the tpe search needs Optuna (pip install 'wt-study[search]')")

from study.tune.searcher import (  # noqa: E402 (after the skip: it imports Ray Tune's Optuna searcher)
    StudySearch,
    StudySearchGenerator,
    TpeSampler,
    new_state,
    replayed_state,
)

LR = {"distribution": "loguniform", "low": 1.0e-4, "high": 1.0e-2}
SEARCH = {"algorithm": "tpe", "samples": 3, "startup_samples": 1, "lr": LR}
SPEC = parse_spec(deep_update(TINY_SPEC, {"tune_seeds": [100], "seeds": [0], "max_concurrent": 0, "search": SEARCH}))


def run_tune_phase(searcher: StudySearch, loss) -> list[dict]:
    """Play Tune: suggest until the searcher waits, report each trial's final evaluation and status report."""
    suggested, n = [], 0
    while True:
        config = searcher.suggest(f"tune{n}")
        if not isinstance(config, dict):
            return suggested
        trial = config["trial"]
        final = {"is_final": True, "is_eval": True, "val_loss": loss(trial["run"]["train"]["lr"])}
        searcher.on_trial_result(f"tune{n}", final)
        searcher.on_trial_complete(f"tune{n}", {"is_eval": False, "done_status": "completed"})
        suggested.append(trial)
        n += 1


def test_tpe_through_tunes_searcher_api_gives_each_arm_its_settings_then_the_test_seed():
    searcher = StudySearch(new_state(SPEC), metric="val_loss")
    trials = run_tune_phase(searcher, loss=lambda lr: abs(math.log(lr / 1e-3)))
    tune = [t for t in trials if t["run"]["train"]["seed"] == 100]
    assert len(tune) == 2 * 3 and len({t["trial_id"] for t in trials}) == len(trials)
    for arch in ("standard", "worker"):
        lrs = {t["run"]["train"]["lr"]: t for t in tune if t["arch"] == arch}
        assert len(lrs) == 3 and all(1e-4 <= lr <= 1e-2 for lr in lrs)
        (test,) = [t for t in trials if t["arch"] == arch and t["run"]["train"]["seed"] == 0]
        assert test["run"]["train"]["lr"] == min(lrs, key=lambda lr: abs(math.log(lr / 1e-3)))
    assert searcher.suggest("last") == "FINISHED"


def test_tpe_sampler_takes_told_and_replayed_points():
    sampler = TpeSampler(SPEC)
    first = sampler.propose("a", set())
    sampler.tell("a", 2.5, "complete")
    sampler.tell_replayed({"lr": 3e-3}, 2.0, "complete")
    sampler.tell_replayed({"lr": 5e-3}, None, "pruned")
    sampler.tell_replayed({"lr": 7e-3}, None, "fail")
    states = [t.state.name for t in optuna_study(sampler._optuna).trials]
    assert states == ["COMPLETE", "COMPLETE", "PRUNED", "FAIL"] and 1e-4 <= first["lr"] <= 1e-2


def test_a_search_is_rebuilt_from_rows_and_tunes_restored_trials():
    first = StudySearch(new_state(SPEC), metric="val_loss")
    handed = [first.suggest(f"t{i}")["trial"] for i in range(3)]  # standard's, worker's, standard's 2nd setting
    rows = [
        {
            "trial_id": handed[0]["trial_id"],
            "status": "completed",
            "val_loss": 2.0,
            "config_json": json.dumps(handed[0]),
        },
        {
            "trial_id": handed[1]["trial_id"],
            "status": "running",
            "val_loss": None,
            "config_json": json.dumps(handed[1]),
        },
    ]
    restored = {  # Tune saved its list when the second trial ran and the third was created, not yet started
        handed[1]["trial_id"]: ("t1", "RUNNING", handed[1]),
        handed[2]["trial_id"]: ("t2", "PENDING", handed[2]),
    }
    state, tune_ids = replayed_state(SPEC, rows, restored)
    assert tune_ids == {"t1": handed[1]["trial_id"], "t2": handed[2]["trial_id"]}
    searcher = StudySearch(state, metric="val_loss", tune_ids=tune_ids)
    more = [searcher.suggest(f"n{i}") for i in range(2)]
    assert [c["trial"]["arch"] for c in more] == ["worker", "standard"]  # the arm with fewer settings first
    assert not {c["trial"]["trial_id"] for c in more} & {t["trial_id"] for t in handed}
    searcher.on_trial_complete("t1", {"config/trial/trial_id": handed[1]["trial_id"]}, error=True)  # Tune's id maps
    assert not state.complete()


def test_the_generator_pickles_as_a_placeholder_and_saves_no_searcher(tmp_path):
    generator = StudySearchGenerator(StudySearch(new_state(SPEC), metric="val_loss"), total=8)
    copy = pickle.loads(pickle.dumps(generator))  # noqa: S301 (our own object, in memory)
    assert isinstance(copy, StudySearchGenerator) and copy.searcher.state is None
    generator.save_to_dir(str(tmp_path), "s1")
    assert [p.name for p in tmp_path.iterdir()] == ["search_gen_state-s1.json"]


def test_a_searcher_trial_gets_its_whole_row_when_it_starts(tmp_path):
    from types import SimpleNamespace

    from study.results.sink import ParquetSink
    from study.tune.callbacks import ResultsCallback
    from wt_base.storage import resolve

    spec = SPEC.replace(storage=str(tmp_path))
    trial = new_state(spec).next_trial()
    location = resolve(str(tmp_path)).join(spec.name)
    callback = ResultsCallback(location.uri, spec.name, spec=spec.to_dict(), token_unit="char")
    callback.on_trial_start(0, [], SimpleNamespace(config={"trial": trial.to_dict()}))
    sink = ParquetSink(location, spec.name)
    sink.load_existing()
    (row,) = sink.trial_rows()
    assert row["trial_id"] == trial.trial_id and row["status"] == "running" and row["seed_role"] == "tune"
    assert row["lr"] == trial.run.train.lr and json.loads(row["config_json"])["trial_id"] == trial.trial_id
    assert row["id_scheme"] == 2 and row["n_params"] > 0 and row["token_unit"] == "char"


def test_the_dry_run_of_a_search_says_what_it_will_do_without_settings(tmp_path):
    from study.cli.run import print_plan
    from study.tune.capacity import stated_capacity
    from study.tune.plan import plan

    spec = SPEC.replace(storage=str(tmp_path))
    out = io.StringIO()
    print_plan(plan(spec, dry_run=True), stated_capacity(2, 0), out=out)
    text = out.getvalue()
    assert "for each of 2 arms and cells on its own: 3 settings of lr ~ loguniform(0.0001, 0.01)" in text
    assert "each on tune seeds 100 (3 trials), then test seeds 0 at the setting with the lowest mean final" in text
    assert "at most 8 trials" in text and "searched" in text and "8 trials x 3s" in text
    assert len(units(spec)) == 2
