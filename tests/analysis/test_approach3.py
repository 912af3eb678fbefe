"""Chinchilla's approach 3 (analysis.approach3) on synthetic runs with a known loss surface.

Runs follow L(N, D) = E + A N^-alpha + B D^-beta on five sizes around each budget's optimum, D = C / (6N), so the
truth's own N_opt(C) exponent is beta / (alpha + beta) and its L_opt is known in closed form.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from synth import write_study

from analysis.approach3 import approach3, approach3_difference, fit_loss_surface, flops_per_token_law, optimum
from analysis.load import load_study
from analysis.report import analyze, write_report

TRUTH = dict(E=1.7, A=400.0, alpha=0.34, B=410.0, beta=0.28)
BUDGETS = (1e15, 1e16, 1e17, 1e18)


def chinchilla(n, d, E=1.7, A=400.0, alpha=0.34, B=410.0, beta=0.28):
    return E + A * n**-alpha + B * d**-beta


def runs(rng, sd=0.0, arm="standard", seeds=3, seed_sd=0.0, scale=1.0, flops_per_param=6.0):
    """Per-run rows as scaling.isoflop_frame writes them; `sd` multiplicative noise per run, `seed_sd` per seed."""
    rows = []
    offsets = seed_sd * rng.standard_normal(seeds)
    for c in BUDGETS:
        for n in 0.3 * (c / 6) ** 0.5 * np.logspace(-0.5, 0.5, 5):
            d = c / (flops_per_param * n)
            for s in range(seeds):
                loss = scale * chinchilla(n, d) * np.exp(sd * rng.standard_normal() + offsets[s])
                rows.append((arm, c, n, d, flops_per_param * n * d, s, loss))
    return pd.DataFrame(rows, columns=["arm", "budget_flops", "n_params", "tokens", "flops", "seed", "final_loss"])


def test_noiseless_runs_give_back_the_surface_exactly():
    frame = runs(np.random.default_rng(0))
    fit = fit_loss_surface(frame["n_params"], frame["tokens"], frame["final_loss"])
    assert {k: fit[k] for k in TRUTH} == pytest.approx(TRUTH, rel=1e-4)


def test_lightly_noisy_runs_are_recovered():
    frame = runs(np.random.default_rng(1), sd=0.002)  # 0.2% per run, a fifth of the study's seed-to-seed scatter
    fits, _ = approach3(frame, n_boot=30)
    row = fits.iloc[0]
    assert row["E"] == pytest.approx(1.7, rel=0.05) and row["alpha"] == pytest.approx(0.34, rel=0.1)
    assert row["beta"] == pytest.approx(0.28, rel=0.1)
    assert row["a3"] == pytest.approx(0.28 / 0.62, abs=0.03)
    assert row["n_distinct_resamples"] == 10 and row["n_boot_ok"] == 30
    assert row["a3_low"] < row["a3"] < row["a3_high"]


def test_the_implied_optimum_is_the_surface_minimum_along_the_budget():
    kappa, m = 6.0, 1.0
    n_opt, l_opt, a3 = optimum(TRUTH, kappa, m, 1e18)
    assert a3 == pytest.approx(0.28 / 0.62)
    # independent reference: a dense scan of L(N, C / 6N) over N
    n = np.geomspace(1e5, 1e11, 200001)
    loss = chinchilla(n, 1e18 / (6 * n))
    assert n_opt == pytest.approx(n[np.argmin(loss)], rel=1e-3) and l_opt == pytest.approx(loss.min(), rel=1e-9)


def test_the_flops_per_token_law_is_read_from_the_runs():
    frame = runs(np.random.default_rng(0), flops_per_param=8.0)
    assert flops_per_token_law(frame) == pytest.approx((8.0, 1.0), rel=1e-9)
    frame["flops"] = 3.0 * frame["n_params"] ** 1.1 * frame["tokens"]  # attention and embeddings: not 6N
    assert flops_per_token_law(frame) == pytest.approx((3.0, 1.1), rel=1e-9)


def test_arms_are_compared_on_paired_seed_resamples():
    rng = np.random.default_rng(2)
    frame = pd.concat([runs(rng, sd=0.002), runs(rng, sd=0.002, arm="worker k=4", scale=0.97)])
    fits, replicates = approach3(frame, n_boot=20)
    diff = approach3_difference(fits, replicates).iloc[0]
    assert diff["arm"] == "worker k=4" and diff["loss_opt_ratio"] == pytest.approx(0.97, abs=0.01)
    assert diff["loss_opt_ratio_low"] <= diff["loss_opt_ratio"] <= diff["loss_opt_ratio_high"]
    assert diff["exponent_ratio"] == pytest.approx(1.0, abs=0.15)


def test_a_frame_without_tokens_fails_with_its_name():
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['tokens'\]"):
        approach3(runs(np.random.default_rng(0)).drop(columns="tokens"))


def test_the_report_writes_the_per_run_table_and_both_approaches_comparison(tmp_path):
    def loss_of(config, steps, default):
        n = 12 * config["n_layer"] * config["n_embd"] ** 2
        gain = 0.03 if config["arch"] != "standard" else 0.0
        return np.full(len(steps), chinchilla(n, config["budget_value"] / (6 * n)) - gain)

    study = write_study(
        tmp_path, intervals=(4,), seq_lens=(64,), n_embds=(32, 48, 64, 96, 128), seeds=(0, 1, 2),
        budget_kind="flops", budget_values=(1e12, 1e13), loss_of=loss_of, noise=0.002,
    )  # fmt: skip
    write_report(analyze(load_study(str(study))), tmp_path / "out")
    table = pd.read_csv(tmp_path / "out" / "isoflop_runs.csv")
    assert list(table.columns) == ["arm", "budget_flops", "n_params", "n_params_total", "tokens", "flops",
                                   "flops_per_token", "seed", "final_loss", "status", "trial_id"]  # fmt: skip
    assert len(table) == 2 * 2 * 5 * 3 and table["trial_id"].is_unique  # arms x budgets x sizes x seeds
    assert (table["n_params"] < table["n_params_total"]).all()  # N without the embedding, as Chinchilla counts it
    assert table["flops"].to_numpy() == pytest.approx((table["flops_per_token"] * table["tokens"]).to_numpy())
    comparison = pd.read_csv(tmp_path / "out" / "isoflop_comparison.csv")
    assert comparison["approach"].tolist() == [2, 3] and comparison["arm"].eq("worker k=4").all()
    surfaces = pd.read_csv(tmp_path / "out" / "isoflop_approach3.csv")
    assert surfaces["arm"].tolist() == ["standard", "worker k=4"] and surfaces["fitted"].all()
