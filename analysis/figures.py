"""The report's figures: which plots a study gets (the others are left out, with the reason) and the Figures,
from an `analysis.report.Analysis`. The plots themselves are in analysis.plots and analysis.isoflop_plots."""

from __future__ import annotations

from analysis.axes import MEASURED_AXES
from analysis.configs import TUNED_FIELDS, varying
from analysis.isoflop_plots import frontier_figure, isoflop_figure
from analysis.pareto import arm_labels
from analysis.plot_base import loss_label, tick_label
from analysis.plots import curves_plot, interval_plot, pareto_plot, scaling_plot, throughput_plot
from analysis.plots_axes import axes_plot, timing_plot
from analysis.plots_tuning import tuning_plot

PLOTS = ("pareto_time.png", "pareto_flops.png", "curves.png", "scaling_params.png", "isoflop.png", "frontier.png")
PLOTS += ("throughput.png", "interval.png", "axes.png", "timing.png", "tuning.png")


MIN_SIZE_SPREAD = 1.5  # a scaling plot needs sizes at least this far apart (largest / smallest n_params)


def left_out(a) -> dict:
    """File name -> why that plot would show nothing and is left out of the report (the others are drawn)."""
    out = {}
    chosen = a.summary[a.summary["config_id"].isin(a.chosen["config_id"].dropna()) & a.summary["mean"].notna()]
    spread = chosen.groupby("arm")["n_params"].agg(lambda n: n.max() / n.min() if n.min() > 0 else 1.0)
    if spread.empty:
        out["scaling_params.png"] = "no chosen configuration has a finished test seed yet"
    elif spread.max() < MIN_SIZE_SPREAD:
        out["scaling_params.png"] = (
            f"every arm's model sizes lie within {spread.max():.3g}x of each other, and a scaling plot needs at "
            f"least {MIN_SIZE_SPREAD:g}x: vary n_embd or n_layer"
        )
    intervals = a.final["worker_interval"].dropna().unique()
    if len(intervals) < 2:
        out["interval.png"] = (
            f"the study has {len(intervals)} worker interval(s): loss and speed against k need at least two"
        )
    if a.throughput.empty:
        out["throughput.png"] = "no trial has a throughput measurement yet"
    if "why_not" in a.isoflop:
        out["isoflop.png"] = out["frontier.png"] = a.isoflop["why_not"]
    if a.axis_curves.empty:
        out["axes.png"] = "no comparison has a standard model and another arm with curves every seed covers"
    if a.tuning.empty:
        out["tuning.png"] = "no arm tried more than one value of a numeric tuned setting (lr, weight decay, ...)"
    if a.retiming is None:
        out["timing.png"] = "no machine profile given (wt-study analyze --timing PROFILE)"
    elif a.retiming.means.empty:
        out["timing.png"] = "no chosen configuration's trials have a profiled shape"
    return out


def _axis_labels(a) -> dict:
    """The axes plot's panels: every measured axis, then each profiled machine's projected time."""
    labels = {axis: label for axis, label in MEASURED_AXES.items()}
    machines = a.retiming.machines if a.retiming is not None else []
    return labels | {m: f"projected time on {m} (s)" for m in machines}


def _tuned_word(a) -> str:
    """The tuned settings that vary in the study ("lr", "lr and weight_decay"; "" for none), for the Pareto
    legend's "standard, its chosen lr"."""
    return " and ".join(varying(a.final, TUNED_FIELDS))


def _with_arms(a, curves):
    """Per-trial curves with each trial's arm label, as the fronts name arms (pareto.arm_labels)."""
    arms = a.final[["trial_id", "arm_key"]].assign(arm=a.final["arm_key"].map(arm_labels(a.final)))
    return curves.merge(arms[["trial_id", "arm"]], on="trial_id", how="inner")


def _curves_title(a, chosen) -> str:
    """The curves plot's title: the interval it draws, or why it draws none (one test seed)."""
    seeds = a.seed_curves.loc[a.seed_curves["config_id"].isin(chosen["config_id"]), "n_seeds"]
    most = int(seeds.max()) if len(seeds) else 0
    if most < 2:
        seeds = "1 test seed" if most == 1 else "no finished test seed"
        return f"{a.metric} vs train time, chosen settings ({seeds}: no interval)"
    fewest = int(seeds.min())
    counts = f"{most}" if fewest == most else f"{fewest}–{most}"
    return f"{a.metric} vs train time, chosen settings' mean and 95% CI over {counts} test seeds"


def figures(a) -> dict:
    """File name -> Figure for every plot in PLOTS that `left_out` keeps, from an `analysis.report.Analysis`."""
    name, m = a.study.name, a.metric
    budgets = a.final[["budget_kind", "budget_value"]].drop_duplicates()
    budget = "budget " + ", ".join(f"{tick_label(v)} {k}" for k, v in budgets.itertuples(index=False))
    chosen = a.summary[a.summary["config_id"].isin(a.chosen["config_id"].dropna())]
    fronts = a.fronts.rename(columns={"cost": "x"})
    time_fronts, flop_fronts = (fronts[fronts["front"] == f] for f in ("loss vs train time", "loss vs FLOPs"))
    skip = left_out(a)
    drawn = {
        "pareto_time.png": lambda: pareto_plot(
            _with_arms(a, a.curves["train_time_s"]),
            time_fronts.rename(columns={"x": "train_time_s"}),
            "train_time_s",
            "train time (s)",
            loss_label(f"best {m} so far"),
            f"{name}: Pareto fronts of seed means, {m} vs train time ({budget})",
            tuned=_tuned_word(a),
        ),
        "pareto_flops.png": lambda: pareto_plot(
            _with_arms(a, a.curves["flops"]),
            flop_fronts.rename(columns={"x": "flops"}),
            "flops",
            "training FLOPs",
            loss_label(f"best {m} so far"),
            f"{name}: Pareto fronts of seed means, {m} vs FLOPs ({budget})",
            tuned=_tuned_word(a),
        ),
        "curves.png": lambda: curves_plot(
            a.seed_curves,
            a.final.drop_duplicates("config_id"),
            set(chosen["config_id"]),
            "train_time_s",
            loss_label(m),
            f"{name}: {_curves_title(a, chosen)} ({budget})",
        ),
        "scaling_params.png": lambda: scaling_plot(
            chosen, a.fits, loss_label(f"final {m}"), f"{name}: final {m} vs parameters ({budget})"
        ),
        "isoflop.png": lambda: isoflop_figure(a.isoflop["frame"], a.isoflop["profiles"]),
        "frontier.png": lambda: frontier_figure(a.isoflop["profiles"], a.isoflop["fits"]),
        "throughput.png": lambda: throughput_plot(a.throughput, f"{name}: training throughput"),
        "interval.png": lambda: interval_plot(
            chosen, a.speedups, loss_label(f"final {m}"), f"{name}: worker interval ({budget})"
        ),
        "axes.png": lambda: axes_plot(
            a.axis_curves,
            a.chosen,
            _axis_labels(a),
            loss_label(m),
            f"{name}: {m} along every axis, chosen settings' seed means",
        ),
        "tuning.png": lambda: tuning_plot(
            a.tuning, a.tuning_seeds, m, f"{name}: final {m} against each arm's tuned setting, per cell"
        ),
        "timing.png": lambda: timing_plot(
            a.retiming.means,
            a.chosen,
            a.retiming.machines,
            loss_label(m),
            f"{name}: {m} vs projected training time per machine",
        ),
    }
    return {file: make() for file, make in drawn.items() if file not in skip}
