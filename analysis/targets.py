"""Time to target: the loss each cell must reach, when each trial reached it, and the speedup over seeds (pure).

The target of a cell comes, in this order, from --target-loss ("given"), a pre-registered target ("spec"), the
tuning seeds of the cell's chosen standard configuration ("tune seeds"), or, when that configuration has no
usable tuning seed, its test seeds ("test seeds (no tune seeds)", the older rule, flagged because the seeds that
judge then also set the bar). Crossing times are interpolated between evaluations. A lost seed (diverged or
failed) never reached the target, whatever it reached before it was lost (analysis.outcomes: the verdicts' rule);
a seed the scheduler stopped or that is still running is counted apart, never as "never reached".

A projected time to target (analysis.retime) is steps times a profiled step time; its speedup interval draws each
shape's step time in every replicate by the projections' one rule (analysis.timing.step_time_draws).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from analysis.configs import STANDARD
from analysis.inference import ALPHA
from analysis.outcomes import LOST, is_lost, lost_as_never
from analysis.timing import SPREAD_COLUMNS, step_time_draws

TARGET_SOURCES = ("given", "spec", "tune seeds", "test seeds (no tune seeds)")
REACH_STATUSES = ("reached", "not reached", "stopped", "diverged", "failed", "running")
IN_MEDIAN = ("reached", "not reached", *LOST)  # reached it, ran to their end without, or were lost (never: inf)
TUNE_FRACTION = 0.8  # a tune-seed target is the loss the standard model had reached at this share of its run
MIN_DEFINED = 0.95  # the speedup interval is shown only when this share of bootstrap replicates has a ratio
UNREACHED = {status: f"n_{status}_unreached" for status in REACH_STATUSES[2:]}
SUMMARY_COUNTS = ["n_seeds", "n_reached", "n_not_reached", *UNREACHED.values()]


def default_targets(
    final: pd.DataFrame,
    chosen: pd.DataFrame,
    curves: pd.DataFrame,
    target_loss: float | None = None,
    spec_target=None,
    x: str = "train_time_s",
) -> pd.DataFrame:
    """Per trial, the loss its cell must reach and where it came from. Columns: trial_id, target, target_source.

    - "given": `target_loss` (--target-loss), for every trial;
    - "spec": a pre-registered target: the trials column `target_loss` (one value per cell; it may be absent or
      null), else `spec_target` (one loss for every cell, or a mapping cell_key -> loss);
    - "tune seeds": the median, over the completed tuning seeds of the cell's chosen standard configuration
      (tuning.choose_settings), of the best-so-far loss each reached at TUNE_FRACTION of its run (`curves` from
      pareto.best_so_far along `x`, one evaluation set). The median, so that one bad seed cannot move it (the
      worst seed, the old rule, moves with any one seed); from tuning seeds, so that the seeds that set the bar
      never judge; at 80% of the run rather than at its end, so that a typical standard test seed reaches it
      before its budget ends and its time is observed, not censored (at the end, only about half would);
    - "test seeds (no tune seeds)": when no such tuning seed has a curve, the worst of the lowest losses of the
      configuration's test seeds (every one of them reaches it), flagged: the judges set the bar.
    Cells with none of these (no chosen standard configuration, no spec) get no target.
    """
    if target_loss is not None:
        return pd.DataFrame({"trial_id": final["trial_id"], "target": float(target_loss), "target_source": "given"})
    lowest = curves.groupby("trial_id", sort=False)["best_loss"].min()
    early = _best_at_fraction(curves, x, TUNE_FRACTION)
    std_configs = chosen.loc[chosen["arch"].eq(STANDARD), ["cell_key", "config_id"]].dropna()
    std = final.merge(std_configs, on=["cell_key", "config_id"], how="inner")
    std = std.assign(lowest=std["trial_id"].map(lowest).astype(float)).dropna(subset=["lowest"])
    tune = std[std["seed_role"].eq("tune") & std["status"].eq("completed")]
    tune = tune.assign(lowest=tune["trial_id"].map(early).astype(float)).dropna(subset=["lowest"])
    test = std[std["seed_role"].eq("test")]
    sources = [
        _spec_targets(final, spec_target).assign(target_source="spec"),
        tune.groupby("cell_key")["lowest"].median().rename("target").reset_index().assign(target_source="tune seeds"),
        test.groupby("cell_key")["lowest"].max().rename("target").reset_index().assign(target_source=TARGET_SOURCES[3]),
    ]
    cells = pd.concat(sources, ignore_index=True).drop_duplicates("cell_key")  # in order of precedence
    out = final[["trial_id", "cell_key"]].merge(cells, on="cell_key", how="inner")
    return out[["trial_id", "target", "target_source"]].astype({"target": float, "target_source": object})


def _best_at_fraction(curves: pd.DataFrame, x: str, fraction: float) -> pd.Series:
    """trial_id -> the best-so-far loss at the last evaluation at or before `fraction` of the trial's last `x`."""
    if curves.empty:
        return pd.Series(dtype=float)
    end = curves.groupby("trial_id", sort=False)[x].transform("max")
    before = curves[curves[x] <= fraction * end + 1e-12].sort_values(["trial_id", x], kind="stable")
    return before.groupby("trial_id", sort=False)["best_loss"].last()


