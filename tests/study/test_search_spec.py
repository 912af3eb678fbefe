"""The spec's search section: grid by default (every existing spec and preset unchanged), random and tpe checked
before anything starts, one sentence for each mistake naming the field, the value and what is allowed."""

from __future__ import annotations

import pytest

from study.config.search_space import planned_trials, probe_trials, random_settings, units
from study.config.spec import StudySpec
from study.config.specfile import dump_spec, load_preset, parse_spec, preset_names
from tests.study.conftest import TINY_SPEC, deep_update
from wt_base.errors import StudyError
from wt_base.yamlio import parse_yaml

LR = {"distribution": "loguniform", "low": 1.0e-4, "high": 1.0e-2}
TPE = {"algorithm": "tpe", "samples": 3, "lr": LR}


def search_spec(search: dict | None = None, **changes) -> StudySpec:
    doc = {"tune_seeds": [100, 101], "seeds": [0, 1], "search": TPE if search is None else search, **changes}
    return parse_spec(deep_update(TINY_SPEC, doc))


def test_every_preset_but_the_search_ones_stays_a_grid():
    searches = {"lr-search": "tpe", "findings-cpu-bracket": "bracket", "scaling-cpu-bracket": "bracket"}
    searches["peers-cpu"] = "bracket"
    for name in preset_names():
        spec = load_preset(name)
        assert spec.search.algorithm == searches.get(name, "grid"), name
    assert StudySpec().search.algorithm == "grid" and not StudySpec().search.is_search


def test_a_search_spec_round_trips_through_yaml_and_plans_its_units():
    spec = search_spec({**TPE, "seed": 7, "metric": "val_loss_seed", "startup_samples": 2})
    assert parse_spec(parse_yaml(dump_spec(spec), "dumped")) == spec
    assert [u.name for u in units(spec)] == ["standard, seq_len 32", "worker k=4, seq_len 32"]
    assert planned_trials(spec) == 2 * (3 * 2 + 2)  # per arm: 3 settings x 2 tune seeds, then 2 test seeds
    assert [t.run.train.seed for t in probe_trials(spec)] == [100, 100]
    assert spec.search.tpe_startup == 2 and search_spec().search.tpe_startup == 2  # 0: half of 3, rounded up


def test_the_standard_model_is_one_unit_whatever_the_intervals():
    spec = search_spec(axes={"arch": ["standard", "worker"], "worker_interval": [4, 8], "seq_len": [32, 64]})
    names = [u.name for u in units(spec)]
    assert len(names) == 6 and names.count("standard, seq_len 32") == 1


def test_random_draws_are_distinct_reproducible_and_the_same_for_every_arm():
    schedules = {"distribution": "choice", "values": ["constant", "cosine"]}
    spec = search_spec({"algorithm": "random", "samples": 4, "seed": 3, "lr": LR, "schedule": schedules})
    settings = random_settings(spec)
    assert settings == random_settings(spec) and len({str(s) for s in settings}) == 4
    assert all(1e-4 <= s["lr"] <= 1e-2 and s["schedule"] in ("constant", "cosine") for s in settings)


BAD = [
    (
        {**TPE, "algorithm": "bayes"},
        {},
        "search.algorithm='bayes' is invalid: expected one of grid, random, tpe, bracket.",
    ),
    ({**TPE, "samples": 0}, {}, "search.samples=0 is invalid: expected an integer >= 1 with algorithm tpe"),
    ({"algorithm": "random", "samples": 2}, {}, "search with algorithm random has no sampled axis: give one or more"),
    (
        {**TPE, "seq_len": {"distribution": "choice", "values": [32, 64]}},
        {},
        "search.seq_len is a grid-only field: a search tunes settings within an arm and cell",
    ),
    ({**TPE, "depth": LR}, {}, "search.depth is not a known key: expected algorithm, samples, seed"),
    ({**TPE, "lr": [0.001, 0.002]}, {}, "search.lr must be a mapping such as {distribution: loguniform"),
    ({**TPE, "metric": "bpc"}, {}, "search.metric='bpc' is invalid: expected val_loss or val_loss_seed."),
    ({**TPE, "startup_samples": 5}, {}, "search.startup_samples=5 is invalid with samples=3: expected at most"),
    (
        {"algorithm": "tpe", "samples": 3, "schedule": {"distribution": "choice", "values": ["constant", "cosine"]}},
        {},
        "search.samples=3 is invalid: the choices given have only 2 distinct settings: expected at most 2.",
    ),
    ({"algorithm": "grid", "samples": 4}, {}, "search.samples=4 is invalid with algorithm grid"),
    ({"algorithm": "grid", "lr": LR}, {}, "search.lr is invalid with algorithm grid: a grid's sampled axes go under"),
    (TPE, {"tune_seeds": []}, "tune_seeds is empty with search.algorithm tpe: the samples run on tune seeds"),
    (TPE, {"sample": {"num_samples": 2, "weight_decay": LR}}, "sample is invalid with search.algorithm tpe"),
    (
        TPE,
        {"axes": {"arch": ["standard"], "lr": [0.001, 0.002]}},
        "axes.lr is a tuned setting, invalid on the grid with search.algorithm tpe",
    ),
    ({**TPE, "lr": {"distribution": "loguniform", "low": 0.0, "high": 0.1}}, {}, "search.lr.low=0.0 is invalid"),
]


@pytest.mark.parametrize(("search", "changes", "message"), BAD)
def test_bad_search_input_gets_one_sentence(search, changes, message):
    with pytest.raises(StudyError) as info:
        search_spec(search, **changes)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_missing_optuna_is_one_sentence_naming_the_extra(monkeypatch):
    import importlib.util

    from study.tune.plan import check_search_package

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "optuna" else real(name, *a))
    with pytest.raises(StudyError, match=r"needs Optuna, which is not installed: pip install 'wt-study\[search\]'"):
        check_search_package(search_spec())
    check_search_package(search_spec({"algorithm": "random", "samples": 2, "lr": LR}))  # random needs no Optuna


def test_a_bad_search_spec_is_refused_before_anything_is_written(write_spec, tmp_path, capsys):
    from study.cli import main

    path = write_spec(tune_seeds=[100], search={**TPE, "samples": 0})
    assert main(["run", str(path)]) == 2
    assert "search.samples=0 is invalid" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()
