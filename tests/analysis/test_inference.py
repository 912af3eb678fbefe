"""The tests behind the verdicts: the paired sign-flip test (lost seeds as the worst outcome), the MDE and the
smallest certifiable margin at the Bonferroni alpha, and the size of the non-equivalence test."""

from __future__ import annotations

import numpy as np
import pytest
from frames import arm_rows, final_frame
from scipy import stats

from analysis.inference import (
    EXACT_MAX_PAIRS,
    MONTE_CARLO_DRAWS,
    compare,
    detectable_effect,
    non_equivalence,
    sign_flip,
)
from analysis.tuning import choose_settings
from analysis.verdicts import verdicts

LOST = np.inf  # a lost seed (diverged or failed), as verdicts passes it


def verdicts_of(rows):
    final = final_frame(rows)
    return verdicts(final, choose_settings(final))


def scipy_sign_flip(arm, ref, n_resamples=np.inf) -> float:
    """The independent reference: scipy's paired permutation test (every sign pattern when exact)."""
    result = stats.permutation_test(
        (np.asarray(arm, float), np.asarray(ref, float)),
        lambda x, y, axis: np.mean(x - y, axis=axis),
        permutation_type="samples",
        n_resamples=n_resamples,
        vectorized=True,
        alternative="two-sided",
    )
    return float(result.pvalue)


def test_sign_flip_matches_scipys_exact_paired_permutation_test():
    rng = np.random.default_rng(7)
    for n in (3, 5, 8):
        ref = 2.0 + 0.05 * rng.standard_normal(n)
        arm = ref - 0.004 + 0.01 * rng.standard_normal(n)
        assert sign_flip(arm, ref)["p_signflip"] == pytest.approx(scipy_sign_flip(arm, ref), rel=1e-9)


def test_the_smallest_attainable_p_is_two_in_two_to_the_n_and_the_same_signs_attain_it():
    """3 seeds can never give p < 0.25, 5 never p < 0.0625 (so never 'shown' at 0.05), 6 can (1/32)."""
    for n, smallest in ((3, 0.25), (5, 0.0625), (6, 1 / 32)):
        ref = 2.0 + 0.05 * np.arange(n)
        result = sign_flip(ref - 0.01 * (1 + np.arange(n)), ref)  # better on every seed
        assert result["p_signflip_min"] == pytest.approx(smallest)
        assert result["p_signflip"] == pytest.approx(smallest)
    assert np.isnan(sign_flip([2.0], [2.1])["p_signflip"])  # one pair: nothing to permute


def test_a_lost_seed_is_the_largest_difference_against_its_side():
    ref = np.array([2.0, 2.01, 1.99, 2.02, 2.0])
    # every arm seed lost: the most extreme pattern there is, whatever the finite values
    assert sign_flip(np.full(5, LOST), ref)["p_signflip"] == pytest.approx(2 / 32)
    assert sign_flip(ref, np.full(5, LOST))["p_signflip"] == pytest.approx(2 / 32)  # the reference's loss, mirrored
    # 3 clear wins and 2 lost seeds: the losses outweigh the wins (dropping them would give 2/8 = 0.25)
    arm = np.array([1.7, 1.71, 1.69, LOST, LOST])
    assert sign_flip(arm, ref)["p_signflip"] == pytest.approx(0.5)  # 16 of 32 patterns flip both losses alike
    # the same as a finite difference larger than all the others together (an independent computation)
    worst = np.where(np.isinf(arm), ref + 10.0, arm)
    assert sign_flip(arm, ref)["p_signflip"] == pytest.approx(scipy_sign_flip(worst, ref))
    # both sides lost in one seed: a tie (both the worst outcome), no difference
    both = sign_flip(np.array([1.7, 1.71, 1.69, LOST]), np.array([2.0, 2.01, 1.99, LOST]))
    assert both["p_signflip"] == pytest.approx(scipy_sign_flip([1.7, 1.71, 1.69, 2.0], [2.0, 2.01, 1.99, 2.0]))
    # an unfinished seed (NaN on either side) is left out of the pairs
    assert sign_flip([1.7, 1.71, np.nan], [2.0, 2.01, 1.99])["p_signflip_min"] == 0.5  # 2 pairs


def test_beyond_the_exact_limit_a_seeded_monte_carlo_agrees_with_the_exact_test():
    rng = np.random.default_rng(11)
    n = EXACT_MAX_PAIRS + 1
    ref = 2.0 + 0.05 * rng.standard_normal(n)
    arm = ref + 0.01 * rng.standard_normal(n)
    first, again = sign_flip(arm, ref), sign_flip(arm, ref)
    assert first == again  # seeded: the same cell gives the same p on every run
    exact = scipy_sign_flip(arm, ref)  # all 2^17 patterns
    assert 0.02 < exact < 0.98
    assert first["p_signflip"] == pytest.approx(exact, abs=4 * np.sqrt(exact * (1 - exact) / MONTE_CARLO_DRAWS))
    assert first["p_signflip_min"] == pytest.approx(1 / (MONTE_CARLO_DRAWS + 1))


