"""`wt-study analyze --timing` on synthetic steps-budget studies and hand-written profiles: the projected curves,
time to target, verdicts and the axis table against numbers computed here from the study's own points."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest
from synth import write_study

from analysis import cli
from analysis.axes import axis_display, axis_table, with_targets
from analysis.load import load_study
from analysis.pareto import best_so_far
from analysis.profiles import read_profiles, yaml_profile
from analysis.report import analyze
from analysis.stats import curve_points
from analysis.targets import censored_median, time_to_target

SPEEDS = {"standard": 10.0, "worker": 30.0}  # steps/s on the profiled machine "far"
PROFILE = """\
device_name: far
source: a test
seq_len: 64
n_embd: 64
n_layer: 2
n_head: 4
batch_size: 16
dropout: 0.0
shapes:
  - {arch: standard, steps_per_s: 10}
  - {arch: worker, worker_interval: 4, steps_per_s: 30}
"""


@pytest.fixture(scope="module")
def steps_study(tmp_path_factory):
    """Standard and worker k=4 at seq_len 64, 3 seeds, a steps budget: standard steps 100..800, worker 150..1200."""
    root = tmp_path_factory.mktemp("steps")
    return load_study(str(write_study(root, archs=("standard", "worker"), intervals=(4,), seq_lens=(64,),
                                      seeds=(0, 1, 2), budget_kind="steps")))  # fmt: skip


@pytest.fixture(scope="module")
def timed(steps_study):
    return analyze(steps_study, profiles=yaml_profile(PROFILE, "far.yaml"))


def loss_at_step(study, trial_id: str, step: float) -> float:
    """Interpolated in step between the trial's points (its final one used the periodic set: final_full off)."""
    points = study.metrics[study.metrics["trial_id"].eq(trial_id)]
    return float(np.interp(step, points["step"], points["val_loss"]))


def test_curves_are_steps_times_the_profiles_step_time(timed):
    curves = timed.retiming.curves
    speed = curves["arch"].map(SPEEDS)
    assert np.allclose(curves["projected_time_s"], curves["step"] / speed)
    assert curves.groupby("arch")["projected_time_s"].max().to_dict() == pytest.approx({"standard": 80, "worker": 40})
    assert timed.retiming.missing.empty and timed.retiming.refused.empty


def test_the_verdict_is_at_the_longest_covered_budget_and_matches_the_points(steps_study, timed):
    (row,) = timed.retiming.verdicts.to_dict("records")
    # standard runs 800 steps at 10/s (80 s), worker 1200 at 30/s (40 s): every trial covers 40 s
    assert row["budget_s"] == pytest.approx(40.0) and row["test"] == "paired" and row["n_pairs"] == 3
    trials = steps_study.trials.set_index("seed")
    expected = np.mean([
        loss_at_step(steps_study, trials[trials["arch"].eq("worker")].loc[s, "trial_id"], 40 * 30)
        - loss_at_step(steps_study, trials[trials["arch"].eq("standard")].loc[s, "trial_id"], 40 * 10)
        for s in (0, 1, 2)
    ])  # fmt: skip
    assert row["diff"] == pytest.approx(expected)
    assert row["sentence"].startswith(
        f"on far, at 40 s of training (the longest all its trials cover), worker k=4 - standard = {expected:.3f} ["
    )
    assert row["diff_ci_low"] <= row["diff"] <= row["diff_ci_high"]
    given = analyze(steps_study, profiles=yaml_profile(PROFILE, "far.yaml"), timing_budget_s=30.0)
    assert given.retiming.verdicts["budget_s"].tolist() == [30.0]
    assert "at 30 s of training, worker k=4" in given.retiming.verdicts["sentence"].iloc[0]


