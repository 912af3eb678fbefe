"""Power-law fit recovery and throughput ratios."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.scaling import fit_power_law, power_law, speedup_vs_interval


def test_power_law_fit_recovers_known_parameters():
    rng = np.random.default_rng(7)
    x = np.repeat(np.geomspace(1e5, 3e7, 6), 3)
    E, A, alpha = 1.5, 400.0, 0.45
    y = power_law(x, E, A, alpha) + 0.002 * rng.standard_normal(len(x))
    fit = fit_power_law(x, y, n_boot=100)
    assert fit["E"] == pytest.approx(E, rel=0.03)
    assert fit["alpha"] == pytest.approx(alpha, rel=0.05)
    assert fit["A"] == pytest.approx(A, rel=0.3)  # A is strongly correlated with alpha
    for name, truth in (("E", E), ("alpha", alpha)):
        assert fit[f"{name}_low"] <= truth <= fit[f"{name}_high"]
    assert (fit["n_points"], fit["n_sizes"]) == (18, 6)


def test_power_law_fit_is_deterministic_and_exact_on_noiseless_data():
    x = np.geomspace(1e4, 1e8, 5)
    y = power_law(x, 0.8, 50.0, 0.3)
    first, second = fit_power_law(x, y, n_boot=20), fit_power_law(x, y, n_boot=20)
    assert first == second
    assert (first["E"], first["A"], first["alpha"]) == pytest.approx((0.8, 50.0, 0.3), rel=1e-4)


def test_no_fit_with_fewer_than_four_sizes():
    x = np.repeat([1e5, 1e6, 1e7], 4)
    assert fit_power_law(x, power_law(x, 1.0, 10.0, 0.3)) is None
    assert fit_power_law([1e5, 1e6, np.nan, 1e7, 1e8], [2.0, 1.5, 1.2, np.nan, 1.0]) is None


def test_speedup_is_worker_over_standard_tokens_per_s_at_the_same_shape():
    shape = dict(attention="sdpa", n_embd=64, n_layer=2, n_head=4, batch_size=16)
    throughput = pd.DataFrame(
        [
            dict(shape, arm="standard", arch="standard", worker_interval=pd.NA, seq_len=64, tokens_per_s_mean=100.0),
            dict(shape, arm="worker k=4", arch="worker", worker_interval=4, seq_len=64, tokens_per_s_mean=250.0),
            dict(shape, arm="worker k=2", arch="worker", worker_interval=2, seq_len=64, tokens_per_s_mean=150.0),
            dict(shape, arm="worker k=2", arch="worker", worker_interval=2, seq_len=128, tokens_per_s_mean=1.0),
        ]
    )
    out = speedup_vs_interval(throughput)
    assert out[["worker_interval", "speedup"]].values.tolist() == [[2, 1.5], [4, 2.5]]  # seq_len 128: no baseline
