"""The data regime: passes over the training data, and whether validation loss had stopped improving (pure).

A final-loss comparison between models that have started to overfit compares overfitting, not learning. Per
trial, the periodic validation curve (one evaluation set, stats.curve_points) tells where its loss was lowest;
when its last periodic loss is above that minimum by more than the cell's equivalence margin, the trial
"stopped improving" at the minimum's step and epoch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

REGIME_COLUMNS = ["trial_id", "best_step", "best_epochs", "best_loss", "last_loss", "stopped_improving"]


def stopped_improving(points: pd.DataFrame, final: pd.DataFrame, metric: str = "val_loss") -> pd.DataFrame:
    """Per trial with a finite periodic loss: step and epochs of its lowest `metric`, that loss, its last loss
    and whether the last is above the lowest by more than the trial's `margin` (stats.final_values)."""
    m = points[["trial_id", "step", "epochs", metric]].copy()
    m = m[np.isfinite(m[metric].astype(float))]
    if m.empty:
        return pd.DataFrame(columns=REGIME_COLUMNS)
    m = m.sort_values(["trial_id", "step"], kind="stable")
    best = m.loc[m.groupby("trial_id", sort=True)[metric].idxmin()].set_index("trial_id")
    last = m.groupby("trial_id", sort=True)[metric].last()
    margin = final.set_index("trial_id")["margin"]
    out = pd.DataFrame(
        {
            "trial_id": best.index,
            "best_step": best["step"].to_numpy(),
            "best_epochs": best["epochs"].astype(float).to_numpy(),
            "best_loss": best[metric].astype(float).to_numpy(),
            "last_loss": last.reindex(best.index).to_numpy(float),
        }
    )
    rise = out["last_loss"] - out["best_loss"]
    out["stopped_improving"] = (rise > out["trial_id"].map(margin).astype(float)).fillna(False).astype(bool)
    return out


def regime_warnings(regime: pd.DataFrame, final: pd.DataFrame, chosen: pd.DataFrame) -> list[str]:
    """One sentence per (cell, arm) whose chosen configuration has test seeds that stopped improving, e.g.
    "worker k=4 (seq_len 64, ...): val loss stopped improving at epoch 3.1 (step 2,000) in 2 of 3 seeds; final
    losses compare overfitted models"."""
    test = final.loc[final["seed_role"].eq("test"), ["trial_id", "config_id"]].merge(regime, on="trial_id")
    by_config = {c: g for c, g in test.groupby("config_id", sort=False) if g["stopped_improving"].any()}
    lines = []
    for _, arm in chosen[chosen["config_id"].isin(by_config)].iterrows():
        trials = by_config[arm["config_id"]]
        flagged = trials[trials["stopped_improving"]]
        where = f"seq_len {arm['seq_len']}, n_embd {arm['n_embd']}, init {arm['init']}, {arm['attention']}"
        epochs = flagged["best_epochs"].median()
        at = (
            f"epoch {epochs:.3g} (step {int(flagged['best_step'].median()):,})"
            if np.isfinite(epochs)
            else (f"step {int(flagged['best_step'].median()):,}")
        )
        lines.append(
            f"{arm['arm']} ({where}): val loss stopped improving at {at} in {len(flagged)} of {len(trials)} "
            "test seeds; final losses compare overfitted models"
        )
    return lines