def test_projected_time_to_target_is_the_crossing_step_over_the_speed(steps_study, timed):
    points = curve_points(steps_study.metrics, timed.final)
    points = points.assign(at_step=points["step"].astype(float))
    crossing = time_to_target(best_so_far(points, "val_loss", "at_step"), timed.targets, x="at_step")
    crossing = crossing.merge(timed.final[["trial_id", "arch", "config_id"]], on="trial_id")
    reach = timed.retiming.reach.set_index("config_id")
    assert len(reach) == 2
    for config_id, group in crossing.groupby("config_id"):
        expected = censored_median(group["at_step"] / group["arch"].map(SPEEDS))
        assert reach.loc[config_id, "projected_time_s_to_target"] == pytest.approx(expected)
    standard, worker = (reach[reach["arm"].eq(a)].iloc[0] for a in ("standard", "worker k=4"))
    assert worker["speedup"] == pytest.approx(
        standard["projected_time_s_to_target"] / worker["projected_time_s_to_target"]
    )


def test_the_axis_table_reads_each_axis_at_the_largest_x_every_seed_reached(steps_study, timed):
    axes = timed.axes.set_index("axis")
    assert axes.loc["step", "x"] == 800  # the standard model's last step
    trials = steps_study.trials.set_index("seed")
    expected = np.mean([
        loss_at_step(steps_study, trials[trials["arch"].eq("worker")].loc[s, "trial_id"], 800)
        - loss_at_step(steps_study, trials[trials["arch"].eq("standard")].loc[s, "trial_id"], 800)
        for s in (0, 1, 2)
    ])  # fmt: skip
    assert axes.loc["step", "diff"] == pytest.approx(expected) and axes.loc["step", "test"] == "paired"
    # equal projected time on the profiled machine is the projected verdict at the covered budget
    projected = axes.loc["projected_time_s on far"]
    verdict = timed.retiming.verdicts.iloc[0]
    assert projected["x"] == pytest.approx(40.0) and projected["diff"] == pytest.approx(verdict["diff"])
    # studies without the targets column get them from the settings: the same counts
    points = curve_points(steps_study.metrics, timed.final)
    derived = with_targets(points.drop(columns="targets"), timed.final)
    assert derived["targets"].tolist() == points["targets"].astype(float).tolist()
    no_targets = axis_table(points.drop(columns="targets"), timed.final, timed.chosen)
    assert no_targets.set_index("axis").loc["targets", "diff"] == pytest.approx(axes.loc["targets", "diff"])


def test_the_report_has_a_section_per_machine_and_names_missing_shapes(steps_study, tmp_path):
    profile = tmp_path / "far.yaml"
    profile.write_text(PROFILE.replace("  - {arch: worker, worker_interval: 4, steps_per_s: 30}\n", ""))
    out = tmp_path / "report"
    assert analyze_cli([steps_study.path, "--out", str(out), "--timing", str(profile), "original"]) == 0
    report = (out / "report.md").read_text()
    assert "## Re-timed on profiled machines" in report and "### On far" in report
    assert "### On original's GPU" in report and "(`shipped: original`)" in report
    shape = "worker k=4, seq_len 64, n_embd 64, n_layer 2, n_head 4, ffn_hidden 256, batch_size 16, attention sdpa, "
    assert f"| far | {shape}dropout 0, conv_kernel 3 | 3 |" in report  # the worker shape far's profile lacks
    assert "No projected verdict: no cell has both a standard arm and another arm re-timed" in report
    assert (out / "timing.png").read_bytes().startswith(b"\x89PNG") and (out / "axes.png").exists()


def test_a_machine_profiled_twice_is_re_timed_at_the_mean_of_its_profiles_and_the_report_says_how_far_it_moved(
    steps_study, tmp_path
):
    from analysis.render_timing import timing_section

    (tmp_path / "before.yaml").write_text(PROFILE)
    (tmp_path / "after.yaml").write_text(PROFILE.replace("steps_per_s: 10", "steps_per_s: 5"))  # standard: 2x slower
    a = analyze(steps_study, profiles=read_profiles([tmp_path / "before.yaml", tmp_path / "after.yaml"]))
    curves = a.retiming.curves
    standard = curves["arch"].eq("standard")
    assert np.allclose(curves.loc[standard, "projected_time_s"], curves.loc[standard, "step"] * (0.1 + 0.2) / 2)
    assert np.allclose(curves.loc[~standard, "projected_time_s"], curves.loc[~standard, "step"] / 30)
    text = timing_section(a, lambda name: name)
    assert "pooled from 2 profiles (the mean of their medians): a test" in text
    assert "A shape's median step time moved by up to 100% between its pooled profiles (the machine's own" in text


