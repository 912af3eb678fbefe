"""Trial expansion: grid x seeds, inapplicable axes dropped, stable ids, samples reproducible."""

from __future__ import annotations

import re

import pytest

from study.config.run import RunConfig
from study.config.space import Trial, expand, math_key, total_budget, trial_id
from study.config.specfile import parse_spec
from tests.study.conftest import TINY_SPEC, deep_update
from wt_base.errors import StudyError
from wt_base.fields import AXES


def spec_with(**changes):
    return parse_spec(deep_update(TINY_SPEC, changes))


def test_standard_model_is_not_repeated_per_interval():
    spec = spec_with(axes={"arch": ["standard", "worker"], "worker_interval": [2, 4, 8], "seq_len": [32, 64]})
    trials = expand(spec)
    archs = [t.run.model.arch for t in trials]
    assert archs.count("standard") == 2
    assert archs.count("worker") == 6
    assert len({t.trial_id for t in trials}) == len(trials)


def test_seeds_multiply_trials_and_ids_are_stable():
    spec = spec_with(seeds=3)
    first, second = expand(spec), expand(spec)
    assert len(first) == 2 * 3
    assert [t.trial_id for t in first] == [t.trial_id for t in second]
    assert sorted({t.run.train.seed for t in first}) == [0, 1, 2]


# Trial ids are part of every stored study: these literal strings change only with a new ID_SCHEME (space.py).
PINNED_IDS = {
    "tiny": ({}, ["standard_T32_d32_s0_1d1f2a3d", "worker_k4_T32_d32_s0_1cd48b67"]),
    "random-phase": (
        {"axes": {"arch": ["worker-random-phase"], "worker_interval": [8], "seq_len": [64]}, "seeds": [3]},
        ["worker-random-phase_k8_T64_d32_s3_f92362e3"],
    ),
}


@pytest.mark.parametrize("case", list(PINNED_IDS))
def test_ids_are_pinned(case):
    changes, expected = PINNED_IDS[case]
    spec = spec_with(data={"corpus": "tinyshakespeare"}, **changes)  # a name: no checkout path in the id
    assert [t.trial_id for t in expand(spec)] == expected


AXIS_CHANGES = {
    "arch": ["worker-random-phase"], "attention": ["naive"], "init": ["nanogpt"], "worker_interval": [8],
    "seq_len": [48], "n_embd": [48], "n_layer": [2], "n_head": [4], "ffn_hidden": [40], "conv_kernel": [5],
    "dropout": [0.2], "lr": [0.002], "batch_size": [8], "weight_decay": [0.1], "schedule": ["cosine"],
    "warmup_frac": [0.1], "budget_value": [5.0],
}  # fmt: skip


def test_every_axis_has_a_change_listed_here():
    assert set(AXIS_CHANGES) == set(AXES)


@pytest.mark.parametrize("axis", sorted(AXIS_CHANGES))
def test_id_changes_with_every_axis(axis):
    axes = {"arch": ["worker"], "worker_interval": [4], "seq_len": [32]}
    base = expand(spec_with(axes=axes))
    (changed,) = expand(spec_with(axes={**axes, axis: AXIS_CHANGES[axis]}))
    assert changed.trial_id != base[0].trial_id
    assert math_key(changed.arch, changed.run) != math_key(base[0].arch, base[0].run)


def test_id_ignores_execution_settings_and_fields_the_arch_does_not_read():
    (std,) = expand(spec_with(axes={"arch": ["standard"], "seq_len": [32]}))
    (other,) = expand(
        spec_with(
            axes={"arch": ["standard"], "seq_len": [32]},
            model={"worker_interval": 8, "conv_kernel": 7},  # the standard model reads neither
            train={"device": "cpu", "threads": 3, "compile": "default"},
            checkpoint_every_s=5.0,
        )
    )
    assert other.trial_id == std.trial_id
    assert (other.run.model.worker_interval, other.run.model.conv_kernel) == (4, 3)  # kept at their defaults


def test_a_new_defaulted_field_changes_no_id(monkeypatch):
    """What an upgrade that adds a config field does: the field appears with its default in every config."""
    (trial,) = expand(spec_with(axes={"arch": ["worker"], "worker_interval": [4], "seq_len": [32]}))
    before = trial_id(trial.arch, trial.run)
    real = RunConfig.to_dict
    monkeypatch.setattr(RunConfig, "to_dict", lambda self: {**real(self), "new_setting": 1.0})
    assert trial_id(trial.arch, trial.run) == before


def test_trial_round_trips_through_tune_config():
    for trial in expand(spec_with()):
        assert Trial.from_dict(trial.to_dict()) == trial


def test_the_mixer_ablation_is_an_arch_value_with_its_own_conv_kernel_axis():
    axes = {"arch": ["standard", "standard-mixer", "worker"], "worker_interval": [2, 4], "conv_kernel": [3, 5]}
    trials = expand(spec_with(axes={**axes, "seq_len": [32]}))
    by_arch = {}
    for t in trials:
        by_arch.setdefault(t.arch, []).append((t.run.model.worker_interval, t.run.model.conv_kernel))
    assert sorted(by_arch["standard"]) == [(4, 3)]  # neither axis applies: defaults, one trial
    assert sorted(by_arch["standard-mixer"]) == [(4, 3), (4, 5)]  # the kernel applies, the interval does not
    assert len(by_arch["worker"]) == 4
    assert all(t.trial_id.startswith("standard-mixer_T32") for t in trials if t.arch == "standard-mixer")


