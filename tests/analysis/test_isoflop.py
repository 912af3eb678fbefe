"""IsoFLOP profiles, frontier fits and arm differences on synthetic studies with a known optimum.

The generator is Chinchilla's L(N, D) = E + A N^-alpha + B D^-beta with D = C / (6N), whose optimum is
N_opt(C) = G C^a, a = beta / (alpha + beta). Sizes are log-spaced over one decade centred on the true optimum
of each budget: there the parabola in log N moves the minimum by ~1% (measured: +0.0046 decades), well inside
the intervals; over two decades the shift is ~4% (+0.018 decades) and the coverage of log n_opt falls to ~0.92.
The shift is the same at every budget, so it cancels from the exponent a.
"""

from __future__ import annotations

import sys
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from analysis.isoflop import MIN_SIZES, frontier_difference, frontier_fits, isoflop_profiles
from analysis.isoflop_plots import frontier_figure, isoflop_figure
from analysis.isoflop_power import bias_decades, power_cell

E, A, ALPHA, B, BETA = 1.7, 400.0, 0.34, 410.0, 0.28
A_TRUE = BETA / (ALPHA + BETA)
G_TRUE = (ALPHA * A / (BETA * B)) ** (1 / (ALPHA + BETA)) * 6.0**-A_TRUE
BUDGETS = (1e17, 1e18, 1e19)
N_BOOT = 200


def true_n_opt(budget):
    return G_TRUE * np.asarray(budget, float) ** A_TRUE


def chinchilla(n_params, budget):
    return E + A * n_params**-ALPHA + B * (budget / (6.0 * n_params)) ** -BETA


def study(rng, budgets=BUDGETS, n_sizes=7, decades=1.0, sd=0.01, seeds=3, arm="standard", offset=0.0, centre=1.0,
          size_sd=0.0, shape=None, seed_noise=None):  # fmt: skip
    """One arm's test seeds: n_sizes log-spaced sizes over `decades` around centre * N_opt(C) per budget.

    shape(n_params, budget) replaces Chinchilla's loss; size_sd adds one offset per size (lr-tuning noise);
    seed_noise, a (budgets, sizes, seeds) array, replaces the Gaussian seed noise (to share it between arms).
    """
    rows = []
    for b, budget in enumerate(budgets):
        n_params = np.round(centre * true_n_opt(budget) * np.logspace(-decades / 2, decades / 2, n_sizes))
        loss = (shape or chinchilla)(n_params, budget) + offset + size_sd * rng.standard_normal(n_sizes)
        noise = sd * rng.standard_normal((n_sizes, seeds)) if seed_noise is None else seed_noise[b]
        for i, n in enumerate(n_params.astype(int)):
            rows += [(arm, budget, n, s, loss[i] + noise[i, s]) for s in range(seeds)]
    return pd.DataFrame(rows, columns=["arm", "budget_flops", "n_params", "seed", "final_loss"])


def test_exact_recovery_without_noise_and_the_fit_matches_polyfit():
    frame = study(np.random.default_rng(0), sd=0.0)
    profiles = isoflop_profiles(frame, n_boot=N_BOOT)
    assert profiles["identified"].all(), profiles["reason"].tolist()
    assert profiles["n_opt"].to_numpy() == pytest.approx(true_n_opt(BUDGETS), rel=0.02)
    n_true = true_n_opt(BUDGETS)
    assert profiles["loss_opt"].to_numpy() == pytest.approx(chinchilla(n_true, np.array(BUDGETS)), abs=0.01)
    fits = frontier_fits(profiles).iloc[0]
    assert fits["identified"], fits["reason"]
    assert fits["n_opt_exponent"] == pytest.approx(A_TRUE, abs=0.02)
    assert fits["n_opt_coef"] == pytest.approx(G_TRUE, rel=0.3)  # 1e17 FLOPs from C = 1: a long lever arm
    one = frame[frame["budget_flops"].eq(1e18)]  # independent reference: an unweighted fit to every seed point
    reference = np.polyfit(np.log10(one["n_params"]), one["final_loss"], 2)[::-1]
    assert profiles.loc[1, "parabola"] == pytest.approx(tuple(reference), rel=1e-6)


