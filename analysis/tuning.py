"""Which tuned setting each arm is judged at, chosen apart from the seeds that judge it (pure functions).

In each cell every arm (architecture) may have several tuned settings (lr, weight decay, ...: configs.TUNED_FIELDS).
The one its verdicts use is the setting with the lowest mean final loss over the *tuning* seeds (trials column
`seed_role` = "tune", from the spec's `tune_seeds`), among settings whose every tuning seed completed: a setting
with a diverged, failed, stopped or unfinished tuning seed is ineligible (the rule is wt_base.choice's, the one the
search runs its test seeds by). The verdicts then use only the test seeds, which never took part in the choice
(no winner's curse).

Without tuning seeds the choice falls back to the test seeds, with the same eligibility rule; the result says so
(`tuned_on` = "test seeds") and the verdicts flag it as biased. An arm with one setting has nothing to choose
(`tuned_on` = "none").

A choice at the edge of what was tried (the smallest or largest value of a numeric tuned setting among the
arm's trials, diverged ones included) may not be the arm's optimum: `edge` says so in words ("lr at the top of
the tried range (0.001-0.004)"), and the verdicts call such a cell not comparable (analysis.verdicts). A bracket
search (wt_base.bracket) walks past an edge until its best is interior, so it leaves an edge only at its bound or
cap.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.stats import CELL_COLUMNS
from wt_base import choice
from wt_base.bracket import edge_of

TUNED_ON = ("none", "tune seeds", "test seeds", "no eligible setting")
CHOICE_COLUMNS = ["cell_key", "arm_key", "arm", "arch", "worker_interval", "conv_kernel", *CELL_COLUMNS, "cell_extra"]
CHOICE_COLUMNS += ["config_id", "tuned", "tuned_on", "n_settings", "n_eligible", "tuning_seeds", "edge"]
NUMERIC_TUNED = ("lr", "weight_decay", "warmup_frac", "dropout")  # tuned settings with an order: checked for edges


def choose_settings(final: pd.DataFrame) -> pd.DataFrame:
    """One row per (cell, arm): the configuration (`config_id`, its `tuned` label) that the verdicts use.

    `final` comes from stats.final_values. `tuned_on` says how it was chosen (TUNED_ON); `n_settings` counts the
    arm's tuned settings, `n_eligible` those that could be chosen, `tuning_seeds` the seeds that chose.
    `config_id` is NaN when no setting was eligible.
    """
    arms = ["cell_key", "arm_key"]
    f = final
    # the seeds that choose: the arm's tuning seeds when it has any, else its test seeds
    has_tune = f["seed_role"].eq("tune").groupby([f[a] for a in arms]).transform("any")
    role = np.where(has_tune, "tune", "test")
    judged = f[f["seed_role"].eq(role)]
    means: dict = {}  # (cell_key, arm_key) -> {config_id: the setting's mean, None where ineligible}
    for (*arm, config_id), group in judged.groupby([*arms, "config_id"], sort=True):
        results = zip(group["status"], group["final_loss"], strict=True)
        means.setdefault(tuple(arm), {})[config_id] = choice.setting_mean(results)
    index = pd.MultiIndex.from_tuples(list(means), names=arms) if means else None
    chosen = [choice.choose(m) for m in means.values()]
    best = pd.Series([np.nan if c is None else c for c in chosen], index=index, dtype=object)
    n_eligible = pd.Series([sum(v is not None for v in m.values()) for m in means.values()], index=index)
    out = f.drop_duplicates(arms).set_index(arms)[[c for c in CHOICE_COLUMNS if c in f.columns and c not in arms]]
    out = out.drop(columns=["config_id", "tuned"], errors="ignore")
    out["n_settings"] = f.groupby(arms)["config_id"].nunique()
    out["n_eligible"] = n_eligible.reindex(out.index).fillna(0).astype("int64")
    out["tuning_seeds"] = judged.groupby(arms)["seed"].agg(lambda s: ", ".join(map(str, sorted(s.dropna().unique()))))
    out["tuned_on"] = pd.Series(role, index=f.index).groupby([f[a] for a in arms]).first().map("{} seeds".format)
    out["config_id"] = best.reindex(out.index)
    single = out["n_settings"].eq(1)
    out.loc[single, "config_id"] = f.drop_duplicates(arms).set_index(arms)["config_id"][single]
    out.loc[single, ["tuned_on", "tuning_seeds", "n_eligible"]] = ["none", "", 1]
    out.loc[out["config_id"].isna(), "tuned_on"] = "no eligible setting"
    tuned = final.drop_duplicates("config_id").set_index("config_id")["tuned"]
    out = out.reset_index().reindex(columns=CHOICE_COLUMNS)
    out["tuned"] = out["config_id"].map(tuned)
    out["edge"] = [_edge(final, arm) for _, arm in out.iterrows()]
    order = [*CELL_COLUMNS, "arch", "worker_interval", "conv_kernel", "cell_key", "arm_key"]
    return out.sort_values(order, kind="stable", na_position="first").reset_index(drop=True)


def _edge(final: pd.DataFrame, arm: pd.Series) -> str:
    """'' when the arm's chosen setting is interior in every numeric tuned setting it tried (or it had one
    setting); else which setting sits at which end: 'lr at the top of the tried range (0.001-0.004)'."""
    if pd.isna(arm["config_id"]) or arm["tuned_on"] == "none":
        return ""
    mine = final[final["cell_key"].eq(arm["cell_key"]) & final["arm_key"].eq(arm["arm_key"])]
    picked = final[final["config_id"].eq(arm["config_id"])].iloc[0]
    parts = []
    for field in NUMERIC_TUNED:
        values = sorted(mine[field].dropna().unique()) if field in mine else []
        where = edge_of(values, picked[field]) if values and pd.notna(picked[field]) else "only"
        if where in ("bottom", "top"):
            parts.append(f"{field} at the {where} of the tried range ({values[0]:g}-{values[-1]:g})")
    return "; ".join(parts)
