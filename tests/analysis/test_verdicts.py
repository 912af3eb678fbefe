"""Verdicts: paired vs Welch, Holm, equivalence (TOST), the detectable effect and the verdict words."""

from __future__ import annotations

import numpy as np
import pytest
from frames import arm_rows, final_frame
from scipy import stats

from analysis.inference import compare, detectable_effect, holm, non_equivalence, paired, tost, welch
from analysis.stats import CELL_COLUMNS
from analysis.tuning import choose_settings
from analysis.verdicts import verdicts


def verdicts_of(rows):
    final = final_frame(rows)
    return verdicts(final, choose_settings(final))


def correlated(n: int, diff: float, seed_sd: float = 0.05, noise: float = 0.002, seed: int = 0):
    """Per-seed losses sharing a large seed effect (same data order per seed) plus small independent noise."""
    rng = np.random.default_rng(seed)
    shared = seed_sd * rng.standard_normal(n)
    standard = 2.0 + shared + noise * rng.standard_normal(n)
    worker = 2.0 + diff + shared + noise * rng.standard_normal(n)
    return worker, standard


def test_paired_test_on_shared_seeds_is_used_and_beats_welch_on_correlated_data():
    worker, standard = correlated(5, diff=-0.01)
    v = verdicts_of(arm_rows("standard", standard) + arm_rows("worker", worker)).iloc[0]
    assert v["test"] == "paired" and v["n_pairs"] == 5
    p_welch = welch(worker, standard)["p_value"]
    assert v["p_value"] == pytest.approx(stats.ttest_rel(worker, standard).pvalue)
    assert v["p_value"] < 0.01 < 0.3 < p_welch  # the seed effect hides the difference from Welch
    assert v["verdict"] == "worker better"


def test_welch_when_the_arms_share_no_seed():
    worker, standard = correlated(4, diff=-0.2)
    v = verdicts_of(arm_rows("standard", standard) + arm_rows("worker", worker, start_seed=10)).iloc[0]
    assert v["test"] == "Welch" and v["n_pairs"] == 0
    assert v["p_value"] == pytest.approx(stats.ttest_ind(worker, standard, equal_var=False).pvalue)


def test_paired_differences_use_only_the_seeds_both_arms_completed():
    worker, standard = correlated(4, diff=0.1)
    rows = arm_rows("standard", standard[:3]) + [dict(arch="standard", seed=3, val_loss=np.nan, status="diverged")]
    v = verdicts_of(rows + arm_rows("worker", worker)).iloc[0]
    assert (v["n_pairs"], v["n_arm"], v["n_ref"], v["ref_diverged"]) == (3, 4, 3, 1)
    assert v["diff"] == pytest.approx(np.mean(worker[:3] - standard[:3]))


def test_holm_matches_a_hand_computation_and_never_lowers_a_p_value():
    raw = [0.01, 0.04, 0.03, np.nan, 0.5]
    # m = 4 finite: sorted 0.01, 0.03, 0.04, 0.5 -> 4 x 0.01, 3 x 0.03, 2 x 0.04, 1 x 0.5, then running maximum
    expected = [0.04, 0.09, 0.09, np.nan, 0.5]
    np.testing.assert_allclose(holm(raw), expected)
    assert np.all(holm(raw)[[0, 1, 2, 4]] >= np.array(raw)[[0, 1, 2, 4]])


def test_verdict_table_adjusts_p_values_across_all_rows():
    rows = []
    for k, diff in ((2, -0.03), (4, 0.0), (8, 0.05)):
        worker, standard = correlated(4, diff=diff, noise=0.01, seed=k)
        rows += [dict(r, worker_interval=k) for r in arm_rows("worker", worker)]
    rows += arm_rows("standard", correlated(4, 0.0, noise=0.01, seed=2)[1])
    v = verdicts_of(rows)
    assert len(v) == 3
    np.testing.assert_allclose(v["p_holm"], holm(v["p_value"]))
    assert (v["p_holm"] >= v["p_value"]).all() and (v["p_holm"] > v["p_value"]).any()
    assert list(v.columns[: len(CELL_COLUMNS)]) == CELL_COLUMNS


def test_tost_says_equivalent_for_identical_arms_with_many_seeds_and_inconclusive_with_few():
    rng = np.random.default_rng(1)
    many = 2.0 + 0.001 * rng.standard_normal((2, 20))
    v = verdicts_of(arm_rows("standard", many[0]) + arm_rows("worker", many[1])).iloc[0]
    assert v["verdict"] == "equivalent within ±0.01" and v["p_equiv_holm"] < 0.05
    few = 2.0 + 0.005 * rng.standard_normal((2, 2))
    v = verdicts_of(arm_rows("standard", few[0]) + arm_rows("worker", few[1])).iloc[0]
    assert v["verdict"].startswith("not shown (MDE")  # neither a difference nor equivalence