def test_intervals_cover_the_true_exponent_and_log_n_opt():
    rng = np.random.default_rng(2024)
    covered_a, width_a, covered_n, width_n, identified = [], [], [], [], []
    for replicate in range(150):
        profiles = isoflop_profiles(study(rng), n_boot=N_BOOT, seed=replicate)
        fits = frontier_fits(profiles).iloc[0]
        covered_a.append(fits["n_opt_exponent_low"] <= A_TRUE <= fits["n_opt_exponent_high"])
        width_a.append(fits["n_opt_exponent_high"] - fits["n_opt_exponent_low"])
        truth = true_n_opt(profiles["budget_flops"])
        covered_n += list((profiles["n_opt_low"] <= truth) & (truth <= profiles["n_opt_high"]))
        width_n += list(np.log10(profiles["n_opt_high"] / profiles["n_opt_low"]))
        identified.append(fits["identified"])
    measured = (
        f"coverage of a {np.mean(covered_a):.3f} (median width {np.median(width_a):.3f}), of log10 n_opt "
        f"{np.mean(covered_n):.3f} (median width {np.median(width_n):.3f} decades), frontiers identified "
        f"{np.mean(identified):.2f}"
    )
    assert np.mean(covered_a) >= 0.85 and np.mean(covered_n) >= 0.85, measured
    # intervals that cover by being useless would pass the line above; the sampling SD of a is ~0.005 here
    assert np.median(width_a) < 0.1 and np.median(width_n) < 0.15 and np.mean(identified) >= 0.9, measured


def test_size_level_noise_is_covered_too():
    # lr tuned per size leaves each size its own offset; a seeds-only bootstrap covers log n_opt ~50% here
    rng = np.random.default_rng(7)
    covered = []
    for replicate in range(100):
        profiles = isoflop_profiles(study(rng, size_sd=0.01), n_boot=N_BOOT, seed=replicate)
        truth = true_n_opt(profiles["budget_flops"])
        covered += list((profiles["n_opt_low"] <= truth) & (truth <= profiles["n_opt_high"]))
    assert np.mean(covered) >= 0.85, f"coverage of log10 n_opt with size-level noise {np.mean(covered):.3f}"


def test_the_replicates_carry_size_scatter_and_seed_noise():
    rng = np.random.default_rng(3)
    # identical seeds, sizes off the parabola: only the lack of fit gives the optimum any uncertainty
    sizes_only = study(rng, budgets=(1e18,), sd=0.0, size_sd=0.01)
    # seeds scattered around an exact parabola's size means: only the seed-to-seed scatter does
    parabola = lambda n, c: 3.0 + 0.5 * (np.log10(n) - np.log10(true_n_opt(c))) ** 2
    seeds_only = study(rng, budgets=(1e18,), sd=0.0, shape=parabola)
    noise = 0.01 * rng.standard_normal((7, 3))
    seeds_only["final_loss"] += (noise - noise.mean(axis=1, keepdims=True)).ravel()
    for frame in (sizes_only, seeds_only):
        p = isoflop_profiles(frame, n_boot=N_BOOT).iloc[0]
        assert p["n_opt_high"] / p["n_opt_low"] > 1.005 and p["loss_opt_high"] > p["loss_opt_low"]
    assert isoflop_profiles(seeds_only, n_boot=N_BOOT).loc[0, "n_opt"] == pytest.approx(true_n_opt(1e18), rel=1e-6)


