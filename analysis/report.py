"""The analysis pipeline and the only writer: report.md (or .html), summary.csv and the plots.

`analyze(study)` turns a loaded study into frames (pure); `write_report(analysis, out_dir)` renders them
(markdown text from analysis.render, tables from analysis.tables, figures from analysis.figures).
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis import (
    approach3,
    axes,
    brackets,
    caveats,
    figures,
    interactions,
    isoflop,
    pareto,
    regime,
    render,
    scaling,
    stats,
    tables,
    tuning,
    verdicts,
)
from analysis.figures import PLOTS  # noqa: F401  (re-exported: the report's file names)
from analysis.load import Study
from analysis.retime import Retiming, retime
from analysis.tables import config_label, md_table  # noqa: F401  (re-exported for the CLI and tests)
from analysis.targets import default_targets, target_summary, time_to_target
from wt_base.errors import StudyError

SEED_AT_S = 120.0  # the seed's "Loss @ 120s" column
FRONTS = (("train_time_s", "loss vs train time"), ("flops", "loss vs FLOPs"))


@dataclass(frozen=True)
class Analysis:
    """Every frame the report shows; each comes from a pure function of the study."""

    study: Study
    metric: str
    target_loss: float | None  # --target-loss, or None for the default target per cell
    final: pd.DataFrame  # one row per trial (stats.final_values)
    chosen: pd.DataFrame  # one row per (cell, arm): the setting its verdicts use (tuning.choose_settings)
    summary: pd.DataFrame  # one row per configuration, with time-to-target
    verdicts: pd.DataFrame  # verdicts.verdicts
    curves: dict  # x column -> per-trial best-so-far curves (one evaluation set) with arch, seq_len, attention
    fronts: pd.DataFrame  # columns front, seq_len, attention, scope, config_id, cost, best_loss (seed means)
    seed_curves: pd.DataFrame  # stats.seed_curves of the metric vs train time
    throughput: pd.DataFrame
    speedups: pd.DataFrame
    fits: pd.DataFrame
    loss_at: pd.DataFrame  # trial_id, loss_at (the seed's Loss @ 120s)
    regime: pd.DataFrame  # regime.stopped_improving per trial
    regime_warnings: list  # sentences: compared configurations whose val loss had stopped improving
    interactions: pd.DataFrame  # interactions.interaction_table: differences-in-differences of crossed factors
    isoflop: dict  # frame (per run), profiles, fits, differences, approach3, comparison, or {"why_not": ...}
    caveats: list  # every warning of the report (regime, step speeds, grid edges), printed first
    targets: pd.DataFrame  # targets.default_targets: per trial, the loss its cell must reach
    axes: pd.DataFrame  # axes.axis_table: each comparison at equal steps, tokens, targets, FLOPs and time
    axis_curves: pd.DataFrame  # axes.axis_curves: the chosen settings' seed means along every axis
    tuning: pd.DataFrame = None  # brackets.tuning_points: each arm's loss at every value of its tuned setting
    tuning_seeds: pd.DataFrame = None  # brackets.seed_points: the choosing seeds behind it
    retiming: Retiming | None = None  # retime.retime on the --timing profiles; None without them

    @property
    def warnings(self) -> list[str]:
        return [*self.regime_warnings, *self.caveats]


def analyze(
    study: Study,
    metric: str = "val_loss",
    target_loss: float | None = None,
    profiles: pd.DataFrame | None = None,
    timing_budget_s: float | None = None,
    timing_with_eval: bool = False,
) -> Analysis:
    """Every frame of the report. `profiles` (analysis.profiles.read_profiles) re-times the study on each
    profiled machine (analysis.retime), at `timing_budget_s` (None: per cell the longest budget covered)."""
    final = stats.final_values(study.trials, study.metrics, metric)
    chosen = tuning.choose_settings(final)
    points = stats.curve_points(study.metrics, final)
    shape = final[["trial_id", "arch", "seq_len", "attention"]]
    curves, fronts = {}, []
    for x, name in FRONTS:
        c = pareto.best_so_far(points, metric, x).merge(shape, on="trial_id", how="inner")
        curves[x] = c
        means = stats.seed_curves(c, final, "best_loss", x, common=True)
        front = pareto.config_fronts(means, final, x, chosen["config_id"].dropna())
        fronts.append(front.rename(columns={x: "cost"}).assign(front=name))
    own_unit = pareto.budget_curves(points, final, metric)  # a tune-seed target at 80% of the budget's own unit
    targets = default_targets(final, chosen, own_unit, target_loss, x=pareto.BUDGET_USED)
    reach = time_to_target(curves["train_time_s"], targets)
    summary = stats.config_summary(final).merge(target_summary(reach, final, chosen), on="config_id", how="left")
    throughput = scaling.throughput_summary(final)
    trial_regime = regime.stopped_improving(points, final, metric)
    timed = None
    if profiles is not None:
        timed = retime(final, chosen, points, targets, profiles, metric, timing_budget_s, timing_with_eval)
    projected = None if timed is None else timed.curves
    tuned = brackets.tuning_points(final, chosen)
    return Analysis(
        study=study,
        metric=metric,
        target_loss=target_loss,
        final=final,
        chosen=chosen,
        summary=summary,
        verdicts=verdicts.verdicts(final, chosen),
        curves=curves,
        fronts=pd.concat(fronts, ignore_index=True),
        seed_curves=stats.seed_curves(points, final, metric),
        throughput=throughput,
        speedups=scaling.speedup_vs_interval(throughput),
        fits=scaling.power_law_fits(final, chosen),
        loss_at=pareto.loss_at(points, metric, SEED_AT_S),
        regime=trial_regime,
        regime_warnings=regime.regime_warnings(trial_regime, final, chosen),
        interactions=interactions.interaction_table(final, chosen),
        isoflop=_isoflop(final, chosen),
        caveats=[*caveats.throughput_consistency(final), *caveats.edge_of_grid(final, chosen)],
        targets=targets,
        axes=axes.axis_table(points, final, chosen, metric, projected),
        axis_curves=axes.axis_curves(points, final, chosen, metric, None if timed is None else timed.means),
        tuning=tuned,
        tuning_seeds=brackets.seed_points(final, tuned),
        retiming=timed,
    )


def _isoflop(final: pd.DataFrame, chosen: pd.DataFrame) -> dict:
    """Compute-optimal frontiers per arm (analysis.isoflop), when the study has several FLOP budgets."""
    frame = scaling.isoflop_frame(final, chosen)
    why_not = scaling.isoflop_ready(frame, final)
    if why_not:
        return {"why_not": why_not}
    profiles = isoflop.isoflop_profiles(frame)
    fits = isoflop.frontier_fits(profiles)
    surfaces, comparison = approach3.cross_check(frame, profiles, fits)  # Chinchilla's approach 3 beside approach 2
    return {
        "frame": frame,
        "profiles": profiles,
        "fits": fits,
        "differences": isoflop.frontier_difference(profiles),
        "approach3": surfaces,
        "comparison": comparison,
    }


def verdict_table(a: Analysis) -> pd.DataFrame:
    """The verdicts as the terminal shows them: in words with their intervals (the report's first table)."""
    return tables.verdict_glance(a.verdicts)


def write_report(a: Analysis, out_dir, fmt_: str = "md", target_loss: float | None = None) -> Path:
    """Write the plots, summary.csv and report.md (plus report.html, the plots embedded, for fmt_="html"); returns
    the report path. Everything is written into a temporary folder beside `out_dir` first and moved into place at
    the end, so an interrupted report (Ctrl-C, a full disk) leaves `out_dir` as it was."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise StudyError(f"--out {str(out)!r} is a file: expected a directory for the report (new or existing).")
    out.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".tmp-{out.name}-", dir=out.parent))
    try:
        report = _write_files(a, temp, fmt_, target_loss)
        out.mkdir(exist_ok=True)
        for path in temp.iterdir():  # each file replaced whole: a reader never sees half a report file
            os.replace(path, out / path.name)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return out / report


def _write_files(a: Analysis, out: Path, fmt_: str, target_loss: float | None) -> str:
    """Every file of the report into the folder `out`; returns the report's file name."""
    written = []
    for file_name, fig in figures.figures(a).items():
        fig.savefig(out / file_name, dpi=110)
        fig.clear()
        written.append(file_name)
    a.summary.to_csv(out / "summary.csv", index=False)
    a.verdicts.to_csv(out / "verdicts.csv", index=False)
    a.interactions.to_csv(out / "interactions.csv", index=False)
    if "profiles" in a.isoflop:
        drop = ["boot_log10_n_opt", "boot_loss_opt"]  # bootstrap replicates: arrays, not table cells
        a.isoflop["profiles"].drop(columns=drop, errors="ignore").to_csv(out / "isoflop_profiles.csv", index=False)
        a.isoflop["fits"].to_csv(out / "isoflop_fits.csv", index=False)
        a.isoflop["differences"].to_csv(out / "isoflop_differences.csv", index=False)
        a.isoflop["frame"].to_csv(out / "isoflop_runs.csv", index=False)  # one row per run: the data behind both
        a.isoflop["approach3"].to_csv(out / "isoflop_approach3.csv", index=False)
        a.isoflop["comparison"].to_csv(out / "isoflop_comparison.csv", index=False)
    a.axes.to_csv(out / "axes.csv", index=False)
    a.tuning.to_csv(out / "tuning.csv", index=False)
    if a.retiming is not None:
        a.retiming.verdicts.to_csv(out / "timing_verdicts.csv", index=False)
        a.retiming.reach.to_csv(out / "timing_reach.csv", index=False)
    # every warning the report prints, for any page that quotes it (docs/findings.md carries them)
    (out / "warnings.md").write_text(render.warnings_section(a) + "\n", encoding="utf-8")
    text = render.render(a, a.target_loss if target_loss is None else target_loss)
    (out / "report.md").write_text(text, encoding="utf-8")
    if fmt_ == "html":  # one file: the plots inside it, as data URIs (it can be mailed or attached alone)
        images = {
            name: "data:image/png;base64," + base64.b64encode((out / name).read_bytes()).decode("ascii")
            for name in written
        }
        (out / "report.html").write_text(render.markdown_to_html(text, a.study.name, images), encoding="utf-8")
        return "report.html"
    return "report.md"
