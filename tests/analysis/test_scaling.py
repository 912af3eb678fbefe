"""Power-law fit recovery and throughput ratios."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from frames import arm_rows, final_frame

from analysis import scaling
from analysis.scaling import MIN_SIZES, fit_power_law, power_law, power_law_fits, speedup_vs_interval
from analysis.tuning import choose_settings


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


def test_the_bootstrap_resamples_seeds_within_sizes_and_never_fits_fewer_than_min_sizes(monkeypatch):
    # issue #12 finding 6: a case bootstrap over (size, seed) points accepted resamples with 3 sizes
    seen = []
    fit_once = scaling._fit_once

    def spy(u, y, p0=None):
        seen.append((len(np.unique(u)), len(u)))
        return fit_once(u, y, p0)

    monkeypatch.setattr(scaling, "_fit_once", spy)
    rng = np.random.default_rng(0)
    x = np.repeat(np.geomspace(1e5, 1e7, MIN_SIZES), 3)
    fit = fit_power_law(x, power_law(x, 1.5, 400.0, 0.45) + 0.01 * rng.standard_normal(len(x)), n_boot=50)
    assert fit is not None and fit["n_boot"] > 0
    assert len(seen) == 51 and all(s == (MIN_SIZES, MIN_SIZES) for s in seen)  # one mean per size, every size


def test_fits_use_each_sizes_chosen_setting_and_test_seeds_only():
    rows = []
    for d in (32, 64, 128, 256):
        n_params = 12 * 2 * d * d
        size = dict(n_embd=d, ffn_hidden=4 * d, n_params=n_params)
        clean = float(power_law(n_params, 1.5, 400.0, 0.45))
        rows += [dict(r, **size) for r in arm_rows("standard", [clean, clean + 0.01, clean - 0.01])]
        rows += [dict(r, **size, lr=1e-2) for r in arm_rows("standard", [clean + 1.0] * 3)]  # a worse setting
        tune = ((1e-3, clean), (1e-2, clean + 1.0))  # the tune seed chooses lr 1e-3 at every size
        rows += [dict(arch="standard", seed=100, seed_role="tune", lr=lr, val_loss=v, **size) for lr, v in tune]
    final = final_frame(rows)
    fits = power_law_fits(final, choose_settings(final), n_boot=20)
    assert len(fits) == 1 and bool(fits.loc[0, "fitted"])
    assert (fits.loc[0, "n_sizes"], fits.loc[0, "n_points"]) == (4, 12)  # 3 test seeds x 4 sizes, one setting
    assert fits.loc[0, "E"] == pytest.approx(1.5, abs=0.05)


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