def _seeded_ladder(rng, curvature=0.3, sd=0.01, seed_sd=0.0, sizes=5, seeds=3):
    """A true parabola over one decade centred on N = 1e6, each seed with one offset shared by all its sizes."""
    u = np.linspace(5.5, 6.5, sizes)
    offsets = seed_sd * rng.standard_normal(seeds)
    rows = [
        ("standard", 1e18, int(10**v), s, 3.0 + curvature / 2 * (v - 6) ** 2 + offsets[s])
        for v in u
        for s in range(seeds)
    ]
    frame = pd.DataFrame(rows, columns=["arm", "budget_flops", "n_params", "seed", "final_loss"])
    frame["final_loss"] += sd * rng.standard_normal(len(frame))
    return frame


def test_the_curvature_and_minimum_intervals_match_an_independent_least_squares_fit():
    frame = _seeded_ladder(np.random.default_rng(12), curvature=0.4, sd=0.02, seed_sd=0.05)
    p = isoflop_profiles(frame, n_boot=0).iloc[0]
    # reference: ordinary least squares with one dummy per seed but the first, then t and Fieller by hand
    u = np.log10(frame["n_params"].to_numpy(float))
    x = np.column_stack([np.ones_like(u), u, u**2, frame["seed"].eq(1), frame["seed"].eq(2)]).astype(float)
    beta, sse, *_ = np.linalg.lstsq(x, frame["final_loss"].to_numpy(), rcond=None)
    df = len(u) - 5
    cov = sse[0] / df * np.linalg.inv(x.T @ x)
    q = scipy_stats.t.ppf(0.975, df)
    assert (p["error_term"], p["error_df"]) == ("pooled", df)
    assert p["curvature"] == pytest.approx(2 * beta[2], rel=1e-9)
    assert p["curvature_low"] == pytest.approx(2 * beta[2] - 2 * q * np.sqrt(cov[2, 2]), rel=1e-9)
    for end in (p["n_opt_low"], p["n_opt_high"]):  # Fieller: where the slope's t statistic is exactly q
        v = np.log10(end)
        slope, var = beta[1] + 2 * v * beta[2], cov[1, 1] + 4 * v * cov[1, 2] + 4 * v * v * cov[2, 2]
        assert abs(slope) / np.sqrt(var) == pytest.approx(q, rel=1e-6)
    assert p["n_opt_low"] < 10 ** (-beta[1] / (2 * beta[2])) < p["n_opt_high"]


def test_seed_offsets_shared_across_sizes_do_not_hide_the_shape():
    # each seed's data order moves all its runs by one offset ten times the noise about the curve: blocked by seed
    p = isoflop_profiles(_seeded_ladder(np.random.default_rng(4), sd=0.005, seed_sd=0.05), n_boot=N_BOOT).iloc[0]
    assert p["seed_blocks"] and p["identified"], p["reason"]
    # ~0.11 wide with the runs' 0.005 SD as the noise; unblocked, the offsets' 0.05 SD would be: ~1.1 wide
    assert p["curvature_high"] - p["curvature_low"] < 0.3
    # the level of loss_opt still carries the seeds' offsets: its interval is wider than the curve's noise allows
    assert p["loss_opt_high"] - p["loss_opt_low"] > 0.05


def test_the_rule_identifies_a_clearly_curved_profile_and_refuses_a_flat_one():
    # one decade, 5 sizes, 3 seeds (the study's ladder); the rule before this one identified 21 of 40 and 5%
    curved = power_cell(0.3, 0.01, 0.5, "parabola", n_draws=200)  # analytic t ~6
    noisy = power_cell(0.6, 0.04, 0.5, "parabola", n_draws=200)  # analytic t ~3
    flat = power_cell(0.0, 0.01, 0.5, "parabola", n_draws=200)
    assert curved["t"] == pytest.approx(6.08, abs=0.01)
    assert curved["identified"] >= 0.9 and noisy["identified"] >= 0.55, (curved, noisy)
    assert flat["identified"] <= 0.05, flat
    assert curved["covered"] >= 0.9  # the identified draws' n_opt intervals hold the truth
    # the optimum at the ladder's smallest size: at most the draws whose minimum falls inside are identified
    edge = power_cell(0.3, 0.01, 0.0, "chinchilla", n_draws=200)
    assert edge["identified"] <= 0.6 and edge["bias_decades"] > 0


