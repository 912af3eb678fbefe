"""Loss and throughput against model size, sequence length and worker interval (pure functions).

The power law L = E + A * x^-alpha is fitted with scipy.optimize.curve_fit per series (an arm in cells that
differ only in model size), to the mean test-seed final loss of each size at the arm's chosen setting, only when
the series has at least MIN_SIZES distinct x values; its 95% intervals come from a bootstrap with a fixed seed
that resamples seeds within each size (never sizes).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.optimize import OptimizeWarning, curve_fit

from analysis import configs
from analysis.configs import STANDARD
from analysis.stats import CELL_COLUMNS, seed_summary

MIN_SIZES = 4  # distinct x values a power-law fit needs (it has 3 parameters)
SERIES_COLUMNS = ["arm", "arch", "worker_interval"] + [c for c in CELL_COLUMNS if c not in configs.SIZE_FIELDS]
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
    """Fit L = E + A * x^-alpha to the mean y per distinct x; None with fewer than MIN_SIZES distinct finite x.

    `y` holds one value per seed, several per size. Intervals come from a bootstrap that resamples seeds within
    each size, so every resample keeps every size. Returns E, A, alpha, their percentile intervals
    (<name>_low, <name>_high), n_points, n_sizes and n_boot (resamples that fitted).
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0)
    x, y = x[keep], y[keep]
    sizes = np.unique(x)
    if len(sizes) < MIN_SIZES:
        return None
    per_size = [y[x == size] for size in sizes]
    scale = float(np.exp(np.mean(np.log(sizes))))  # fit in x / scale so curve_fit sees numbers near 1
    u = sizes / scale
    params = _fit_once(u, np.array([v.mean() for v in per_size]))
    if params is None:
        return None
    rng = np.random.default_rng(seed)
    # each resample draws every size's seeds with replacement: (n_boot, n_sizes) means, every size kept
    means = np.column_stack([v[rng.integers(0, len(v), (n_boot, len(v)))].mean(axis=1) for v in per_size])
    draws = []
    for resample in means:
        boot = _fit_once(u, resample, p0=params)
        if boot is not None:
            draws.append(boot)
    out = {"E": params[0], "A": params[1] * scale ** params[2], "alpha": params[2]}
    tail = 100 * (1 - confidence) / 2
    boots = np.array(draws) if draws else np.full((1, 3), np.nan)
    boots[:, 1] = boots[:, 1] * scale ** boots[:, 2]
    for i, name in enumerate(FIT_COLUMNS):
        out[f"{name}_low"], out[f"{name}_high"] = np.percentile(boots[:, i], [tail, 100 - tail])
    out.update(n_points=len(x), n_sizes=len(sizes), n_boot=len(draws))
    return out


def power_law_fits(final: pd.DataFrame, chosen: pd.DataFrame, x: str = "n_params", n_boot: int = 200) -> pd.DataFrame:
    """One row per series (an arm in cells equal but for model size) with the fit of test-seed final loss vs `x`.

    Each size uses the arm's chosen setting in that cell (tuning.choose_settings). Series with fewer than
    MIN_SIZES sizes have NaN parameters and fitted=False, so the report can say why.
    """
    test = final[final["seed_role"].eq("test") & final["final_loss"].notna()]
    test = test[test["config_id"].isin(chosen["config_id"].dropna())]
    fields = configs.config_fields(final)
    cell, arm, _ = configs.split_fields(fields)
    series = configs.keys_of(fields.loc[test.index], [f for f in cell + arm if f not in configs.SIZE_FIELDS])
    rows = []
    for _, group in test.groupby(series, sort=True):
        fit = fit_power_law(group[x], group["final_loss"], n_boot=n_boot)
        row = {k: group[k].iloc[0] for k in SERIES_COLUMNS}
        row.update(x=x, n_sizes=group[x].nunique(), fitted=fit is not None)
        row.update({k: v for k, v in (fit or {}).items() if k != "n_sizes"})
        rows.append(row)
    columns = SERIES_COLUMNS + ["x", "n_sizes", "fitted", "n_points", "n_boot"]
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


def isoflop_frame(final: pd.DataFrame, chosen: pd.DataFrame) -> pd.DataFrame:
    """The per-run table behind analysis.isoflop and analysis.approach3: one row per test seed of each arm's chosen
    setting in every cell of a FLOPs budget: arm, budget_flops, n_params (non-embedding, as Chinchilla counts N),
    n_params_total, tokens (D: input tokens trained on), flops (C spent: flops_per_token x tokens, the project's
    FLOPs as wt_model.flops counts them), flops_per_token, seed, final_loss (NaN for a seed that diverged or failed,
    which the profiles count), status, trial_id. Empty unless the study has FLOPs budgets."""
    test = final[final["seed_role"].eq("test") & final["budget_kind"].eq("flops")]
    test = test[test["config_id"].isin(chosen["config_id"].dropna()) & ~test["status"].isin(["running", "pending"])]
    n = test["n_params_non_embedding"] if "n_params_non_embedding" in test else test["n_params"]
    missing = pd.Series(np.nan, index=test.index)
    tokens = test["tokens"].astype(float) if "tokens" in test else missing
    per_token = test["flops_per_token"].astype(float) if "flops_per_token" in test else missing
    return pd.DataFrame(
        {
            "arm": test["arm"],
            "budget_flops": test["budget_value"].astype(float),
            "n_params": n.fillna(test["n_params"]).astype(float),
            "n_params_total": test["n_params"].astype(float),
            "tokens": tokens,
            "flops": per_token * tokens,
            "flops_per_token": per_token,
            "seed": test["seed"],
            "final_loss": test["final_loss"].astype(float),
            "status": test["status"],
            "trial_id": test["trial_id"],
        }
    ).reset_index(drop=True)


def isoflop_ready(frame: pd.DataFrame, final: pd.DataFrame) -> str:
    """ "" when some arm has at least two FLOP budgets with three sizes each (isoFLOP profiles can be fitted),
    else why not, in words (`final`: every trial, to tell a study without FLOP budgets from one whose test seeds
    have not finished)."""
    if frame.empty and not final["budget_kind"].eq("flops").any():
        return "the study has no FLOPs budgets"
    if frame.empty:
        return "no test seed of a chosen FLOPs-budget setting has finished yet"
    sizes = frame.groupby(["arm", "budget_flops"])["n_params"].nunique()
    enough = (sizes >= 3).groupby(level="arm").sum()
    if (enough >= 2).any():
        return ""
    return "no arm has two FLOP budgets with three model sizes each (an isoFLOP profile needs several sizes per budget)"
