"""Tests behind the verdicts: paired or Welch t-tests, equivalence (TOST) and its converse (a difference larger
than the margin), the smallest margin a cell certifies, detectable effects, a paired sign-flip permutation test
that counts a lost seed as the worst outcome, Holm (pure).

All at one level: ALPHA for tests, 1 - ALPHA for intervals. Differences are arm minus reference final loss. The
smallest certifiable margin and the MDE are stated at ALPHA / n_tests (Bonferroni over a table of n_tests rows:
Holm's first step, the most any row of the table needs).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from scipy.optimize import brentq

ALPHA = 0.05  # significance level of every test; intervals are at 1 - ALPHA
POWER = 0.8  # power at which the minimum detectable effect is stated
VARIANCE_FLOOR = 1e-9  # a standard error below this (relative to the difference) is rounding, not spread
EXACT_MAX_PAIRS = 16  # up to 2^16 sign patterns the sign-flip test enumerates them all; beyond, Monte Carlo
MONTE_CARLO_DRAWS = 2**16  # random sign patterns beyond EXACT_MAX_PAIRS (seeded: one answer per cell)
MONTE_CARLO_SEED = 0


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
    """p-value of the test that the true difference lies beyond the margin, |difference| > margin (H0:
    |difference| <= margin): TOST's converse. TOST's p = 1 only says equivalence was not shown; this says the
    converse, when it can. NaN without variance.

    Both sides are fixed in advance: the union of the one-sided tests "difference > +margin" and "difference <
    -margin", each at alpha / 2, so p = min(1, 2 min(p_above, p_below)), and p < alpha means the (1 - alpha)
    interval lies wholly beyond the margin on one side. Its size at |difference| = margin is at most alpha.
    (Testing only the side the data fell on, at alpha, has size up to 2 alpha as margin / se -> 0.)"""
    if not (se > 0 and np.isfinite(se) and df > 0):
        return np.nan
    p_above = stats.t.sf((diff - margin) / se, df)  # H0: difference <= +margin
    p_below = stats.t.cdf((diff + margin) / se, df)  # H0: difference >= -margin
    return float(min(1.0, 2.0 * min(p_above, p_below)))


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
        # the far tail P(T < -crit) as P(T' > crit) under -delta: scipy's nct.cdf gives NaN where it is tiny
        return stats.nct.sf(crit, df, delta) + stats.nct.sf(crit, df, -delta) - power

    low, high = shortfall(approx / 2), shortfall(2 * approx)
    if not (np.isfinite(low) and np.isfinite(high) and low < 0 < high):  # a guard: no case known to reach it
        return approx * se
    return float(brentq(shortfall, approx / 2, 2 * approx) * se)


def sign_flip(arm, ref) -> dict:
    """Two-sided exact sign-flip permutation test of the per-seed differences arm[i] - ref[i] (the same seed:
    the same data order), for losses where a lost seed (diverged or failed) is +inf and one not finished NaN.

    Under H0 the two losses of a seed are exchangeable, so each difference's sign is a fair coin; p is the share
    of sign patterns whose |sum of differences| is at least the observed one: all 2^n of them for n pairs up to
    EXACT_MAX_PAIRS, MONTE_CARLO_DRAWS seeded random ones beyond ((1 + hits) / (1 + draws)).

    Lost seeds count as the worst outcome of their arm: a pair where one side lost gets a difference larger than
    all the finite ones together, against the side that lost (+ when the arm lost, - when the reference did), so
    no win on the survivors can outweigh a lost seed; a pair where both lost is a tie (difference 0); a pair
    with a NaN side is left out. Returns p_signflip (NaN under 2 pairs) and p_signflip_min, the smallest p the
    test can give with these pairs, 2 / 2^n (exact; 1 / (1 + draws) by Monte Carlo): 0.25 with 3 seeds, 0.0625
    with 5, so below 6 seeds it never reaches alpha = 0.05. On a Holm-adjusted table of m rows a row can pass
    only if p_signflip_min < alpha, and its extreme outcome passes whatever the other rows show only if
    p_signflip_min < alpha / m."""
    arm, ref = np.asarray(arm, float), np.asarray(ref, float)
    keep = ~(np.isnan(arm) | np.isnan(ref))
    arm, ref = arm[keep], ref[keep]
    n = len(arm)
    if n < 2:
        return {"p_signflip": np.nan, "p_signflip_min": np.nan}
    lost_arm, lost_ref = np.isposinf(arm), np.isposinf(ref)
    lost = lost_arm ^ lost_ref  # exactly one side lost: a difference beyond all finite ones, against it
    finite = ~(lost_arm | lost_ref)
    toward = np.where(lost_arm, 1.0, -1.0)[lost]
    d = arm[finite] - ref[finite]
    # |sum| with the lost pairs at +-BIG (BIG > 2 sum|d|) orders patterns by |net lost count| first, then by the
    # finite sum on the net lost side (or |finite sum| when the lost pairs cancel): compared in that order,
    # exactly, instead of through a large number
    tie = 1e-9 * float(np.abs(d).sum())

    def extreme(signs: np.ndarray) -> np.ndarray:
        net, rest = signs[:, lost] @ toward, signs[:, finite] @ d
        side = np.where(net != 0, np.sign(net) * rest, np.abs(rest))
        return (np.abs(net) > abs(net_obs)) | ((np.abs(net) == abs(net_obs)) & (side >= side_obs - tie))

    net_obs, rest_obs = float(toward.sum()), float(d.sum())
    side_obs = np.sign(net_obs) * rest_obs if net_obs != 0 else abs(rest_obs)
    if n <= EXACT_MAX_PAIRS:
        patterns = np.arange(2**n)[:, None] >> np.arange(n) & 1  # every sign pattern, one per row
        p = float(extreme(1.0 - 2.0 * patterns).mean())
        return {"p_signflip": p, "p_signflip_min": 2.0 / 2**n}
    rng = np.random.default_rng(MONTE_CARLO_SEED)
    hits = sum(int(extreme(rng.choice([-1.0, 1.0], size=(4096, n))).sum()) for _ in range(MONTE_CARLO_DRAWS // 4096))
    return {"p_signflip": (1.0 + hits) / (1.0 + MONTE_CARLO_DRAWS), "p_signflip_min": 1.0 / (1.0 + MONTE_CARLO_DRAWS)}


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


def compare(
    worker: pd.DataFrame, standard: pd.DataFrame, margin: float, alpha: float = ALPHA, n_tests: int = 1
) -> dict:
    """Arm vs reference test seeds (frames with seed, final_loss): paired over the seeds both completed when
    there are at least 2 such pairs, Welch otherwise (2+ seeds per arm), nothing with fewer.

    Returns test, n_pairs, diff, se, df, its (1 - alpha) interval, p_value, p_equiv (TOST at `margin`), p_noneq
    (a difference beyond the margin), and at alpha / n_tests (Bonferroni over the `n_tests` rows of the table the
    p-values are Holm-adjusted across: the level Holm's first step asks, so each suffices for any row)
    min_margin (the smallest margin TOST certifies) and mde (at 80% power).
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
    if not (isinstance(n_tests, (int, np.integer)) and n_tests >= 1):
        raise ValueError(f"n_tests is {n_tests!r}: expected the number of rows the table tests, an integer >= 1.")
    out["min_margin"] = certifiable_margin(out["diff"], out["se"], out["df"], alpha / n_tests)
    out["mde"] = detectable_effect(out["se"], out["df"], alpha / n_tests)
    return out


def _by_seed(trials: pd.DataFrame) -> dict:
    """seed -> final loss of the trials that have one."""
    loss = trials["final_loss"].to_numpy(float)
    keep = np.isfinite(loss)
    return dict(zip(trials["seed"].to_numpy()[keep].tolist(), loss[keep].tolist(), strict=True))
