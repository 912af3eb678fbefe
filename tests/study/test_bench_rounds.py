"""`wt-study bench --rounds`: the cases take turns block by block, each block re-warmed, failures dropped."""

from __future__ import annotations

import pytest
import torch

from study.train import bench_rounds
from study.train.bench import BenchCase
from wt_model import ModelConfig


def test_round_sizes_are_even_and_never_empty():
    assert bench_rounds.round_sizes(10, 3) == [4, 3, 3]
    assert bench_rounds.round_sizes(2, 5) == [1, 1]
    assert bench_rounds.round_sizes(6, 1) == [6]


def _cases(*names: str) -> list[BenchCase]:
    cfg = ModelConfig(vocab_size=9, block_size=8, n_embd=8, n_head=1, n_layer=1)
    return [BenchCase(cfg, batch_size=1, seq_len=8, label=name) for name in names]


@pytest.fixture
def log(monkeypatch):
    """Fake training steps that record which case ran, and when each case's model was built."""
    events: list[str] = []

    def training_step(case, device, build=None, seed=0):
        name = case.arch_label
        events.append(f"build {name}")
        return lambda: events.append(name)

    monkeypatch.setattr(bench_rounds, "training_step", training_step)
    return events


def test_cases_take_turns_block_by_block_and_later_blocks_rewarm(log):
    results = bench_rounds.run_cases(_cases("a", "b"), torch.device("cpu"), steps=4, warmup=2, rounds=2)
    assert log == ["build a", *"aaaa", "build b", *"bbbb", *"aaa", *"bbb"]  # 2 + 2, then 1 + 2 per case
    assert [r.case.arch_label for r in results] == ["a", "b"] and [r.n_samples for r in results] == [4, 4]


def test_one_round_is_one_case_after_another(log):
    reported = []
    bench_rounds.run_cases(_cases("a", "b"), torch.device("cpu"), 2, 1, rounds=1, on_result=reported.append)
    assert log == ["build a", *"aaa", "build b", *"bbb"]
    assert [r.case.arch_label for r in reported] == ["a", "b"]


def test_a_case_failing_in_a_later_round_is_reported_and_the_others_kept(monkeypatch):
    calls = {"n": 0}

    def training_step(case, device, build=None, seed=0):
        def step():
            if case.arch_label == "broken":
                calls["n"] += 1
                if calls["n"] > 3:  # its warm-up and first block pass, the second block fails
                    raise RuntimeError("out of memory")

        return step

    monkeypatch.setattr(bench_rounds, "training_step", training_step)
    failures, reported = [], []
    results = bench_rounds.run_cases(
        _cases("a", "broken", "b"),
        torch.device("cpu"),
        steps=4,
        warmup=1,
        rounds=2,
        on_result=reported.append,
        on_failure=lambda case, exc: failures.append((case.arch_label, str(exc))),
    )
    assert failures == [("broken", "out of memory")]
    assert [r.case.arch_label for r in results] == ["a", "b"] == [r.case.arch_label for r in reported]
    with pytest.raises(RuntimeError, match="out of memory"):  # without on_failure the error propagates
        calls["n"] = 0
        bench_rounds.run_cases(_cases("broken"), torch.device("cpu"), steps=4, warmup=1, rounds=2)
