"""Best-so-far curves, Pareto fronts and time-to-target (pure: DataFrame in, DataFrame out).

Loss is lower-is-better and so is cost (train time, FLOPs, tokens). A point is on the front when no other point
has both cost <= and loss <=, one of them strictly; identical points of two trials are both on the front.
NaN or infinite losses (a diverged trial) never improve a curve and never sit on a front.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.configs import STANDARD


def best_so_far(metrics: pd.DataFrame, metric: str = "val_loss", x: str = "train_time_s") -> pd.DataFrame:
    """For each trial, the lowest `metric` reached by each evaluation point, ordered by `x`.

    Columns: trial_id, step, x, best_loss. Leading points with no finite loss yet keep NaN.
    """
    frame = metrics[["trial_id", "step", x, metric]].dropna(subset=[x])
    frame = frame.sort_values(["trial_id", x, "step"], kind="stable").reset_index(drop=True)
    loss = frame[metric].astype(float)
    loss = loss.where(np.isfinite(loss))
    by_trial = frame["trial_id"]
    best = loss.groupby(by_trial).cummin().groupby(by_trial).ffill()
    return pd.DataFrame({"trial_id": by_trial, "step": frame["step"], x: frame[x], "best_loss": best})


def _front_mask(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-dominated points of (x, y), both minimised."""
    order = np.lexsort((y, x))
    xs, ys = x[order], y[order]
    first = np.r_[True, xs[1:] != xs[:-1]]  # first (lowest-y) point of each distinct x
    group = np.cumsum(first) - 1
    group_min = ys[first]
    before = np.r_[np.inf, np.minimum.accumulate(group_min)[:-1]]  # best y at any strictly smaller x
    on_sorted = (group_min < before)[group] & (ys == group_min[group])
    mask = np.zeros(len(x), dtype=bool)
    mask[order] = on_sorted
    return mask


def pareto_front(points: pd.DataFrame, x: str, y: str = "best_loss", by: list[str] | None = None) -> pd.DataFrame:
    """The points of `points` on the lower-left front of (x, y), per group of `by` (overall when None).

    Returns the front rows (all input columns), sorted by `by`, x, y and trial_id, with a fresh index.
    """
    by = by or []
    finite = points[np.isfinite(points[y].astype(float)) & np.isfinite(points[x].astype(float))]
    if finite.empty:
        return points.iloc[0:0].reset_index(drop=True)
    groups = finite.groupby(by, dropna=False, sort=False) if by else [(None, finite)]
    parts = [g[_front_mask(g[x].to_numpy(float), g[y].to_numpy(float))] for _, g in groups]
    front = pd.concat(parts)
    ties = [c for c in ("trial_id", "config_id") if c in front.columns]
    return front.sort_values(by + [x, y, *ties], kind="stable").reset_index(drop=True)


def time_to_target(curves: pd.DataFrame, targets: pd.DataFrame, x: str = "train_time_s") -> pd.DataFrame:
    """The first `x` at which each trial's best-so-far loss is <= its target (NaN when never reached).

    `curves` comes from best_so_far; `targets` has columns trial_id, target. Columns: trial_id, target, x.
    """
    joined = curves.merge(targets[["trial_id", "target"]], on="trial_id", how="inner")
    reached = joined[joined["best_loss"] <= joined["target"]]
    first = reached.groupby("trial_id", sort=False)[x].min()
    out = targets[["trial_id", "target"]].drop_duplicates("trial_id").reset_index(drop=True)
    out[x] = out["trial_id"].map(first).astype(float)
    return out


def default_targets(
    final: pd.DataFrame, chosen: pd.DataFrame, curves: pd.DataFrame, target_loss: float | None = None
) -> pd.DataFrame:
    """Per trial, the loss its cell must reach: `target_loss` when given, else one every standard seed reaches.

    The default is the worst (highest) of the lowest losses that the test seeds of the cell's chosen standard
    configuration (tuning.choose_settings) reached on their curves (`curves` from best_so_far over curve points,
    one evaluation set), so all of them reach it. Cells without such a standard configuration get no target.
    """
    if target_loss is not None:
        return pd.DataFrame({"trial_id": final["trial_id"], "target": float(target_loss)})
    lowest = curves.groupby("trial_id", sort=False)["best_loss"].min()
    std_configs = chosen.loc[chosen["arch"].eq(STANDARD), ["cell_key", "config_id"]].dropna()
    test = final[final["seed_role"].eq("test")]
    std = test.merge(std_configs, on=["cell_key", "config_id"], how="inner")
    std = std.assign(lowest=std["trial_id"].map(lowest)).dropna(subset=["lowest"])
    cell_target = std.groupby("cell_key", sort=False)["lowest"].max().rename("target").reset_index()
    out = final[["trial_id", "cell_key"]].merge(cell_target, on="cell_key", how="inner")
    return out[["trial_id", "target"]].astype({"target": float})  # float even when empty (no cell has a target)


