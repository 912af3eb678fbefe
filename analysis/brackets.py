"""Each arm's loss against the setting it was tuned on, per cell (pure): what the chosen setting was chosen from.

One row per arm, cell, tuned numeric setting and value tried: the mean final loss over the seeds that chose
(analysis.tuning: the tune seeds, else the test seeds), each of those seeds' losses, how many were eligible,
whether this is the chosen value, and where the chosen value lies in the range tried (interior, bottom, top:
wt_base.bracket.edge_of). A bracket search's walk and a plain grid read alike: the report's tuning plot and
tuning.csv are drawn from it, and a cell whose chosen value is at an edge is the one the verdicts call not
comparable.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.tuning import NUMERIC_TUNED
from wt_base.bracket import edge_of

TUNING_COLUMNS = ["cell_key", "arm_key", "arm", "arch", "seq_len", "n_embd", "n_layer", "budget_value", "field"]
TUNING_COLUMNS += ["value", "seed_role", "n_seeds", "n_eligible", "mean", "seed_losses", "chosen", "position"]


def tuning_points(final: pd.DataFrame, chosen: pd.DataFrame) -> pd.DataFrame:
    """The frame described above (empty when no arm tried more than one value of a numeric tuned setting)."""
    rows = []
    by_arm = _rows_of(final, ["cell_key", "arm_key"])  # one pass, not a scan of every trial per arm
    first_of = _rows_of(final, ["config_id"])
    for _, arm in chosen.dropna(subset=["config_id"]).iterrows():
        if arm["tuned_on"] in ("none", "no eligible setting"):
            continue
        role = "tune" if arm["tuned_on"] == "tune seeds" else "test"
        mine = final.iloc[by_arm.get((arm["cell_key"], arm["arm_key"]), [])]
        picked = final.iloc[first_of[(arm["config_id"],)][0]]
        judged = mine[mine["seed_role"].eq(role)]
        for field in NUMERIC_TUNED:
            values = sorted(mine[field].dropna().unique()) if field in mine else []
            if len(values) < 2:
                continue
            position = edge_of(values, picked[field])
            for value, group in judged.groupby(field, sort=True):
                ok = group["status"].eq("completed") & np.isfinite(group["final_loss"].astype(float))
                losses = group.sort_values("seed")["final_loss"].astype(float)
                rows.append(
                    {
                        **{c: arm[c] if c in arm.index else picked.get(c) for c in TUNING_COLUMNS[:8]},
                        "field": field,
                        "value": float(value),
                        "seed_role": role,
                        "n_seeds": len(group),
                        "n_eligible": int(ok.sum()),
                        "mean": float(group.loc[ok, "final_loss"].mean()) if ok.all() else np.nan,
                        "seed_losses": ", ".join("lost" if np.isnan(v) else f"{v:.4f}" for v in losses),
                        "chosen": bool(value == picked[field]),
                        "position": position,
                    }
                )
    return pd.DataFrame(rows, columns=TUNING_COLUMNS)


def seed_points(final: pd.DataFrame, points: pd.DataFrame) -> pd.DataFrame:
    """The choosing seeds' final losses behind `points` (one row per arm, cell, field, value and seed), for the
    plot's dots."""
    if points.empty:
        return pd.DataFrame(columns=["cell_key", "arm_key", "field", "value", "seed", "final_loss"])
    parts = []
    by_arm = _rows_of(final, ["cell_key", "arm_key", "seed_role"])
    for (cell, arm, field, role), group in points.groupby(["cell_key", "arm_key", "field", "seed_role"]):
        mine = final.iloc[by_arm.get((cell, arm, role), [])]
        seeds = mine[mine[field].isin(group["value"])][[field, "seed", "final_loss"]]
        parts.append(seeds.rename(columns={field: "value"}).assign(cell_key=cell, arm_key=arm, field=field))
    return pd.concat(parts, ignore_index=True)


def _rows_of(frame: pd.DataFrame, keys: list[str]) -> dict:
    """(key values) -> positions of the rows that have them, in frame order; rows with a missing key are in none
    (as `frame[frame[k].eq(v) & ...]` never matches a missing value)."""
    groups = frame.groupby(keys, sort=False, dropna=True).indices
    return {(k if isinstance(k, tuple) else (k,)): v for k, v in groups.items()}
