"""Time to target: the loss each cell must reach, when each trial reached it, and the median over seeds (pure)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.configs import STANDARD


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
