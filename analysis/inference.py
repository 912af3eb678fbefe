"""Tests behind the verdicts: paired or Welch t-tests, equivalence (TOST) and its converse (a difference larger
than the margin), the smallest margin a cell certifies, detectable effects, a rank test that counts a diverged
seed as the worst outcome, Holm (pure).

All at one level: ALPHA for tests, 1 - ALPHA for intervals. Differences are worker minus standard final loss.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from scipy.optimize import brentq

ALPHA = 0.05  # significance level of every test; intervals are at 1 - ALPHA
POWER = 0.8  # power at which the minimum detectable effect is stated
VARIANCE_FLOOR = 1e-9  # a standard error below this (relative to the difference) is rounding, not spread


def welch(worker: np.ndarray, standard: np.ndarray, alpha: float = ALPHA) -> dict:
    """Welch's t-test of mean(worker) - mean(standard): diff, se, df, its (1 - alpha) interval and p-value."""
    va, vb = np.var(worker, ddof=1) / len(worker), np.var(standard, ddof=1) / len(standard)
    se = float(np.sqrt(va + vb))
    df = float((va + vb) ** 2 / (va**2 / (len(worker) - 1) + vb**2 / (len(standard) - 1))) if se > 0 else np.nan
    diff = float(np.mean(worker) - np.mean(standard))
    return _result("Welch", diff, se, df, lambda: stats.ttest_ind(worker, standard, equal_var=False), alpha)


def paired(worker: np.ndarray, standard: np.ndarray, alpha: float = ALPHA) -> dict:
    """Paired t-test on per-seed differences worker[i] - standard[i] (same seed, same data order)."""
    d = np.asarray(worker, float) - np.asarray(standard, float)
    se = float(np.std(d, ddof=1) / np.sqrt(len(d)))
    return _result("paired", float(np.mean(d)), se, float(len(d) - 1), lambda: stats.ttest_rel(worker, standard), alpha)


def _result(test: str, diff: float, se: float, df: float, run_test, alpha: float) -> dict:
    """The test's outcome; without seed-to-seed variance (se ~ 0 relative to the losses) nothing is tested."""
    if not (np.isfinite(se) and se > VARIANCE_FLOOR * (1.0 + abs(diff))):
        se = 0.0 if np.isfinite(se) else se
        return {"test": test, "diff": diff, "se": se, "df": df, "diff_ci_low": np.nan, "diff_ci_high": np.nan,
                "p_value": np.nan}  # fmt: skip
    result = run_test()
    ci = result.confidence_interval(1 - alpha)
    low, high, p = float(ci.low), float(ci.high), float(result.pvalue)
    return {"test": test, "diff": diff, "se": se, "df": df, "diff_ci_low": low, "diff_ci_high": high, "p_value": p}


def tost(diff: float, se: float, df: float, margin: float) -> float:
    """p-value of two one-sided tests that |true difference| < margin (equivalence); NaN without variance.

    H0 is |difference| >= margin; the p-value is the larger of the two one-sided p-values, so p < alpha means
    the (1 - 2 alpha) interval lies inside (-margin, margin).
    """
    if not (se > 0 and np.isfinite(se) and df > 0):
        return np.nan
    p_above_low = stats.t.sf((diff + margin) / se, df)  # H0: difference <= -margin
    p_below_high = stats.t.cdf((diff - margin) / se, df)  # H0: difference >= +margin
    return float(max(p_above_low, p_below_high))


def non_equivalence(diff: float, se: float, df: float, margin: float) -> float:
    """p-value of the one-sided test that the true difference lies beyond the margin on the observed side
    (H0: |difference| <= margin): p < alpha means the (1 - 2 alpha) interval lies wholly outside (-margin,
    margin), "differs by more than the margin". TOST's p = 1 only says equivalence was not shown; this says the
    converse, when it can. NaN without variance."""
    if not (se > 0 and np.isfinite(se) and df > 0):
        return np.nan
    if diff >= 0:
        return float(stats.t.sf((diff - margin) / se, df))  # H0: difference <= +margin
    return float(stats.t.cdf((diff + margin) / se, df))  # H0: difference >= -margin


