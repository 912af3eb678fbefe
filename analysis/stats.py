"""Seeds, confidence intervals and the worker-vs-standard verdicts (pure: DataFrame in, DataFrame out).

Vocabulary used across the analysis:
  - a *configuration* is every setting of a trial except its seed (CONFIG_KEYS);
  - a *cell* is what both architectures share when compared (CELL_KEYS): shape, batch, attention
    implementation and budget. Attention is part of the cell, so when a study runs both "sdpa" and "naive"
    every comparison is reported per attention implementation (each standard vs worker at the same kernel);
  - an *arm* is an architecture inside a cell: (arch, worker_interval);
  - *tuned* settings (TUNED_KEYS, e.g. lr) may be swept; each arm is compared at its own best tuned setting
    (lowest mean final loss over seeds), so neither architecture is held to the other's learning rate.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

CELL_KEYS = [
    "seq_len",
    "n_embd",
    "n_layer",
    "n_head",
    "batch_size",
    "attention",
    "budget_kind",
    "budget_value",
    "count_eval_in_budget",
    "eval_protocol",
    "corpus",
]
ARM_KEYS = ["arch", "worker_interval"]
TUNED_KEYS = ["lr", "schedule", "dropout", "ffn_hidden", "random_worker_phase"]
CONFIG_KEYS = CELL_KEYS + ARM_KEYS + TUNED_KEYS
STANDARD = "standard"
ALPHA = 0.01  # significance level of the verdicts
CONFIDENCE = 0.95  # level of every confidence interval


def arm_label(arch: str, worker_interval) -> str:
    """'standard', 'worker k=4', 'worker-random-phase k=4'."""
    return arch if arch == STANDARD or pd.isna(worker_interval) else f"{arch} k={int(worker_interval)}"


def final_values(trials: pd.DataFrame, metrics: pd.DataFrame, metric: str = "val_loss") -> pd.DataFrame:
    """One row per trial: its configuration, seed, status, size, `final_loss` and throughput.

    `final_loss` is the trial's final `metric` (whole validation split) for completed trials, falling back to its
    last evaluation point; it is NaN for trials that are not completed (running, diverged, failed), so seeds
    that diverged never pull a mean. Throughput comes from the last evaluation point (so running trials have it).
    """
    last = metrics.drop_duplicates("trial_id", keep="last").set_index("trial_id")
    out = trials.copy()
    last_loss = out["trial_id"].map(last[metric])
    completed = out["status"].eq("completed")
    out["final_loss"] = out[metric].where(out[metric].notna(), last_loss).where(completed)
    out.loc[~np.isfinite(out["final_loss"].astype(float)), "final_loss"] = np.nan
    time_s = out["trial_id"].map(last["train_time_s"])
    time_s = time_s.where(time_s > 0)
    out["steps_per_s"] = out["trial_id"].map(last["step"]) / time_s
    out["tokens_per_s"] = out["trial_id"].map(last["tokens"]) / time_s
    out["arm"] = [arm_label(a, k) for a, k in zip(out["arch"], out["worker_interval"], strict=True)]
    out["config_id"] = out.groupby(CONFIG_KEYS, dropna=False, sort=True).ngroup()
    return out


def t_interval(n: pd.Series, mean: pd.Series, std: pd.Series, confidence: float = CONFIDENCE):
    """Student-t confidence interval of a mean; NaN where n < 2."""
    n = n.astype(float)
    half = stats.t.ppf(0.5 + confidence / 2, (n - 1).where(n >= 2)) * std / np.sqrt(n)
    return mean - half, mean + half


def seed_summary(frame: pd.DataFrame, keys: list[str], value: str = "final_loss") -> pd.DataFrame:
    """Aggregate seeds: n (finite values), mean, std and the 95% t-interval of `value` per group of `keys`."""
    grouped = frame.groupby(keys, dropna=False, sort=True)[value]
    out = grouped.agg(n="count", mean="mean", std="std").reset_index()
    out["n"] = out["n"].astype("int64")
    out["ci_low"], out["ci_high"] = t_interval(out["n"], out["mean"], out["std"])
    return out


def config_summary(final: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration: final loss over seeds (n, mean, std, 95% CI, completed trials only), trial
    and diverged counts, size and mean throughput."""
    keys = ["config_id", "arm"] + CONFIG_KEYS
    loss = seed_summary(final, keys, "final_loss")
    extras = (
        final.assign(diverged=final["status"].eq("diverged"))
        .groupby(keys, dropna=False, sort=True)
        .agg(
            n_trials=("trial_id", "count"),
            n_diverged=("diverged", "sum"),
            n_params=("n_params", "first"),
            flops_per_token=("flops_per_token", "first"),
            steps_per_s=("steps_per_s", "mean"),
            tokens_per_s=("tokens_per_s", "mean"),
        )
        .reset_index()
    )
    return loss.merge(extras, on=keys, how="inner")


def select_best(frame: pd.DataFrame, group_keys: list[str], value: str = "final_loss") -> pd.DataFrame:
    """The rows (all seeds) of the tuned setting with the lowest mean `value` in each group.

    Ties go to the first tuned setting in sort order. Groups whose values are all NaN are dropped.
    """
    tuned = [k for k in TUNED_KEYS if k not in group_keys]
    means = frame.groupby(group_keys + tuned, dropna=False, sort=True)[value].mean().reset_index()
    means = means[means[value].notna()]
    best = means.sort_values(value, kind="stable").drop_duplicates(group_keys, keep="first")
    return frame.merge(best[group_keys + tuned], on=group_keys + tuned, how="inner")