def test_an_off_centre_ladder_biases_the_minimum_of_an_asymmetric_profile_only():
    assert bias_decades(0.3, 0.5, "parabola") == pytest.approx(0.0, abs=1e-12)
    assert bias_decades(0.3, 0.0, "parabola") == pytest.approx(0.0, abs=1e-12)
    one = [bias_decades(0.3, p, "chinchilla") for p in (0.5, 0.25, 0.0, 1.0)]
    two = [bias_decades(0.3, p, "chinchilla", decades=2.0) for p in (0.5, 0.25, 0.0, 1.0)]
    assert one == pytest.approx([0.0049, 0.0017, 0.0054, -0.0284], abs=2e-4)  # decades of N over one decade
    assert two == pytest.approx([0.0196, 0.0104, 0.0803, -0.1554], abs=2e-4)  # and over two
    assert bias_decades(1.2, 0.0, "chinchilla") == pytest.approx(one[2], rel=1e-9)  # scale-free: shape only
    # centred, the shift is ~(alpha - beta) h^2 / 10 in ln N for sizes over +-h
    h = np.log(10) / 2
    assert one[0] * np.log(10) == pytest.approx((0.34 - 0.28) * h**2 / 10, rel=0.5)


def test_an_edge_minimum_is_not_identified_and_not_drawn():
    frame = study(np.random.default_rng(0), sd=0.0, centre=0.1)  # every size 3x to 30x below the optimum
    profiles = isoflop_profiles(frame, n_boot=N_BOOT)
    assert not profiles["identified"].any()
    assert profiles["reason"].str.contains("edge minimum").all(), profiles["reason"].tolist()
    assert (np.log10(profiles["n_opt"]) > profiles["log10_n_max"]).all()
    assert frontier_fits(profiles).loc[0, "reason"].startswith("not identified: 0 of 3 budgets identified")
    fig = isoflop_figure(frame, profiles)
    assert not any(line.get_marker() == "*" for line in fig.axes[0].get_lines())


def test_fewer_than_five_sizes_are_not_identified():
    profiles = isoflop_profiles(study(np.random.default_rng(0), n_sizes=MIN_SIZES - 1), n_boot=N_BOOT)
    assert not profiles["identified"].any()
    assert profiles["reason"].str.contains(f"{MIN_SIZES - 1} sizes with a finite loss").all()
    assert np.isfinite(profiles["n_opt"]).all()  # still fitted and reported, only not trusted


def test_a_downward_or_flat_parabola_is_not_identified():
    rng = np.random.default_rng(0)
    cap = lambda n, c: 3.0 - 0.2 * (np.log10(n) - np.log10(true_n_opt(c))) ** 2
    down = isoflop_profiles(study(rng, budgets=(1e18,), shape=cap), n_boot=N_BOOT).iloc[0]
    assert not down["identified"] and "opens downward" in down["reason"]
    assert down["curvature"] < 0 and down["loss_opt"] == -np.inf and down["n_opt"] in (0.0, np.inf)
    # rising 0.005 nats (half a seed SD) at the sampled edges: opening upward, but not distinguishably
    shallow = lambda n, c: 3.0 + 0.02 * (np.log10(n) - np.log10(true_n_opt(c))) ** 2
    flat = isoflop_profiles(study(np.random.default_rng(1), budgets=(1e18,), shape=shallow), n_boot=N_BOOT).iloc[0]
    assert flat["curvature"] > 0 and flat["curvature_low"] <= 0
    assert (
        not flat["identified"]
        and "flat: curvature 0.0389 nats/decade^2, 95% interval [-0.0458, 0.124]" in flat["reason"]
    ), flat["reason"]


