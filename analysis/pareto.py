"""Best-so-far curves, Pareto fronts and loss at a time (pure: DataFrame in, DataFrame out).

Time to target (targets, crossings, speedups) lives in analysis.targets; budget_curves gives it each trial's
curve in its own budget's unit.

Loss is lower-is-better and so is cost (train time, FLOPs, tokens). A point is on the front when no other point
has both cost <= and loss <=, one of them strictly; identical points of two trials are both on the front.
NaN or infinite losses (a diverged trial) never improve a curve and never sit on a front.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from analysis.configs import set_apart
from analysis.outcomes import configs_with_lost_seeds
from wt_base.budgets import BUDGET_KINDS

BUDGET_USED = "budget_used"  # budget_curves' x: how much of its own budget a trial had used at each point


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


def budget_curves(points: pd.DataFrame, final: pd.DataFrame, metric: str = "val_loss") -> pd.DataFrame:
    """best_so_far of every trial along its own budget's unit, in column BUDGET_USED (wt_base.budgets: FLOPs for
    a FLOPs budget, steps for steps, tokens for tokens, the measured training clock for seconds), so that "80%
    of the run" means 80% of what the budget counts; a trial of an unknown budget kind goes by the clock."""
    kind = points["trial_id"].map(final.drop_duplicates("trial_id").set_index("trial_id")["budget_kind"])
    column = kind.map(lambda k: BUDGET_KINDS[k].metric if k in BUDGET_KINDS else "train_time_s")
    used = pd.Series(np.nan, index=points.index)
    for name in column.dropna().unique():
        mine = column.eq(name).to_numpy(bool)
        used[mine] = points.loc[mine, name].astype(float) if name in points.columns else np.nan
    return best_so_far(points.assign(**{BUDGET_USED: used}), metric, BUDGET_USED)


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


def config_fronts(mean_curves: pd.DataFrame, final: pd.DataFrame, x: str, chosen=None) -> pd.DataFrame:
    """Fronts of seed-mean best-so-far curves (stats.seed_curves with common=True), one per (seq_len, attention)
    group: per arm (its arm fields: architecture, worker interval and every other, analysis.configs) over its
    chosen configurations only (scope = the arm's label, "worker k=4"; `chosen`: config ids,
    tuning.choose_settings), and over every configuration (scope "all", descriptive).

    A front over all of an arm's configurations is a minimum over them: the arm with more settings (60 worker
    configurations against 15 standard ones in `scaling`) wins it by the winner's curse, so the per-arm fronts
    use the configurations chosen on tune seeds; the overall front stays, labelled descriptive, with its count.
    A front per architecture would be a minimum over its arms (k=4 and k=8 against one standard model), so
    each arm has its own.
    Only grid points that every seed of the configuration covers count, so a front point is a mean over all
    seeds, never a minimum over single seeds. A configuration with a lost test seed (diverged, failed) is on no
    front: its survivors' mean would hide the seed that never got there (analysis.outcomes). Columns: seq_len,
    attention, scope, config_id, x, best_loss, n_configs (the configurations the front was drawn from).
    """
    configs = final.drop_duplicates("config_id").set_index("config_id")[["seq_len", "attention", "arm_key"]]
    points = mean_curves[mean_curves["n"].eq(mean_curves["n_seeds"])]
    if "status" in final.columns:  # the one rule for lost seeds (analysis.outcomes): no front from survivors
        points = points[~points["config_id"].isin(configs_with_lost_seeds(final))]
    points = points.rename(columns={"mean": "best_loss"})[["config_id", x, "best_loss"]]
    points = points.join(configs, on="config_id")
    groups = ["seq_len", "attention"]
    overall = _counted(pareto_front(points, x, by=groups), points, groups).assign(scope="all")
    picked = points if chosen is None else points[points["config_id"].isin(set(chosen))]
    per_arm = _counted(pareto_front(picked, x, by=groups + ["arm_key"]), picked, groups + ["arm_key"])
    per_arm = per_arm.assign(scope=per_arm["arm_key"].map(arm_labels(final)))
    columns = ["seq_len", "attention", "scope", "config_id", x, "best_loss", "n_configs"]
    return pd.concat([overall[columns], per_arm[columns]], ignore_index=True)


def arm_labels(final: pd.DataFrame) -> pd.Series:
    """arm_key -> the arm's label (stats.final_values' `arm`, "worker k=4"), with the arm fields that tell apart
    two arms of one label added ("worker k=4, ffn_hidden 384")."""
    labels = final.drop_duplicates("arm_key").set_index("arm_key")["arm"].astype(str)
    for label, keys in labels.groupby(labels, sort=False):
        if len(keys) > 1:
            fields = pd.DataFrame([json.loads(key) for key in keys.index], index=keys.index)
            apart = set_apart(fields, [c for c in fields.columns if c not in ("arch", "worker_interval")])
            labels[keys.index] = [f"{label}, {words}" if words else label for words in apart]
    return labels


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