def test_tost_against_the_interval_rule_and_the_margin_from_the_trials():
    # p < alpha exactly when the (1 - 2 alpha) interval lies inside (-margin, margin)
    diff, se, df, margin = 0.004, 0.002, 6, 0.01
    half = stats.t.ppf(0.95, df) * se
    assert (tost(diff, se, df, margin) < 0.05) == (diff + half < margin)
    assert tost(diff, se, df, margin=0.005) > 0.05
    rows = arm_rows("standard", [2.0, 2.01, 2.02]) + arm_rows("worker", [2.0, 2.012, 2.018])
    v = verdicts_of([dict(r, equivalence_margin=0.05) for r in rows]).iloc[0]
    assert v["margin"] == 0.05 and v["verdict"] == "equivalent within ±0.05"


def test_detectable_effect_has_the_stated_power():
    worker, standard = correlated(6, diff=0.0, noise=0.01)
    result = compare(final_frame(arm_rows("worker", worker)), final_frame(arm_rows("standard", standard)), margin=0.01)
    se, df, mde = result["se"], result["df"], result["mde"]
    assert mde == pytest.approx(detectable_effect(se, df))
    # independent check: a paired t-test with true effect `mde` rejects with probability ~0.8 (noncentral t)
    crit = stats.t.ppf(0.975, df)
    power = stats.nct.sf(crit, df, mde / se) + stats.nct.cdf(-crit, df, mde / se)
    assert power == pytest.approx(0.8, abs=0.03)
    assert detectable_effect(se / 2, df) < mde


def test_verdict_words():
    std = arm_rows("standard", [2.0, 2.01, 2.02, 2.015])
    rows = std + [dict(r, worker_interval=4) for r in arm_rows("worker", [1.8, 1.812, 1.818, 1.81])]
    rows += [dict(r, worker_interval=2) for r in arm_rows("worker", [2.2, 2.207, 2.224, 2.21])]
    rows += [dict(r, worker_interval=8) for r in arm_rows("worker", [2.1, 1.9, 2.2, 1.85])]
    rows += [dict(r, worker_interval=16) for r in arm_rows("worker", [1.9])]
    v = verdicts_of(rows).set_index("worker_interval")["verdict"]
    assert v[4] == "worker better, by more than ±0.01" and v[2] == "worker worse, by more than ±0.01"
    assert v[8].startswith("not shown (MDE ") and v[16] == "insufficient seeds"
    assert verdicts_of(arm_rows("worker", [1.0, 1.1]))["verdict"].tolist() == ["no standard baseline"]


def test_a_diverged_test_seed_is_never_a_win_from_the_survivors():
    """The review's case: 3 good worker seeds and 2 diverged ones gave "paired, n_pairs 3, p=0.001, better"."""
    worker = [*arm_rows("worker", [1.70, 1.73, 1.69])]
    worker += [dict(arch="worker", seed=s, val_loss=np.nan, status="diverged") for s in (3, 4)]
    v = verdicts_of(arm_rows("standard", [2.0, 2.01, 1.99, 2.02, 2.0]) + worker).iloc[0]
    assert v["p_value"] < 0.01 and v["n_pairs"] == 3  # the t-test on the survivors alone would say "better"
    assert v["verdict"] == "worker k=4 unstable: 2 diverged of 5" and "better" not in v["verdict"]
    # the sign-flip test counts a diverged seed as the worst outcome: 3 wins and 2 losses are no clear win
    assert v["p_signflip"] == 0.5 and v["arm_diverged"] == 2 and v["arm_seeds"] == 5
    unfinished = [dict(arch="worker", seed=4, val_loss=np.nan, status="stopped")]
    v = verdicts_of(arm_rows("standard", [2.0, 2.01, 1.99]) + arm_rows("worker", [1.7, 1.71]) + unfinished)
    assert v.iloc[0]["verdict"] == "worker k=4 incomplete: 1 not finished of 3"


def test_equivalence_words_tell_apart_equivalent_beyond_within_and_not_shown():
    rng = np.random.default_rng(3)
    seed_effect = 0.01 * rng.standard_normal(30)
    small = verdicts_of(
        arm_rows("standard", 2.0 + seed_effect)
        + arm_rows("worker", 1.996 + seed_effect + 0.0005 * rng.standard_normal(30))
    ).iloc[0]
    assert small["verdict"] == "worker better, within ±0.01"  # a real difference, smaller than the margin
    assert small["p_equiv_holm"] < 0.05 < small["p_noneq"]
    # the smallest margin the cell certifies: the far edge of the (1 - 2 alpha) interval
    assert small["min_margin"] == pytest.approx(abs(small["diff"]) + stats.t.ppf(0.95, small["df"]) * small["se"])
    assert small["min_margin"] < 0.01
    few = verdicts_of(arm_rows("standard", [2.0, 2.02, 1.99]) + arm_rows("worker", [2.01, 2.0, 2.02])).iloc[0]
    assert few["p_equiv"] > 0.05 and few["p_noneq"] > 0.05 and few["verdict"].startswith("not shown")
    assert non_equivalence(0.05, 0.01, 4, 0.01) == pytest.approx(2 * stats.t.sf(4.0, 4))  # both sides, alpha/2 each