def test_random_worker_phase_variant_and_axis_values_reach_the_config():
    spec = spec_with(axes={"arch": ["worker-random-phase"], "worker_interval": [3], "seq_len": [48], "lr": [0.01]})
    (trial,) = expand(spec)
    assert trial.run.model.random_worker_phase and trial.run.model.worker_interval == 3
    assert trial.run.model.block_size == 48 and trial.run.train.lr == 0.01
    assert trial.arch == "worker-random-phase"


def test_width_axis_rederives_ffn():
    spec = spec_with(axes={"arch": ["standard"], "n_embd": [32, 64], "seq_len": [32]})
    assert sorted(t.run.model.ffn_width for t in expand(spec)) == [128, 256]


def test_samples_are_reproducible_and_in_range():
    sample = {"num_samples": 5, "seed": 7, "lr": {"distribution": "loguniform", "low": 1e-4, "high": 1e-2}}
    spec = spec_with(sample=sample, axes={"arch": ["worker"], "worker_interval": [4], "seq_len": [32]})
    lrs = [t.run.train.lr for t in expand(spec)]
    assert lrs == [t.run.train.lr for t in expand(spec)]
    assert len(set(lrs)) == 5 and all(1e-4 <= lr <= 1e-2 for lr in lrs)


def test_bad_combination_names_the_trial():
    spec = spec_with(axes={"arch": ["standard"], "n_embd": [30], "seq_len": [32]})
    with pytest.raises(StudyError, match="n_embd=30"):
        expand(spec)


def test_total_budget():
    spec = spec_with(max_concurrent=2, axes={"arch": ["standard", "worker"], "worker_interval": [2, 4, 8]})
    summary = total_budget(spec, expand(spec))  # 4 trials of 3 s, 2 at a time
    assert summary["study_length"] == 2 * 3.0 and summary["concurrency"] == 2
    summary = total_budget(spec, expand(spec.replace(seeds=(0, 1))))  # 8 trials, 2 at a time
    assert summary["study_length"] == 4 * 3.0 and summary["budget_values"] == [3.0]


def test_init_and_conv_kernel_are_axes_and_reach_the_trial_rows():
    from study.tune.rows import pending_row

    spec = spec_with(axes={"arch": ["standard", "worker"], "init": ["torch", "nanogpt"], "conv_kernel": [3, 5]})
    trials = expand(spec)
    assert sorted((t.arch, t.run.model.init) for t in trials).count(("standard", "torch")) == 1  # no conv repeats
    assert len(trials) == 2 + 4
    rows = [pending_row(t, spec) for t in trials]
    assert {(r["arch"], r["init"], r["conv_kernel"]) for r in rows} == {
        ("standard", "torch", None),
        ("standard", "nanogpt", None),
        *(("worker", i, k) for i in ("torch", "nanogpt") for k in (3, 5)),
    }
    with pytest.raises(StudyError, match="axes.init value 'xavier' is invalid: expected one of torch, nanogpt"):
        spec_with(axes={"init": ["xavier"]})


def test_resume_notes_when_this_version_would_expand_the_spec_otherwise():
    from study.tune.plan import expansion_note

    stored = expand(spec_with(seeds=2))
    assert expansion_note(stored, expand(spec_with(seeds=2))) == ""
    note = expansion_note(stored, expand(spec_with(seeds=3)))
    assert "to 6 trials (2 not among the study's, 0 of the study's not among them)" in note
    assert "resuming the 4 trials the study started with" in note


def test_sizes_go_together_and_budget_value_is_an_axis():
    """A scaling study's sizes set width, depth, heads and batch together (a grid of them would waste trials),
    each crossed with the other axes, here the FLOP budgets."""
    sizes = [{"n_embd": 32, "n_layer": 1, "batch_size": 4}, {"n_embd": 64, "n_layer": 2, "batch_size": 8}]
    spec = spec_with(
        budget={"kind": "flops", "value": 1e12}, sizes=sizes,
        axes={"arch": ["standard"], "seq_len": [32], "budget_value": [1e12, 3e12]},
    )  # fmt: skip
    got = sorted(
        (t.run.model.n_embd, t.run.model.n_layer, t.run.train.batch_size, t.run.budget.value) for t in expand(spec)
    )
    assert got == [(32, 1, 4, 1e12), (32, 1, 4, 3e12), (64, 2, 8, 1e12), (64, 2, 8, 3e12)]
    for changes, message in (
        ({"sizes": [{"n_embd": 32}, {"n_layer": 2}]}, "give every size the same keys"),
        ({"sizes": [{"speed": 3}]}, "sizes[0].speed is not an axis a size can set"),
        ({"sizes": [{"n_embd": 32}], "axes": {"n_embd": [64]}}, "axes.n_embd is also set by sizes"),
        ({"axes": {"budget_value": [1.0]}, "budget_by_arch": {"worker": 5}}, "give one of them"),
        ({"max_epochs": 0}, "max_epochs=0.0 is invalid"),
    ):
        with pytest.raises(StudyError, match=re.escape(message)):
            spec_with(**changes)
