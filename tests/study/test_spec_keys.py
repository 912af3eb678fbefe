"""The spec keys behind verdicts and fair clocks: tune_seeds, equivalence_margin, budget_by_arch and
allow_shared_device, from YAML to trials to trial rows; and `wt-study status` with stopped trials."""

from __future__ import annotations

import io

import pytest

from study.config.space import expand, total_budget
from study.config.specfile import parse_spec
from study.tune.plan import check_shared_device
from study.tune.rows import pending_row
from tests.study.conftest import TINY_SPEC, deep_update
from wt_base.errors import StudyError


def spec_with(**changes):
    return parse_spec(deep_update(TINY_SPEC, changes))


def test_tune_seeds_expand_first_with_their_own_ids_and_role():
    spec = spec_with(seeds=[0, 1], tune_seeds=[100])
    trials = expand(spec)
    assert [t.run.train.seed for t in trials] == [100, 100, 0, 1, 0, 1]  # the tuning stage first
    assert len({t.trial_id for t in trials}) == 6
    rows = [pending_row(t, spec) for t in trials]
    assert [r["seed_role"] for r in rows] == ["tune"] * 2 + ["test"] * 4
    assert {r["equivalence_margin"] for r in rows} == {0.01}
    assert {r["allow_shared_device"] for r in rows} == {False}


def test_spec_with_the_new_keys_round_trips_through_yaml():
    from study.config.specfile import dump_spec
    from wt_base.yamlio import parse_yaml

    spec = spec_with(
        tune_seeds=[100, 101], equivalence_margin=0.02, budget_by_arch={"worker": 5}, allow_shared_device=True,
        target_loss=1.5,
    )  # fmt: skip
    assert parse_spec(parse_yaml(dump_spec(spec), "dumped")) == spec
    (row,) = [pending_row(t, spec) for t in expand(spec) if t.arch == "worker" and t.run.train.seed == 100]
    assert row["equivalence_margin"] == 0.02 and row["allow_shared_device"] and row["budget_value"] == 5.0
    assert row["target_loss"] == 1.5  # pre-registered: the analysis takes the target from the rows


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"seeds": [0, 1], "tune_seeds": [1]}, "tune_seeds value 1 is also in seeds"),
        ({"tune_seeds": [100, 100]}, "tune_seeds=[100, 100] repeats a seed"),
        ({"tune_seeds": [-3]}, "tune_seeds value -3 is invalid: expected an integer >= 0"),
        ({"tune_seeds": 2}, "tune_seeds=2 is invalid: expected a list"),
        ({"equivalence_margin": -0.01}, "equivalence_margin=-0.01 is invalid: expected a number > 0"),
        ({"equivalence_margin": 0}, "equivalence_margin=0.0 is invalid"),
        ({"budget_by_arch": {"transformer": 10}}, "budget_by_arch.transformer is not an architecture"),
        ({"budget_by_arch": {"worker": -1}}, "budget_by_arch.worker=-1.0 is invalid"),
        ({"budget_by_arch": {"worker": "long"}}, "budget_by_arch.worker='long' has the wrong type"),
        ({"budget_by_arch": [966]}, "budget_by_arch=[966] is invalid: expected a mapping"),
        ({"allow_shared_device": "yes"}, "allow_shared_device='yes' has the wrong type"),
        ({"target_loss": -1}, "target_loss=-1.0 is invalid: expected a loss > 0 in nats"),
        ({"scheduler": {"kind": "asha", "grace_period_s": 3}}, "scheduler.grace_period_s=3.0 is invalid with asha"),
    ],
)
def test_bad_values_get_one_sentence(changes, message):
    with pytest.raises(StudyError, match=message.replace("[", r"\[").replace("]", r"\]")):
        spec_with(**changes)


def test_budget_by_arch_sets_each_trials_budget_and_the_study_length():
    spec = spec_with(
        budget={"kind": "steps", "value": 100},
        budget_by_arch={"standard": 30, "worker": 80},
        axes={"arch": ["standard", "worker"], "worker_interval": [4, 8], "seq_len": [32]},
        max_concurrent=2,
    )
    trials = expand(spec)
    assert sorted((t.arch, t.run.budget.value) for t in trials) == [
        ("standard", 30.0),
        ("worker", 80.0),
        ("worker", 80.0),
    ]
    summary = total_budget(spec, trials)  # two slots: 80 | 80 + 30
    assert summary["study_length"] == 110 and summary["budget_values"] == [30.0, 80.0]
    # Without an entry the arch keeps budget.value.
    partial = spec.replace(budget_by_arch={"worker": 80.0})
    assert {t.run.budget.value for t in expand(partial) if t.arch == "standard"} == {100.0}


@pytest.mark.parametrize(
    ("kind", "resources", "allowed", "refused"),
    [
        ("seconds", {"cpus": 1, "gpus": 0.5}, False, "resources.gpus=0.5 shares a GPU"),
        ("seconds", {"cpus": 0.5, "gpus": 0}, False, "resources.cpus=0.5 shares a core"),
        ("seconds", {"cpus": 0.5}, False, "resources.cpus=0.5 shares a core"),
        ("seconds", {"cpus": 1, "gpus": 0.5}, True, None),  # allowed: the rows say so
        ("seconds", {"cpus": 1.5, "gpus": 1}, False, None),  # a thread per whole core: no sharing
        ("steps", {"cpus": 0.25, "gpus": 0.25}, False, None),  # clocks do not decide a steps budget
        ("flops", {"cpus": 1, "gpus": 0.1}, False, None),
    ],
)
def test_shared_devices_only_where_the_clock_does_not_decide(kind, resources, allowed, refused):
    spec = spec_with(budget={"kind": kind, "value": 3}, resources=resources, allow_shared_device=allowed)
    if refused is None:
        check_shared_device(spec)
        return
    with pytest.raises(StudyError, match=refused) as info:
        check_shared_device(spec)
    assert "allow_shared_device: true" in str(info.value)


