"""Learning curves re-timed on profiled machines (pure: DataFrame in, DataFrame out).

How much a model learns per step does not depend on the machine, and how long a step takes at a shape does not
depend on what the model has learned. So a step-, token- or FLOP-budgeted trial's curve (loss per step) times a
machine profile's step time (analysis.profiles) is the curve that machine would have drawn. Seconds-budget trials
are refused: their learning-rate schedule followed their own clock, so another machine would have taken other
steps. Shapes are matched exactly (SHAPE_KEY); a shape no profile has is listed, never interpolated.

Time model: training reaches step s at s * step_time_s (the profile's median), plus, with evaluation time, the
time of the evaluations at steps < s (eval_time_per_token_s * val_tokens each). Between evaluation points the
loss is linear in step, so a crossing or a loss at a budget is interpolated in step, then turned into time.
Step-time spread, one rule for every projected interval (step_time_draws: the speedups of analysis.targets, the
axes table's projected time, the projected verdicts of analysis.timing_verdict): each bootstrap replicate first
resamples the seeds, then draws each shape's mean step time on the machine uniformly over its profile's run range
(analysis.profiles.RUN_RANGE), independently per shape (two configurations of one shape share it), and re-projects
every resampled seed at that step time. Bounded, so a seed either covers a budget at every drawn time or is left
out. For one bench profile the range is its p10-p90, of single timed samples: wider than the uncertainty of a long
run's mean step, so the interval is on the wide side, and blind to the machine's drift. For pooled profiles (taken
before and after a study) it is the lowest to the highest of their medians: how far the machine's own speed moved;
a run outside that range is outside what the interval knows. Hand-written profiles have no spread (p10 = p90 =
median): the interval is then the seeds' alone.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from analysis.configs import keys_of
from analysis.profiles import ARCH_FIELDS, MACHINE_KEY, RUN_RANGE, SHAPE_KEY, STEP_TIME_COLUMNS, describe_shape
from analysis.stats import arm_label
from wt_base.budgets import BUDGET_KINDS
from wt_base.errors import StudyError
from wt_model import archs

# counted budgets (a fixed amount per step, wt_base.budgets): their steps do not depend on the machine
PROJECTABLE_BUDGETS = tuple(kind.name for kind in BUDGET_KINDS.values() if not kind.measured)
TRIAL_COLUMNS = ["trial_id", "trial_status", "seed", "seed_role", "budget_kind", "arm", "cell_key", "config_id"]
PROFILE_COLUMNS = ["machine", *MACHINE_KEY, *STEP_TIME_COLUMNS, *RUN_RANGE, "eval_time_per_token_s", "source"]
LOSS_COLUMNS = ["train_loss", "val_loss", "val_loss_seed", "val_bpc", "train_eval_loss", "train_minus_val"]
POINT_COLUMNS = ["trial_id", "step", "tokens", "flops", "val_tokens", "is_final", *LOSS_COLUMNS]
ROUNDING = 1e-9  # relative: a budget this close to a run's end counts as its end (float noise of t / step time)
UNFINISHED = ("stopped", "diverged", "failed", "running", "pending")  # trial statuses passed through
SECONDS_REASON = "a seconds budget: its learning-rate schedule followed its own clock, so its curve cannot be re-timed"
SPREAD_COLUMNS = ["step_time_s_low", "step_time_s_median", "step_time_s_high"]  # a shape's step time: range, median


class ProfileMatch(NamedTuple):
    matched: pd.DataFrame  # one row per (trial, machine): TRIAL_COLUMNS present, SHAPE_KEY, PROFILE_COLUMNS
    missing: pd.DataFrame  # trial_id, machine, shape (text), SHAPE_KEY: shapes a machine's profile lacks
    refused: pd.DataFrame  # trial_id, budget_kind, reason: trials whose curves cannot be re-timed


def match_profiles(trials: pd.DataFrame, profiles: pd.DataFrame) -> ProfileMatch:
    """Each projectable trial's shape joined to every profiled machine (profiles.read_profiles).

    `trials` are trials rows or stats.final_values (then arm, cell_key and config_id travel along); `status`
    becomes `trial_status`. A trial whose budget is not steps, tokens or FLOPs is refused, whatever the profiles.
    """
    trials = trials.rename(columns={"status": "trial_status"})
    if "arm" not in trials:
        labels = zip(trials["arch"], trials["worker_interval"], strict=True)
        trials = trials.assign(arm=[arm_label(a, k) for a, k in labels])
    ok = trials["budget_kind"].isin(PROJECTABLE_BUDGETS)
    refused = trials.loc[~ok, ["trial_id", "budget_kind"]].reset_index(drop=True)
    refused["reason"] = [
        SECONDS_REASON if kind == "seconds" else f"budget kind {kind!r}: only steps, tokens or flops budgets re-time"
        for kind in refused["budget_kind"]
    ]
    keep = [c for c in TRIAL_COLUMNS if c in trials] + SHAPE_KEY
    projectable = trials.loc[ok, keep].reset_index(drop=True)
    for field in ARCH_FIELDS:  # null where the architecture has no such setting, as trials rows have it
        lacks = [not archs.applies(field, archs.of_label(label).name) for label in projectable["arch"]]
        projectable.loc[pd.Series(lacks, index=projectable.index, dtype=bool), field] = pd.NA
    machines = profiles[["machine"]].drop_duplicates()
    pairs = projectable.merge(machines, how="cross")
    pairs["shape_key"] = keys_of(pairs, SHAPE_KEY)
    shaped = profiles[PROFILE_COLUMNS].assign(shape_key=keys_of(profiles, SHAPE_KEY))
    joined = pairs.merge(shaped, on=["machine", "shape_key"], how="left", indicator=True)
    found = joined["_merge"].eq("both")
    matched = joined.loc[found, keep + PROFILE_COLUMNS].reset_index(drop=True)
    missing = joined.loc[~found, ["trial_id", "machine", *SHAPE_KEY]].reset_index(drop=True)
    missing.insert(2, "shape", [describe_shape(row) for _, row in missing.iterrows()])
    return ProfileMatch(matched, missing, refused)


def project_curves(metrics: pd.DataFrame, matched: pd.DataFrame, with_eval: bool = False) -> pd.DataFrame:
    """Every evaluation point of each matched (trial, machine), re-timed on that machine.

    `metrics` holds the points one curve may join (stats.curve_points). Columns: matched's, the points' step,
    tokens, flops, val_tokens, is_final and loss columns (those present), eval_time_s (this point's evaluation on
    the machine; 0 without with_eval), projected_train_time_s = step * step_time_s_median,
    projected_eval_time_s (evaluations before this step), projected_time_s (their sum), time_includes_eval.
    """
    points = metrics[[c for c in POINT_COLUMNS if c in metrics]]
    curves = matched.merge(points, on="trial_id", how="inner")
    curves = curves.sort_values(["machine", "trial_id", "step"], kind="stable").reset_index(drop=True)
    curves["eval_time_s"] = 0.0
    if with_eval:
        no_rate = curves["eval_time_per_token_s"].isna()
        if no_rate.any():
            machine = curves.loc[no_rate, "machine"].iloc[0]
            raise StudyError(
                f"machine {machine!r} has no eval_time_per_token_s in its profile: project training time only."
            )
        no_tokens = curves["val_tokens"].isna() if "val_tokens" in curves else pd.Series(True, index=curves.index)
        if no_tokens.any():
            trial_id = curves.loc[no_tokens, "trial_id"].iloc[0]
            raise StudyError(
                f"trial {trial_id!r} has evaluation points without val_tokens: project training time only."
            )
        curves["eval_time_s"] = curves["eval_time_per_token_s"] * curves["val_tokens"].astype(float)
    by_curve = curves.groupby(["machine", "trial_id"], sort=False)["eval_time_s"]
    curves["projected_train_time_s"] = curves["step"].astype(float) * curves["step_time_s_median"]
    curves["projected_eval_time_s"] = by_curve.cumsum() - curves["eval_time_s"]
    curves["projected_time_s"] = curves["projected_train_time_s"] + curves["projected_eval_time_s"]
    curves["time_includes_eval"] = with_eval
    return curves


class Curve(NamedTuple):
    """One (trial, machine) curve as arrays, in step order."""

    steps: np.ndarray
    loss: np.ndarray
    eval_s: np.ndarray  # each point's evaluation time on the machine


def step_time_draws(spread: tuple[float, float, float], u: np.ndarray) -> np.ndarray:
    """A shape's mean step time in each bootstrap replicate (the module docstring's one rule): uniform over its run
    range, spread = (low, median, high) (SPREAD_COLUMNS), at the replicates' uniforms `u` in [0, 1)."""
    low, _, high = spread
    return low + np.asarray(u, float) * (high - low)


