"""A study's verdicts carried to other machines: every step-, token- or FLOP-budgeted trial re-timed on each
profiled machine (`wt-study analyze --timing`; pure: frames in, frames out).

How much a model learns per step does not depend on the machine, and how long a step takes at a shape does not
depend on what the model has learned (analysis.timing has the time model). Per machine this gives:
  - the chosen configurations' seed-mean curves against projected training time (the report's timing plot);
  - the projected time to the report's targets (analysis.targets.default_targets), with the censored median over
    test seeds and the speedup over the cell's chosen standard configuration (analysis.targets.target_summary),
    its interval over seeds and step times (analysis.timing.step_time_draws);
  - the projected verdict at a wall-clock budget (analysis.timing_verdict.projected_verdict): the budget given, or
    per cell the longest training time every compared trial covers at its fastest (run range low) step time, so no
    seed drops out of the interval's replicates;
  - the trials whose shape the machine's profile lacks (named, never guessed) and the trials refused outright
    (seconds budgets: their learning-rate schedule followed their own clock).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis import stats
from analysis.configs import keys_of
from analysis.profiles import SHAPE_KEY
from analysis.stats import CELL_COLUMNS
from analysis.targets import target_summary
from analysis.timing import (
    SPREAD_COLUMNS,
    curve_of,
    match_profiles,
    project_curves,
    projected_time_to_target,
    time_at_step,
)
from analysis.timing_verdict import projected_verdict

COVERED_NOTE = "the longest all its trials cover"
X = "projected_time_s"  # the projected clock (training steps, plus evaluations with --timing-with-eval)
SHOWN_TRIALS = 5  # trial ids listed per missing shape before "…"


@dataclass(frozen=True)
class Retiming:
    """A study re-timed on profiled machines; each frame comes from a pure function of the study and profiles."""

    profiles: pd.DataFrame  # analysis.profiles.read_profiles: one row per (machine, shape)
    missing: pd.DataFrame  # machine, shape, n_trials, trials: shapes a machine's profile lacks
    refused: pd.DataFrame  # trial_id, budget_kind, reason: trials that cannot be re-timed on any machine
    curves: pd.DataFrame  # analysis.timing.project_curves: every matched (trial, machine) evaluation point
    means: pd.DataFrame  # machine, config_id, projected_time_s, n, n_seeds, mean, ...: chosen configurations
    reach: pd.DataFrame  # machine, config_id, arm, target, seed counts, projected_time_s_to_target, speedup
    verdicts: pd.DataFrame  # analysis.timing_verdict.VERDICT_COLUMNS per machine and cell, cell columns joined
    budget_s: float | None  # the budget given (--timing-budget-s), or None: the longest covered, per cell
    with_eval: bool  # the projected clock counts evaluation time too

    @property
    def machines(self) -> list[str]:
        return list(dict.fromkeys(self.profiles["machine"]))


def retime(
    final: pd.DataFrame,
    chosen: pd.DataFrame,
    points: pd.DataFrame,
    targets: pd.DataFrame,
    profiles: pd.DataFrame,
    metric: str = "val_loss",
    budget_s: float | None = None,
    with_eval: bool = False,
    n_boot: int = 2000,
    seed: int = 0,
) -> Retiming:
    """The study (stats.final_values, tuning.choose_settings, stats.curve_points, targets.default_targets)
    re-timed on every machine of `profiles` (module docstring)."""
    match = match_profiles(final, profiles)
    curves = project_curves(points, match.matched, with_eval=with_eval)
    chosen_ids = set(chosen["config_id"].dropna())
    return Retiming(
        profiles=profiles,
        missing=missing_shapes(match.missing),
        refused=match.refused,
        curves=curves,
        means=seed_means(curves, final, metric, chosen_ids),
        reach=projected_reach(curves, targets, final, chosen, metric, seed),
        verdicts=projected_verdicts(curves, chosen, metric, budget_s, n_boot, seed),
        budget_s=budget_s,
        with_eval=with_eval,
    )


def missing_shapes(missing: pd.DataFrame) -> pd.DataFrame:
    """One row per (machine, shape) a profile lacks: how many trials have it and the first few of their ids."""
    columns = ["machine", "shape", "n_trials", "trials"]
    if missing.empty:
        return pd.DataFrame(columns=columns)
    grouped = missing.groupby(["machine", "shape"], sort=True)["trial_id"]
    out = grouped.agg(n_trials="count", trials=lambda ids: _listed(sorted(ids))).reset_index()
    return out[columns]


def _listed(ids: list[str]) -> str:
    shown = ", ".join(ids[:SHOWN_TRIALS])
    return shown + (f", … ({len(ids) - SHOWN_TRIALS} more)" if len(ids) > SHOWN_TRIALS else "")


def seed_means(curves: pd.DataFrame, final: pd.DataFrame, metric: str, config_ids: set) -> pd.DataFrame:
    """Per machine, the chosen configurations' mean `metric` over test seeds against projected time, where every
    seed covers it (stats.seed_curves, common grid)."""
    frames = []
    for machine, group in curves.groupby("machine", sort=False):
        means = stats.seed_curves(group, final, metric, X, common=True)
        frames.append(means[means["config_id"].isin(config_ids)].assign(machine=machine))
    if not frames:
        return pd.DataFrame(columns=["machine", "config_id", X, "n", "n_seeds", "mean", "std", "ci_low", "ci_high"])
    return pd.concat(frames, ignore_index=True)


def projected_reach(
    curves: pd.DataFrame, targets: pd.DataFrame, final: pd.DataFrame, chosen: pd.DataFrame, metric: str, seed: int
) -> pd.DataFrame:
    """Per machine and chosen configuration: the projected time to the cell's target over test seeds (censored
    median, a lost seed never reaching it), seed counts and the speedup over the cell's chosen standard
    configuration with its interval over seeds and step times."""
    frames = []
    sources = targets.drop_duplicates("trial_id")[["trial_id", "target_source"]]
    labels = final.drop_duplicates("config_id").set_index("config_id")["arm"]
    for machine, group in curves.groupby("machine", sort=False):
        reach = projected_time_to_target(group, targets, metric)
        # the training steps' part of each time scales with the replicates' step times (targets.speedup_interval)
        reach = reach.assign(scaled_s=reach["crossing_step"] * reach["step_time_s_median"],
                             shape_key=keys_of(reach, SHAPE_KEY))  # fmt: skip
        reach = reach[["trial_id", "target", "projected_time_to_target_s", *SPREAD_COLUMNS, "scaled_s", "shape_key"]]
        reach = reach.rename(columns={"projected_time_to_target_s": X})
        summary = target_summary(reach.merge(sources, on="trial_id", how="left"), final, chosen, x=X, seed=seed)
        summary = summary[summary["config_id"].isin(set(chosen["config_id"].dropna()))]
        frames.append(summary.assign(machine=machine, arm=summary["config_id"].map(labels)))
    if not frames:
        return pd.DataFrame(columns=["machine", "config_id", "arm", "target", f"{X}_to_target", "speedup"])
    out = pd.concat(frames, ignore_index=True)
    return out[["machine", "config_id", "arm", *[c for c in out.columns if c not in ("machine", "config_id", "arm")]]]


def covered_budget(trials: pd.DataFrame, metric: str) -> float:
    """The longest projected time every completed trial of `trials` (one machine) reaches at its fastest step time
    (the low end of its run range, analysis.profiles.RUN_RANGE), so that its loss is defined at every step time a
    replicate draws; NaN when no trial completed."""
    done = trials[trials["trial_status"].eq("completed")] if "trial_status" in trials else trials
    ends = [
        time_at_step(float(group["step"].max()), curve_of(group, metric), float(group["step_time_s_low"].iloc[0]))
        for _, group in done.groupby("trial_id", sort=False)
    ]
    return float(min(ends)) if ends else np.nan


def projected_verdicts(
    curves: pd.DataFrame, chosen: pd.DataFrame, metric: str, budget_s: float | None, n_boot: int, seed: int
) -> pd.DataFrame:
    """Per machine and cell, each arm's chosen configuration minus the chosen standard one at `budget_s`
    projected seconds (or the covered budget, per cell), on test seeds; the cell's columns joined."""
    test = curves[curves["config_id"].isin(set(chosen["config_id"].dropna()))]
    if "seed_role" in test:
        test = test[test["seed_role"].fillna("test").eq("test")]
    frames = []
    for i, (_, group) in enumerate(test.groupby(["machine", "cell_key"], sort=True)):
        budget, note = (budget_s, "") if budget_s is not None else (covered_budget(group, metric), COVERED_NOTE)
        if not np.isfinite(budget) or budget <= 0:
            continue
        rng = np.random.default_rng([seed, i])
        frames.append(projected_verdict(group, budget, metric, cell=["cell_key"], n_boot=n_boot, rng=rng,
                                        budget_note=note))  # fmt: skip
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=["machine", "cell_key", "arm", "reference", "budget_s", "diff", "sentence"])
    out = pd.concat(frames, ignore_index=True)
    cells = chosen.drop_duplicates("cell_key")[["cell_key", *CELL_COLUMNS, "cell_extra"]]
    return out.merge(cells, on="cell_key", how="left")