def _spec_targets(final: pd.DataFrame, spec_target) -> pd.DataFrame:
    """cell_key, target: the trials column `target_loss` where set, else `spec_target`."""
    cells = final["cell_key"].drop_duplicates()
    if spec_target is None:
        fallback = pd.Series(np.nan, index=cells)
    elif np.isscalar(spec_target):
        fallback = pd.Series(float(spec_target), index=cells)
    else:
        fallback = pd.Series(dict(spec_target), dtype=float).reindex(cells)
    column = pd.Series(np.nan, index=cells)
    if "target_loss" in final.columns:
        values = pd.to_numeric(final["target_loss"], errors="coerce").where(lambda v: np.isfinite(v))
        per_cell = values.groupby(final["cell_key"]).agg(["min", "max"])
        clash = per_cell.index[per_cell["min"] < per_cell["max"]]
        if len(clash):
            raise ValueError(
                f"trials column target_loss has {per_cell.loc[clash[0], 'min']:g} and "
                f"{per_cell.loc[clash[0], 'max']:g} in one cell ({clash[0]}): a cell has one pre-registered target."
            )
        column = per_cell["min"].reindex(cells)
    target = column.where(column.notna(), fallback).astype(float)
    return target.dropna().rename("target").rename_axis("cell_key").reset_index()


def time_to_target(curves: pd.DataFrame, targets: pd.DataFrame, x: str = "train_time_s") -> pd.DataFrame:
    """The `x` at which each trial's best-so-far loss first reaches its target (<=); NaN when it never does.

    Interpolated linearly in `x` between the last evaluation above the target and the first at or below it
    (the crossing of the straight line between them), so the answer does not snap to the evaluation after the
    crossing; a first point already at or below the target gives that point's `x`. `curves` comes from
    pareto.best_so_far; `targets` from default_targets. Columns: trial_id, target, target_source (when given), x.
    """
    keep = [c for c in ("trial_id", "target", "target_source") if c in targets.columns]
    out = targets[keep].drop_duplicates("trial_id").reset_index(drop=True)
    c = curves[["trial_id", x, "best_loss"]].merge(out[["trial_id", "target"]], on="trial_id", how="inner")
    c = c.sort_values(["trial_id", x], kind="stable").reset_index(drop=True)
    previous = c.groupby("trial_id", sort=False)[[x, "best_loss"]].shift()
    first = c.index[c["best_loss"] <= c["target"]].to_series().groupby(c["trial_id"]).first()
    at, before = c.loc[first.to_numpy()], previous.loc[first.to_numpy()]
    fraction = (before["best_loss"] - at["target"]) / (before["best_loss"] - at["best_loss"])
    crossing = (before[x] + fraction * (at[x] - before[x])).where(before["best_loss"].notna(), at[x])
    out[x] = out["trial_id"].map(pd.Series(crossing.to_numpy(float), index=at["trial_id"])).astype(float)
    return out


def reach_status(reach: pd.DataFrame, final: pd.DataFrame, x: str = "train_time_s") -> pd.DataFrame:
    """`reach` (time_to_target) with a column reach_status per trial (REACH_STATUSES):

    "diverged" or "failed" for a lost seed, whatever it reached before it was lost (it counts as never reaching
    the target: analysis.outcomes); "reached" (a time) for any other seed with one, whatever its status; "not
    reached" (a completed run that never got there); and for a trial that did not complete and never reached it,
    its own status: "stopped" (the scheduler ended it: censored at its stop, not evidence that it never would) or
    "running".
    """
    status = reach["trial_id"].map(final.drop_duplicates("trial_id").set_index("trial_id")["status"])
    unreached = status.replace({"completed": "not reached"}).fillna("unknown")
    reached = np.where(np.isfinite(reach[x].astype(float)), "reached", unreached)
    return reach.assign(reach_status=np.where(is_lost(status), status, reached))


