"""Machine profiles and curves re-timed on them, against hand-computed numbers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from analysis.profiles import (
    PROFILE_SCHEMA,
    STEP_TIME_COLUMNS,
    combine_profiles,
    csv_profile,
    profile_rows,
    read_profiles,
    yaml_profile,
)
from analysis.timing import match_profiles, project_curves, projected_loss_at, projected_time_to_target
from analysis.timing_verdict import projected_verdict
from wt_base.errors import StudyError
from wt_base.schema import conform

REPO = Path(__file__).resolve().parents[2]
SHAPE = dict(seq_len=1024, n_embd=256, n_layer=4, n_head=4, ffn_hidden=1024, batch_size=16, attention="sdpa")
SHAPE |= dict(dropout=0.1)
ORIGINAL = """\
device_name: "original's GPU"
source: "the original's README table"
seq_len: 1024
n_embd: 256
n_layer: 4
n_head: 4
batch_size: 16
shapes:
  - {arch: standard, steps_per_s: 3.22}
  - {arch: worker, worker_interval: 4, steps_per_s: 8.02}
"""
# one curve: the third point is worse than the second, so the best-so-far loss stays at 3.0 there
STEPS, LOSSES = [0, 100, 200, 300, 400], [4.0, 3.0, 3.5, 2.5, 2.0]


def trial(trial_id, arch="standard", seed=0, budget_kind="steps", status="completed", **shape):
    interval, kernel = (4, 3) if arch.startswith("worker") else (None, None)
    return dict(trial_id=trial_id, arch=arch, worker_interval=interval, conv_kernel=kernel, seed=seed, status=status,
                budget_kind=budget_kind, **(SHAPE | shape))  # fmt: skip


def trials_frame(rows):
    frame = pd.DataFrame(rows)
    return frame.astype({"worker_interval": "Int64", "conv_kernel": "Int64", "seed": "Int64"})


def metrics_frame(curves: dict):
    """{trial_id: (steps, losses)} -> evaluation points of 1000 validation tokens each."""
    rows = [dict(trial_id=t, step=s, val_loss=v, val_tokens=1000, is_final=False)
            for t, (steps, losses) in curves.items() for s, v in zip(steps, losses, strict=True)]  # fmt: skip
    return pd.DataFrame(rows)


def hand_profile(shapes, **top):
    return profile_rows([dict(device_name="m", **top, **s) for s in shapes], "m.yaml", hand_written=True)


def one_curve(status="completed", with_eval=False, steps=STEPS, losses=LOSSES):
    """The curve above on a machine at 4 steps/s (0.25 s a step) and 1e-4 s per validation token."""
    profile = hand_profile([dict(arch="standard", steps_per_s=4.0, eval_time_per_token_s=1e-4, **SHAPE)])
    matched = match_profiles(trials_frame([trial("s0", status=status)]), profile).matched
    return project_curves(metrics_frame({"s0": (steps, losses)}), matched, with_eval=with_eval)


def test_projected_times_are_steps_times_the_step_time_plus_earlier_evaluations():
    curves = one_curve()
    assert curves["projected_train_time_s"].tolist() == [0.0, 25.0, 50.0, 75.0, 100.0]
    assert curves["projected_time_s"].tolist() == [0.0, 25.0, 50.0, 75.0, 100.0]
    assert curves["val_loss"].tolist() == LOSSES
    timed = one_curve(with_eval=True)  # each evaluation: 1000 tokens * 1e-4 s = 0.1 s, counted from the next step on
    assert timed["projected_eval_time_s"].tolist() == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    assert timed["projected_time_s"].tolist() == pytest.approx([0.0, 25.1, 50.2, 75.3, 100.4])


def test_time_to_target_interpolates_the_crossing_in_step():
    targets = pd.DataFrame({"trial_id": ["s0"], "target": [2.75]})
    # best so far 4, 3, 3, 2.5, 2: crosses 2.75 between step 200 (3.0) and 300 (2.5), halfway: step 250
    reach = projected_time_to_target(one_curve(), targets)
    assert reach[["crossing_step", "projected_time_to_target_s", "status"]].values.tolist() == [
        [250.0, 62.5, "reached"]
    ]
    with_eval = projected_time_to_target(one_curve(with_eval=True), targets)  # + evaluations at steps 0, 100, 200
    assert with_eval["projected_time_to_target_s"].iloc[0] == pytest.approx(62.5 + 0.3)
    at_once = projected_time_to_target(one_curve(), targets.assign(target=5.0))
    assert at_once[["crossing_step", "projected_time_to_target_s"]].values.tolist() == [[0.0, 0.0]]
    never = projected_time_to_target(one_curve(), targets.assign(target=1.9))
    assert np.isnan(never["projected_time_to_target_s"].iloc[0]) and never["status"].iloc[0] == "not reached"
    stopped = projected_time_to_target(one_curve(status="stopped"), targets.assign(target=1.9))
    assert stopped["status"].iloc[0] == "stopped"


def test_loss_at_a_budget_interpolates_in_step():
    curves = one_curve()
    at = projected_loss_at(curves, 30.0)  # 30 s / 0.25 s = step 120: 3.0 + 0.2 * (3.5 - 3.0)
    assert at[["step_at_budget", "loss_at", "status"]].values.tolist() == [[120.0, pytest.approx(3.1), "ok"]]
    assert projected_loss_at(curves, 100.0)["loss_at"].iloc[0] == 2.0  # the run's end exactly
    beyond = projected_loss_at(curves, 100.5)
    assert np.isnan(beyond["loss_at"].iloc[0]) and beyond["status"].iloc[0] == "beyond this trial's budget"
    assert projected_loss_at(one_curve(status="stopped"), 100.5)["status"].iloc[0] == "stopped"
    # with evaluation time: training resumes at 25.2 s from step 100, so 30.2 s is step 120 again
    assert projected_loss_at(one_curve(with_eval=True), 30.2)["loss_at"].iloc[0] == pytest.approx(3.1)
    late = projected_loss_at(one_curve(steps=[100, 200], losses=[3.0, 3.5]), 10.0)
    assert late["status"].iloc[0] == "before the first evaluation" and np.isnan(late["loss_at"].iloc[0])
    diverged = projected_loss_at(one_curve(losses=[4.0, 3.0, np.nan, np.nan, np.nan]), 30.0)
    assert diverged["status"].iloc[0] == "diverged" and np.isnan(diverged["loss_at"].iloc[0])


def test_a_shape_no_profile_has_is_named_never_guessed():
    profile = hand_profile([dict(arch="standard", steps_per_s=4.0, **SHAPE)])
    result = match_profiles(trials_frame([trial("s0"), trial("w0", arch="worker")]), profile)
    assert result.matched["trial_id"].tolist() == ["s0"]
    assert result.missing[["trial_id", "machine"]].values.tolist() == [["w0", "m"]]
    shape = "worker k=4, seq_len 1024, n_embd 256, n_layer 4, n_head 4, ffn_hidden 1024, batch_size 16, attention sdpa"
    assert result.missing["shape"].tolist() == [shape + ", dropout 0.1, conv_kernel 3"]
    near = match_profiles(trials_frame([trial("s1", seq_len=1000)]), profile)  # a near shape is no shape
    assert near.matched.empty and near.missing["trial_id"].tolist() == ["s1"]
    # dropout selects another kernel, so a trial without dropout is not the profile's shape (dropout 0.1)
    no_dropout = match_profiles(trials_frame([trial("s2", dropout=0.0)]), profile)
    assert no_dropout.matched.empty and no_dropout.missing["shape"].str.endswith("dropout 0").all()


def test_seconds_budget_trials_are_refused_not_projected():
    profile = hand_profile([dict(arch="standard", steps_per_s=4.0, **SHAPE)])
    result = match_profiles(trials_frame([trial("s0"), trial("clock", budget_kind="seconds")]), profile)
    assert result.refused["trial_id"].tolist() == ["clock"]
    assert "seconds budget" in result.refused["reason"].iloc[0]
    assert "clock" not in set(result.matched["trial_id"]) | set(result.missing["trial_id"])


def test_the_originals_published_speeds_parse_and_project(tmp_path):
    path = tmp_path / "original.yaml"
    path.write_text(ORIGINAL)
    profile = read_profiles([path])
    assert profile["step_time_s_median"].tolist() == [1 / 3.22, 1 / 8.02]
    assert profile["step_time_s_p10"].tolist() == profile["step_time_s_p90"].tolist() == [1 / 3.22, 1 / 8.02]
    assert profile["step_time_s_n"].tolist() == [0, 0] and profile["ffn_hidden"].tolist() == [1024, 1024]
    # the hand-written defaults: the original's dropout, and its conv kernel only where the arch has a mixer
    assert profile["dropout"].tolist() == [0.1, 0.1] and profile["conv_kernel"].tolist() == [pd.NA, 3]
    assert profile[["attention", "dtype", "compile", "machine"]].drop_duplicates().values.tolist() == [
        ["sdpa", "unknown", "off", "original's GPU"]
    ]
    trials = trials_frame([trial("s0"), trial("w0", arch="worker")])
    matched = match_profiles(trials, profile).matched
    curves = project_curves(metrics_frame({"s0": ([322], [2.0]), "w0": ([802], [1.9])}), matched)
    assert curves["projected_time_s"].tolist() == pytest.approx([100.0, 100.0])  # 322 / 3.22 and 802 / 8.02
    csv_text = "device_name,source,arch,worker_interval,steps_per_s," + ",".join(list(SHAPE)[:4]) + ",batch_size\n"
    csv_text += "original's GPU,the original's README table,standard,,3.22,1024,256,4,4,16\n"
    csv_text += "original's GPU,the original's README table,worker,4,8.02,1024,256,4,4,16\n"
    from_csv = csv_profile(csv_text, str(path))
    pd.testing.assert_frame_equal(from_csv, profile)


def test_bench_parquet_profiles_read_back_and_sit_side_by_side(tmp_path):
    row = dict(schema_version=1, device_name="NVIDIA H200", dtype="bfloat16", arch="standard", worker_interval=None)
    row |= SHAPE | dict(conv_kernel=None)
    row |= dict(compile="default", threads=None, torch_version="2.5.1", step_time_s_median=0.02)
    row |= dict(step_time_s_p10=0.019, step_time_s_p90=0.023, step_time_s_n=50, eval_time_per_token_s=1e-7)
    row |= dict(tokens_per_s=None, mfu=0.4, source="measured by wt-study bench 0.1.0", measured_at=None)
    pq.write_table(conform([row], PROFILE_SCHEMA), tmp_path / "h200.parquet")
    (tmp_path / "original.yaml").write_text(ORIGINAL)
    profiles = read_profiles([tmp_path])  # a directory: its profile files
    assert (
        profiles["machine"].tolist()
        == ["NVIDIA H200 (bfloat16, compile default, torch 2.5.1)"] + ["original's GPU"] * 2
    )
    assert profiles["tokens_per_s"].iloc[0] == pytest.approx(16 * 1024 / 0.02)
    assert profiles["step_time_s_p90"].iloc[0] == 0.023


def error_of(call) -> str:
    with pytest.raises(StudyError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and message.endswith(".") and ". " not in message, message  # one sentence
    return message


SHAPE_YAML = "seq_len: 1024, n_embd: 256, n_layer: 4, n_head: 4, batch_size: 16"


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "x.csv",
            "device_name,arch,seq_len,n_embd,n_layer,n_head,batch_size,steps_per_s\n"
            "m,standard,1024,256,4,4,16,3.0\nm,standard,1024,256,4,4,8,3.0\nm,standard,,256,4,4,32,3.0\n",
            "profile 'x.csv' row 3: missing column seq_len.",
        ),
        (
            "x.csv",
            "device_name,arch,n_embd,n_layer,n_head,batch_size,steps_per_s\nm,standard,256,4,4,16,3.0\n",
            "profile 'x.csv' row 1: missing column seq_len.",
        ),
        (
            "x.yaml",
            f"device_name: m\nshapes:\n  - {{arch: standard, {SHAPE_YAML}, steps_per_s: 3}}\n"
            f"  - {{arch: worker, {SHAPE_YAML}, stepps_per_s: 3}}\n",
            "profile 'x.yaml' row 2: unknown column 'stepps_per_s'",
        ),
        (
            "x.yaml",
            f"device_name: m\nshapes:\n  - {{arch: standard, {SHAPE_YAML}, steps_per_s: 3}}\n"
            f"  - {{arch: worker, worker_interval: 4, {SHAPE_YAML}, steps_per_s: 3}}\n"
            f"  - {{arch: standard, {SHAPE_YAML}, steps_per_s: 4}}\n",
            "profile 'x.yaml' row 3 repeats the shape of row 1 on 'm' (standard, seq_len 1024, n_embd 256",
        ),
        (
            "x.yaml",
            f"device_name: m\nshapes:\n  - {{arch: standard, {SHAPE_YAML}, steps_per_s: -3.22}}\n",
            "profile 'x.yaml' row 1: steps_per_s=-3.22 is invalid: expected a finite number > 0.",
        ),
        (
            "x.yaml",
            f"device_name: m\nshapes:\n  - {{arch: standard, {SHAPE_YAML}, steps_per_s: .inf}}\n",
            "profile 'x.yaml' row 1: steps_per_s=inf is invalid: expected a finite number > 0.",
        ),
        (
            "x.yaml",
            f"device_name: m\nshapes:\n  - {{arch: standard, {SHAPE_YAML}, steps_per_s: 3}}\n"
            f"  - {{arch: worker, {SHAPE_YAML}, steps_per_s: 3}}\n",
            "profile 'x.yaml' row 2: missing column worker_interval (arch worker has one).",
        ),
        (
            "x.yaml",
            f"device_name: m\nshapes:\n  - {{arch: standard, conv_kernel: 3, {SHAPE_YAML}, steps_per_s: 3}}\n",
            "profile 'x.yaml' row 1: conv_kernel=3 is invalid: expected none for arch standard.",
        ),
        (
            "x.yaml",
            f"device_name: m\nshapes:\n  - {{arch: transformer, {SHAPE_YAML}, steps_per_s: 3}}\n",
            "profile 'x.yaml' row 1: arch='transformer' is invalid: expected one of standard, standard-mixer, worker",
        ),
        (
            "x.yaml",
            f"device_name: m\ndropout: 1.5\nshapes:\n  - {{arch: standard, {SHAPE_YAML}, steps_per_s: 3}}\n",
            "profile 'x.yaml' row 1: dropout=1.5 is invalid: expected a number in [0, 1).",
        ),
        (
            "x.yaml",
            "device_name: m\nshapes:\n  - {arch: standard, seq_len: [1024\n",
            "profile 'x.yaml' is not valid YAML at line",
        ),
        (
            "x.yaml",
            "device_name: !!python/object/apply:os.system [echo]\nshapes: []\n",
            "profile 'x.yaml' is not valid YAML at line 1",
        ),
    ],
)
def test_a_bad_hand_written_profile_is_one_sentence_naming_the_file_and_row(name, text, expected):
    parse = csv_profile if name.endswith(".csv") else yaml_profile
    assert error_of(lambda: parse(text, name)).startswith(expected)


def test_a_bad_bench_row_is_named(tmp_path):
    good = dict(schema_version=1, device_name="cpu", dtype="float32", arch="standard", worker_interval=None)
    good |= SHAPE | dict(conv_kernel=None, compile="off")
    good |= dict(threads=1, torch_version="2.5.1", step_time_s_median=0.5, step_time_s_p10=0.4, step_time_s_p90=0.7)
    good |= dict(step_time_s_n=5, eval_time_per_token_s=None, tokens_per_s=None, mfu=None, source="bench")
    good |= dict(measured_at=None)
    negative = good | dict(seq_len=256, step_time_s_median=-0.5)
    message = error_of(lambda: profile_rows([good, negative], "b.parquet"))
    assert message == "profile 'b.parquet' row 2: step_time_s_median=-0.5 is invalid: expected a finite number > 0."
    assert "row 1: unknown column 'flops'" in error_of(lambda: profile_rows([good | dict(flops=1.0)], "b.parquet"))
    assert "p10 <= median <= p90" in error_of(lambda: profile_rows([good | dict(step_time_s_p10=0.6)], "b.parquet"))


def verdict_curves(spread: float, worker_offsets, standard_offsets, worker_seeds=range(5), drift: float = 0.0,
                   worker_status=None):  # fmt: skip
    """Linear curves loss = 4 + offset - 0.002 * step, steps 0..1000; standard 4 steps/s, worker 5 steps/s, the
    step-time p10/p90 at median * (1 -/+ spread); with `drift`, pooled with a second profile whose step times are
    all (1 + drift) times longer (the machine measured again, slower). `worker_status`: seed -> a worker trial's
    status other than completed."""
    shapes = [dict(arch=a, worker_interval=k, conv_kernel=c, steps_per_s=r, **SHAPE)
              for a, k, c, r in (("standard", None, None, 4.0), ("worker", 4, 3, 5.0))]  # fmt: skip
    rows = []
    for s in shapes:
        median = 1 / s.pop("steps_per_s")
        times = dict(step_time_s_median=median, step_time_s_p10=median * (1 - spread))
        rows.append(s | times | dict(step_time_s_p90=median * (1 + spread), step_time_s_n=20))
    base = dict(schema_version=1, device_name="m", dtype="float32", compile="off", threads=1, torch_version="2.5")
    base |= dict(eval_time_per_token_s=None, tokens_per_s=None, mfu=None, source="test", measured_at=None)
    profile = profile_rows([base | r for r in rows], "m.parquet")
    if drift:
        slower = [r | {c: r[c] * (1 + drift) for c in STEP_TIME_COLUMNS[:3]} for r in rows]
        profile = combine_profiles([profile, profile_rows([base | r for r in slower], "later.parquet")])
    steps = np.arange(0, 1001, 100)
    trials, points = [], {}
    for arch, offsets, seeds in (("standard", standard_offsets, range(5)), ("worker", worker_offsets, worker_seeds)):
        for seed, offset in zip(seeds, offsets, strict=True):
            status = (worker_status or {}).get(seed, "completed") if arch == "worker" else "completed"
            trials.append(trial(f"{arch}{seed}", arch=arch, seed=seed, status=status))
            points[f"{arch}{seed}"] = (steps, 4 + offset - 0.002 * steps)
    return project_curves(metrics_frame(points), match_profiles(trials_frame(trials), profile).matched)


W_OFFSETS, S_OFFSETS = [0.0, 0.03, -0.02, 0.05, 0.01], [0.01, -0.01, 0.02, 0.0, 0.03]


def test_verdict_interval_carries_the_step_time_spread_and_is_the_seed_interval_without_it():
    # at 100 s: standard step 400 (loss 3.2 + offset), worker step 500 (3.0 + offset): -0.2 + 0.014 - 0.010
    rows = [projected_verdict(verdict_curves(s, W_OFFSETS, S_OFFSETS), 100.0, n_boot=500, rng=7).iloc[0]
            for s in (0.0, 0.05, 0.2)]  # fmt: skip
    assert rows[0]["diff"] == pytest.approx(-0.196) and rows[0]["test"] == "paired" and rows[0]["n_pairs"] == 5
    assert (rows[0]["diff_ci_low"], rows[0]["diff_ci_high"]) == (
        rows[0]["seed_only_ci_low"],
        rows[0]["seed_only_ci_high"],
    )
    widths = [r["diff_ci_high"] - r["diff_ci_low"] for r in rows]
    assert widths[0] < widths[1] < widths[2]
    assert all(r["seed_only_ci_low"] == rows[0]["seed_only_ci_low"] for r in rows)  # the same seed draws
    assert rows[0]["sentence"].startswith(
        "on m (float32, 1 thread, torch 2.5), at 100 s of training, worker k=4 - standard = -0.196 ["
    )
    assert "over 5 paired seeds and step times" in rows[0]["sentence"]


def test_pooled_profiles_draw_a_runs_step_time_over_the_machines_drift_not_one_steps_spread():
    # single steps vary by +-20%; the machine measured twice, 4% apart: runs are drawn within those 4%
    one = projected_verdict(verdict_curves(0.2, [0.0] * 5, [0.0] * 5), 100.0, n_boot=400, rng=1).iloc[0]
    pooled = projected_verdict(verdict_curves(0.2, [0.0] * 5, [0.0] * 5, drift=0.04), 100.0, n_boot=400, rng=1)
    pooled = pooled.iloc[0]
    # worker minus standard at 100 s: -0.002 * 100 * (1 / worker step time - 1 / standard step time)
    worker, standard = 0.2 * np.array([1.0, 1.04]), 0.25 * np.array([1.0, 1.04])
    lowest, highest = -0.2 * (1 / worker[0] - 1 / standard[1]), -0.2 * (1 / worker[1] - 1 / standard[0])
    assert lowest <= pooled["diff_ci_low"] < pooled["diff_ci_high"] <= highest
    assert pooled["diff_ci_high"] - pooled["diff_ci_low"] < (one["diff_ci_high"] - one["diff_ci_low"]) / 3
    assert pooled["arm_step_time_s"] == pytest.approx(0.2 * 1.02)  # the mean of the two medians


def test_verdict_without_seed_spread_stays_inside_the_extreme_step_times():
    spread = 0.1
    row = projected_verdict(verdict_curves(spread, [0.0] * 5, [0.0] * 5), 100.0, n_boot=400, rng=1).iloc[0]
    assert row["seed_only_ci_low"] == row["seed_only_ci_high"] == pytest.approx(-0.2)
    # diff = -0.002 * 100 * (1 / worker step time - 1 / standard step time), extremes at p10 / p90
    lowest = -0.2 * (5 / (1 - spread) - 4 / (1 + spread))
    highest = -0.2 * (5 / (1 + spread) - 4 / (1 - spread))
    assert lowest < row["diff_ci_low"] < -0.2 < row["diff_ci_high"] < highest


def test_verdict_without_shared_seeds_resamples_each_arm_and_any_arch_can_be_the_reference():
    curves = verdict_curves(0.0, W_OFFSETS, S_OFFSETS, worker_seeds=range(10, 15))
    row = projected_verdict(curves, 100.0, n_boot=300, rng=3).iloc[0]
    assert row["test"] == "independent" and (row["n_arm"], row["n_reference"], row["n_pairs"]) == (5, 5, 0)
    assert row["diff"] == pytest.approx(-0.196) and row["diff_ci_low"] < row["diff"] < row["diff_ci_high"]
    flipped = projected_verdict(curves, 100.0, reference="worker", n_boot=300, rng=3).iloc[0]
    assert (flipped["arm"], flipped["reference"]) == ("standard", "worker k=4")
    assert flipped["diff"] == pytest.approx(0.196)
    beyond = projected_verdict(curves, 220.0, n_boot=50, rng=3).iloc[0]  # worker needs step 1100 of 1000
    assert beyond["n_arm_left_out"] == 5 and np.isnan(beyond["diff"]) and "no estimate" in beyond["sentence"]


def test_a_cell_with_lost_seeds_is_flagged_and_draws_no_verdict_from_the_survivors():
    # 2 of 5 worker seeds lost after the budget: their losses at 100 s are finite, yet a lost seed is the worst
    # outcome (analysis.outcomes), so they leave the estimate and flag the cell
    curves = verdict_curves(0.0, W_OFFSETS, S_OFFSETS, worker_status={3: "diverged", 4: "failed"})
    row = projected_verdict(curves, 100.0, n_boot=200, rng=1).iloc[0]
    assert (row["n_arm_lost"], row["n_reference_lost"], row["n_arm_left_out"]) == (2, 0, 0)
    assert (row["test"], row["n_pairs"], row["n_arm"]) == ("paired", 3, 3)
    assert row["diff"] == pytest.approx(-0.2 + np.mean(W_OFFSETS[:3]) - np.mean(S_OFFSETS[:3]))
    assert row["lost"] == "worker k=4 unstable: 1 diverged, 1 failed of 5"
    assert "worker k=4 - standard: worker k=4 unstable: 1 diverged, 1 failed of 5, so no verdict from the " \
        "survivors (over them worker k=4 - standard = -0.203 [" in row["sentence"]  # fmt: skip
    complete = projected_verdict(verdict_curves(0.0, W_OFFSETS, S_OFFSETS), 100.0, n_boot=200, rng=1).iloc[0]
    assert complete["lost"] == "" and complete["n_arm"] == 5 and "survivors" not in complete["sentence"]


def test_the_timing_modules_import_neither_torch_nor_ray():
    code = "import sys, analysis.timing, analysis.timing_verdict; print(sorted({'torch', 'ray'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert done.stdout == "[]\n"


def test_the_shipped_original_profile_is_found_by_name_and_times_the_seeds_300_s():
    from analysis.profiles import profile_paths

    (path,) = profile_paths(["original"])
    profile = read_profiles([path]).set_index("arch")
    assert profile.loc["standard", "step_time_s_median"] == 1 / 3.22 and profile.loc["worker", "worker_interval"] == 4
    assert profile.loc["standard", "attention"] == "naive" and profile.loc["worker", "attention"] == "sdpa"
    assert set(profile["dropout"]) == {0.1}  # the original's own settings
    assert profile.loc["worker", "conv_kernel"] == 3 and pd.isna(profile.loc["standard", "conv_kernel"])
    # seed-replication-steps' budgets (966 and 2406 steps) are the original's 300 s at its speeds
    assert 966 * profile.loc["standard", "step_time_s_median"] == pytest.approx(300, abs=0.1)
    assert 2406 * profile.loc["worker", "step_time_s_median"] == pytest.approx(300, abs=0.1)
    message = error_of(lambda: profile_paths(["orignal"]))
    assert message == (
        "--timing 'orignal' is invalid: no such file or directory, and no shipped profile of that name "
        "(shipped: original)."
    )
