"""The whole product path on this machine: the smoke preset runs on Ray, then `status` and `analyze` read it.

The preset's budget is cut to 4 s per trial to keep the suite short and it trains on the committed corpus
excerpt (tests/data) instead of the downloaded TinyShakespeare; everything else is the shipped preset.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import tempfile

import pytest

from analysis.load import load_study
from study.cli import main
from study.config.run import DataConfig
from study.config.specfile import dump_spec, load_preset
from tests.reliability.helpers import check_budget

BUDGET_S = 4.0

PLOTS = ("pareto_time", "pareto_flops", "curves", "throughput", "interval", "axes")  # one size: no scaling plot
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def smoke_study(tmp_path_factory, excerpt):
    folder = tmp_path_factory.mktemp("smoke")
    spec = load_preset("smoke")
    spec = spec.replace(
        storage=str(folder / "results"),
        budget=dataclasses.replace(spec.budget, value=BUDGET_S),
        data=DataConfig(corpus=excerpt),
    )
    spec_path = folder / "smoke.yaml"
    spec_path.write_text(dump_spec(spec))
    ray_tmp = tempfile.mkdtemp(prefix="wts", dir="/tmp")
    try:
        code = main(["run", str(spec_path), "--ray-temp-dir", ray_tmp])
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert code == 0
    return folder / "results" / "smoke"


def test_resume_with_the_same_spec_is_accepted_and_a_finished_study_says_so(smoke_study, capsys):
    spec_path = smoke_study.parent.parent / "smoke.yaml"
    assert main(["resume", str(smoke_study), "--spec", str(spec_path)]) == 0
    assert "already finished" in capsys.readouterr().out


def test_smoke_study_completes_every_trial(smoke_study):
    study = load_study(str(smoke_study))
    assert len(study.trials) == 6 and (study.trials["status"] == "completed").all()
    assert set(study.trials["arch"]) == {"standard", "worker"}
    assert not study.partial
    assert study.metrics.groupby("trial_id")["is_final"].sum().eq(1).all()


def test_trial_rows_carry_sizes_budget_and_environment(smoke_study):
    study = load_study(str(smoke_study))
    trials = study.trials.set_index("trial_id")
    assert (trials.n_params > 0).all() and (trials.flops_per_token > 0).all()
    assert trials.device_name.str.startswith("cpu").all() and (trials.git_sha != "").all()
    assert (trials.dtype == "float32").all() and (trials.compile_mode == "off").all() and (trials.threads == 1).all()
    assert set(trials.attention_backend) <= {"sdpa", "sdpa+cpu-kernel", "naive"}  # what bought the steps
    assert (study.metrics.eval_time_s > 0).all() and (study.metrics.targets > 0).all()
    for trial_id, trial in trials.iterrows():
        assert trial.error == "", trial_id
        check_budget(trial, BUDGET_S)  # spent once, within one step
    for trial_id, curve in study.metrics.groupby("trial_id"):
        assert curve.step.is_monotonic_increasing and curve.train_time_s.is_monotonic_increasing, trial_id
    uniform = math.log(58)  # the loss of a uniform guess over the excerpt's 58 characters
    assert (study.metrics[study.metrics.is_final].val_loss < uniform).all()


def test_status_reads_the_study(smoke_study, capsys):
    assert main(["status", str(smoke_study)]) == 0
    out = capsys.readouterr().out
    assert "6 completed" in out and "Best val_loss so far" in out


def test_analyze_writes_every_plot_and_a_report_naming_the_fronts(smoke_study, tmp_path, capsys):
    out_dir = tmp_path / "report"
    assert main(["analyze", str(smoke_study), "--out", str(out_dir), "--format", "html"]) == 0
    printed = capsys.readouterr().out
    verdict_rows = [line for line in printed.splitlines() if line.startswith("| ") and "| worker k=" in line]
    assert len(verdict_rows) == 4, printed  # worker k=2 and k=4 against the standard model, at two seq_lens
    report = (out_dir / "report.md").read_text()
    # one model size: the scaling plot would show nothing, and the report says why instead
    assert "_(scaling_params left out: every arm's model sizes lie within" in report
    assert not (out_dir / "scaling_params.png").exists()
    for name in PLOTS:
        data = (out_dir / f"{name}.png").read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 5000, name
    assert (out_dir / "report.html").exists() and (out_dir / "summary.csv").exists()
    from analysis.pareto import best_so_far, pareto_front

    study = load_study(str(smoke_study))
    for x in ("train_time_s", "flops"):
        front = pareto_front(best_so_far(study.metrics, "val_loss", x), x)
        assert len(front) >= 1
        for trial_id in front["trial_id"].unique():
            assert trial_id in report, (x, trial_id)