def censored_median(times: np.ndarray) -> float:
    """Median time to target over seeds where NaN or inf means "never reached" (censored): the earliest time by
    which at least half the seeds had reached it; NaN ("not reached") when fewer than half ever did."""
    times = np.asarray(times, float)
    n = len(times)
    reached = np.sort(times[np.isfinite(times)])
    half = -(-n // 2)  # ceil(n / 2) seeds must have reached it
    return float(reached[half - 1]) if n and len(reached) >= half else np.nan


def _censored_medians(times: np.ndarray) -> np.ndarray:
    """censored_median of each row of a (replicates, seeds) array."""
    ordered = np.sort(np.where(np.isfinite(times), times, np.inf), axis=1)
    median = ordered[:, -(-times.shape[1] // 2) - 1]
    return np.where(np.isfinite(median), median, np.nan)


def target_summary(
    reach: pd.DataFrame,
    final: pd.DataFrame,
    chosen: pd.DataFrame,
    x: str = "train_time_s",
    n_boot: int = 2000,
    seed: int = 0,
    alpha: float = ALPHA,
) -> pd.DataFrame:
    """Per configuration over its test seeds: target, target_source, seed counts by reach_status, the censored
    median `x` to target and the speedup over the cell's chosen standard configuration.

    Counts: n_seeds, n_reached, n_not_reached and n_<status>_unreached for stopped, diverged, failed and running
    seeds that never reached it, a lost (diverged, failed) seed counting as never reaching it (named apart from
    stats.config_summary's n_stopped, which counts trial statuses). The median `<x>_to_target` (censored_median)
    is over the seeds that reached the target, ran to their end, or were lost: a lost seed is a run that never
    got there (+inf), so an arm that loses seeds cannot win on the seeds it kept; a stopped or running seed says
    nothing about how long a finished run takes and is counted, not censored. `speedup` is the standard median
    over this one; speedup_ci_low/high is its bootstrap percentile interval at 1 - alpha (speedup_interval),
    reported only when at least MIN_DEFINED of the replicates have a ratio (`speedup_defined_frac`).

    A projected `reach` (analysis.retime) also carries, per trial, SPREAD_COLUMNS (its shape's step time on the
    machine: run range low, median, high), `scaled_s` (the part of its time that scales with the step time: its
    training steps' time at the median) and `shape_key`; the speedup interval then draws step times too.
    """
    if "reach_status" not in reach.columns:
        reach = reach_status(reach, final, x)
    test = final.loc[final["seed_role"].eq("test"), ["trial_id", "config_id", "cell_key", "seed"]]
    frame = test.merge(reach, on="trial_id", how="inner")
    frame = frame.assign(target_source=frame.get("target_source", np.nan))
    grouped = frame.groupby("config_id", sort=True)
    out = grouped.agg(cell_key=("cell_key", "first"), target=("target", "first"))
    out["target_source"] = grouped["target_source"].first()
    counts = pd.crosstab(frame["config_id"], frame["reach_status"])
    out["n_seeds"] = grouped["trial_id"].count()
    for status, column in [("reached", "n_reached"), ("not reached", "n_not_reached"), *UNREACHED.items()]:
        out[column] = counts[status].reindex(out.index) if status in counts else 0
    times = {c: _seed_times(g, x) for c, g in frame.groupby("config_id", sort=True)}
    out[f"{x}_to_target"] = [censored_median(times[c].times) for c in out.index]
    standard = chosen.loc[chosen["arch"].eq(STANDARD)].dropna(subset=["config_id"])
    standard = standard.set_index("cell_key")["config_id"]
    columns = ["speedup", "speedup_ci_low", "speedup_ci_high", "speedup_defined_frac"]
    rows = []
    for config_id, cell_key in out["cell_key"].items():
        reference = times.get(standard.get(cell_key))
        rng = np.random.default_rng([seed, int(config_id)])
        rows.append(speedup_interval(reference, times[config_id], n_boot, rng, alpha) if reference else [np.nan] * 4)
    out[columns] = pd.DataFrame(rows, index=out.index, columns=columns, dtype=float)
    out = out.reset_index().drop(columns="cell_key")
    return out.astype({c: "int64" for c in SUMMARY_COUNTS}).astype({"target": float})


class SeedTimes(NamedTuple):
    """One configuration's seeds in the median: times to target (inf: never reached, lost seeds included)."""

    seeds: np.ndarray
    times: np.ndarray
    scaled_s: np.ndarray | None = None  # the part of each time that scales with the step time (projected only)
    spread: tuple[float, float, float] | None = None  # its shape's step time: run range low, median, high
    shape: str | None = None  # its shape (one profile row): configurations of one shape share a step-time draw


def _seed_times(trials: pd.DataFrame, x: str) -> SeedTimes:
    """The trials that enter the median, ordered by seed; a lost seed's time is +inf (never reached)."""
    kept = trials[trials["reach_status"].isin(IN_MEDIAN)].sort_values("seed", kind="stable")
    times = lost_as_never(kept[x].to_numpy(float), kept["reach_status"])
    if not set(SPREAD_COLUMNS) <= set(kept.columns) or kept.empty:
        return SeedTimes(kept["seed"].to_numpy(object), times)
    spread = tuple(float(kept[c].iloc[0]) for c in SPREAD_COLUMNS)
    shape = kept["shape_key"].iloc[0] if "shape_key" in kept else None
    return SeedTimes(kept["seed"].to_numpy(object), times, kept["scaled_s"].to_numpy(float), spread, shape)


def speedup_interval(standard, other, n_boot: int, rng: np.random.Generator, alpha: float = ALPHA) -> list:
    """[ratio, low, high, defined_frac]: censored median of `standard` over that of `other` (SeedTimes, or
    (seeds, times) pairs) and its bootstrap percentile interval.

    Each replicate resamples seeds with replacement: the same draw for both arms when they have the same seeds
    (paired: a seed's data order is shared), independently otherwise. Where the times are projected (a spread
    given), the replicate then draws each shape's step time (analysis.timing.step_time_draws; two configurations
    of one shape share the draw: one profile row) and rescales each seed's `scaled_s` by it. A replicate whose
    median is undefined (fewer than half its seeds reached the target) is an undefined ratio; the interval
    (percentiles of the defined ratios) is given only when at least MIN_DEFINED of the replicates are defined.
    """
    s, o = SeedTimes(*standard), SeedTimes(*other)
    point = _ratio(censored_median(s.times), censored_median(o.times))
    if not (len(s.times) and len(o.times)):
        return [point, np.nan, np.nan, np.nan]
    if len(s.seeds) == len(o.seeds) and len(set(s.seeds)) == len(s.seeds) and list(s.seeds) == list(o.seeds):
        draws = [rng.integers(0, len(s.times), (n_boot, len(s.times)))] * 2
    else:
        draws = [rng.integers(0, len(side.times), (n_boot, len(side.times))) for side in (s, o)]
    u = rng.random((n_boot, 2))  # after the seed draws: without a spread the seed-only interval is unchanged
    if s.shape is not None and s.shape == o.shape:
        u[:, 1] = u[:, 0]
    boots = [_replicate_times(side, draw, u[:, i]) for i, (side, draw) in enumerate(zip((s, o), draws, strict=True))]
    ratios = _ratio(_censored_medians(boots[0]), _censored_medians(boots[1]))
    defined = np.isfinite(ratios)
    frac = float(defined.mean())
    if not (np.isfinite(point) and frac >= MIN_DEFINED):
        return [point, np.nan, np.nan, frac]
    low, high = np.quantile(ratios[defined], [alpha / 2, 1 - alpha / 2])
    return [point, float(low), float(high), frac]


def _replicate_times(side: SeedTimes, draw: np.ndarray, u: np.ndarray) -> np.ndarray:
    """(replicates, seeds) times: the drawn seeds, their step-time part rescaled to the replicate's step time."""
    times = side.times[draw]
    if side.spread is None:
        return times
    factor = step_time_draws(side.spread, u) / side.spread[1]  # the replicate's step time over the median
    with np.errstate(invalid="ignore"):  # inf (never reached) stays inf
        return times + side.scaled_s[draw] * (factor[:, None] - 1.0)


def _ratio(standard, other):
    """standard / other where both are finite and other > 0 (a crossing at x = 0 has no ratio), else NaN."""
    standard, other = np.asarray(standard, float), np.asarray(other, float)
    ok = np.isfinite(standard) & np.isfinite(other) & (other > 0)
    out = np.divide(standard, other, out=np.full(np.broadcast(standard, other).shape, np.nan), where=ok)
    return float(out) if out.ndim == 0 else out
