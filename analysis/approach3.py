"""Chinchilla's approach 3, beside the isoFLOP profiles (approach 2) as a cross-check (pure functions).

Per arm, L(N, D) = E + A / N^alpha + B / D^beta is fitted to every finished run (Hoffmann et al. 2022, with
Besiroglu et al. 2024's replication: every run, a Huber loss, a bootstrap over runs): the Huber loss (delta
HUBER_DELTA) of log L(N, D) = LSE(a - alpha ln N, b - beta ln D, e) against log final_loss, summed over runs,
A = e^a, B = e^b, E = e^e, minimised by L-BFGS-B from the GRID points with the smallest objective (N_STARTS of
them; Hoffmann et al. start from every point of a larger grid, which costs minutes per bootstrap here).
N is the count isoflop uses (non-embedding parameters, scaling.isoflop_frame), D the tokens the run trained on.

Compute: C = flops_per_token(N) D in the project's own FLOPs (wt_model.flops, the budgets' unit), with
flops_per_token = kappa N^m fitted per arm over its runs in log-log (6N gives kappa 6, m 1; attention, the
embedding and the worker's rows move both). The fit then implies N_opt(C) = G C^a3 with
a3 = beta / (alpha + m beta) and G = (alpha A / (m beta B kappa^beta))^(1 / (alpha + m beta)), and
L_opt(C) = L(N_opt, C / flops_per_token(N_opt)).

Intervals: percentile, over N_BOOT replicates that resample seeds with replacement (a seed's runs at every size
and budget drawn together: they share a data order); the same seed labels are drawn for every arm, so arm
comparisons are paired. With S seeds there are only C(2S - 1, S) distinct resamples (10 for 3 seeds): the
intervals are then coarse and tend to be too narrow (n_distinct_resamples says how many there were).
"""

from __future__ import annotations

from itertools import product
from math import comb

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import logsumexp

from analysis.configs import STANDARD
from analysis.isoflop import COMPARISON_COLUMNS, frontier_comparison
from analysis.stats import CONFIDENCE

HUBER_DELTA = 1e-3
N_BOOT = 100  # seed resamples: with 3 seeds only 10 are distinct, and each costs a fit of every arm
# starting points (a, b, e, alpha, beta): a coarser cut of Hoffmann et al.'s grid
GRID = np.array(list(product((0.0, 5.0, 10.0, 15.0, 20.0), (0.0, 5.0, 10.0, 15.0, 20.0), (-1.0, 0.0, 0.5, 1.0),
                             (0.2, 0.5, 1.0), (0.2, 0.5, 1.0))))  # fmt: skip
N_STARTS = 8
BOUNDS = [(None, None), (None, None), (None, None), (0.0, 3.0), (0.0, 3.0)]  # exponents kept in a physical range
# L-BFGS-B sees the Huber loss divided by delta^2 (order 1 per run at a residual of delta): unscaled, it is tiny
# and the default tolerances stop far from the minimum
OPTIONS = dict(maxiter=5000, ftol=1e-12, gtol=1e-8)
RUN_COLUMNS = ("arm", "n_params", "tokens", "flops", "seed", "final_loss")
PARAMS = ("E", "A", "alpha", "B", "beta")


def _check(runs: pd.DataFrame) -> None:
    missing = [c for c in RUN_COLUMNS if c not in runs.columns]
    if missing:
        raise ValueError(f"the per-run frame lacks column(s) {missing}; approach 3 needs {list(RUN_COLUMNS)}")


def _terms(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray) -> np.ndarray:
    """(..., 3, n): the three log terms a - alpha ln N, b - beta ln D, e for parameter rows theta (..., 5)."""
    a, b, e, alpha, beta = np.moveaxis(np.asarray(theta, float), -1, 0)
    t1 = a[..., None] - alpha[..., None] * log_n
    t2 = b[..., None] - beta[..., None] * log_d
    return np.stack([t1, t2, np.broadcast_to(e[..., None], t1.shape)], axis=-2)


def _huber(r: np.ndarray, delta: float) -> np.ndarray:
    return np.where(np.abs(r) <= delta, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta))


def _objective(theta, log_n, log_d, log_y, delta):
    """Huber loss of the log-sum-exp prediction and its gradient in theta, both divided by delta^2."""
    terms = _terms(theta, log_n, log_d)
    lse = logsumexp(terms, axis=0)
    r = lse - log_y
    psi = np.clip(r, -delta, delta)
    w = np.exp(terms - lse)  # softmax weights of the three terms
    grad = np.array([psi @ w[0], psi @ w[1], psi @ w[2], -(psi * w[0]) @ log_n, -(psi * w[1]) @ log_d])
    return float(_huber(r, delta).sum()) / delta**2, grad / delta**2


