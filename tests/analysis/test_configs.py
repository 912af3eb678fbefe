"""Configuration keys: what is pooled as seeds, what a comparison holds fixed, what each arm may tune."""

from __future__ import annotations

import pandas as pd
from frames import arm_rows, final_frame, trials_frame

from analysis.configs import config_fields, keys_of, split_fields
from analysis.render import execution_mix
from analysis.tuning import choose_settings
from analysis.verdicts import verdicts


def test_keys_ignore_number_spelling_and_null_kinds():
    fields = pd.DataFrame({"a": [3, 3.0, None], "b": ["x", "x", float("nan")]}, dtype=object)
    keys = keys_of(fields, ["a", "b"])
    assert keys[0] == keys[1] != keys[2]
    assert keys_of(pd.DataFrame({"a": [None], "b": [pd.NA]}, dtype=object), ["a", "b"])[0] == '{"a": null, "b": null}'


def test_fields_split_into_cell_arm_and_tuned_and_an_unknown_field_is_a_cell_field():
    fields = pd.DataFrame({"arch": ["standard"], "lr": [1e-3], "init": ["torch"], "model.new_axis": [1]})
    cell, arm, tuned = split_fields(fields)
    assert (cell, arm, tuned) == (["init", "model.new_axis"], ["arch"], ["lr"])


def test_each_arch_with_its_own_budget_is_compared_across_budgets():
    rows = arm_rows("standard", [2.0, 2.1], budget_value=966.0) + arm_rows("worker", [1.9, 2.0], budget_value=300.0)
    final = final_frame(rows)
    assert "budget_value" in split_fields(config_fields(final))[1]
    v = verdicts(final, choose_settings(final)).iloc[0]
    assert (v["budget_value"], v["ref_budget_value"], v["n_ref"]) == (300.0, 966.0, 2)


def test_init_is_part_of_the_cell_so_each_init_is_compared_with_itself():
    rows = []
    for init, gap in (("torch", -0.1), ("nanogpt", 0.4)):
        rows += arm_rows("standard", [2.0, 2.01, 2.03], init=init)
        rows += arm_rows("worker", [2.0 + gap, 2.02 + gap, 2.02 + gap], init=init)
    final = final_frame(rows)
    v = verdicts(final, choose_settings(final)).set_index("init")
    assert v.loc["torch", "verdict"].startswith("worker better") and v.loc["nanogpt", "verdict"].startswith(
        "worker worse"
    )
    assert v.loc["nanogpt", "diff"] > 0.35 and v.loc["torch", "diff"] < -0.05


def test_standard_worker_only_settings_do_not_split_the_standard_model():
    trials = trials_frame(arm_rows("standard", [2.0, 2.1]))
    trials["conv_kernel"] = [3, None]  # a stored default for a model that has no conv
    assert final_frame(trials.to_dict("records"))["config_id"].nunique() == 1


def test_trials_on_two_devices_are_two_cells_under_a_clock_budget_and_one_under_a_step_budget():
    """A T4 and an H100 buy different numbers of steps in 300 s: averaging them as seeds mixes two experiments."""
    rows = []
    for device, loss in (("NVIDIA T4", 2.1), ("NVIDIA H100", 1.8)):
        for arch in ("standard", "worker"):
            rows += arm_rows(arch, [loss, loss + 0.01, loss - 0.01], device_name=device, dtype="bfloat16")
    clocked = final_frame(rows)
    assert clocked["cell_key"].nunique() == 2 and (clocked.groupby("config_id")["seed"].nunique() == 3).all()
    v = verdicts(clocked, choose_settings(clocked))
    assert len(v) == 2 and v["cell_extra"].str.contains("exec.device_name NVIDIA").all()
    assert "Trials ran on different execution settings** (device_name: NVIDIA" in execution_mix(clocked)
    counted = final_frame([dict(r, budget_kind="steps") for r in rows])
    assert counted["cell_key"].nunique() == 1 and execution_mix(counted) == ""
    mixed_dtype = final_frame([dict(r, budget_kind="steps", dtype="float32") for r in rows[:6]] + rows[6:])
    assert mixed_dtype["cell_key"].nunique() == 2  # bf16 and fp32 compute different numbers under any budget
