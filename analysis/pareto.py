"""Best-so-far curves, Pareto fronts and time-to-target (pure: DataFrame in, DataFrame out).

Loss is lower-is-better and so is cost (train time, FLOPs, tokens). A point is on the front when no other point
has both cost <= and loss <=, one of them strictly; identical points of two trials are both on the front.
NaN or infinite losses (a diverged trial) never improve a curve and never sit on a front.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.stats import ARM_KEYS, CELL_KEYS, STANDARD, select_best


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
    return front.sort_values(by + [x, y, "trial_id"], kind="stable").reset_index(drop=True)


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


def default_targets(final: pd.DataFrame, target_loss: float | None = None) -> pd.DataFrame:
    """Per trial, the loss its cell must reach: `target_loss` when given, else the standard model's final loss.

    The standard model's final loss is the mean over seeds of its best tuned setting in the same cell; cells
    without a completed standard model get no target.
    """
    if target_loss is not None:
        return pd.DataFrame({"trial_id": final["trial_id"], "target": float(target_loss)})
    done = final[final["status"].eq("completed") & final["arch"].eq(STANDARD) & final["final_loss"].notna()]
    best = select_best(done, CELL_KEYS + ARM_KEYS)
    cell_target = best.groupby(CELL_KEYS, dropna=False)["final_loss"].mean().rename("target").reset_index()
    out = final[["trial_id"] + CELL_KEYS].merge(cell_target, on=CELL_KEYS, how="inner")
    return out[["trial_id", "target"]]


def target_speedups(reach: pd.DataFrame, final: pd.DataFrame, x: str = "train_time_s") -> pd.DataFrame:
    """Per configuration: seeds that reached the target, mean `x` among those, and the speedup over the
    standard model of the same cell (its fastest configuration): standard time / configuration time.
    """
    keys = CELL_KEYS + ARM_KEYS
    frame = final[["trial_id", "config_id", "arm", *keys, "lr"]].merge(reach, on="trial_id", how="inner")
    per_config = (
        frame.groupby(["config_id", "arm", *keys, "lr"], dropna=False, sort=True)
        .agg(target=("target", "first"), n=("trial_id", "count"), n_reached=(x, "count"), time=(x, "mean"))
        .reset_index()
        .rename(columns={"time": f"{x}_to_target"})
    )
    std = per_config[per_config["arch"].eq(STANDARD)].sort_values(f"{x}_to_target", kind="stable")
    std = std.drop_duplicates(CELL_KEYS).rename(columns={f"{x}_to_target": "standard_time"})
    per_config = per_config.merge(std[CELL_KEYS + ["standard_time"]], on=CELL_KEYS, how="left")
    per_config["speedup"] = per_config.pop("standard_time") / per_config[f"{x}_to_target"]
    return per_config


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