def welch(worker: np.ndarray, standard: np.ndarray, confidence: float = CONFIDENCE) -> dict:
    """Welch's t-test of mean(worker) - mean(standard) with its t-interval (scipy.stats)."""
    result = stats.ttest_ind(worker, standard, equal_var=False)
    ci = result.confidence_interval(confidence)
    return {
        "diff": float(np.mean(worker) - np.mean(standard)),
        "diff_ci_low": float(ci.low),
        "diff_ci_high": float(ci.high),
        "p_value": float(result.pvalue),
    }


def verdict_words(n_worker: int, n_standard: int, diff: float, p_value: float, alpha: float = ALPHA) -> str:
    if n_standard == 0:
        return "no standard baseline"
    if n_worker < 2 or n_standard < 2:
        return "insufficient seeds"
    if not np.isfinite(p_value):
        return "undetermined (no seed-to-seed variance)"
    if p_value < alpha:
        return f"worker {'better' if diff < 0 else 'worse'} (p<{alpha:g})"
    return f"no significant difference at p<{alpha:g}"


VERDICT_COLUMNS = CELL_KEYS + [
    "arch",
    "worker_interval",
    "worker_lr",
    "standard_lr",
    "n_worker",
    "n_standard",
    "worker_mean",
    "standard_mean",
    "diff",
    "diff_ci_low",
    "diff_ci_high",
    "p_value",
    "verdict",
]


def verdicts(final: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """Per cell and worker arm: worker minus standard final loss, its 95% CI, Welch p-value and a verdict.

    Only completed trials count; each arm uses its best tuned setting (see module docstring). A negative
    difference means the worker variant reached a lower loss. No test is run with fewer than 2 seeds per arm.
    """
    done = final[final["status"].eq("completed") & final["final_loss"].notna()]
    best = select_best(done, CELL_KEYS + ARM_KEYS)
    is_std = best["arch"].eq(STANDARD)
    standards = {k: g for k, g in best[is_std].groupby(CELL_KEYS, dropna=False, sort=False)}
    rows = []
    for key, group in best[~is_std].groupby(CELL_KEYS + ARM_KEYS, dropna=False, sort=True):
        std = standards.get(key[: len(CELL_KEYS)])
        w = group["final_loss"].to_numpy(float)
        s = np.array([]) if std is None else std["final_loss"].to_numpy(float)
        row = dict(zip(CELL_KEYS + ARM_KEYS, key, strict=True))
        row.update(
            worker_lr=group["lr"].iloc[0],
            standard_lr=np.nan if std is None else std["lr"].iloc[0],
            n_worker=len(w),
            n_standard=len(s),
            worker_mean=w.mean(),
            standard_mean=s.mean() if len(s) else np.nan,
        )
        test = {"diff": row["worker_mean"] - row["standard_mean"]}
        test.update(diff_ci_low=np.nan, diff_ci_high=np.nan, p_value=np.nan)
        if len(w) >= 2 and len(s) >= 2:
            test = welch(w, s)
        row.update(test)
        row["verdict"] = verdict_words(len(w), len(s), row["diff"], row["p_value"], alpha)
        rows.append(row)
    out = pd.DataFrame(rows, columns=VERDICT_COLUMNS)
    for column in ("n_worker", "n_standard"):
        out[column] = out[column].astype("int64")
    return out


def seed_curves(
    metrics: pd.DataFrame, final: pd.DataFrame, metric: str = "val_loss", x: str = "train_time_s", n_grid: int = 40
) -> pd.DataFrame:
    """Mean and 95% CI over seeds of `metric` vs `x` per configuration, on a common grid of `n_grid` points.

    Each seed is linearly interpolated onto the grid (the configuration's first to last point) and counts only
    inside the x-range it covers.
    """
    trial_config = final.set_index("trial_id")["config_id"]
    m = metrics[["trial_id", x, metric]].dropna(subset=[x])
    m = m.assign(config_id=m["trial_id"].map(trial_config)).dropna(subset=["config_id"])
    frames = []
    for config_id, group in m.groupby("config_id", sort=True):
        grid = np.linspace(group[x].min(), group[x].max(), n_grid)
        curves = [
            np.interp(grid, g[x].to_numpy(float), g[metric].to_numpy(float), left=np.nan, right=np.nan)
            for _, g in group.groupby("trial_id", sort=False)
        ]
        values = np.vstack(curves)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN grid points (no seed covers them)
            mean, std = np.nanmean(values, axis=0), np.nanstd(values, axis=0, ddof=1)
        n = np.isfinite(values).sum(axis=0)
        frames.append(pd.DataFrame({"config_id": int(config_id), x: grid, "n": n, "mean": mean, "std": std}))
    if not frames:
        return pd.DataFrame(columns=["config_id", x, "n", "mean", "std", "ci_low", "ci_high"])
    out = pd.concat(frames, ignore_index=True)
    out["ci_low"], out["ci_high"] = t_interval(pd.Series(out["n"]), out["mean"], out["std"])
    return out
