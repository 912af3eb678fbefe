"""What "better" means: each compared arm minus the standard model of its cell at equal steps, equal input tokens,
equal supervised targets, equal FLOPs, equal measured training time and equal projected time per profiled machine,
all from the same per-seed curves (pure: frames in, frames out).

The comparisons are the verdict table's: each non-standard arm's chosen configuration against the chosen
standard one of its cell (analysis.tuning), completed test seeds only. On each axis the difference is taken at
x*, the largest x every seed of both arms reached; each seed's loss there is interpolated linearly between the
evaluation points of its periodic curve (stats.curve_points). Paired by seed where the arms share at least 2 seeds,
Welch otherwise, nothing with fewer (analysis.inference). So "learns more per step" (equal steps) and "runs more
steps per second" (equal time) are read side by side.

Projected time on a profiled machine is the one axis whose x is itself uncertain: there x* is the longest
projected time every compared seed reaches at its fastest step time (analysis.retime.covered_budget), and the
difference and its interval are the projected verdict's (analysis.timing_verdict: a bootstrap over seeds and step
times, the projections' one rule), so they carry the step-time uncertainty; no p-value there. A comparison in which
an arm lost a test seed (diverged, failed: analysis.outcomes) is flagged in `lost` on every axis: its differences
are the survivors', and no better or worse should be read from them.

Supervised targets (positions the training loss is taken at: every position of a standard model, the worker
rows of a worker model) are the metrics column `targets`; studies written before it get them from the trial's
settings (batch size x the workers of a sequence, wt_model.positions), except with a random worker phase, whose
count varies by step: there that axis has no value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import inference, stats
from analysis.configs import STANDARD
from analysis.outcomes import flag_words, outcome_counts
from analysis.retime import covered_budget
from analysis.stats import CELL_COLUMNS
from analysis.timing_verdict import projected_verdict
from wt_model import archs
from wt_model.positions import worker_position_list

# x column -> how the report names the axis
MEASURED_AXES = {
    "step": "steps",
    "tokens": "input tokens",
    "targets": "supervised targets",
    "flops": "FLOPs",
    "train_time_s": "training time, measured (s)",
}
PROJECTED = "projected_time_s"  # analysis.retime's clock
N_GRID = 60  # grid points per configuration and axis in the axes plot
AXIS_COLUMNS = ["cell_key", "arm", "axis", "axis_label", "x", "test", "n_arm", "n_reference", "n_pairs", "diff"]
AXIS_COLUMNS += ["diff_ci_low", "diff_ci_high", "p_value", "lost"]
N_BOOT = 2000  # bootstrap replicates of a projected-time difference


def with_targets(points: pd.DataFrame, final: pd.DataFrame) -> pd.DataFrame:
    """`points` with `targets` filled where it is null: step x the trial's supervised targets per step (module
    docstring); NaN where they are not fixed per step."""
    per_step = pd.Series([_targets_per_step(r) for _, r in final.iterrows()], index=final["trial_id"], dtype=float)
    derived = points["step"].astype(float) * points["trial_id"].map(per_step).astype(float)
    given = points["targets"].astype(float) if "targets" in points else pd.Series(np.nan, index=points.index)
    return points.assign(targets=given.where(given.notna(), derived))


def _targets_per_step(trial) -> float:
    if not isinstance(trial["arch"], str) or trial["arch"] not in archs.LABELS:
        return np.nan
    batch, seq_len = trial["batch_size"], trial["seq_len"]
    if not archs.of_label(trial["arch"]).sparse:
        return float(batch * seq_len)
    if bool(trial.get("random_worker_phase")) or pd.isna(trial["worker_interval"]):
        return np.nan
    return float(batch * len(worker_position_list(int(seq_len), int(trial["worker_interval"]), 0)))


def compared_pairs(chosen: pd.DataFrame) -> list[tuple]:
    """(cell_key, arm label, arm config_id, standard config_id) of every verdict-table comparison."""
    standard = chosen[chosen["arch"].eq(STANDARD)].dropna(subset=["config_id"]).set_index("cell_key")["config_id"]
    out = []
    for _, row in chosen[~chosen["arch"].eq(STANDARD)].dropna(subset=["config_id"]).iterrows():
        if row["cell_key"] in standard.index:
            out.append((row["cell_key"], row["arm"], row["config_id"], standard[row["cell_key"]]))
    return out


def axis_table(
    points: pd.DataFrame, final: pd.DataFrame, chosen: pd.DataFrame, metric: str = "val_loss", projected=None
) -> pd.DataFrame:
    """One row per comparison and axis (AXIS_COLUMNS): x (the x*), the test, seed counts, the difference (arm
    minus standard), its interval and `lost` (the arms' lost seeds in words, '' when none). `projected`
    (analysis.retime.Retiming.curves) adds an axis per machine: "projected_time_s on <machine>" (module
    docstring: the projected verdict at the covered time)."""
    runs = _runs(with_targets(points, final), final, metric, list(MEASURED_AXES))
    axes = dict(MEASURED_AXES)
    machines = {}
    if projected is not None and len(projected):
        for machine, group in projected.groupby("machine", sort=False):
            axis = f"{PROJECTED} on {machine}"
            axes[axis], machines[axis] = f"time on {machine}, projected (s)", group
    test = final[final["seed_role"].eq("test")]
    done = test[test["status"].eq("completed")]
    seeds = done.groupby("config_id")[["trial_id", "seed"]].apply(
        lambda g: list(zip(g["seed"], g["trial_id"], strict=True))
    )
    outcomes = {c: outcome_counts(g["status"]) for c, g in test.groupby("config_id", sort=False)}
    arch_of = final.drop_duplicates("config_id").set_index("config_id")["arch"]
    rows = []
    for i, (cell_key, arm, arm_id, ref_id) in enumerate(compared_pairs(chosen)):
        sides = [(arm, outcomes[c]) for c in (arm_id,) if c in outcomes]
        sides += [(STANDARD, outcomes[c]) for c in (ref_id,) if c in outcomes]
        lost = flag_words(sides, unfinished=False)
        arm_seeds, ref_seeds = seeds.get(arm_id, []), seeds.get(ref_id, [])
        for j, (axis, label) in enumerate(axes.items()):
            row = {"cell_key": cell_key, "arm": arm, "axis": axis, "axis_label": label, "lost": lost}
            if axis in machines:
                trial_ids = {t for _, t in arm_seeds + ref_seeds}
                rng = np.random.default_rng([i, j])
                row.update(_projected_at(machines[axis], trial_ids, metric, arch_of[ref_id], rng))
            else:
                row.update(_compare_at(runs, axis, arm_seeds, ref_seeds))
            rows.append(row)
    return pd.DataFrame(rows).reindex(columns=AXIS_COLUMNS)


def _projected_at(curves: pd.DataFrame, trial_ids: set, metric: str, reference: str, rng) -> dict:
    """The projected verdict of one comparison on one machine at the longest time all its seeds cover."""
    group = curves[curves["trial_id"].isin(trial_ids)]
    budget = covered_budget(group, metric) if group["config_id"].nunique() == 2 else np.nan  # both arms here
    if not (np.isfinite(budget) and budget > 0):
        return _empty()
    (v,) = projected_verdict(group, budget, metric, reference=reference, cell=[], n_boot=N_BOOT, rng=rng).to_dict(
        "records"
    )
    test = "none" if v["test"] == "none" else f"bootstrap {v['test']}"
    keep = ("n_arm", "n_reference", "n_pairs", "diff", "diff_ci_low", "diff_ci_high")
    return dict(_empty(), x=budget, test=test, **{k: v[k] for k in keep})


def _empty() -> dict:
    out = {"x": np.nan, "test": "none", "n_arm": 0, "n_reference": 0, "n_pairs": 0, "diff": np.nan}
    return dict(out, diff_ci_low=np.nan, diff_ci_high=np.nan, p_value=np.nan)


def _runs(points: pd.DataFrame, final: pd.DataFrame, metric: str, axes: list[str]) -> dict:
    """(axis, trial_id) -> (xs, losses) in increasing x, finite values only, for the compared trials."""
    compared = final[final["seed_role"].eq("test") & final["status"].eq("completed")]["trial_id"]
    points = points[points["trial_id"].isin(set(compared))].sort_values(["trial_id", "step"], kind="stable")
    ids, loss = points["trial_id"].to_numpy(), points[metric].to_numpy(float)
    out = {}
    for axis in axes:
        xs = points[axis].to_numpy(float)
        for run in stats.runs(ids):
            x, y = xs[run], loss[run]
            keep = np.isfinite(x) & np.isfinite(y)
            if keep.any():
                order = np.argsort(x[keep], kind="stable")
                out[(axis, ids[run.start])] = (x[keep][order], y[keep][order])
    return out


def _compare_at(runs: dict, axis: str, arm: list, ref: list) -> dict:
    """The difference at the largest x every seed of both arms reached."""
    empty = _empty()
    sides = [[(s, runs[(axis, t)]) for s, t in side if (axis, t) in runs] for side in (arm, ref)]
    if not all(sides) or len(sides[0]) < len(arm) or len(sides[1]) < len(ref):
        return empty  # some seed has no curve on this axis (targets unknown, shape not profiled)
    x = min(float(xs[-1]) for side in sides for _, (xs, _) in side)
    values = [{s: float(np.interp(x, xs, ys, left=np.nan)) for s, (xs, ys) in side} for side in sides]
    values = [{s: v for s, v in side.items() if np.isfinite(v)} for side in values]
    a, r = values
    shared = sorted(set(a) & set(r), key=str)
    out = dict(empty, x=x, n_arm=len(a), n_reference=len(r), n_pairs=len(shared))
    if len(shared) >= 2:
        result = inference.paired(np.array([a[s] for s in shared]), np.array([r[s] for s in shared]))
    elif len(a) >= 2 and len(r) >= 2:
        result = inference.welch(np.array(list(a.values())), np.array(list(r.values())))
    else:
        return dict(out, diff=np.mean(list(a.values())) - np.mean(list(r.values())) if a and r else np.nan)
    return dict(out, **{k: result[k] for k in ("test", "diff", "diff_ci_low", "diff_ci_high", "p_value")})


def axis_curves(points: pd.DataFrame, final: pd.DataFrame, chosen: pd.DataFrame, metric: str, means=None):
    """Per axis, the chosen configurations' mean `metric` over test seeds (stats.seed_curves on N_GRID points; the
    plot draws the points every seed covers), for the report's axes plot. Columns: axis, config_id, x, n,
    n_seeds, mean. `means` (Retiming.means) adds the projected time per machine."""
    ids = set(chosen["config_id"].dropna())
    shown = final[final["config_id"].isin(ids)]
    points = with_targets(points[points["trial_id"].isin(set(shown["trial_id"]))], shown)
    frames = []
    for axis in MEASURED_AXES:  # a grid per configuration; a seed counts inside its own range
        means_x = stats.seed_curves(points.dropna(subset=[axis]), shown, metric, axis, n_grid=N_GRID)
        frames.append(means_x.rename(columns={axis: "x"}).assign(axis=axis))
    if means is not None and len(means):
        for machine, group in means.groupby("machine", sort=False):
            frames.append(group.drop(columns="machine").rename(columns={PROJECTED: "x"}).assign(axis=machine))
    columns = ["axis", "config_id", "x", "n", "n_seeds", "mean"]
    frames = [f[columns] for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def axis_display(table: pd.DataFrame, chosen: pd.DataFrame) -> pd.DataFrame:
    """The axis table for reading: one row per comparison (the cell columns that vary, the arm), one column per
    axis with "diff [low, high] at x" ("—" where the axis has no value), and "seeds lost" where an arm lost some."""
    if table.empty:
        return pd.DataFrame()
    cells = chosen.drop_duplicates("cell_key").set_index("cell_key")
    varying = [c for c in CELL_COLUMNS if c in cells and cells[c].astype(str).nunique() > 1] or ["seq_len"]
    rows = []
    for (cell_key, arm), group in table.groupby(["cell_key", "arm"], sort=False):
        row = {c: cells.loc[cell_key, c] for c in varying}
        row["arm"] = arm
        row.update({r["axis_label"]: _cell_text(r) for _, r in group.iterrows()})
        if table["lost"].fillna("").astype(bool).any():
            row["seeds lost"] = group["lost"].iloc[0] or "none"
        rows.append(row)
    return pd.DataFrame(rows)


def _cell_text(row) -> str:
    if not np.isfinite(row["diff"]):
        return "—"
    interval = (
        f" [{row['diff_ci_low']:.3f}, {row['diff_ci_high']:.3f}]" if np.isfinite(row["diff_ci_low"]) else " (no CI)"
    )
    return f"{row['diff']:.3f}{interval} at {_x(row['x'])}"


def _x(value: float) -> str:
    if value >= 1e5:
        return f"{value:.3g}"
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"
