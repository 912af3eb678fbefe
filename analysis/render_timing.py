"""The report's sections on what "better" means (equal steps, tokens, targets, FLOPs, time) and on the study
re-timed on profiled machines (`--timing`), in markdown (pure)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.axes import axis_display
from analysis.retime import COVERED_NOTE
from analysis.tables import fmt, md_table, varying
from analysis.timing import SECONDS_REASON
from analysis.timing_verdict import seconds
from wt_base.profile import SHIPPED_DIR


def axes_section(a, image) -> str:
    """Each comparison on every axis: where the gap comes from (per step, per token, per FLOP, per second)."""
    intro = (
        "Each arm minus the standard model of its cell (the verdict table's comparisons: chosen settings, completed "
        "test seeds), on the same per-seed curves measured along different axes: at equal optimizer steps, input "
        "tokens, supervised targets (the positions the training loss is taken at: a worker model is supervised at "
        "its worker rows only), analytic FLOPs"
        + (
            ", measured training time and projected training time on each profiled machine"
            if a.retiming is not None
            else " and measured training time"
        )
        + ". On each axis the difference is taken at the largest x every seed of both arms reached (shown after "
        "'at'), each seed's loss interpolated linearly between its periodic evaluations; paired by seed where "
        "both arms have 2 or more seeds, Welch otherwise; 95% intervals, unadjusted. The projected-time rows use "
        "the projected verdicts' bootstrap instead, which also draws each shape's step time over its profile's "
        "range (analysis.timing.step_time_draws), and have no p-value. A lost seed (diverged, failed) makes a row "
        "say so rather than compare the survivors. A gap at equal steps is how "
        "much more the arm learns per step; the gap at equal time adds how many more steps it runs per second."
    )
    table = axis_display(a.axes, a.chosen)
    return "\n\n".join(["## What \"better\" means: equal steps, tokens, targets, FLOPs and time", intro,
                        md_table(table), image("axes.png")])  # fmt: skip


def timing_section(a, image) -> str:
    """The study re-timed on every profiled machine (analysis.retime); "" without --timing."""
    r = a.retiming
    if r is None:
        return ""
    clock = "training and evaluation" if r.with_eval else "training"
    budget = (
        f"{seconds(r.budget_s)} s of {clock} (--timing-budget-s)"
        if r.budget_s is not None
        else f"per cell, the longest projected {clock} time every compared trial (completed test seeds of the "
        f'chosen settings) reaches at its fastest step time ("{COVERED_NOTE}")'
    )
    intro = (
        "How much a model learns per step does not depend on the machine, and how long a step takes at a shape "
        "does not depend on what the model has learned: each steps-, tokens- or FLOP-budgeted trial's curve (loss "
        "per step) times a profiled machine's median step time at the trial's exact shape is the curve that machine "
        "would have drawn"
        + (
            ", plus each evaluation's projected time (the profile's evaluation time per token x its validation tokens)"
            if r.with_eval
            else " (training time only, as the study's own `train_time_s`)"
        )
        + f". Verdicts at a wall-clock budget: {budget}. Their interval resamples seeds (paired where both arms have "
        "them) and draws each arm's mean step time between its profile's p10 and p90 (single steps: on the wide "
        "side), or, for profiles pooled from several measurements, between their lowest and highest median (the "
        "machine's drift), so it carries both the seed spread and the step-time spread. Shapes are matched "
        "exactly; a shape a profile lacks is named below, never guessed."
    )
    parts = ["## Re-timed on profiled machines", intro, _profiles_text(r), _refused_text(r), _missing_text(r)]
    parts.append(image("timing.png"))
    for machine in r.machines:
        parts += [f"### On {machine}", _reach_text(a, machine), _verdict_text(r, machine, a.metric)]
    return "\n\n".join(p for p in parts if p)


def _profiles_text(r) -> str:
    files = r.profiles.groupby("machine", sort=False).agg(
        source=("source", "first"), files=("profile_file", lambda f: ", ".join(sorted(set(f)))), n=("arch", "size"),
        pooled=("n_profiles", "max"), moved=("median_ratio", "max"),
    )  # fmt: skip
    lines = [
        f"- **{machine}**: {row['n']} shapes, {row['source']} (`{_shown_path(row['files'])}`){_pooled_text(row)}"
        for machine, row in files.iterrows()
    ]
    return "Profiles:\n\n" + "\n".join(lines)


def _pooled_text(row) -> str:
    """How far a machine's speed moved between the profiles pooled for it (analysis.profiles.pool_rows)."""
    if row["pooled"] < 2:
        return ""
    return (
        f". A shape's median step time moved by up to {100 * (row['moved'] - 1):.0f}% between its pooled profiles "
        "(the machine's own drift: projected times can be that far off); verdicts, speedups and the axes table's "
        "projected rows draw step times over that range."
    )


