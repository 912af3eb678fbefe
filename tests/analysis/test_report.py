"""The whole `wt-study analyze` pipeline on synthetic studies shaped like the smoke preset."""

from __future__ import annotations

import argparse
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal
from synth import write_study

from analysis import cli
from analysis.load import load_study
from analysis.report import PLOTS, analyze, config_label
from wt_base.errors import StudyError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def analyze_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser, "analyze")
    return cli.run(parser.parse_args(argv))


@pytest.fixture(scope="module")
def smoke_study(tmp_path_factory):
    """2 archs, intervals 2 and 4, seq_len 64 and 128, 2 seeds, a 20 s budget (the smoke preset's shape)."""
    return write_study(tmp_path_factory.mktemp("smoke"), name="smoke", budget_s=20.0)


@pytest.fixture(scope="module")
def smoke_report(smoke_study, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    assert analyze_cli([str(smoke_study), "--out", str(out), "--format", "html"]) == 0
    return out


def test_every_plot_is_a_valid_png_or_left_out_with_its_reason(smoke_report):
    report = (smoke_report / "report.md").read_text()
    # the smoke shape has one model size: a scaling plot would show two points 0.5% apart
    assert not (smoke_report / "scaling_params.png").exists()
    assert "_(scaling_params left out: every arm's model sizes lie within 1x of each other" in report
    assert "_(isoflop left out: the study has no FLOPs budgets.)_" in report
    assert not (smoke_report / "timing.png").exists() and "## Re-timed" not in report  # no --timing, no section
    assert "_(no arm tried more than one value of a numeric tuned setting)_" in report  # the smoke has one lr
    assert not (smoke_report / "tuning.png").exists()
    left = ("scaling_params.png", "isoflop.png", "frontier.png", "timing.png", "tuning.png")
    for name in (p for p in PLOTS if p not in left):
        data = (smoke_report / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 5000, name
        assert f"]({name})" in report
    assert "<img" in (smoke_report / "report.html").read_text()
    summary = pd.read_csv(smoke_report / "summary.csv")
    assert len(summary) == 6  # standard + worker k=2 + worker k=4, at two seq_lens


def test_report_names_every_configuration_on_a_front(smoke_study, smoke_report):
    analysis = analyze(load_study(str(smoke_study)))
    report = (smoke_report / "report.md").read_text()
    on_front = analysis.summary[analysis.summary["config_id"].isin(analysis.fronts["config_id"])]
    assert len(on_front) >= 2
    assert set(analysis.fronts["seq_len"]) == {64, 128}  # one front per (seq_len, attention)
    for _, config in on_front.iterrows():
        assert config_label(config) in report and "init torch" in config_label(config)
    for trial_id in analysis.final.loc[analysis.final["config_id"].isin(on_front["config_id"]), "trial_id"]:
        assert trial_id in report


def test_report_says_how_settings_were_tuned(smoke_report, tmp_path):
    report = (smoke_report / "report.md").read_text()
    assert "no tuned settings: one configuration per arm" in report
    assert "| init |" in report.split("## Data regime")[0]  # the verdict table always shows the init

    swept = write_study(tmp_path / "swept", seq_lens=(64,), lrs=(3e-4, 1e-3), seeds=(0, 1, 2))
    assert analyze_cli([str(swept)]) == 0
    report = (swept / "analysis" / "report.md").read_text()
    assert "**tuned on test seeds: biased**" in report and "(tuned on test seeds: biased) |" in report

    tuned = write_study(tmp_path / "tuned", seq_lens=(64,), lrs=(3e-4, 1e-3), seeds=(0, 1, 2), tune_seeds=(100,))
    assert analyze_cli([str(tuned)]) == 0
    report = (tuned / "analysis" / "report.md").read_text()
    assert "on tune seeds 100" in report and "biased" not in report


def test_report_states_what_it_covers_and_the_seed_table(smoke_report):
    report = (smoke_report / "report.md").read_text()
    assert "12 (12 completed)" in report and "cpu (12 trials)" in report
    assert "No trial matches the seed's settings" in report
    header = "| Model | Speed (steps/s) | Train Time | Final Val Loss | Loss @ 120s | Params | Speedup |"
    assert report.count(header) == 2  # one table per seq_len cell
    assert "| Standard Transformer | 40.00 | 20s |" in report and "| n/a |" in report


def test_default_out_dir_and_terminal_verdicts(smoke_study, capsys):
    assert analyze_cli([str(smoke_study)]) == 0
    printed = capsys.readouterr().out
    assert "verdict" in printed and str(smoke_study / "analysis" / "report.md") in printed
    assert (smoke_study / "analysis" / "pareto_time.png").is_file()


def test_seed_table_for_matching_trials_with_loss_at_120s(tmp_path):
    study = write_study(
        tmp_path, archs=("standard", "worker"), intervals=(4,), seq_lens=(1024,), n_embds=(256,), n_layers=(4,),
        seeds=(0, 1, 2), budget_s=300.0, n_points=10,
    )  # fmt: skip
    assert analyze_cli([str(study), "--metric", "val_loss_seed"]) == 0
    report = (study / "analysis" / "report.md").read_text()
    assert "Trials matching the seed's settings" in report
    rows = [line for line in report.splitlines() if line.startswith(("| Standard Transformer", "| WorkerTransformer"))]
    assert len(rows) == 2
    std, worker = ([cell.strip() for cell in row.strip("|").split("|")] for row in rows)
    assert std[1:3] == ["2.50", "300s"] and std[6] == "1.00x"
    assert worker[0] == "WorkerTransformer" and worker[6] == "1.50x"
    assert worker[4] != "n/a" and float(worker[4]) < float(std[4])  # Loss @ 120s exists for a 300 s budget


def test_duplicated_rows_change_no_number(tmp_path):
    a = analyze(load_study(str(write_study(tmp_path / "a"))))
    b = analyze(load_study(str(write_study(tmp_path / "b", duplicate=True))))
    assert_frame_equal(a.summary, b.summary)
    assert_frame_equal(a.verdicts, b.verdicts)
    assert_frame_equal(a.fronts, b.fronts)


def test_partial_diverged_and_corrupt_inputs_still_report(tmp_path, capsys):
    def status_of(index, config):
        return {0: "running", 5: "diverged"}.get(index, "completed")

    study = write_study(tmp_path, status_of=status_of)
    bad = study / "results" / "trials" / "000002-b.parquet"
    bad.write_bytes(b"PAR1 not really parquet")
    assert analyze_cli([str(study), "--target-loss", "2.5"]) == 0  # the CLI prints warnings as lines
    assert "skipped unreadable file results/trials/000002-b.parquet" in capsys.readouterr().out
    report = (study / "analysis" / "report.md").read_text()
    assert "`results/trials/000002-b.parquet" in report
    assert "partial" in report and "2.5 (given)" in report


def test_user_mistakes_are_study_errors(tmp_path):
    with pytest.raises(StudyError, match="does not exist"):
        analyze_cli([str(tmp_path / "missing")])
    with pytest.raises(StudyError, match="--target-loss"):
        analyze_cli([str(tmp_path), "--target-loss", "-1"])


def test_cli_module_imports_no_heavy_packages():
    code = (
        "import sys, analysis.cli; print(sorted({'pandas', 'matplotlib', 'scipy', 'torch', 'ray'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_study_whose_runs_have_no_periodic_evaluation_still_reports(tmp_path):
    study = write_study(tmp_path, n_points=1, final_full=True, seeds=(0, 1, 2))
    assert analyze_cli([str(study)]) == 0
    report = (study / "analysis" / "report.md").read_text()
    assert "## Verdicts" in report and "insufficient seeds" not in report


def test_a_study_where_every_setting_lost_a_seed_still_reports(tmp_path):
    # two learning rates, no tuning seeds, one seed failed at each: no setting is chosen for either arm, so no
    # cell has a reference, a target or a verdict (this crashed in time-to-target and in the interval plot)
    def status_of(index, config):
        return "failed" if config["seed"] == (0 if config["lr"] == 3e-4 else 1) else "completed"

    study = write_study(tmp_path, intervals=(4,), seq_lens=(64,), lrs=(3e-4, 1e-3), status_of=status_of)
    assert analyze_cli([str(study)]) == 0
    report = (study / "analysis" / "report.md").read_text()
    assert "## Verdicts" in report


def test_report_states_trials_that_shared_a_device_on_a_seconds_budget(smoke_study):
    from analysis.render import covers

    analysis = analyze(load_study(str(smoke_study)))
    assert "Shared devices" not in covers(analysis)
    analysis.final["allow_shared_device"] = [True, False] * (len(analysis.final) // 2)
    line = next(x for x in covers(analysis).splitlines() if "Shared devices" in x)
    assert f"{len(analysis.final) // 2} trials ran on a seconds budget" in line


def test_curves_tell_apart_chosen_settings_of_one_arm_in_one_panel(tmp_path):
    # two inits are two cells with a chosen setting each: both curves are labelled with what differs (the
    # legend said "standard (chosen setting ...)" twice, in one colour and one line style)
    from analysis.plots import curves_plot

    analysis = analyze(load_study(str(write_study(tmp_path, seq_lens=(64,), inits=("torch", "nanogpt")))))
    chosen = set(analysis.chosen["config_id"].dropna())
    fig = curves_plot(analysis.seed_curves, analysis.final.drop_duplicates("config_id"), chosen, "train_time_s", "", "")
    labels = [line.get_label() for line in fig.axes[0].get_lines() if not line.get_label().startswith("_")]
    assert sorted(label.split(" (")[0] for label in labels) == [
        "standard, init nanogpt",
        "standard, init torch",
        "worker k=2, init nanogpt",
        "worker k=2, init torch",
        "worker k=4, init nanogpt",
        "worker k=4, init torch",
    ]
    styles = {line.get_label().split(" (")[0]: line.get_linestyle() for line in fig.axes[0].get_lines()}
    assert styles["standard, init nanogpt"] != styles["standard, init torch"]


def test_the_mixer_ablation_is_an_arm_of_its_own_in_every_table(tmp_path):
    study = write_study(
        tmp_path, archs=("standard", "standard-mixer", "worker"), intervals=(4,), seq_lens=(64,), seeds=(0, 1, 2)
    )
    a = analyze(load_study(str(study)))
    assert sorted(a.verdicts["arm"]) == ["standard-mixer", "worker k=4"]  # each judged against the standard model
    assert set(a.summary["arm"]) == {"standard", "standard-mixer", "worker k=4"}
    mixer = a.final[a.final["arch"].eq("standard-mixer")]
    assert mixer["worker_interval"].isna().all() and mixer["conv_kernel"].eq(3).all()
    assert analyze_cli([str(study), "--out", str(tmp_path / "out")]) == 0
    report = (tmp_path / "out" / "report.md").read_text()
    assert "Standard Transformer + token mixer" in report and "| standard-mixer |" in report


def test_reports_count_supervised_targets_beside_tokens_and_read_the_gap_against_its_start(tmp_path):
    """At equal steps the worker reads as many input tokens as the standard model but is supervised on 1/k of
    them; the train - val gap is read against its first evaluation, not by its sign."""
    study = write_study(tmp_path, intervals=(4,), seq_lens=(64,), seeds=(0, 1, 2))
    a = analyze(load_study(str(study)))
    v = a.verdicts.iloc[0]
    assert v["arm_target_epochs"] < 0.5 * v["arm_epochs"]
    assert a.summary["target_epochs_end"].notna().all()
    assert a.summary["train_minus_val_change"].to_numpy() == pytest.approx(-0.05)
    assert analyze_cli([str(study), "--out", str(tmp_path / "out")]) == 0
    report = (tmp_path / "out" / "report.md").read_text()
    assert "in supervised targets" in report and "train − val since its first evaluation" in report


def test_a_crossed_factor_gets_its_difference_in_differences_and_the_warnings_go_to_their_own_file(tmp_path):
    study = write_study(tmp_path, intervals=(4,), seq_lens=(64,), seeds=(0, 1, 2), inits=("torch", "nanogpt"))
    a = analyze(load_study(str(study)))
    assert set(a.interactions["factor"]) == {"init"} and a.interactions["did"].notna().all()
    assert analyze_cli([str(study), "--out", str(tmp_path / "out")]) == 0
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Interactions" in report and "difference-in-differences" in report
    warnings = (tmp_path / "out" / "warnings.md").read_text()
    assert warnings.strip() and warnings.strip() in report  # the same text, for pages that quote the report


def test_an_isoflop_study_gets_compute_optimal_frontiers_per_arm(tmp_path):
    """Several FLOP budgets with five sizes each: per arm and budget an isoFLOP profile, and the frontiers."""
    budgets = (1e12, 1e13)

    def loss_of(config, steps, default):
        n = 12 * config["n_layer"] * config["n_embd"] ** 2
        c = config["budget_value"]
        tokens = c / (6 * n)
        return np.full(
            len(steps), 1.5 + 300 * n**-0.34 + 300 * tokens**-0.28 - (0.03 if config["arch"] != "standard" else 0)
        )

    study = write_study(
        tmp_path, intervals=(4,), seq_lens=(64,), n_embds=(32, 48, 64, 96, 128), seeds=(0, 1, 2),
        budget_kind="flops", budget_values=budgets, loss_of=loss_of, noise=0.002,
    )  # fmt: skip
    a = analyze(load_study(str(study)))
    profiles = a.isoflop["profiles"]
    assert len(profiles) == 4 and set(profiles["budget_flops"]) == set(budgets)
    assert analyze_cli([str(study), "--out", str(tmp_path / "out")]) == 0
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Compute-optimal frontiers (isoFLOP)" in report and "](isoflop.png)" in report
    assert (tmp_path / "out" / "isoflop_profiles.csv").exists()


def test_an_interrupted_report_leaves_its_folder_as_it_was(smoke_study, tmp_path, monkeypatch):
    """Ctrl-C while the report is written (here: after every plot, at the report's text): no half-written
    folder, no temporary one left beside it; an earlier report in the folder is untouched."""
    from analysis import render, report

    a = analyze(load_study(str(smoke_study)))
    out = tmp_path / "analysis"
    out.mkdir()
    (out / "report.md").write_text("the earlier report")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(render, "render", interrupted)
    with pytest.raises(KeyboardInterrupt):
        report.write_report(a, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["analysis"]
    assert (
        sorted(p.name for p in out.iterdir()) == ["report.md"]
        and (out / "report.md").read_text() == "the earlier report"
    )


def test_status_into_a_closed_pipe_prints_no_traceback(smoke_study):
    """`wt-study status PATH | head -1`: the reader goes away; the command ends quietly."""
    from study.config.specfile import dump_spec, parse_spec
    from wt_base.layout import SPEC_FILE

    (smoke_study / SPEC_FILE).write_text(dump_spec(parse_spec({"name": "smoke", "storage": str(smoke_study.parent)})))
    proc = subprocess.Popen(
        [sys.executable, "-m", "study.cli", "status", str(smoke_study)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    proc.stdout.close()  # before it writes a line
    stderr = proc.stderr.read().decode()
    assert proc.wait(60) == 0 and "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