def test_the_verdict_table_carries_the_sign_flip_test_paired_by_seed():
    """6 seeds, the worker better in each by 0.01 under a seed-to-seed spread of 0.05: Mann-Whitney, unpaired,
    sees overlapping samples; the paired test sees 6 of 6 the same way (p = 2/64). A lost seed stays the worst."""
    rng = np.random.default_rng(0)
    seed_effect = 0.05 * rng.standard_normal(6)
    standard, worker = 2.0 + seed_effect, 1.99 + seed_effect + 0.001 * rng.standard_normal(6)
    assert stats.mannwhitneyu(worker, standard).pvalue > 0.3  # what the unpaired rank test said
    v = verdicts_of(arm_rows("standard", standard) + arm_rows("worker", worker)).iloc[0]
    assert v["p_signflip"] == pytest.approx(1 / 32) and v["p_signflip_min"] == pytest.approx(1 / 32)
    assert v["p_signflip_holm"] == pytest.approx(1 / 32)  # one row: Holm leaves it
    lost = [dict(arch="worker", seed=5, val_loss=np.nan, status="diverged")]
    v = verdicts_of(arm_rows("standard", standard) + arm_rows("worker", worker[:5]) + lost).iloc[0]
    assert v["p_signflip"] == pytest.approx(scipy_sign_flip(np.r_[worker[:5], standard[5] + 1.0], standard))
    three = verdicts_of(arm_rows("standard", standard[:3]) + arm_rows("worker", worker[:3])).iloc[0]
    assert three["p_signflip_min"] == pytest.approx(0.25)  # 3 seeds: this test can never decide at 0.05


def test_detectable_effect_at_few_degrees_of_freedom_and_a_small_alpha():
    """df 2 at alpha 0.0125 (Holm's first step over 4 rows) raised: scipy's lower-tail noncentral t is NaN there.
    At df 4 it returned 5.26 se, a false root brentq met beside the NaN (power 0.76); the root is 5.54 se."""
    rng = np.random.default_rng(1)
    for df, alpha in ((2, 0.0125), (2, 0.001), (1, 0.0125), (4, 0.0125), (4, 0.05)):
        mde = detectable_effect(1.0, df, alpha)
        crit = stats.t.ppf(1 - alpha / 2, df)
        # independent check: t statistics drawn as (Z + delta) / sqrt(chi2_df / df), the two-sided test's power
        t = (rng.standard_normal(200_000) + mde) / np.sqrt(rng.chisquare(df, 200_000) / df)
        assert np.mean(np.abs(t) > crit) == pytest.approx(0.8, abs=0.006), (df, alpha)
    assert detectable_effect(1.0, 4, 0.0125) == pytest.approx(5.54, abs=0.01)
    assert detectable_effect(1.0, 4, 0.05) == pytest.approx(3.76, abs=0.01)


def test_mde_and_smallest_margin_are_at_the_bonferroni_alpha_of_the_table():
    """4 verdict rows: Holm's first step is at alpha / 4, the most any row needs."""
    rng = np.random.default_rng(5)
    seed_effect = 0.05 * rng.standard_normal(5)
    rows = arm_rows("standard", 2.0 + seed_effect)
    for k in (2, 4, 8, 16):
        rows += [dict(r, worker_interval=k) for r in arm_rows("worker", 2.0 + seed_effect + 0.01 * rng.random(5))]
    v = verdicts_of(rows)
    assert len(v) == 4
    for _, row in v.iterrows():
        assert row["mde"] == pytest.approx(detectable_effect(row["se"], row["df"], 0.05 / 4))
        margin = abs(row["diff"]) + stats.t.ppf(1 - 0.05 / 4, row["df"]) * row["se"]
        assert row["min_margin"] == pytest.approx(margin)
    worker, standard = final_frame(rows[5:10]), final_frame(rows[:5])
    alone = compare(worker, standard, margin=0.01)
    assert alone["mde"] == pytest.approx(detectable_effect(alone["se"], alone["df"]))  # one test: alpha itself
    assert compare(worker, standard, margin=0.01, n_tests=4)["mde"] > alone["mde"]


@pytest.mark.parametrize("margin_over_se", [0.0, 0.05, 0.5, 2.0])
def test_non_equivalence_rejects_at_most_alpha_when_the_difference_is_the_margin(margin_over_se):
    """Picking the side from the data had size near 2 alpha as margin / se -> 0; fixed in advance it is <= alpha."""
    rng = np.random.default_rng(2024)
    n_seeds, draws, sd = 5, 4000, 0.01
    margin = margin_over_se * sd / np.sqrt(n_seeds)
    d = margin + sd * rng.standard_normal((draws, n_seeds))  # true difference exactly +margin
    diff, se = d.mean(axis=1), d.std(axis=1, ddof=1) / np.sqrt(n_seeds)
    p = np.array([non_equivalence(a, b, n_seeds - 1, margin) for a, b in zip(diff, se, strict=True)])
    rate = float(np.mean(p < 0.05))
    assert rate <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / draws), rate
    if margin_over_se == 0.0:
        assert rate == pytest.approx(0.05, abs=0.012)  # a plain two-sided t-test of 0 there: exactly alpha


def test_non_equivalence_is_the_two_sided_interval_beyond_the_margin():
    # p = 2 x the one-sided p on the side beyond the margin: the (1 - alpha) interval lies wholly beyond it
    assert non_equivalence(0.05, 0.01, 4, 0.01) == pytest.approx(2 * stats.t.sf(4.0, 4))
    assert non_equivalence(-0.05, 0.01, 4, 0.01) == pytest.approx(2 * stats.t.sf(4.0, 4))
    half = stats.t.ppf(0.975, 4) * 0.01
    for diff in (0.01 + half - 1e-4, 0.01 + half + 1e-4):
        assert (non_equivalence(diff, 0.01, 4, 0.01) < 0.05) == (diff - half > 0.01)
    assert non_equivalence(0.0, 0.01, 4, 0.01) == 1.0
