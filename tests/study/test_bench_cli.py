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
    rows = [line.split() for line in table if line.startswith(("worker ", "standard "))]
    assert sorted((r[0], r[4]) for r in rows) == [
        ("standard", "32"),
        ("standard", "64"),
        ("worker", "32"),
        ("worker", "64"),
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