def fit_loss_surface(n_params, tokens, loss, starts=None, delta: float = HUBER_DELTA) -> dict | None:
    """(E, A, alpha, B, beta, theta, objective) of the best L-BFGS-B run from `starts` (default: the GRID points
    with the smallest objective); None when no run ends finite."""
    log_n, log_d = np.log(np.asarray(n_params, float)), np.log(np.asarray(tokens, float))
    log_y = np.log(np.asarray(loss, float))
    if starts is None:
        values = _huber(logsumexp(_terms(GRID, log_n, log_d), axis=-2) - log_y, delta).sum(-1)
        starts = GRID[np.argsort(values)[:N_STARTS]]
    best = None
    for start in np.atleast_2d(starts):
        res = minimize(_objective, start, args=(log_n, log_d, log_y, delta), jac=True, method="L-BFGS-B",
                       bounds=BOUNDS, options=OPTIONS)  # fmt: skip
        if np.isfinite(res.fun) and (best is None or res.fun < best.fun):
            best = res
    if best is None:
        return None
    a, b, e, alpha, beta = best.x
    return dict(
        E=np.exp(e), A=np.exp(a), alpha=alpha, B=np.exp(b), beta=beta, theta=best.x, objective=best.fun * delta**2
    )


def flops_per_token_law(runs: pd.DataFrame) -> tuple[float, float]:
    """(kappa, m) of flops / tokens = kappa N^m over the runs (least squares in log-log; m = 1 with one size)."""
    x, y = np.log(runs["n_params"].to_numpy(float)), np.log((runs["flops"] / runs["tokens"]).to_numpy(float))
    if np.ptp(x) == 0:
        return float(np.exp(np.mean(y - x))), 1.0
    m, intercept = np.polyfit(x, y, 1)
    return float(np.exp(intercept)), float(m)