def test_frontiers_need_three_identified_budgets_over_a_decade():
    rng = np.random.default_rng(0)
    narrow = frontier_fits(isoflop_profiles(study(rng, budgets=(1e18, 2e18, 5e18)), n_boot=N_BOOT)).iloc[0]
    assert not narrow["identified"] and "span 0.70 decades (needs 1)" in narrow["reason"]
    assert np.isfinite(narrow["n_opt_exponent"])  # fitted and reported, only not trusted
    two = frontier_fits(isoflop_profiles(study(rng, budgets=(1e17, 1e19)), n_boot=N_BOOT)).iloc[0]
    assert not two["identified"] and "2 of 2 budgets identified (needs 3)" in two["reason"]
    assert two["lack_of_fit"].startswith("no check")


def test_diverged_runs_are_counted_per_size_and_reported():
    frame = study(np.random.default_rng(0))
    sizes = np.sort(frame.loc[frame["budget_flops"].eq(1e18), "n_params"].unique())
    at = frame["budget_flops"].eq(1e18)
    frame.loc[at & frame["n_params"].eq(sizes[0]), "final_loss"] = np.nan
    frame.loc[at & frame["n_params"].eq(sizes[-1]) & frame["seed"].eq(2), "final_loss"] = np.nan
    profiles = isoflop_profiles(frame, n_boot=N_BOOT).set_index("budget_flops")
    p = profiles.loc[1e18]
    assert (p["n_diverged"], p["n_sizes"], p["n_points"]) == (4, 6, 17)
    assert p["diverged"] == f"N={sizes[0]:.3g}: 3 of 3; N={sizes[-1]:.3g}: 1 of 3"
    assert "4 of 21 runs diverged or failed" in p["reason"] and p["identified"]
    assert p["log10_n_min"] == pytest.approx(np.log10(sizes[1]))  # the fit covers the sizes it has
    assert profiles.loc[[1e17, 1e19], "n_diverged"].eq(0).all()
    labels = [t.get_text() for t in isoflop_figure(frame, profiles.reset_index()).axes[0].get_legend().get_texts()]
    assert "C=1e18, 4 diverged" in labels


def test_lack_of_fit_flags_a_kink_and_passes_a_parabola():
    rng = np.random.default_rng(11)
    centred = lambda n, c: np.log10(n) - np.log10(true_n_opt(c))
    kink = study(rng, budgets=(1e18,), sd=0.005, shape=lambda n, c: 3.0 + 0.3 * np.abs(centred(n, c)))
    parabola = study(rng, budgets=(1e18,), sd=0.01, shape=lambda n, c: 3.0 + 0.5 * centred(n, c) ** 2)
    kinked, smooth = (isoflop_profiles(f, n_boot=N_BOOT).iloc[0] for f in (kink, parabola))
    assert kinked["lof_p"] < 0.01 and smooth["lof_p"] > 0.05, (kinked["lof_p"], smooth["lof_p"])
    # independent reference: the extra sum of squares of the parabola over one mean per size, both with seed offsets
    u, y = np.log10(kink["n_params"]).to_numpy(), kink["final_loss"].to_numpy()
    seeds = np.column_stack([kink["seed"].eq(s) for s in (1, 2)]).astype(float)
    sizes = (kink["n_params"].to_numpy()[:, None] == np.unique(kink["n_params"])[None, :]).astype(float)
    sse = lambda x: np.linalg.lstsq(x, y, rcond=None)[1][0]
    sse_parabola, sse_means = sse(np.column_stack([np.ones_like(u), u, u**2, seeds])), sse(np.hstack([sizes, seeds]))
    assert kinked["lof_f"] == pytest.approx(((sse_parabola - sse_means) / 4) / (sse_means / 12), rel=1e-6)
    assert (kinked["lof_df"], kinked["pure_error_df"]) == (4, 12)