def test_status_counts_stopped_trials_as_finished(tmp_path):
    """A stopped trial is finished (no ETA for it, no resume hint); a running one is not."""
    from study.cli.status import print_status
    from study.config.specfile import dump_spec
    from study.results.sink import ParquetSink
    from study.tune import plan as planning
    from wt_base.storage import write_text_atomic

    spec = spec_with(storage=str(tmp_path), budget={"kind": "steps", "value": 10})
    plan = planning.plan(spec)
    write_text_atomic(plan.location, planning.SPEC_FILE, dump_spec(plan.spec))
    sink = ParquetSink(plan.location, spec.name)
    first, second = plan.trials
    for trial in plan.trials:
        sink.update_trial(trial.trial_id, **pending_row(trial, plan.spec))
    sink.add_metric({"trial_id": first.trial_id, "step": 10, "attempt": 1, "val_loss": 2.0})
    sink.update_trial(first.trial_id, status="completed", steps=10, val_loss=2.0)
    sink.update_trial(second.trial_id, status="stopped", steps=4, note="stopped early by the scheduler")
    sink.flush()
    out = io.StringIO()
    print_status(plan.location.path, out=out)
    text = out.getvalue()
    assert "1 completed, 1 stopped, 0 running, 0 pending" in text
    assert "Not finished" not in text

    sink.update_trial(second.trial_id, status="running")
    sink.flush()
    out = io.StringIO()
    print_status(plan.location.path, out=out)
    assert "Not finished" in out.getvalue()


VERDICT_PRESETS = ("seed-replication", "seed-replication-evalclock", "seed-replication-steps", "scaling")


@pytest.mark.parametrize("name", VERDICT_PRESETS)
def test_verdict_presets_state_the_init_and_have_five_test_seeds(name):
    from study.config.specfile import load_preset

    spec = load_preset(name)
    assert len(spec.seeds) >= 5 and not set(spec.seeds) & set(spec.tune_seeds)
    assert spec.model.init == "torch" or "init" in spec.axes


def test_seed_replication_steps_is_the_seeds_300_s_in_its_own_steps():
    from study.config.specfile import load_preset

    spec = load_preset("seed-replication-steps")
    trials = expand(spec)
    budgets = {(t.arch, t.run.model.attention): t.run.budget for t in trials}
    assert {b.kind for b in budgets.values()} == {"steps"}
    assert budgets[("standard", "naive")].value == 966 and budgets[("worker", "sdpa")].value == 2406
    assert {t.run.eval.protocol for t in trials} == {"seed"}
    m = trials[0].run.model
    assert (m.block_size, m.n_embd, m.n_layer, m.n_head, m.dropout, m.init) == (1024, 256, 4, 4, 0.1, "torch")


def test_scaling_is_an_isoflop_study_within_its_pass_cap():
    """Per arm: FLOP budgets spanning a decade, five sizes per budget (width and depth together), lr tuned per
    size on tune seeds, a step-indexed schedule to the budget, every trial within max_epochs of enwik8."""
    from study.config.regime import trial_regime
    from study.config.specfile import load_preset

    spec = load_preset("scaling")
    trials = expand(spec)
    assert spec.data.corpus == "enwik8" and spec.budget.kind == "flops" and spec.train.schedule == "cosine"
    assert len(spec.axes["lr"]) >= 2 and len(spec.tune_seeds) >= 1 and spec.max_epochs <= 6
    for arch in ("standard", "worker"):
        mine = [t for t in trials if t.arch == arch]
        budgets = sorted({t.run.budget.value for t in mine})
        assert len(budgets) >= 3 and budgets[-1] / budgets[0] >= 10
        for budget in budgets:
            shapes = {(t.run.model.n_embd, t.run.model.n_layer) for t in mine if t.run.budget.value == budget}
            assert len(shapes) >= 5 and len({d for d, _ in shapes}) >= 5 and len({n for _, n in shapes}) >= 2
    epochs = [trial_regime(t.run, 90_000_000).epochs for t in trials]
    assert max(epochs) <= spec.max_epochs and len(trials) == 630


def test_init_ablation_fits_two_cores():
    from study.config.specfile import load_preset

    spec = load_preset("init-ablation")
    trials = expand(spec)
    assert len(trials) == 18 and spec.max_concurrent == 2 and spec.resources.cpus == 1
    assert {(t.arch, t.run.model.init) for t in trials} == {
        (arch, init) for arch in ("standard", "worker") for init in ("torch", "nanogpt")
    }
    assert spec.budget.kind != "seconds"  # results must not depend on how busy the machine is


def test_a_node_declaring_more_cpus_than_its_cores_is_refused_for_seconds_budgets(tmp_path):
    import os

    from study.tune import plan as planning
    from study.tune.checks import check_cores

    cores = os.cpu_count() or 1
    node = {"NodeManagerAddress": "10.0.0.1", "Resources": {"CPU": cores + 4}}
    plan = planning.plan(spec_with(storage=str(tmp_path), resources={"cpus": 1, "gpus": 0}))
    with pytest.raises(StudyError, match=f"declares {cores + 4} CPUs but the machine has {cores} cores"):
        check_cores(plan, [node], here="10.0.0.1")
    check_cores(plan, [node], here="10.0.0.2")  # another machine: its cores are not visible from here
    check_cores(plan, [{**node, "Resources": {"CPU": cores}}], here="10.0.0.1")
    steps = planning.plan(spec_with(storage=str(tmp_path), budget={"kind": "steps", "value": 3}))
    check_cores(steps, [node], here="10.0.0.1")  # no clock decides a steps budget