def curve_of(group: pd.DataFrame, metric: str) -> Curve:
    return Curve(group["step"].to_numpy(float), group[metric].to_numpy(float), group["eval_time_s"].to_numpy(float))


def time_at_step(step: float, curve: Curve, step_time_s: float) -> float:
    """When training reaches `step`: its steps' time plus the evaluations at steps below it."""
    return float(step * step_time_s + curve.eval_s[curve.steps < step].sum())


def step_at_time(time_s: float, curve: Curve, step_time_s: float) -> float:
    """The (fractional) step training has reached after `time_s`; NaN after the trial's last evaluation."""
    start = curve.steps * step_time_s + np.cumsum(curve.eval_s) - curve.eval_s  # reaching each point's step
    end = start + curve.eval_s  # its evaluation done
    if time_s > end[-1] * (1 + ROUNDING):
        return np.nan
    knots_t = np.r_[0.0, np.column_stack([start, end]).ravel()]
    return float(np.interp(time_s, knots_t, np.r_[0.0, np.repeat(curve.steps, 2)]))


def losses_at_budget(curve: Curve, budget_s: float, step_times: np.ndarray) -> np.ndarray:
    """The loss after `budget_s` at each of `step_times` (NaN where the run does not cover it)."""
    if curve.eval_s.any():
        return np.array([loss_at_step(step_at_time(budget_s, curve, dt), curve) for dt in step_times])
    steps = budget_s / np.asarray(step_times, float)  # no evaluation time: time is steps * step time
    steps = np.where(np.abs(steps - curve.steps[-1]) <= ROUNDING * curve.steps[-1], curve.steps[-1], steps)
    return np.interp(steps, curve.steps, curve.loss, left=np.nan, right=np.nan)