def test_seconds_budget_trials_are_named_and_not_re_timed(tmp_path):
    study = load_study(str(write_study(tmp_path, archs=("standard", "worker"), intervals=(4,), seq_lens=(64,))))
    a = analyze(study, profiles=yaml_profile(PROFILE, "far.yaml"))
    assert len(a.retiming.refused) == len(study.trials) and a.retiming.curves.empty
    assert a.retiming.verdicts.empty and a.retiming.means.empty
    from analysis.render_timing import timing_section

    text = timing_section(a, lambda name: name)
    assert f"**{len(study.trials)} trials are not re-timed**: a seconds budget: its learning-rate schedule" in text


def analyze_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser, "analyze")
    return cli.run(parser.parse_args(argv))


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--timing", "missing.parquet"], "--timing 'missing.parquet' is invalid: no such file or directory"),
        (["--timing", "original", "--timing-budget-s", "0"], "--timing-budget-s=0 is invalid: expected a finite"),
        (["--timing-budget-s", "30"], "--timing-budget-s is invalid without --timing"),
        (["--timing", "bad.yaml"], "profile 'bad.yaml' row 2: steps_per_s=0 is invalid: expected a finite number > 0."),
    ],
)
def test_bad_timing_input_is_one_sentence_before_anything_is_written(steps_study, tmp_path, monkeypatch, flags,
                                                                    expected):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.yaml").write_text(PROFILE.replace("steps_per_s: 30", "steps_per_s: 0"))
    out = tmp_path / "report"
    with pytest.raises(ValueError) as caught:
        analyze_cli([steps_study.path, "--out", str(out), *flags])
    assert str(caught.value).startswith(expected) and "\n" not in str(caught.value)
    assert not out.exists()


def test_a_profile_without_evaluation_time_cannot_count_evaluations(steps_study):
    with pytest.raises(ValueError, match="machine 'far' has no eval_time_per_token_s in its profile"):
        analyze(steps_study, profiles=yaml_profile(PROFILE, "far.yaml"), timing_with_eval=True)
    with_eval = PROFILE.replace("dropout: 0.0\n", "dropout: 0.0\neval_time_per_token_s: 1.0e-4\n")
    a = analyze(steps_study, profiles=yaml_profile(with_eval, "far.yaml"), timing_with_eval=True)
    curves = a.retiming.curves
    # every earlier evaluation of 4096 validation tokens adds 0.4096 s
    earlier = curves.groupby("trial_id").cumcount() * 4096 * 1e-4
    assert np.allclose(curves["projected_time_s"], curves["step"] / curves["arch"].map(SPEEDS) + earlier)
    assert "of training and evaluation" in a.retiming.verdicts["sentence"].iloc[0]


def test_analysis_with_timing_keeps_its_other_tables(steps_study, timed):
    plain = analyze(steps_study)
    pd.testing.assert_frame_equal(plain.verdicts, timed.verdicts)
    assert plain.retiming is None and "projected_time_s on far" not in set(plain.axes["axis"])


def test_the_axes_plot_names_each_arm_once_when_there_are_more_cells_than_line_styles(tmp_path):
    from analysis.figures import figures

    seq_lens = (32, 64, 128, 256, 512)  # 5 cells, 4 line styles
    study = load_study(str(write_study(tmp_path, archs=("standard", "worker"), intervals=(4,), seq_lens=seq_lens)))
    fig = figures(analyze(study))["axes.png"]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]  # one legend under the panels
    assert legend == ["standard (5 cells)", "worker k=4 (5 cells)"]
    assert [ax.get_xlabel() for ax in fig.axes if ax.get_visible()][:2] == ["steps", "input tokens"]


