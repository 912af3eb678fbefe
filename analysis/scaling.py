"""Loss and throughput against model size, sequence length and worker interval (pure functions).

The power law L = E + A * x^-alpha is fitted with scipy.optimize.curve_fit per series (an arm at fixed shape
apart from model size, and a fixed budget), only when the series has at least MIN_SIZES distinct x values;
its 95% confidence intervals come from a case bootstrap with a fixed seed.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.optimize import OptimizeWarning, curve_fit

from analysis.stats import ARM_KEYS, CELL_KEYS, STANDARD, seed_summary, select_best

MIN_SIZES = 4  # distinct x values a power-law fit needs (it has 3 parameters)
SIZE_KEYS = ["n_embd", "n_layer", "n_head"]
SERIES_KEYS = [k for k in CELL_KEYS if k not in SIZE_KEYS] + ARM_KEYS
SHAPE_KEYS = ["attention", "seq_len", "n_embd", "n_layer", "n_head", "batch_size"]
FIT_COLUMNS = ["E", "A", "alpha"]


def power_law(x, E, A, alpha):
    return E + A * np.power(x, -alpha)


def _jacobian(x, E, A, alpha):
    power = np.power(x, -alpha)
    return np.column_stack([np.ones_like(x), power, -A * power * np.log(x)])


def _fit_once(u: np.ndarray, y: np.ndarray, p0=None) -> np.ndarray | None:
    """(E, A, alpha) for x already divided by a scale near 1; None when the fit fails.

    Levenberg-Marquardt first (fast); when it lands outside E >= 0, A >= 0, 0 <= alpha <= 10 the bounded
    trust-region fit decides.
    """
    if p0 is None:
        e0 = 0.9 * float(np.min(y))
        p0 = [e0, max(float(np.max(y)) - e0, 1e-3), 0.5]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            params, _ = curve_fit(power_law, u, y, p0=p0, jac=_jacobian, method="lm", maxfev=2000)
            if np.all(np.isfinite(params)) and np.all(params >= 0) and params[2] <= 10:
                return params
        except (RuntimeError, ValueError):
            pass
        try:
            bounds = ([0.0, 0.0, 0.0], [np.inf, np.inf, 10.0])
            p0 = np.clip(p0, [0.0, 0.0, 0.0], [np.inf, np.inf, 10.0])
            params, _ = curve_fit(power_law, u, y, p0=p0, jac=_jacobian, bounds=bounds, method="trf")
        except (RuntimeError, ValueError):
            return None
    return params if np.all(np.isfinite(params)) else None


def fit_power_law(x, y, n_boot: int = 200, seed: int = 0, confidence: float = 0.95) -> dict | None:
    """Fit L = E + A * x^-alpha; None with fewer than MIN_SIZES distinct finite x values.

    Returns E, A, alpha, their bootstrap percentile intervals (<name>_low, <name>_high), n_points and n_sizes.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0)
    x, y = x[keep], y[keep]
    if len(np.unique(x)) < MIN_SIZES:
        return None
    scale = float(np.exp(np.mean(np.log(x))))  # fit in x / scale so curve_fit sees numbers near 1
    params = _fit_once(x / scale, y)
    if params is None:
        return None
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(x), len(x))
        if len(np.unique(x[idx])) < 3:
            continue
        boot = _fit_once(x[idx] / scale, y[idx], p0=params)
        if boot is not None:
            draws.append(boot)
    out = {"E": params[0], "A": params[1] * scale ** params[2], "alpha": params[2]}
    tail = 100 * (1 - confidence) / 2
    boots = np.array(draws) if draws else np.full((1, 3), np.nan)
    boots[:, 1] = boots[:, 1] * scale ** boots[:, 2]
    for i, name in enumerate(FIT_COLUMNS):
        out[f"{name}_low"], out[f"{name}_high"] = np.percentile(boots[:, i], [tail, 100 - tail])
    out.update(n_points=len(x), n_sizes=len(np.unique(x)), n_boot=len(draws))
    return out


def power_law_fits(final: pd.DataFrame, x: str = "n_params", n_boot: int = 200) -> pd.DataFrame:
    """One row per series (SERIES_KEYS) with the fit of final loss vs `x` over completed trials.

    Each model size uses its best tuned setting. Series with fewer than MIN_SIZES sizes have NaN parameters
    and fitted=False, so the report can say why.
    """
    done = final[final["status"].eq("completed") & final["final_loss"].notna()]
    best = select_best(done, CELL_KEYS + ARM_KEYS)
    rows = []
    for key, group in best.groupby(SERIES_KEYS, dropna=False, sort=True):
        fit = fit_power_law(group[x], group["final_loss"], n_boot=n_boot)
        row = dict(zip(SERIES_KEYS, key, strict=True))
        row.update(arm=group["arm"].iloc[0], x=x, n_sizes=group[x].nunique(), fitted=fit is not None)
        row.update({k: v for k, v in (fit or {}).items() if k != "n_sizes"})
        rows.append(row)
    columns = SERIES_KEYS + ["arm", "x", "n_sizes", "fitted"]
    columns += [f"{n}{s}" for n in FIT_COLUMNS for s in ("", "_low", "_high")]
    return pd.DataFrame(rows).reindex(columns=columns)


def throughput_summary(final: pd.DataFrame) -> pd.DataFrame:
    """Tokens/s and steps/s (mean and 95% CI over trials) per arm and shape, all trials with a measurement."""
    keys = ["arm", "arch", "worker_interval"] + SHAPE_KEYS
    tokens = _prefixed(seed_summary(final, keys, "tokens_per_s"), keys, "tokens_per_s")
    steps = _prefixed(seed_summary(final, keys, "steps_per_s"), keys, "steps_per_s")
    out = tokens.merge(steps, on=keys, how="inner")
    return out[out["tokens_per_s_n"] > 0].reset_index(drop=True)


def _prefixed(frame: pd.DataFrame, keys: list[str], prefix: str) -> pd.DataFrame:
    return frame.rename(columns={c: f"{prefix}_{c}" for c in frame.columns if c not in keys})


def speedup_vs_interval(throughput: pd.DataFrame) -> pd.DataFrame:
    """Worker tokens/s divided by the standard model's at the same shape, per worker arm."""
    value = "tokens_per_s_mean"
    std = throughput[throughput["arch"].eq(STANDARD)][SHAPE_KEYS + [value]]
    workers = throughput[~throughput["arch"].eq(STANDARD)]
    out = workers[["arm", "arch", "worker_interval"] + SHAPE_KEYS + [value]].merge(
        std.rename(columns={value: "standard_tokens_per_s"}), on=SHAPE_KEYS, how="inner"
    )
    out["speedup"] = out[value] / out["standard_tokens_per_s"]
    return out.sort_values(["arch"] + SHAPE_KEYS + ["worker_interval"], kind="stable").reset_index(drop=True)