def loss_at_step(step: float, curve: Curve) -> float:
    """The loss interpolated in step; NaN before the first or after the last evaluation point."""
    if not (curve.steps[0] <= step <= curve.steps[-1]):
        return np.nan
    return float(np.interp(step, curve.steps, curve.loss))


def _carried(curves: pd.DataFrame) -> list[str]:
    """The per-(trial, machine) columns that results carry along."""
    names = ["trial_id", "machine", *TRIAL_COLUMNS[1:], *SHAPE_KEY, *SPREAD_COLUMNS, "time_includes_eval"]
    return list(dict.fromkeys(c for c in names if c in curves))


def projected_loss_at(curves: pd.DataFrame, budget_s: float, metric: str = "val_loss") -> pd.DataFrame:
    """Per (trial, machine), `metric` after `budget_s` projected seconds (project_curves' clock), interpolated
    in step between evaluation points.

    Columns: the carried trial and shape columns, budget_s, step_at_budget, loss_at, status: "ok", "beyond this
    trial's budget" (it needs more steps than the trial ran; its own status when it did not complete), "before the
    first evaluation", "diverged" (a non-finite loss there).
    """
    rows = []
    for (_, _), group in curves.groupby(["machine", "trial_id"], sort=True):
        first, curve = group.iloc[0], curve_of(group, metric)
        step = step_at_time(budget_s, curve, first["step_time_s_median"])
        loss, status = loss_at_step(step, curve), "ok"
        if np.isnan(step):
            trial_status = first.get("trial_status")
            status = trial_status if trial_status in UNFINISHED else "beyond this trial's budget"
        elif step < curve.steps[0]:
            status = "before the first evaluation"
        elif not np.isfinite(loss):
            loss, status = np.nan, "diverged"
        rows.append({**first[_carried(curves)].to_dict(), "budget_s": float(budget_s), "step_at_budget": step,
                     "loss_at": loss, "status": status})  # fmt: skip
    return pd.DataFrame(rows, columns=[*_carried(curves), "budget_s", "step_at_budget", "loss_at", "status"])


def projected_time_to_target(curves: pd.DataFrame, targets: pd.DataFrame, metric: str = "val_loss") -> pd.DataFrame:
    """Per (trial, machine), the projected time at which the best-so-far `metric` first reaches the trial's target.

    `targets` has trial_id, target (targets.default_targets). The crossing step is interpolated linearly in step
    between the last point above the target and the first at or below it (the first point itself when it is
    already there). Columns: the carried columns, target, crossing_step, projected_time_to_target_s, status:
    "reached", "not reached" (NaN time), or the trial's own status when it did not complete and never reached it.
    """
    target_of = targets.drop_duplicates("trial_id").set_index("trial_id")["target"]
    rows = []
    for (_, trial_id), group in curves.groupby(["machine", "trial_id"], sort=True):
        if trial_id not in target_of.index:
            continue
        first, curve, target = group.iloc[0], curve_of(group, metric), float(target_of[trial_id])
        step = _crossing_step(curve, target)
        time_s = np.nan if np.isnan(step) else time_at_step(step, curve, first["step_time_s_median"])
        status = "reached" if np.isfinite(time_s) else "not reached"
        if status == "not reached" and first.get("trial_status") in UNFINISHED:
            status = first["trial_status"]
        rows.append({**first[_carried(curves)].to_dict(), "target": target, "crossing_step": step,
                     "projected_time_to_target_s": time_s, "status": status})  # fmt: skip
    columns = [*_carried(curves), "target", "crossing_step", "projected_time_to_target_s", "status"]
    return pd.DataFrame(rows, columns=columns)


def _crossing_step(curve: Curve, target: float) -> float:
    """The step where the best-so-far loss (non-finite losses never improve it) first reaches `target`."""
    loss = np.where(np.isfinite(curve.loss), curve.loss, np.inf)
    best = np.minimum.accumulate(loss)
    below = np.flatnonzero(best <= target)
    if len(below) == 0:
        return np.nan
    i = below[0]
    if i == 0 or not np.isfinite(best[i - 1]):
        return float(curve.steps[i])
    fraction = (best[i - 1] - target) / (best[i - 1] - best[i])
    return float(curve.steps[i - 1] + fraction * (curve.steps[i] - curve.steps[i - 1]))