def test_frontier_difference_lower_and_not_distinguishable():
    rng = np.random.default_rng(5)
    lower = pd.concat([study(rng), study(rng, arm="worker k=4", offset=-0.05)])
    same = pd.concat([study(rng), study(rng, arm="worker k=4")])
    diff = frontier_difference(isoflop_profiles(lower, n_boot=N_BOOT))
    assert diff["words"].eq("lower").all(), diff["statement"].tolist()
    assert (diff["diff_low"].le(-0.05) & diff["diff_high"].ge(-0.05)).all()
    assert diff.loc[0, "statement"].startswith("at C=1e+17 FLOPs the best worker k=4 is 0.0")
    equal = frontier_difference(isoflop_profiles(same, n_boot=N_BOOT))
    assert equal["words"].eq("not distinguishable").all(), equal["statement"].tolist()


def test_frontier_difference_pairs_replicates_and_says_when_not_identified():
    rng = np.random.default_rng(6)
    noise = 0.01 * rng.standard_normal((3, 7, 3))  # the same seed noise in both arms (same seeds, same data)
    frame = pd.concat([study(rng, seed_noise=noise), study(rng, arm="worker k=4", offset=-0.05, seed_noise=noise)])
    profiles = isoflop_profiles(frame, n_boot=N_BOOT)
    diff = frontier_difference(profiles)
    assert diff["paired"].all() and diff["diff"].to_numpy() == pytest.approx(-0.05, abs=1e-9)
    width = profiles["loss_opt_high"] - profiles["loss_opt_low"]
    assert ((diff["diff_high"] - diff["diff_low"]) < 0.01 * width.min()).all()  # unpaired: ~1.4x width
    thin = study(rng, arm="worker k=4", n_sizes=4, budgets=(1e18,))
    frame = pd.concat([study(rng, budgets=(1e17, 1e18)), thin, study(rng, arm="worker k=4", budgets=(1e19,))])
    diff = frontier_difference(isoflop_profiles(frame, n_boot=N_BOOT)).set_index("budget_flops")
    assert diff["words"].eq("not identified").all()
    assert diff.loc[1e18, "statement"] == "at C=1e+18 FLOPs the worker k=4 profile is not identified"
    assert diff.loc[1e19, "statement"] == "at C=1e+19 FLOPs there is no standard profile"


def _overlapping_labels(fig) -> list:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    clashes = []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            labels = [t for t in axis.get_ticklabels(which="both") if t.get_visible() and t.get_text()]
            for a, b in combinations(labels, 2):
                if a.get_window_extent(renderer).overlaps(b.get_window_extent(renderer)):
                    clashes.append((a.get_text(), b.get_text()))
    return clashes


def test_figures_build_with_readable_ticks():
    rng = np.random.default_rng(8)
    frame = pd.concat([study(rng), study(rng, arm="worker k=4", offset=-0.05), study(rng, arm="x", centre=0.1)])
    profiles = isoflop_profiles(frame, n_boot=N_BOOT)
    fits = frontier_fits(profiles)
    profile_fig, front_fig = isoflop_figure(frame, profiles), frontier_figure(profiles, fits)
    assert len([ax for ax in profile_fig.axes if ax.get_visible()]) == 3
    assert len(front_fig.axes) == 2 and all(ax.get_xscale() == "log" for ax in front_fig.axes)
    for fig in (profile_fig, front_fig):
        assert _overlapping_labels(fig) == []
        assert all(len(ax.get_xticklabels()) <= 5 for ax in fig.axes)
    pyplot = sys.modules.get("matplotlib.pyplot")
    assert pyplot is None or pyplot.get_fignums() == []  # built without pyplot's registry


def test_a_frame_without_a_needed_column_fails_with_its_name():
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['seed'\]"):
        isoflop_profiles(study(np.random.default_rng(0)).drop(columns="seed"))
    frame = study(np.random.default_rng(0))
    frame.loc[0, "n_params"] = 0
    with pytest.raises(ValueError, match="n_params must be positive"):
        isoflop_profiles(frame)
