"""One isoFLOP profile's statistics on arrays (analysis.isoflop's docstring says what and why): the parabola in
log10 N with seed offsets, its error term, the curvature's t interval, Fieller's interval of the minimum, and the
rule that says whether the minimum is identified. No pandas: analysis.isoflop_power calls it many thousand times.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import stats

from analysis.stats import CONFIDENCE

MIN_SIZES = 5  # sizes an identified profile needs (a parabola needs 3; 5 leave 2 df to check its shape)
# lack of fit below this p: sizes scatter beyond seed noise and their own mean square (k - 3 df) is the error. At
# Bancroft's 0.25 a centred t~6 ladder is identified 85% of the time instead of 96%, for a coverage of n_opt under
# size-level noise as large as the seed noise of 0.93 instead of 0.89 (analysis.isoflop_power; test_isoflop.py)
POOL_ALPHA = 0.05


class Runs(NamedTuple):
    """One profile's finite runs: log10 N per size ascending (k,), and per run its size index, seed, loss (n,)."""

    u: np.ndarray
    size: np.ndarray
    seed: np.ndarray
    y: np.ndarray


def vertex(coef: np.ndarray, u_mid: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(log10 n_opt, loss_opt, curvature d2L/du2) of parabolas; where one opens downward (or is a line),
    log10 n_opt is +inf or -inf by its slope at the sampled centre u_mid, and loss_opt is -inf."""
    c0, c1, c2 = np.moveaxis(coef, -1, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        up = c2 > 0
        u_opt = np.where(up, -c1 / (2 * c2), np.where(c1 + 2 * c2 * u_mid < 0, np.inf, -np.inf))
        loss = np.where(up, c0 - c1**2 / (4 * c2), -np.inf)
    bad = np.isnan(c2)
    return np.where(bad, np.nan, u_opt), np.where(bad, np.nan, loss), 2 * c2


def _design(runs: Runs) -> tuple[np.ndarray, np.ndarray, int]:
    """(parabola columns in v = u - mean u, seed contrasts or an empty block, number of seeds)."""
    v = runs.u[runs.size] - runs.u[runs.size].mean()  # centred: conditioning
    parabola = np.column_stack([np.ones_like(v), v, v**2])
    labels, index = np.unique(runs.seed, return_inverse=True)
    one_hot = np.eye(len(labels))[index]
    contrasts = one_hot[:, :-1] - one_hot[:, [-1]]  # sum-to-zero: c0 is the curve of the average seed
    blocked = np.hstack([parabola, contrasts])
    if len(labels) > 1 and len(v) > blocked.shape[1] and np.linalg.matrix_rank(blocked) == blocked.shape[1]:
        return parabola, contrasts, len(labels)
    return parabola, np.zeros((len(v), 0)), len(labels)


def _ss(x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    """Residual sum of squares and df of y on the columns of x."""
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ beta
    return float(resid @ resid), len(y) - int(np.linalg.matrix_rank(x))


def fit_profile(runs: Runs, confidence: float = CONFIDENCE) -> dict:
    """The parabola with seed offsets, its error term, lack of fit, curvature t interval, Fieller's interval of
    n_opt and why the minimum is not identified (_reasons: empty when it is); keys prefixed with "_" are not
    table columns (the replicates' inputs). Needs 3 sizes."""
    parabola, contrasts, n_seeds = _design(runs)
    x = np.hstack([parabola, contrasts])
    xtx_inv = np.linalg.inv(x.T @ x)
    hat = xtx_inv @ x.T  # (p, n): coefficients as weights on the runs
    beta = hat @ runs.y
    m = runs.u[runs.size].mean()
    to_u = np.array([[1.0, -m, m * m], [0.0, 1.0, -2 * m], [0.0, 0.0, 1.0]])  # (c0, c1, c2) in v -> in u
    coef, hat_u = to_u @ beta[:3], to_u @ hat[:3]
    resid = runs.y - x @ beta
    ss_res, df_res = float(resid @ resid), len(runs.y) - x.shape[1]
    sizes = np.eye(len(runs.u))[runs.size]
    ss_pure, df_pure = _ss(np.hstack([sizes, contrasts]), runs.y)
    ss_lack, df_lack = max(ss_res - ss_pure, 0.0), len(runs.u) - 3
    out = dict(resid_sd=np.sqrt(ss_res / df_res) if df_res > 0 else np.nan, lof_df=df_lack, lof_f=np.nan)
    out.update(pure_error_sd=np.sqrt(ss_pure / df_pure) if df_pure > 0 else np.nan, pure_error_df=df_pure)
    out.update(lof_p=np.nan, seed_blocks=contrasts.shape[1] > 0, parabola=tuple(float(c) for c in coef))
    if df_lack > 0 and df_pure > 0 and ss_pure > 0:
        out["lof_f"] = (ss_lack / df_lack) / (ss_pure / df_pure)
        out["lof_p"] = float(stats.f.sf(out["lof_f"], df_lack, df_pure))
    if out["lof_p"] < POOL_ALPHA:
        out.update(error_term="size scatter", error_sd=np.sqrt(ss_lack / df_lack), error_df=df_lack)
    else:
        out.update(error_term="pooled", error_sd=out["resid_sd"], error_df=df_res)
    u_opt, loss, curvature = (float(v) for v in vertex(coef, float(runs.u.mean())))
    out.update(_log10_n_opt=u_opt, loss_opt=loss, curvature=curvature, _coef=coef, _hat=hat_u)
    cov = out["error_sd"] ** 2 * hat_u @ hat_u.T if out["error_df"] > 0 else np.full((3, 3), np.nan)
    q = stats.t.ppf(0.5 + confidence / 2, out["error_df"]) if out["error_df"] > 0 else np.nan
    se = 2 * np.sqrt(cov[2, 2])
    with np.errstate(divide="ignore", invalid="ignore"):  # noiseless runs: se 0, t infinite
        out.update(curvature_low=curvature - q * se, curvature_high=curvature + q * se, curvature_t=curvature / se)
    out["_log10_n_opt_interval"] = _fieller(coef, cov, q)
    # the seeds' mean offset moves loss_opt, never the shape: its variance by moments, for the draws
    unblocked = runs.y - parabola @ beta[:3]
    ms_seed = (float(unblocked @ unblocked) - ss_res) / (n_seeds - 1) if contrasts.shape[1] else 0.0
    level_var = max(ms_seed - ss_res / max(df_res, 1), 0.0) * n_seeds / len(runs.y)  # sigma_b^2 (balanced)
    out.update(_level_sd=np.sqrt(level_var / n_seeds) if contrasts.shape[1] else 0.0, _level_df=n_seeds - 1)
    out.update(_unblocked=unblocked, _u_mid=float(runs.u.mean()))
    b_lo, b_hi = out["_log10_n_opt_interval"]
    with np.errstate(over="ignore"):  # a near-flat parabola's minimum can lie 1e300 decades away: inf
        n_opt, low, high = (float(v) for v in np.power(10.0, [u_opt, b_lo, b_hi]))
    out.update(n_opt=n_opt, n_opt_low=low, n_opt_high=high)
    out.update(n_sizes=len(runs.u), log10_n_min=float(runs.u.min()), log10_n_max=float(runs.u.max()))
    out["n_opt_outside_decades"] = outside_decades(u_opt, out["log10_n_min"], out["log10_n_max"])
    out["_reasons"] = profile_reasons(out, confidence)
    return out


def _fieller(coef: np.ndarray, cov: np.ndarray, q: float) -> tuple[float, float]:
    """Fieller's interval of -c1 / (2 c2): every u at which the slope c1 + 2 u c2 is within q se of 0;
    (-inf, inf) when c2 is not distinguishable from 0 at the same q."""
    _, c1, c2 = coef
    a = 4 * (c2**2 - q**2 * cov[2, 2])
    b = 4 * (c1 * c2 - q**2 * cov[1, 2])
    c = c1**2 - q**2 * cov[1, 1]
    if not a > 0:
        return -np.inf, np.inf
    root = np.sqrt(max(b * b - 4 * a * c, 0.0))
    return float((-b - root) / (2 * a)), float((-b + root) / (2 * a))


def profile_reasons(row: dict, confidence: float = CONFIDENCE) -> list[str]:
    """Why a profile's optimum is not identified, with its numbers (empty when it is identified)."""
    if row["n_sizes"] < MIN_SIZES:
        return [f"{row['n_sizes']} sizes with a finite loss (needs {MIN_SIZES})"]
    if not row["error_df"] > 0:
        return ["no residual degrees of freedom: the parabola fits its points exactly"]
    if not row["curvature"] > 0:
        return [f"the parabola opens downward (curvature {row['curvature']:.3g} nats/decade^2): no minimum"]
    u_lo, u_hi = row["log10_n_min"], row["log10_n_max"]
    reasons = []
    if not row["curvature_low"] > 0:
        reasons.append(
            f"flat: curvature {row['curvature']:.3g} nats/decade^2, {confidence:.0%} interval "
            f"[{row['curvature_low']:.3g}, {row['curvature_high']:.3g}] (t={row['curvature_t']:.2f} on "
            f"{row['error_df']} df, {row['error_term']} error)"
        )
    if row["n_opt_outside_decades"] != 0:
        side = "above" if row["n_opt_outside_decades"] > 0 else "below"
        reasons.append(
            f"edge minimum: N={row['n_opt']:.3g} lies {abs(row['n_opt_outside_decades']):.2f} decades {side} "
            f"the sampled {10**u_lo:.3g}-{10**u_hi:.3g}"
        )
    with np.errstate(divide="ignore"):
        b_lo, b_hi = np.log10(row["n_opt_low"]), np.log10(row["n_opt_high"])
    if reasons == [] and not b_hi - b_lo <= u_hi - u_lo:
        reasons.append(f"the n_opt interval spans {b_hi - b_lo:.2f} decades, wider than the {u_hi - u_lo:.2f} sampled")
    return reasons


def outside_decades(u_opt: float, u_lo: float, u_hi: float) -> float:
    """Decades by which log10 n_opt lies above (+) or below (-) the sampled sizes; 0 inside."""
    return float(u_opt - u_hi if u_opt > u_hi else u_opt - u_lo if u_opt < u_lo else 0.0)
