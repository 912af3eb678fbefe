"""Figures from analysis frames (seaborn + matplotlib). Nothing here reads or writes files.

Figures are plain `matplotlib.figure.Figure` objects rendered by the Agg canvas; pyplot (and its global figure
registry and backend selection) is never touched, so building a figure has no side effects. A plot whose data
is missing or too thin is still drawn, with a note saying what is missing, so every report has every figure.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullLocator

from analysis.configs import STANDARD
from analysis.plot_base import (
    LINE_STYLES,
    arm_order,
    bits_axis,
    cell_names,
    figure_legend,
    fit_ylim,
    log_axis,
    new_figure,
    note,
    palette,
    row_ends,
    segments,
    set_suptitle,
    thin_lines,
    wrapped_title,
)


def pareto_plot(
    curves: pd.DataFrame,
    fronts: pd.DataFrame,
    x: str,
    xlabel: str,
    ylabel: str,
    title: str,
    tuned: str = "",
) -> Figure:
    """One panel per (seq_len, attention): trial best-so-far curves (thin, one colour per arm), each arm's front
    of its chosen configurations' seed-mean curves as a step line, and the lowest of all configurations dashed
    black on top (drawn last: where it follows an arm's front it shows over it). One legend under the panels.

    `curves` has trial_id, arm, seq_len, attention, x and best_loss; `fronts` (pareto.config_fronts) has
    seq_len, attention, scope ("all" or an arm label, as in `curves`), config_id, x, best_loss and n_configs.
    `tuned` names the settings each arm chose ("lr": "standard, its chosen lr"; "" when none was tuned). Panel
    titles count the configurations behind each front. The y range holds every front point; single trials may
    leave its top (their first evaluations), never its bottom.
    """
    data = curves[np.isfinite(curves["best_loss"]) & (curves[x] > 0)]
    groups = sorted(data.groupby(["seq_len", "attention"], sort=True).groups) or [None]
    fig, axes = new_figure(len(groups), width=5.0 if len(groups) > 1 else 7.0)
    colors = palette(pd.concat([data["arm"], fronts.loc[fronts["scope"].ne("all"), "scope"]]))
    one_attention = data["attention"].nunique() <= 1
    labels = _front_labels(fronts, tuned)
    for ax, group in zip(axes, groups, strict=True):
        if group is None:
            note(ax, f"not enough data: no finite loss with {xlabel} > 0")
            ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
            continue
        panel = data[(data["seq_len"] == group[0]) & (data["attention"] == group[1])]
        front = fronts[(fronts["seq_len"] == group[0]) & (fronts["attention"] == group[1]) & (fronts[x] > 0)]
        for arm, trials in panel.groupby("arm", sort=True):
            thin_lines(ax, segments(trials, "trial_id", x, "best_loss"), colors[arm], 0.6, 0.25)
        ax.plot([], [], color="grey", lw=0.6, alpha=0.6, label="each trial (one seed), best so far")
        for scope in sorted(arm_order(front["scope"]), key=lambda s: s == "all"):  # "all" last: drawn on top
            line = front[front["scope"] == scope].sort_values(x)
            if scope == "all":
                style = dict(color="black", lw=1.3, ls=(0, (4, 2)), zorder=4)
            else:
                style = dict(color=colors[scope], lw=2.4, alpha=0.9, zorder=3)
            ax.step(line[x], line["best_loss"], where="post", label=labels[scope], **style)
        ax.set_xscale("log")
        log_axis(ax.xaxis, panel[x])
        ax.autoscale_view()
        fit_ylim(ax, front["best_loss"], also=panel["best_loss"])
        where = f"seq_len {group[0]}" + ("" if one_attention else f", {group[1]} attention")
        ax.set(xlabel=xlabel, ylabel=ylabel)
        ax.set_title(where + _front_counts(front), fontsize=10)
    for ax in row_ends(axes):
        bits_axis(ax)
    figure_legend(fig, axes)
    set_suptitle(fig, title)
    return fig


def _front_labels(fronts: pd.DataFrame, tuned: str) -> dict:
    """scope -> its legend label, the same in every panel: what a front is the lowest of, in words."""
    arms = fronts[fronts["scope"].ne("all")]
    pooled = bool(len(arms)) and arms["n_configs"].max() > 1  # a front over several cells of one arm
    if tuned:
        words = f"lowest of its configurations at their chosen {tuned}" if pooled else f"its chosen {tuned}"
    else:
        words = "lowest of its configurations" if pooled else ""
    labels = {scope: f"{scope}, {words}" if words else scope for scope in arms["scope"].unique()}
    return labels | {"all": "lowest of all configurations" + (" (any arm, any setting)" if tuned else "")}


def _front_counts(front: pd.DataFrame) -> str:
    """A panel title's second line: how many configurations the panel has and how many each arm's front is
    drawn from ("3 configurations, 1 per arm"; "24 configurations; fronts over the chosen 1 per arm")."""
    counts = front.drop_duplicates("scope").set_index("scope")["n_configs"].astype(int)
    arms = counts.drop("all", errors="ignore")
    if arms.empty:
        return ""
    each = (
        f"{arms.iloc[0]} per arm" if arms.nunique() == 1 else ", ".join(f"{arms[s]} {s}" for s in arm_order(arms.index))
    )
    if "all" not in counts:
        return f"\nfronts over {each}"
    if arms.sum() == counts["all"]:
        return f"\n{counts['all']} configurations, {each}"
    return f"\n{counts['all']} configurations; fronts over the chosen {each}"


def curves_plot(
    seed_curves: pd.DataFrame, configs: pd.DataFrame, highlight: set, x: str, ylabel: str, title: str
) -> Figure:
    """Loss vs train time per configuration, faceted by seq_len: all configurations thin, the `highlight`
    configuration ids (each arm's chosen setting, tuning.choose_settings) with their mean and, with two seeds or
    more, their 95% CI band over test seeds. The y range holds every highlighted point and band; the thin
    lines of other settings may leave its top."""
    cells = configs[configs["config_id"].isin(highlight)]
    data = seed_curves.merge(configs[["config_id", "arm", "seq_len"]], on="config_id", how="inner")
    data = data[np.isfinite(data["mean"])]
    seq_lens = sorted(data["seq_len"].dropna().unique()) or [None]
    fig, axes = new_figure(len(seq_lens), width=5.0 if len(seq_lens) > 1 else 7.0)
    colors = palette(configs["arm"])
    for ax, seq_len in zip(axes, seq_lens, strict=True):
        if seq_len is None:
            note(ax, "not enough data: no evaluation points")
            ax.set(xlabel="train time (s)", ylabel=ylabel, title=title)
            continue
        facet = data[data["seq_len"] == seq_len]
        names = cell_names(cells[cells["seq_len"] == seq_len])
        styles = dict(zip(sorted(set(names.values())), LINE_STYLES * len(names), strict=False))
        shown = []
        for arm in arm_order(facet["arm"]):
            group = facet[facet["arm"] == arm]
            thin_lines(ax, segments(group, "config_id", x, "mean"), colors[arm], 0.5, 0.3)
            for config_id, g in group[group["config_id"].isin(highlight)].groupby("config_id"):
                name = names.get(config_id, "")
                every = g[g["n"].eq(g["n_seeds"])]  # grid points every seed covers; the tail has fewer seeds
                n = int(g["n_seeds"].max())
                label = f"{arm}{', ' + name if name else ''} (chosen setting, {n} test seed{'s' * (n != 1)})"
                ax.plot(every[x], every["mean"], color=colors[arm], lw=2, ls=styles.get(name, "-"), label=label)
                ax.fill_between(every[x], every["ci_low"], every["ci_high"], color=colors[arm], alpha=0.2, lw=0)
                shown += [g["mean"], every["ci_low"], every["ci_high"]]
                tail = g[g[x] >= (every[x].max() if len(every) else -np.inf)]
                if len(tail) > 1:  # where some seeds had stopped: thin and dotted, with how many remain
                    ax.plot(tail[x], tail["mean"], color=colors[arm], lw=0.8, ls=":")
                    ax.annotate(
                        f"{int(tail['n'].iloc[-1])} of {int(tail['n_seeds'].iloc[-1])} seeds",
                        (tail[x].iloc[-1], tail["mean"].iloc[-1]),
                        fontsize=6,
                        color=colors[arm],
                    )
        if not facet["config_id"].isin(highlight).all():
            ax.plot([], [], color="grey", lw=0.5, alpha=0.6, label="other configurations' seed means (thin)")
        ax.autoscale_view()
        fit_ylim(ax, pd.concat(shown) if shown else [], also=facet["mean"])
        ax.set(xlabel="train time (s)", ylabel=ylabel, title=f"seq_len {seq_len}")
    for ax in row_ends(axes):
        bits_axis(ax)
    figure_legend(fig, axes)
    set_suptitle(fig, title)
    return fig


def scaling_plot(points: pd.DataFrame, fits: pd.DataFrame, ylabel: str, title: str) -> Figure:
    """Final loss vs parameters (log-log): seed means with 95% CI per arm, power-law fits overlaid.

    `points` has arm, n_params, mean, ci_low, ci_high; `fits` comes from scaling.power_law_fits.
    """
    fig, (ax,) = new_figure()
    points = points[np.isfinite(points["mean"]) & (points["n_params"] > 0)]
    colors = palette(points["arm"])
    for arm in arm_order(points["arm"]):
        group = points[points["arm"] == arm]
        err = np.vstack([group["mean"] - group["ci_low"], group["ci_high"] - group["mean"]])
        ax.errorbar(
            group["n_params"],
            group["mean"],
            yerr=np.nan_to_num(err),
            fmt="o",
            color=colors[arm],
            capsize=3,
            label=f"{arm}: seed mean, 95% CI",
            alpha=0.8,
        )
    fitted = fits[fits["fitted"].astype(bool)]
    xs = np.geomspace(points["n_params"].min(), points["n_params"].max(), 100) if len(points) else []
    for arm, arm_fits in fitted.groupby("arm", sort=True):
        label = f"{arm}: {len(arm_fits)} fit(s), alpha {arm_fits['alpha'].min():.2f}–{arm_fits['alpha'].max():.2f}"
        for _, fit in arm_fits.iterrows():
            ax.plot(
                xs,
                fit["E"] + fit["A"] * xs ** -fit["alpha"],
                color=colors.get(arm, "black"),
                lw=1.2,
                alpha=0.7,
                label=label,
            )
            label = None
    sizes = points["n_params"].nunique()
    if sizes < 2:
        note(ax, f"not enough data: {sizes} model size(s); a scaling curve needs several n_embd / n_layer values")
    elif not fits["fitted"].astype(bool).any():
        ax.text(0.02, 0.02, "no power-law fit: a series needs >= 4 model sizes", transform=ax.transAxes, fontsize=8)
    if not points.empty:
        ax.set_xscale("log")
        ax.set_yscale("log")
        log_axis(ax.xaxis, points["n_params"])
        log_axis(ax.yaxis, pd.concat([points["ci_low"], points["mean"], points["ci_high"]]))
    figure_legend(fig, [ax])
    ax.set(xlabel="parameters", ylabel=ylabel, title=wrapped_title(fig, title))
    if not points.empty:
        bits_axis(ax)
    return fig


def throughput_plot(throughput: pd.DataFrame, title: str) -> Figure:
    """Tokens/s and steps/s vs seq_len per arm (colour), and per attention implementation (marker and line
    style) where the study has more than one. Shapes that differ in more than seq_len (model sizes) are averaged
    per seq_len, and the title says over how many."""
    fig, axes = new_figure(2, width=5.5)
    if throughput.empty:
        for ax in axes:
            note(ax, "not enough data: no throughput measurements")
    colors = palette(throughput["arm"])
    attentions = sorted(throughput["attention"].dropna().unique())
    markers = dict(zip(attentions, "osD^v", strict=False))
    styles = dict(zip(attentions, LINE_STYLES, strict=False))
    shapes = throughput.groupby(["arm", "attention", "seq_len"])["arm"].transform("size") if len(throughput) else []
    for ax, value, label in zip(
        axes, ("tokens_per_s_mean", "steps_per_s_mean"), ("tokens / s", "steps / s"), strict=True
    ):
        ax.set(xlabel="sequence length (tokens)", ylabel=label, title=label)
        if throughput.empty:
            continue
        for arm in arm_order(throughput["arm"]):
            for attention in attentions:
                rows = throughput[throughput["arm"].eq(arm) & throughput["attention"].eq(attention)]
                line = rows.groupby("seq_len", as_index=False)[value].mean()
                name = arm if len(attentions) == 1 else f"{arm}, {attention} attention"
                ax.plot(
                    line["seq_len"], line[value], color=colors[arm], marker=markers[attention],
                    ls=styles[attention], label=name,
                )  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        seq_lens = sorted(throughput["seq_len"].dropna().unique())
        ax.xaxis.set_major_locator(FixedLocator(seq_lens))
        ax.xaxis.set_major_formatter(FormatStrFormatter("%d"))
        ax.xaxis.set_minor_locator(NullLocator())
        log_axis(ax.yaxis, throughput[value])
    figure_legend(fig, axes)
    sizes = int(np.max(shapes)) if len(shapes) else 1
    set_suptitle(fig, title + (f" (per seq_len, the mean over {sizes} model shapes)" if sizes > 1 else ""))
    return fig


def interval_plot(losses: pd.DataFrame, speedups: pd.DataFrame, ylabel: str, title: str) -> Figure:
    """Left: final loss (mean, 95% CI) vs worker interval per seq_len, the standard model as a dashed line.
    Right: worker tokens/s over the standard model's vs interval. One legend under both panels.

    `losses` has arch, worker_interval, seq_len, mean, ci_low, ci_high; `speedups` comes from
    scaling.speedup_vs_interval.
    """
    fig, (left, right) = new_figure(2, width=5.5)
    workers = losses[losses["arch"] != STANDARD].dropna(subset=["worker_interval", "mean"])
    seq_lens = sorted(losses["seq_len"].dropna().unique())
    seq_colors = dict(zip(seq_lens, sns.color_palette("viridis", max(len(seq_lens), 1)), strict=False))
    if workers.empty:
        note(left, "not enough data: no completed worker trials")
    for (arch, seq_len), group in workers.groupby(["arch", "seq_len"], sort=True):
        group = group.sort_values("worker_interval")
        err = np.vstack([group["mean"] - group["ci_low"], group["ci_high"] - group["mean"]])
        left.errorbar(
            group["worker_interval"].astype(float),
            group["mean"],
            yerr=np.nan_to_num(err),
            capsize=3,
            marker="o" if arch == "worker" else "s",
            color=seq_colors[seq_len],
            label=f"{arch}, seq_len {seq_len}",
        )
    flat = losses[losses["worker_interval"].isna()]  # architectures without an interval: one line each
    styles = dict(zip(arm_order(flat["arch"]), ("--", ":", "-.", (0, (5, 1))), strict=False))
    for (arch, seq_len), group in flat.groupby(["arch", "seq_len"], sort=True):
        left.axhline(
            group["mean"].min(), color=seq_colors[seq_len], ls=styles.get(arch, "--"), lw=1,
            label=f"{arch} (no k), seq_len {seq_len}",
        )  # fmt: skip
    left.set(xlabel="worker interval k", ylabel=ylabel, title="final loss vs worker interval")
    if speedups.empty:
        note(right, "not enough data: no worker and standard throughput at the same shape")
    for (arch, seq_len), group in speedups.groupby(["arch", "seq_len"], sort=True):
        group = group.groupby("worker_interval", as_index=False)["speedup"].mean()
        right.plot(
            group["worker_interval"].astype(float),
            group["speedup"],
            marker="o",
            color=seq_colors.get(seq_len, "black"),
            label=f"{arch}, seq_len {seq_len}",
        )
    right.axhline(1.0, color="grey", lw=1)
    right.set(xlabel="worker interval k", ylabel="tokens/s relative to standard", title="throughput speedup")
    intervals = sorted(workers["worker_interval"].dropna().astype(int).unique())
    for ax in (left, right):
        if intervals:
            ax.set_xticks(intervals)
    figure_legend(fig, [left, right])
    set_suptitle(fig, title)
    return fig