def optimum(params: dict, kappa: float, m: float, budget_flops) -> tuple[np.ndarray, np.ndarray, float]:
    """(N_opt, L_opt) at each budget C and the exponent a3 of N_opt(C) = G C^a3, from a fitted loss surface."""
    alpha, beta, A, B, E = params["alpha"], params["beta"], params["A"], params["B"], params["E"]
    c = np.asarray(budget_flops, float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        exponent = beta / (alpha + m * beta)
        g = (alpha * A / (m * beta * B * kappa**beta)) ** (1 / (alpha + m * beta))
        n_opt = g * c**exponent
        d_opt = c / (kappa * n_opt**m)
        return n_opt, E + A * n_opt**-alpha + B * d_opt**-beta, float(exponent)


def _quantiles(values: np.ndarray, confidence: float) -> tuple[float, float]:
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    if not len(values):
        return np.nan, np.nan
    tail = (1 - confidence) / 2
    low, high = np.quantile(values, [tail, 1 - tail], method="inverted_cdf")
    return float(low), float(high)


def _resamples(labels: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, S) seed labels drawn with replacement, the same for every arm."""
    return np.random.default_rng([seed, 3]).choice(labels, size=(n_boot, len(labels)), replace=True)


def _arm_fit(runs: pd.DataFrame, draws: np.ndarray, c_max: float, confidence: float) -> tuple[dict, np.ndarray]:
    """One arm's row and its replicates (n_boot, 7): the five parameters, a3 and L_opt at c_max."""
    ok = runs[runs["final_loss"].notna()]
    kappa, m = flops_per_token_law(ok)
    row = dict(n_runs=len(ok), n_seeds=ok["seed"].nunique(), n_sizes=ok["n_params"].nunique(), kappa=kappa, m=m)
    row["n_distinct_resamples"] = comb(2 * row["n_seeds"] - 1, row["n_seeds"]) if row["n_seeds"] else 0
    fit = fit_loss_surface(ok["n_params"], ok["tokens"], ok["final_loss"])
    boots = np.full((len(draws), 7), np.nan)
    if fit is None:
        return dict(row, fitted=False), boots
    n_opt, l_opt, a3 = optimum(fit, kappa, m, c_max)
    row.update({p: fit[p] for p in PARAMS}, objective=fit["objective"], a3=a3, c_max=c_max)
    row.update(n_opt_at_c_max=float(n_opt), loss_opt_at_c_max=float(l_opt), fitted=True)
    by_seed = {s: g for s, g in ok.groupby("seed")}
    for i, labels in enumerate(draws):
        sample = pd.concat([by_seed[s] for s in labels if s in by_seed]) if any(s in by_seed for s in labels) else None
        if sample is None or sample["n_params"].nunique() < 2:
            continue
        boot = fit_loss_surface(sample["n_params"], sample["tokens"], sample["final_loss"], starts=fit["theta"])
        if boot is not None:
            _, l_boot, a_boot = optimum(boot, kappa, m, c_max)
            boots[i] = [boot[p] for p in PARAMS] + [a_boot, float(l_boot)]
    names = list(PARAMS) + ["a3", "loss_opt_at_c_max"]
    for j, name in enumerate(names):
        row[f"{name}_low"], row[f"{name}_high"] = _quantiles(boots[:, j], confidence)
    row["n_boot_ok"] = int(np.isfinite(boots).all(1).sum())
    return row, boots


APPROACH3_COLUMNS = ["arm", "fitted", "n_runs", "n_seeds", "n_sizes", "n_distinct_resamples", "n_boot_ok"]
APPROACH3_COLUMNS += [f"{p}{s}" for p in PARAMS for s in ("", "_low", "_high")] + ["objective", "kappa", "m"]
APPROACH3_COLUMNS += [f"{p}{s}" for p in ("a3", "n_opt_at_c_max", "loss_opt_at_c_max") for s in ("", "_low", "_high")]
APPROACH3_COLUMNS += ["c_max"]


def approach3(runs: pd.DataFrame, n_boot: int = N_BOOT, seed: int = 0, confidence: float = CONFIDENCE):
    """(fits, replicates): one row per arm with the fitted surface, its implied N_opt(C) exponent a3 and L_opt at
    the largest budget c_max (every parameter with its interval), and arm -> (n_boot, 7) replicates for
    approach3_difference. `runs`: scaling.isoflop_frame's per-run table (NaN losses are left out)."""
    _check(runs)
    c_max = float(runs["budget_flops"].max() if "budget_flops" in runs else runs["flops"].max())
    draws = _resamples(np.sort(runs["seed"].dropna().unique()), n_boot, seed)
    rows, replicates = [], {}
    for arm, group in runs.groupby("arm", sort=True):
        row, replicates[arm] = _arm_fit(group, draws, c_max, confidence)
        rows.append(dict(arm=arm, **row))
    return pd.DataFrame(rows).reindex(columns=APPROACH3_COLUMNS), replicates


def approach3_difference(fits: pd.DataFrame, replicates: dict, reference: str = STANDARD, confidence=CONFIDENCE):
    """One row per arm other than `reference`: the ratio of the N_opt exponents a3 (arm / reference) and of L_opt
    at the largest budget, each with a paired interval (the same seed resamples in both arms); the columns of
    isoflop.frontier_comparison, so the two approaches stack in one table."""
    rows = []
    ref = fits.set_index("arm").loc[reference] if reference in set(fits["arm"]) else None
    for _, row in fits[~fits["arm"].eq(reference)].iterrows():
        out = dict(approach=3, arm=row["arm"], reference=reference)
        if ref is None or not (row["fitted"] and ref["fitted"]):
            out["reason"] = f"no fitted {reference} surface" if ref is None or not ref["fitted"] else "no fit"
            rows.append(out)
            continue
        mine, theirs = replicates[row["arm"]], replicates[reference]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio_a, ratio_l = mine[:, 5] / theirs[:, 5], mine[:, 6] / theirs[:, 6]
        out.update(exponent=row["a3"], reference_exponent=ref["a3"], exponent_ratio=row["a3"] / ref["a3"])
        out["exponent_ratio_low"], out["exponent_ratio_high"] = _quantiles(ratio_a, confidence)
        out.update(c_max=row["c_max"], loss_opt_ratio=row["loss_opt_at_c_max"] / ref["loss_opt_at_c_max"])
        out["loss_opt_ratio_low"], out["loss_opt_ratio_high"] = _quantiles(ratio_l, confidence)
        distinct = min(row["n_distinct_resamples"], ref["n_distinct_resamples"])
        out["reason"] = f"fitted; intervals from {distinct} distinct seed resamples"
        rows.append(out)
    return pd.DataFrame(rows).reindex(columns=COMPARISON_COLUMNS)


def cross_check(runs: pd.DataFrame, profiles: pd.DataFrame, fits: pd.DataFrame, reference: str = STANDARD,
                n_boot: int = N_BOOT) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """(approach 3's fits of the runs that record D and C, both approaches' arm comparisons in one table):
    isoflop.frontier_comparison's rows (approach 2) above approach3_difference's (approach 3)."""
    known = runs.dropna(subset=["tokens", "flops"])
    known = known[(known["tokens"] > 0) & (known["flops"] > 0)]
    surfaces, replicates = (
        approach3(known, n_boot=n_boot) if len(known) else (pd.DataFrame(columns=APPROACH3_COLUMNS), {})
    )
    rows = [frontier_comparison(profiles, fits, reference)]
    if len(surfaces):
        rows.append(approach3_difference(surfaces, replicates, reference))
    return surfaces, pd.concat(rows, ignore_index=True)