def certifiable_margin(diff: float, se: float, df: float, alpha: float = ALPHA) -> float:
    """The smallest margin TOST at `alpha` would certify for this cell: |diff| + t_{1-alpha} * se, the far
    edge of the (1 - 2 alpha) interval. A margin larger than it gives "equivalent"; NaN without variance."""
    if not (se > 0 and np.isfinite(se) and df > 0):
        return np.nan
    return float(abs(diff) + stats.t.ppf(1 - alpha, df) * se)


def detectable_effect(se: float, df: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true difference a two-sided t-test at `alpha` detects with probability `power`, given the
    observed standard error and df: solved exactly on the noncentral t distribution (the normal approximation
    (t_{1-alpha/2} + t_{power}) * se understates it at few degrees of freedom: 5.36 se vs 5.65 at df 2)."""
    if not (se > 0 and np.isfinite(se) and df > 0):
        return np.nan
    crit = stats.t.ppf(1 - alpha / 2, df)
    approx = float(crit + stats.t.ppf(power, df))  # in units of se

    def shortfall(delta: float) -> float:
        return stats.nct.sf(crit, df, delta) + stats.nct.cdf(-crit, df, delta) - power

    low, high = shortfall(approx / 2), shortfall(2 * approx)
    if not (np.isfinite(low) and np.isfinite(high) and low < 0 < high):  # scipy's nct fails at df ~ 1
        return approx * se
    return float(brentq(shortfall, approx / 2, 2 * approx) * se)


def rank_test(worker: np.ndarray, standard: np.ndarray) -> float:
    """Two-sided Mann-Whitney U p-value of the arms' losses where a seed that diverged or failed counts as the
    worst outcome (+inf, tied with the other such seeds): an arm that loses seeds cannot win on its survivors.
    NaN with fewer than 2 seeds in an arm."""
    worker, standard = np.asarray(worker, float), np.asarray(standard, float)
    if len(worker) < 2 or len(standard) < 2:
        return np.nan
    if np.all(np.concatenate([worker, standard]) == worker[0]):
        return 1.0
    return float(stats.mannwhitneyu(worker, standard, alternative="two-sided").pvalue)


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values over all finite entries (NaN stays NaN); adjusted >= raw.

    Sorted ascending p_(1) <= ... <= p_(m): adjusted p_(i) = max over j <= i of min(1, (m - j + 1) p_(j)).
    """
    p = np.asarray(pd.to_numeric(pd.Series(p_values, dtype=object), errors="coerce"), float)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = len(finite)
    if m == 0:
        return out
    order = finite[np.argsort(p[finite], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out


def compare(worker: pd.DataFrame, standard: pd.DataFrame, margin: float, alpha: float = ALPHA) -> dict:
    """Worker vs standard test seeds (frames with seed, final_loss): paired over the seeds both completed when
    there are at least 2 such pairs, Welch otherwise (2+ seeds per arm), nothing with fewer.

    Returns test, n_pairs, diff, se, df, its interval, p_value, p_equiv (TOST at `margin`), p_noneq (a
    difference beyond the margin), min_margin (the smallest margin TOST certifies) and mde (at 80% power).
    """
    w = _by_seed(worker)
    s = _by_seed(standard)
    shared = sorted(set(w) & set(s))
    out = {"test": "none", "n_pairs": len(shared), "diff": np.nan, "se": np.nan, "df": np.nan}
    out.update(diff_ci_low=np.nan, diff_ci_high=np.nan, p_value=np.nan)
    w_loss, s_loss = np.array(list(w.values())), np.array(list(s.values()))
    if len(w) and len(s):
        out["diff"] = float(w_loss.mean() - s_loss.mean())
    if len(shared) >= 2:
        out.update(paired(np.array([w[k] for k in shared]), np.array([s[k] for k in shared]), alpha))
    elif len(w) >= 2 and len(s) >= 2:
        out.update(welch(w_loss, s_loss, alpha))
    out["p_equiv"] = tost(out["diff"], out["se"], out["df"], margin)
    out["p_noneq"] = non_equivalence(out["diff"], out["se"], out["df"], margin)
    out["min_margin"] = certifiable_margin(out["diff"], out["se"], out["df"], alpha)
    out["mde"] = detectable_effect(out["se"], out["df"], alpha)
    return out


def _by_seed(trials: pd.DataFrame) -> dict:
    """seed -> final loss of the trials that have one."""
    loss = trials["final_loss"].to_numpy(float)
    keep = np.isfinite(loss)
    return dict(zip(trials["seed"].to_numpy()[keep].tolist(), loss[keep].tolist(), strict=True))