def test_step_time_spread_widens_the_projected_speedup_and_the_axes_projected_interval(steps_study, tmp_path):
    """The same study on a machine profiled twice, its standard model 10% slower the second time: the step time
    is uncertain by that much, and every projected interval says so; with one exact profile it is the seeds'."""
    (tmp_path / "before.yaml").write_text(PROFILE)
    (tmp_path / "after.yaml").write_text(PROFILE.replace("steps_per_s: 10", "steps_per_s: 9.09"))
    pooled = analyze(steps_study, profiles=read_profiles([tmp_path / "before.yaml", tmp_path / "after.yaml"]))
    exact = analyze(steps_study, profiles=yaml_profile(PROFILE, "far.yaml"))

    def width(frame, low, high):
        return float((frame[high] - frame[low]).iloc[0])

    speedups = [a.retiming.reach[a.retiming.reach["arm"].eq("worker k=4")] for a in (exact, pooled)]
    assert width(speedups[1], "speedup_ci_low", "speedup_ci_high") > 2 * width(speedups[0], "speedup_ci_low",
                                                                               "speedup_ci_high")  # fmt: skip
    axes = [a.axes[a.axes["axis"].str.startswith("projected_time_s")] for a in (exact, pooled)]
    assert axes[1]["test"].tolist() == ["bootstrap paired"] and np.isnan(axes[1]["p_value"].iloc[0])
    assert width(axes[1], "diff_ci_low", "diff_ci_high") > 2 * width(axes[0], "diff_ci_low", "diff_ci_high")
    verdicts = [a.retiming.verdicts for a in (exact, pooled)]
    assert width(verdicts[1], "diff_ci_low", "diff_ci_high") > 2 * width(verdicts[0], "diff_ci_low", "diff_ci_high")


def test_two_lost_seeds_of_five_count_as_never_reaching_and_flag_every_projected_table(tmp_path):
    """A steps study, 5 seeds, worker seeds 3 and 4 diverged halfway (their losses NaN from then on)."""

    def status_of(_, config):
        return "diverged" if config["arch"] == "worker" and config["seed"] >= 3 else "completed"

    study = load_study(str(write_study(tmp_path, archs=("standard", "worker"), intervals=(4,), seq_lens=(64,),
                                       seeds=range(5), budget_kind="steps", status_of=status_of)))  # fmt: skip
    a = analyze(study, profiles=yaml_profile(PROFILE, "far.yaml"), target_loss=None)
    flag = "worker k=4 unstable: 2 diverged of 5"
    reach = a.retiming.reach.set_index("arm").loc["worker k=4"]
    assert (reach["n_seeds"], reach["n_diverged_unreached"]) == (5, 2)
    summary = a.summary.set_index("config_id").loc[reach["config_id"]]
    assert summary["n_diverged_unreached"] == 2  # the measured time to target: the same rule
    (verdict,) = a.retiming.verdicts.to_dict("records")
    assert verdict["lost"] == flag and verdict["n_arm_lost"] == 2 and verdict["n_arm"] == 3
    assert "so no verdict from the survivors" in verdict["sentence"]
    assert (a.axes["lost"] == flag).all() and len(a.axes) == 6  # every axis, the projected one included
    assert axis_display(a.axes, a.chosen)["seeds lost"].tolist() == [flag]
    crossing = time_to_target(a.curves["train_time_s"], a.targets).set_index("trial_id")["train_time_s"]
    worker = a.final[a.final["arch"].eq("worker") & a.final["seed_role"].eq("test")].sort_values("seed")
    times = crossing.reindex(worker["trial_id"]).to_numpy(float)
    assert np.isfinite(times).all()  # the lost seeds reached the target before they diverged, and still count
    # as never reaching it: the median is the slowest of the 3 survivors (the old rule: the middle of all 5)
    assert summary["train_time_s_to_target"] == pytest.approx(times[:3].max())
    assert summary["train_time_s_to_target"] > np.median(times)
    # projected: the same rule; synth's worker runs 60 steps/s, the profile's 30, so every time doubles
    assert reach["projected_time_s_to_target"] == pytest.approx(2 * times[:3].max())