def _shown_path(files: str) -> str:
    """A shipped profile by its name, other files as given."""
    return ", ".join(
        f"shipped: {f.rsplit('/', 1)[-1].rsplit('.', 1)[0]}" if f.startswith(str(SHIPPED_DIR)) else f
        for f in files.split(", ")
    )


def _refused_text(r) -> str:
    if r.refused.empty:
        return ""
    seconds_budget = r.refused["reason"].eq(SECONDS_REASON)
    lines = []
    if seconds_budget.any():
        n = int(seconds_budget.sum())
        lines.append(
            f"**{n} trials are not re-timed**: {SECONDS_REASON} (another machine would have taken other steps "
            "under another schedule). Re-time a steps-budgeted twin of them instead (the `seed-replication-steps` "
            "preset is that twin of `seed-replication`)."
        )
    for reason, group in r.refused[~seconds_budget].groupby("reason", sort=True):
        lines.append(f"**{len(group)} trials are not re-timed**: {reason}.")
    return "\n\n".join(lines)


def _missing_text(r) -> str:
    if r.missing.empty:
        return "Every projectable trial's shape is in every profile."
    shown = r.missing.rename(columns={"n_trials": "trials with it", "trials": "trial ids"})
    return "Shapes a profile lacks (those trials are left out on that machine; bench them there with `wt-study " \
        "bench --for-study`):\n\n" + md_table(shown)  # fmt: skip


def _reach_text(a, machine: str) -> str:
    reach = a.retiming.reach
    reach = reach[reach["machine"].eq(machine)]
    if reach.empty:
        return "No chosen configuration has a projected curve on this machine."
    cells = a.chosen.drop_duplicates("config_id").set_index("config_id")
    keys = [c for c in varying(a.chosen, ["seq_len", "n_embd", "n_layer", "attention", "init"])]
    measured = a.summary.set_index("config_id")["train_time_s_to_target"]
    rows = []
    for _, row in reach.iterrows():
        out = {k: cells.loc[row["config_id"], k] for k in keys if row["config_id"] in cells.index}
        out.update(arm=row["arm"], target=row["target"], reached=f"{row['n_reached']}/{row['n_seeds']}")
        out["projected median (s)"] = row["projected_time_s_to_target"]
        out["speedup"] = _ratio(row)
        out["measured here, median (s)"] = measured.get(row["config_id"], np.nan)
        rows.append(out)
    return (
        "Projected time to target (the report's targets; median over test seeds, censored: — when fewer than half "
        "reached it; speedup: the chosen standard configuration's median over this one's, 95% bootstrap interval; "
        "the last column is the time measured on the study's own machine, for comparison):\n\n"
        + md_table(pd.DataFrame(rows))
    )


def _ratio(row) -> str:
    if not np.isfinite(row["speedup"]):
        return "—"
    interval = (
        f" [{row['speedup_ci_low']:.2f}, {row['speedup_ci_high']:.2f}]" if np.isfinite(row["speedup_ci_low"]) else ""
    )
    return f"{row['speedup']:.2f}x{interval}"


def _verdict_text(r, machine: str, metric: str) -> str:
    v = r.verdicts[r.verdicts["machine"].eq(machine)] if len(r.verdicts) else r.verdicts
    if v.empty:
        return "No projected verdict: no cell has both a standard arm and another arm re-timed on this machine."
    lines = []
    for _, row in v.iterrows():
        cell = ", ".join(f"{c} {fmt(row[c])}" for c in ("seq_len", "n_embd", "attention", "init") if c in row)
        lines.append(f"- {row['sentence']} [{cell}]")
    return f"Projected verdicts (arm minus standard, {metric} at the budget):\n\n" + "\n".join(lines)
