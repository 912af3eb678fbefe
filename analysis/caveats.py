"""What a reader must know before trusting a report's numbers, as sentences (pure: frames in, sentences out).

Each check looks for a way the numbers can mislead that the tables alone do not show: step speeds of one arm
and shape that differ between settings by more than the machine's noise (its load changed, so wall-clock
comparisons between them are not fair), a tuned setting chosen at the edge of its grid (the best may lie
beyond it). The report prints every caveat at its top and writes them to warnings.md, so any page that quotes
the report can carry them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import configs
from analysis.scaling import SHAPE_KEYS

MIN_SPEED_GAP = 0.10  # step speeds of one arm and shape may differ this much before a caveat, at the least
NOISE_FACTOR = 3.0  # ... or this many times the spread of step speeds among one configuration's seeds


def throughput_consistency(final: pd.DataFrame) -> list[str]:
    """One sentence per arm and shape whose configurations (e.g. two inits) ran at step speeds further apart
    than the machine's noise (the spread among a configuration's own seeds): on a machine whose load changed
    between them, wall-clock numbers of those configurations are not comparable, whatever the budget kind."""
    speed = final.dropna(subset=["steps_per_s"])
    speed = speed[speed["steps_per_s"] > 0]
    if speed.empty:
        return []
    per_config = speed.groupby("config_id").agg(
        mean=("steps_per_s", "mean"), cv=("steps_per_s", lambda s: s.std(ddof=1) / s.mean() if len(s) > 1 else np.nan)
    )
    noise = float(np.nanmedian(per_config["cv"])) if per_config["cv"].notna().any() else 0.0
    limit = max(MIN_SPEED_GAP, NOISE_FACTOR * noise)
    fields = configs.config_fields(speed)
    exec_fields = [c for c in fields.columns if c.startswith("exec.")]
    keys = configs.keys_of(fields, ["arch", "worker_interval", "budget_kind", *SHAPE_KEYS, *exec_fields])
    lines = []
    for _, group in speed.groupby(keys, sort=True):
        configs_ = per_config.loc[group["config_id"].unique()]
        if len(configs_) < 2 or configs_["mean"].max() <= (1 + limit) * configs_["mean"].min():
            continue
        first = group.iloc[0]
        gap = configs_["mean"].max() / configs_["mean"].min() - 1
        settings = group.drop_duplicates("config_id").set_index("config_id")
        named = configs.set_apart(configs.config_fields(settings), list(configs.config_fields(settings).columns))
        apart = "; ".join(
            f"{name or 'config ' + str(cid)}: {configs_.loc[cid, 'mean']:.3g} steps/s"
            for cid, name in zip(settings.index, named, strict=True)
        )
        lines.append(
            f"step speeds of {first['arm']} ({_shape(first)}) differ by "
            f"{gap:.0%} between settings of the same shape ({apart}), more than the {noise:.0%} its seeds differ "
            "by: the machine's load changed between them, so their wall-clock numbers are not comparable"
        )
    return lines


def edge_of_grid(final: pd.DataFrame, chosen: pd.DataFrame) -> list[str]:
    """One sentence per arm whose tuned numeric setting was chosen at the smallest or largest value it tried
    (tuning.choose_settings' `edge`: the optimum may lie beyond, so the arm may be judged at a poor setting; its
    verdicts say "not comparable")."""
    budgets = "budget_value" in final and final["budget_value"].nunique() > 1  # then name each cell's budget
    return [
        f"{arm['arm']} ({_shape(arm, budgets)}): the chosen {arm['edge']}; the best may lie beyond it, so its "
        "verdicts are not comparable"
        for _, arm in chosen.iterrows()
        if isinstance(arm["edge"], str) and arm["edge"]
    ]


def _shape(row: pd.Series, budget: bool = False) -> str:
    """'seq_len 128, n_embd 48, n_layer 2': the shape a caveat is about (n_layer where the row has it), with
    'budget 3e+11' when `budget` (a study with several budget values)."""
    names = [n for n in ("seq_len", "n_embd", "n_layer") if n in row.index and pd.notna(row[n])]
    text = ", ".join(f"{n} {int(row[n])}" for n in names)
    has_budget = budget and "budget_value" in row.index and pd.notna(row["budget_value"])
    return text + (f", budget {float(row['budget_value']):g}" if has_budget else "")