def censored_median(times: np.ndarray) -> float:
    """Median time to target over seeds where NaN means "never reached" (censored): the earliest time by which
    at least half the seeds had reached it; NaN when fewer than half ever did."""
    times = np.asarray(times, float)
    n = len(times)
    reached = np.sort(times[np.isfinite(times)])
    half = -(-n // 2)  # ceil(n / 2) seeds must have reached it
    return float(reached[half - 1]) if n and len(reached) >= half else np.nan


def target_summary(
    reach: pd.DataFrame, final: pd.DataFrame, chosen: pd.DataFrame, x: str = "train_time_s"
) -> pd.DataFrame:
    """Per configuration over its test seeds: the target, seeds, seeds that reached it, the censored median
    `x` to reach it, and the speedup: the median of the cell's chosen standard configuration (the one that set
    the default target) over this configuration's median.
    """
    test = final.loc[final["seed_role"].eq("test"), ["trial_id", "config_id", "cell_key"]]
    frame = test.merge(reach, on="trial_id", how="inner")
    per_config = (
        frame.groupby("config_id", sort=True)
        .agg(
            cell_key=("cell_key", "first"),
            target=("target", "first"),
            n_seeds=("trial_id", "count"),
            n_reached=(x, "count"),
            median=(x, censored_median),
        )
        .reset_index()
        .rename(columns={"median": f"{x}_to_target"})
    )
    std_configs = chosen.loc[chosen["arch"].eq(STANDARD), ["cell_key", "config_id"]].dropna()
    reference = per_config.set_index("config_id")[f"{x}_to_target"]
    std_time = std_configs.set_index("cell_key")["config_id"].map(reference)
    per_config["speedup"] = per_config["cell_key"].map(std_time) / per_config[f"{x}_to_target"]
    return per_config.drop(columns="cell_key")


def config_fronts(mean_curves: pd.DataFrame, final: pd.DataFrame, x: str, chosen=None) -> pd.DataFrame:
    """Fronts of seed-mean best-so-far curves (stats.seed_curves with common=True), one per (seq_len, attention)
    group: per architecture over each arm's chosen configurations only (scope = arch; `chosen`: config ids,
    tuning.choose_settings), and over every configuration (scope "all", descriptive).

    A front over all of an arm's configurations is a minimum over them: the arm with more settings (60 worker
    configurations against 15 standard ones in `scaling`) wins it by the winner's curse, so the per-arch fronts
    use the configurations chosen on tune seeds; the overall front stays, labelled descriptive, with its count.
    Only grid points that every seed of the configuration covers count, so a front point is a mean over all
    seeds, never a minimum over single seeds. Columns: seq_len, attention, scope, config_id, x, best_loss,
    n_configs (the configurations the front was drawn from).
    """
    configs = final.drop_duplicates("config_id").set_index("config_id")[["seq_len", "attention", "arch"]]
    points = mean_curves[mean_curves["n"].eq(mean_curves["n_seeds"])]
    points = points.rename(columns={"mean": "best_loss"})[["config_id", x, "best_loss"]]
    points = points.join(configs, on="config_id")
    groups = ["seq_len", "attention"]
    overall = _counted(pareto_front(points, x, by=groups), points, groups).assign(scope="all")
    picked = points if chosen is None else points[points["config_id"].isin(set(chosen))]
    per_arch = _counted(pareto_front(picked, x, by=groups + ["arch"]), picked, groups + ["arch"])
    per_arch = per_arch.assign(scope=per_arch["arch"])
    columns = ["seq_len", "attention", "scope", "config_id", x, "best_loss", "n_configs"]
    return pd.concat([overall[columns], per_arch[columns]], ignore_index=True)


def _counted(front: pd.DataFrame, points: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """`front` with n_configs: how many configurations of its group the front was drawn from."""
    counts = points.groupby(by, dropna=False)["config_id"].nunique().rename("n_configs").reset_index()
    return front.merge(counts, on=by, how="left")


def loss_at(metrics: pd.DataFrame, metric: str, at: float, x: str = "train_time_s") -> pd.DataFrame:
    """Per trial, `metric` at its last evaluation with x <= `at`; NaN for a trial whose run never got to `at`.

    Columns: trial_id, loss_at.
    """
    frame = metrics[["trial_id", x, metric]].dropna(subset=[x])
    longest = frame.groupby("trial_id", sort=True)[x].max()
    before = frame[frame[x] <= at].sort_values(["trial_id", x], kind="stable")
    value = before.drop_duplicates("trial_id", keep="last").set_index("trial_id")[metric]
    out = pd.DataFrame({"trial_id": longest.index, "loss_at": longest.index.map(value).astype(float)})
    out.loc[(longest < at).to_numpy(), "loss_at"] = np.nan
    return out.reset_index(drop=True)