def test_the_verdict_table_carries_what_redoing_a_test_needs():
    worker, standard = correlated(5, diff=-0.01)
    v = verdicts_of(arm_rows("standard", standard) + arm_rows("worker", worker))
    for column in ("test", "n_arm", "n_ref", "n_pairs", "diff", "se", "df", "margin", "p_noneq", "min_margin"):
        assert column in v.columns and v[column].notna().all(), column
    assert v.iloc[0]["df"] == 4 and v.iloc[0]["se"] == pytest.approx(np.std(worker - standard, ddof=1) / np.sqrt(5))


def test_detectable_effect_is_exact_at_few_degrees_of_freedom():
    """The normal approximation gives 5.36 se at df 2; the noncentral t gives 5.65 se."""
    assert detectable_effect(1.0, 2) == pytest.approx(5.65, abs=0.01)
    crit = stats.t.ppf(0.975, 2)
    mde = detectable_effect(1.0, 2)
    assert stats.nct.sf(crit, 2, mde) + stats.nct.cdf(-crit, 2, mde) == pytest.approx(0.8, abs=1e-6)


def test_paired_helper_matches_scipy():
    a, b = np.array([1.0, 2.0, 3.5, 4.0]), np.array([1.1, 2.3, 3.4, 4.4])
    result = paired(a, b)
    ref = stats.ttest_rel(a, b)
    assert result["p_value"] == pytest.approx(ref.pvalue) and result["df"] == 3
    ci = ref.confidence_interval(0.95)
    assert (result["diff_ci_low"], result["diff_ci_high"]) == pytest.approx((ci.low, ci.high))


def _tuned(arch, losses_by_lr, n_test=5):
    """An arm with tune seeds at each lr (the given loss) and test seeds at each lr (the loss plus seed noise)."""
    rows = []
    for lr, loss in losses_by_lr.items():
        rows += [dict(r, seed_role="tune", lr=lr) for r in arm_rows(arch, [loss, loss + 0.001], start_seed=100)]
        noise = 0.003 * np.sin(np.arange(n_test) + len(arch))  # not the same per seed for both arms
        rows += [dict(r, lr=lr) for r in arm_rows(arch, loss + noise)]
    return rows


def test_a_side_chosen_at_the_edge_of_its_tried_range_is_not_comparable_however_clear_the_difference():
    """findings-cpu: the standard model still falling at the top of its lr grid, the worker flat; the worker's
    clear lead at the standard's edge lr is no verdict."""
    standard = _tuned("standard", {1e-3: 1.88, 2e-3: 1.82, 4e-3: 1.79})  # best at the top: the edge
    worker = _tuned("worker", {1e-3: 1.77, 2e-3: 1.75, 4e-3: 1.76})  # interior
    v = verdicts_of(standard + worker).iloc[0]
    assert v["diff"] < -0.03 and v["p_holm"] < 0.001  # the tests alone would call the worker better
    assert v["verdict"] == "not comparable: standard's lr at the top of the tried range (0.001-0.004)"
    assert (v["arm_edge"], v["ref_edge"]) == ("", "lr at the top of the tried range (0.001-0.004)")
    bracketed = _tuned("standard", {1e-3: 1.88, 2e-3: 1.82, 4e-3: 1.79, 8e-3: 1.78, 1.6e-2: 1.80})  # walked on
    v = verdicts_of(bracketed + worker).iloc[0]
    assert v["verdict"] == "worker better, by more than ±0.01" and v["ref_edge"] == ""


def test_the_verdict_counts_keep_not_comparable_cells_apart():
    from analysis.verdicts import verdict_counts

    worker = _tuned("worker", {1e-3: 1.77, 2e-3: 1.75, 4e-3: 1.76})
    rows = _tuned("standard", {1e-3: 1.88, 2e-3: 1.82, 4e-3: 1.79}) + worker
    rows += [dict(r, seq_len=128) for r in _tuned("standard", {1e-3: 1.9, 2e-3: 1.8, 4e-3: 1.85}) + worker]
    text = verdict_counts(verdicts_of(rows))
    assert text == ("2 verdicts: 1 better; 1 not comparable (a side's tuned setting at the edge of its tried range)")
