"""Arm minus reference at a projected wall-clock budget on one machine, with an interval over seeds AND step
times (pure: DataFrame in, DataFrame out; the time model is analysis.timing's).

Each bootstrap replicate resamples the seeds (paired by seed where both arms share 2 or more, only the shared
ones; each arm on its own otherwise) and draws each arm's mean step time by the projections' one rule
(analysis.timing.step_time_draws: uniformly over its profile's run range, one profile's p10-p90 or the lowest to
the highest median of pooled ones), then re-projects every resampled seed's loss at the budget. The seed draws
come first and the step-time draws after them, so the seed-only interval (median step times, same seed draws) is
exactly the full one when the profiles have no spread. Percentile intervals.

A lost seed (diverged or failed: analysis.outcomes) flags the cell, whatever its loss at the budget before it was
lost: the sentence says which arm lost which seeds and draws no verdict from the survivors, whose difference
and interval the row still gives.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from analysis.configs import STANDARD
from analysis.outcomes import flag_words, is_lost, outcome_counts
from analysis.profiles import SHAPE_KEY
from analysis.stats import CONFIDENCE
from analysis.timing import SPREAD_COLUMNS, Curve, curve_of, losses_at_budget, step_time_draws
from wt_base.errors import StudyError
from wt_model.archs import ARM_FIELDS

VERDICT_COLUMNS = ["machine", "arm", "reference", "budget_s", "time_includes_eval", "test", "n_arm", "n_reference"]
VERDICT_COLUMNS += ["n_pairs", "n_arm_left_out", "n_reference_left_out", "arm_step_time_s", "reference_step_time_s"]
VERDICT_COLUMNS += ["arm_mean", "reference_mean", "diff", "diff_ci_low", "diff_ci_high", "seed_only_ci_low"]
VERDICT_COLUMNS += ["seed_only_ci_high", "n_arm_lost", "n_reference_lost", "lost", "budget_note", "sentence"]
SIDES = ("arm", "reference")
CELL_EXCLUDES = ("arch", *ARM_FIELDS, "dropout")  # shape fields that may differ between the arms of one cell


def projected_verdict(
    curves: pd.DataFrame,
    budget_s: float,
    metric: str = "val_loss",
    reference: str = STANDARD,
    cell: list[str] | None = None,
    n_boot: int = 2000,
    rng=None,
    confidence: float = CONFIDENCE,
    budget_note: str = "",
) -> pd.DataFrame:
    """Per machine and cell, each arm minus the arm whose arch is `reference`, in `metric` after `budget_s`
    projected seconds (analysis.timing.project_curves), with bootstrap intervals (module docstring).

    A cell is `cell` (default: cell_key when present, plus the shape without CELL_EXCLUDES); it must
    hold one configuration per arm (pass the chosen settings' trials). Only test seeds enter. A lost seed
    (trial_status diverged or failed) is counted (n_<side>_lost), flags the cell (`lost`: "worker k=4 unstable:
    2 diverged of 5") and is left out of the estimate; any other seed that misses the budget at its arm's low,
    median or high step time (beyond its run, before its first evaluation, no finite loss there) is left out.
    `rng`: a numpy Generator or a seed. `budget_note` says where the budget came from in
    the sentence ("the longest all its trials cover"). Columns: VERDICT_COLUMNS, the cell's after machine.
    """
    rng = np.random.default_rng(rng)
    if "seed_role" in curves:
        curves = curves[curves["seed_role"].fillna("test").eq("test")]
    if cell is None:  # what the arms share: never their own fields (worker_interval, conv_kernel) or tuned dropout
        cell = ["cell_key"] * ("cell_key" in curves) + [c for c in SHAPE_KEY if c not in CELL_EXCLUDES]
    rows = []
    for keys, group in curves.groupby(["machine", *cell], dropna=False, sort=True):
        refs = group.loc[group["arch"].eq(reference), "arm"].unique()
        if len(refs) > 1:
            raise StudyError(
                f"a cell on {keys[0]!r} holds {len(refs)} {reference} arms ({', '.join(map(str, refs))}): pass one "
                "configuration per arm and cell (analysis.tuning.choose_settings)."
            )
        if len(refs) == 0:
            continue  # nothing to compare against in this cell
        arms = {arm: _arm(part, metric, budget_s) for arm, part in group.groupby("arm", sort=True)}
        for name in (a for a in arms if a != refs[0]):
            row = dict(zip(["machine", *cell], keys, strict=True))
            row.update(arm=name, reference=refs[0], budget_s=float(budget_s), budget_note=budget_note)
            row["time_includes_eval"] = bool(group["time_includes_eval"].iloc[0])
            row.update(_compare(arms[name], arms[refs[0]], budget_s, n_boot, rng, confidence))
            row["lost"] = flag_words([(name, arms[name].outcomes), (refs[0], arms[refs[0]].outcomes)], False)
            row["sentence"] = verdict_sentence(row, confidence)
            rows.append(row)
    return pd.DataFrame(rows, columns=[VERDICT_COLUMNS[0], *cell, *VERDICT_COLUMNS[1:]])


class _Arm(NamedTuple):
    units: list  # per trial, the unit of pairing: its seed, or its trial id where there is none
    curves: list[Curve]
    spread: tuple[float, float, float]  # step time low, median, high on this machine (the run range)
    covers: np.ndarray  # per trial: not lost, and a finite loss at the budget at low, median and high
    outcomes: dict  # analysis.outcomes.outcome_counts of its test seeds


def _arm(part: pd.DataFrame, metric: str, budget_s: float) -> _Arm:
    trials = part.drop_duplicates("trial_id")
    units = (trials["seed"] if "seed" in trials else trials["trial_id"]).astype(object)
    units = units.where(units.notna(), trials["trial_id"])
    if units.duplicated().any() or ("config_id" in trials and trials["config_id"].nunique() > 1):
        raise StudyError(
            f"arm {part['arm'].iloc[0]!r} on {part['machine'].iloc[0]!r} holds several configurations or several "
            "trials of one seed: pass one configuration per arm and cell (analysis.tuning.choose_settings)."
        )
    by_trial = dict(list(part.groupby("trial_id", sort=False)))
    curves = [curve_of(by_trial[t], metric) for t in trials["trial_id"]]
    spread = tuple(float(trials[c].iloc[0]) for c in SPREAD_COLUMNS)
    status = trials["trial_status"] if "trial_status" in trials else pd.Series("completed", index=trials.index)
    covers = np.array([np.isfinite(losses_at_budget(c, budget_s, np.array(spread))).all() for c in curves], bool)
    covers &= ~is_lost(status)  # the worst outcome, whatever its loss before it was lost
    return _Arm(units.tolist(), curves, spread, covers, outcome_counts(status))


def _compare(arm: _Arm, ref: _Arm, budget_s: float, n_boot: int, rng, confidence: float) -> dict:
    """Counts, means at the median step times and their difference, and the two intervals."""
    sides = dict(zip(SIDES, (arm, ref), strict=True))
    kept = {s: [u for u, ok in zip(a.units, a.covers, strict=True) if ok] for s, a in sides.items()}
    shared = sorted(set(kept["arm"]) & set(kept["reference"]), key=str)
    test = "paired" if len(shared) >= 2 else "independent" if min(map(len, kept.values())) >= 2 else "none"
    columns = {s: [a.units.index(u) for u in (shared if test == "paired" else kept[s])] for s, a in sides.items()}
    medians = {s: np.array([losses_at_budget(a.curves[j], budget_s, [a.spread[1]])[0] for j in columns[s]])
               for s, a in sides.items()}  # fmt: skip
    means = {s: float(m.mean()) if len(m) else np.nan for s, m in medians.items()}
    out = {"test": test, "n_arm": len(columns["arm"]), "n_reference": len(columns["reference"])}
    out.update(n_arm_lost=arm.outcomes["diverged"] + arm.outcomes["failed"])
    out.update(n_reference_lost=ref.outcomes["diverged"] + ref.outcomes["failed"])
    out.update(n_pairs=len(shared), n_arm_left_out=int((~arm.covers).sum()) - out["n_arm_lost"])
    out.update(n_reference_left_out=int((~ref.covers).sum()) - out["n_reference_lost"])
    out.update(arm_step_time_s=arm.spread[1], reference_step_time_s=ref.spread[1])
    out.update(arm_mean=means["arm"], reference_mean=means["reference"], diff=means["arm"] - means["reference"])
    out.update(dict.fromkeys(["diff_ci_low", "diff_ci_high", "seed_only_ci_low", "seed_only_ci_high"], np.nan))
    if test != "none":
        out.update(_intervals(sides, columns, medians, budget_s, test == "paired", n_boot, rng, confidence))
    return out


def _intervals(sides, columns, medians, budget_s, paired, n_boot, rng, confidence) -> dict:
    """Percentile bootstrap intervals of the difference: over seeds and step times, and over seeds only."""
    n = {s: len(c) for s, c in columns.items()}
    if paired:
        picks = dict.fromkeys(SIDES, rng.integers(0, n["arm"], size=(n_boot, n["arm"])))
    else:
        picks = {s: rng.integers(0, n[s], size=(n_boot, n[s])) for s in SIDES}
    u = rng.random((n_boot, len(SIDES)))  # after the seed draws, whatever the spread
    full, seed_only = {}, {}
    for i, (s, a) in enumerate(sides.items()):
        step_times = step_time_draws(a.spread, u[:, i])
        losses = np.column_stack([losses_at_budget(a.curves[j], budget_s, step_times) for j in columns[s]])
        full[s] = np.take_along_axis(losses, picks[s], axis=1).mean(axis=1)
        seed_only[s] = medians[s][picks[s]].mean(axis=1)
    tails = [(1 - confidence) / 2, (1 + confidence) / 2]
    low, high = np.quantile(full["arm"] - full["reference"], tails)
    seed_low, seed_high = np.quantile(seed_only["arm"] - seed_only["reference"], tails)
    return {"diff_ci_low": low, "diff_ci_high": high, "seed_only_ci_low": seed_low, "seed_only_ci_high": seed_high}


def seconds(value: float) -> str:
    """'300', '41.2', '1,234': seconds as a sentence says them."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def verdict_sentence(row, confidence: float = CONFIDENCE) -> str:
    """'on <machine>, at 300 s of training, worker k=4 - standard = -0.041 [-0.060, -0.022] (bootstrap ...)'."""
    clock = "training and evaluation" if row["time_includes_eval"] else "training"
    note = f" ({row['budget_note']})" if row.get("budget_note") else ""
    head = f"on {row['machine']}, at {seconds(row['budget_s'])} s of {clock}{note}, {row['arm']} - {row['reference']}"
    left = row["n_arm_left_out"] + row["n_reference_left_out"]
    tail = f"; {left} seed(s) left out: beyond their run or without a finite loss at this budget" if left else ""
    if row.get("lost"):  # no verdict from the survivors (analysis.outcomes)
        head = f"{head}: {row['lost']}, so no verdict from the survivors"
        if not np.isfinite(row["diff"]):
            return f"{head}{tail}"
        head = f"{head} (over them {row['arm']} - {row['reference']}"
        interval = f" [{row['diff_ci_low']:.3f}, {row['diff_ci_high']:.3f}]" if np.isfinite(row["diff_ci_low"]) else ""
        return f"{head} = {row['diff']:.3f}{interval}{tail})"
    if not np.isfinite(row["diff"]):
        return f"{head}: no estimate{tail}"
    if row["test"] == "none":
        return f"{head} = {row['diff']:.3f} (no interval: fewer than 2 seeds per arm{tail})"
    if row["test"] == "paired":
        seeds = f"{row['n_pairs']} paired seeds"
    else:
        seeds = f"{row['n_arm']} and {row['n_reference']} seeds"
    interval = f"[{row['diff_ci_low']:.3f}, {row['diff_ci_high']:.3f}]"
    words = f"{100 * confidence:g}% bootstrap interval over {seeds} and step times"
    return f"{head} = {row['diff']:.3f} {interval} ({words}{tail})"
