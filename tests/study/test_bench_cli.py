"""`wt-study bench` end to end on a tiny model: one row per case, the standard model as the 1.00x reference."""

from __future__ import annotations

import pytest

from study.cli import main

TINY = ["--n-embd", "32", "--n-layer", "1", "--n-head", "2", "--steps", "2", "--warmup", "1", "--no-dropout-row"]


def test_bench_times_each_case_and_writes_the_csv(tmp_path, capsys):
    csv = tmp_path / "bench.csv"
    argv = ["bench", *TINY, "--seq-lens", "32", "64", "--batch-sizes", "2", "--attentions", "sdpa", "--csv", str(csv)]
    assert main(argv) == 0
    table = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in table if line.startswith(("worker k=4 ", "standard "))]
    rows = [[" ".join(r[:2]), *r[2:]] if r[0] == "worker" else r for r in rows]  # the arm: "worker k=4"
    assert sorted((r[0], r[4]) for r in rows) == [
        ("standard", "32"),
        ("standard", "64"),
        ("worker k=4", "32"),
        ("worker k=4", "64"),
    ]
    assert all(r[-1] == "1.00x" for r in rows if r[0] == "standard")
    assert len(csv.read_text().splitlines()) == 1 + 4  # a header and one line per row


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--seq-lens", "32", "64", "--batch-sizes", "2", "2", "2"], "--batch-sizes=[2, 2, 2]"),
        (["--steps", "0"], "--steps=0"),
        (["--clock", "cpu", "--device", "meta"], "--device"),
    ],
)
def test_bad_flags_are_one_sentence_before_anything_runs(flags, named, capsys):
    assert main(["bench", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("wt-study bench: error:") and named in err and len(err.splitlines()) == 1


def test_bench_out_writes_a_profile_the_analysis_reads_back(tmp_path, capsys):
    from analysis.profiles import read_profiles
    from study.train.device import device_name

    out = tmp_path / "cpu.parquet"
    argv = ["bench", *TINY, "--seq-lens", "32", "--batch-sizes", "2", "--attentions", "sdpa", "--out", str(out)]
    assert main([*argv, "--archs", "standard", "worker", "standard-mixer"]) == 0
    assert f"Profile: 3 shapes -> {out}" in capsys.readouterr().out
    profile = read_profiles([out]).set_index("arch").sort_index()
    assert sorted(profile.index) == ["standard", "standard-mixer", "worker"]
    assert (profile["device_name"] == device_name(__import__("torch").device("cpu"))).all()
    assert (profile["step_time_s_n"] == 2).all() and (profile["threads"] == 1).all()  # the cpu clock: 1 thread
    assert (profile["step_time_s_p10"] <= profile["step_time_s_median"]).all()
    assert (profile["step_time_s_median"] <= profile["step_time_s_p90"]).all()
    assert (profile["eval_time_per_token_s"] > 0).all() and (profile["mfu"] > 0).all()
    # the architecture's own settings, null where it has none (as trials rows hold them)
    assert profile["worker_interval"].isna().tolist() == [True, True, False]
    assert profile["conv_kernel"].isna().tolist() == [True, False, False]
    assert profile["tokens_per_s"].tolist() == [pytest.approx(2 * 32 / t) for t in profile["step_time_s_median"]]


def test_for_study_times_each_distinct_shape_of_the_counted_budgets_once():
    import pandas as pd

    from study.config.space import expand
    from study.config.specfile import parse_spec
    from study.train.bench_profile import shape_of, study_cases
    from study.tune.rows import pending_row
    from tests.study.conftest import TINY_SPEC, deep_update

    doc = deep_update(TINY_SPEC, {"budget": {"kind": "steps", "value": 20}, "seeds": [0, 1, 2]})
    doc["axes"] = dict(doc["axes"], arch=["standard", "worker", "worker-random-phase"], seq_len=[32, 64])
    spec = parse_spec(doc)
    trials = pd.DataFrame([dict(pending_row(t, spec), trial_id=t.trial_id) for t in expand(spec)])
    cases = study_cases(trials, ("off",))
    assert len(trials) == 18 and len(cases) == 6  # 3 arch labels x 2 seq_lens; the seeds share a shape
    shapes = sorted((c.arch_label, c.seq_len, c.cfg.random_worker_phase) for c in cases)
    assert shapes[-2:] == [("worker-random-phase", 32, True), ("worker-random-phase", 64, True)]
    assert {shape_of(c)["conv_kernel"] for c in cases if c.cfg.arch == "standard"} == {None}
    with pytest.raises(ValueError, match="no steps, tokens or flops budgeted trial to profile"):
        study_cases(trials.assign(budget_kind="seconds"), ("off",))


def test_for_study_with_a_spec_file_profiles_its_shapes_before_the_study_exists(tmp_path, capsys):
    import yaml

    from analysis.profiles import read_profiles
    from tests.study.conftest import TINY_SPEC, deep_update

    doc = deep_update(TINY_SPEC, {"budget": {"kind": "steps", "value": 20}, "seeds": [0, 1]})
    doc["storage"] = str(tmp_path / "results")
    doc["axes"] = dict(doc["axes"], seq_len=[32, 64])
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(doc))
    out = tmp_path / "before.parquet"
    assert main(["bench", "--for-study", str(spec), "--steps", "2", "--warmup", "1", "--out", str(out)]) == 0
    assert f"the {spec} trials' shapes (4 cases)" in capsys.readouterr().out
    rows = read_profiles([out])
    assert sorted(zip(rows["arch"], rows["seq_len"], strict=True)) == [
        ("standard", 32), ("standard", 64), ("worker", 32), ("worker", 64)]  # fmt: skip
    assert set(rows["threads"]) == {1} and (rows["dropout"] == 0.0).all()  # resources.cpus; the spec's model
    assert not (tmp_path / "results").exists()  # nothing of the study is written


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--out", "profile.csv"], "--out='profile.csv' is invalid: expected a .parquet file"),
        (["--for-study", "x", "--seq-lens", "32"], "--seq-lens is invalid with --for-study"),
        (["--out", "p.parquet", "--baseline-src", "."], "--baseline-src is invalid with --out"),
        (["--for-study", "/nonexistent/study"], "no study at /nonexistent/study"),
    ],
)
def test_bad_profile_flags_are_one_sentence_before_anything_runs(flags, named, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["bench", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert named in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_the_table_names_each_worker_interval_and_compares_with_the_standard_model_of_the_same_size():
    from study.train.bench import BenchCase, BenchResult, format_table
    from wt_model import ModelConfig

    def result(arch, n_embd, step_ms, k=4):
        cfg = ModelConfig(arch=arch, vocab_size=9, block_size=64, n_embd=n_embd, n_head=2, n_layer=1, worker_interval=k)
        return BenchResult(BenchCase(cfg, batch_size=2, seq_len=64), step_ms, 1.0, 0.01)

    rows = [result("standard", 32, 10.0), result("standard", 64, 40.0), result("worker", 32, 5.0, k=4)]
    rows += [result("worker", 64, 10.0, k=8)]
    lines = format_table(rows, peak_tflops=1.0).splitlines()
    assert lines[0].split()[:3] == ["arm", "model", "attention"]
    ratios = {" ".join(line.split()[:3]): line.split()[-1] for line in lines[2:]}
    assert ratios == {  # each worker against the standard model of its own size
        "standard d32 L1": "1.00x",
        "standard d64 L1": "1.00x",
        "worker k=4 d32": "2.00x",
        "worker k=8 d64": "4.00x",
    }
