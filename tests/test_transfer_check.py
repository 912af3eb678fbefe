"""The transfer check's arithmetic (benchmarks/transfer_check.py) on hand-built frames: the coverage count, its
Clopper-Pearson interval against the binomial tails it is defined by, the twin's paired differences and its loss
at a time. The studies themselves run only in the benchmark (minutes; docs/analysis.md)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tc():
    spec = importlib.util.spec_from_file_location("transfer_check", REPO / "benchmarks" / "transfer_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("inside", "n"), [(7, 8), (3, 8), (12, 12), (0, 10), (9, 16)])
def test_binomial_interval_meets_its_tails(tc, inside, n):
    """Each end is where the binomial tail beyond the observed count is (1 - confidence) / 2; at 0 or n it is
    the closed end."""
    low, high = tc.binomial_interval(inside, n)
    if inside > 0:
        assert binom.sf(inside - 1, n, low) == pytest.approx(0.025, abs=1e-9)  # P(X >= inside | low)
    else:
        assert low == 0.0
    if inside < n:
        assert binom.cdf(inside, n, high) == pytest.approx(0.025, abs=1e-9)  # P(X <= inside | high)
    else:
        assert high == 1.0
    assert low <= inside / n <= high


def test_binomial_interval_known_values(tc):
    assert tc.binomial_interval(8, 8) == pytest.approx((0.025 ** (1 / 8), 1.0))
    assert tc.binomial_interval(7, 8) == pytest.approx((0.4735, 0.99684), abs=1e-4)
    assert all(np.isnan(tc.binomial_interval(0, 0)))


def test_coverage_counts_inside_with_closed_ends_and_leaves_out_undefined_rows(tc):
    rows = pd.DataFrame(
        {
            "measured": [0.5, 1.0, 2.0, 1.5, np.nan, 0.9, -0.1, 3.0],
            "low": [0.0, 1.0, 0.0, 1.6, 0.0, np.nan, -0.2, 2.0],
            "high": [1.0, 2.0, 1.9, 2.0, 1.0, 1.0, 0.0, 3.0],
        }
    )
    # inside: 0.5 in [0,1]; 1.0 on the low end; -0.1 in [-0.2, 0]; 3.0 on the high end. outside: 2.0, 1.5.
    out = tc.coverage(rows, "verdict")
    assert (out["cells"], out["twin inside"], out["cells without a value"]) == (6, 4, 2)
    low, high = tc.binomial_interval(4, 6)
    assert out["coverage (95% Clopper-Pearson)"] == f"{4 / 6:.2f} [{low:.2f}, {high:.2f}]"
    assert tc.coverage(rows.iloc[[4, 5]], "none")["coverage (95% Clopper-Pearson)"] == "no cell"


def test_paired_differences_use_shared_seeds_per_cell(tc):
    def trial(arch, k, seq_len, seed, loss):
        return {"arch": arch, "worker_interval": k, "seq_len": seq_len, "n_embd": 32, "seed": seed, "loss": loss}

    losses = pd.DataFrame(
        [
            trial("standard", None, 64, 0, 2.0),
            trial("standard", None, 64, 1, 2.2),
            trial("standard", None, 64, 2, np.nan),  # a lost seed: its pair is left out
            trial("worker", 4, 64, 0, 1.9),
            trial("worker", 4, 64, 1, 2.0),
            trial("worker", 4, 64, 2, 1.0),
            trial("standard", None, 128, 0, 1.5),
            trial("worker", 4, 128, 0, 1.8),
            trial("worker", 4, 128, 1, 1.0),  # no standard seed 1 in this cell
        ]
    )
    out = tc.paired_differences(losses).set_index("seq_len")
    assert out.loc[64, "measured"] == pytest.approx(((1.9 - 2.0) + (2.0 - 2.2)) / 2)
    assert out.loc[64, "twin_pairs"] == 2
    assert out.loc[128, "measured"] == pytest.approx(0.3)
    assert out.loc[128, "twin_pairs"] == 1


def test_loss_at_time_interpolates_in_time_and_refuses_past_the_run(tc):
    points = pd.DataFrame(
        {
            "trial_id": ["a", "a", "a", "b", "b"],
            "train_time_s": [2.0, 0.0, 1.0, 0.0, 1.0],  # unsorted on purpose
            "val_loss": [2.0, 4.0, 3.0, 4.0, 3.5],
        }
    )
    out = tc.loss_at_time(points, 1.5, "val_loss")
    assert out["a"] == pytest.approx(2.5)
    assert np.isnan(out["b"])  # its run ended at 1 s
