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
from matplotlib.ticker import FormatStrFormatter, LogLocator

from analysis.configs import STANDARD
from analysis.plot_base import (
    LINE_STYLES,
    arm_order,
    cell_names,
    legend,
    log_axis,
    new_figure,
    note,
    palette,
    segments,
    set_suptitle,
    thin_lines,
    wrapped_title,
)


def pareto_plot(curves: pd.DataFrame, fronts: pd.DataFrame, x: str, xlabel: str, ylabel: str, title: str) -> Figure:
    """One panel per (seq_len, attention): trial best-so-far curves (thin, one colour per arch), each arch's front
    of seed-mean curves as a step line, the overall front dashed.

    `curves` has trial_id, arch, seq_len, attention, x and best_loss; `fronts` (pareto.config_fronts) has
    seq_len, attention, scope ("all" or an arch), config_id, x and best_loss.
    """
    data = curves[np.isfinite(curves["best_loss"]) & (curves[x] > 0)]
    groups = sorted(data.groupby(["seq_len", "attention"], sort=True).groups) or [None]
    fig, axes = new_figure(len(groups), width=5.0 if len(groups) > 1 else 7.0)
    colors = palette(data["arch"])
    for ax, group in zip(axes, groups, strict=True):
        if group is None:
            note(ax, f"not enough data: no finite loss with {xlabel} > 0")
            ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
            continue
        panel = data[(data["seq_len"] == group[0]) & (data["attention"] == group[1])]
        front = fronts[(fronts["seq_len"] == group[0]) & (fronts["attention"] == group[1])]
        for arch, trials in panel.groupby("arch", sort=True):
            thin_lines(ax, segments(trials, "trial_id", x, "best_loss"), colors[arch], 0.6, 0.25)
        for scope in arm_order(front["scope"]):
            line = front[front["scope"] == scope].sort_values(x)
            style = dict(color="black", lw=1.2, ls="--") if scope == "all" else dict(color=colors[scope], lw=2.2)
            n = int(line["n_configs"].iloc[0])
            label = f"all {n} configurations (descriptive)" if scope == "all" else f"{scope}, chosen settings ({n})"
            ax.step(line[x], line["best_loss"], where="post", label=label, **style)
        ax.set_xscale("log")
        log_axis(ax.xaxis)
        ax.autoscale_view()
        lo, hi = np.nanpercentile(panel["best_loss"], [0, 99])
        ax.set_ylim(lo - 0.05 * (hi - lo + 1e-9), hi + 0.05 * (hi - lo + 1e-9))
        legend(ax)
        ax.set(xlabel=xlabel, ylabel=ylabel, title=f"seq_len {group[0]}, {group[1]}")
    set_suptitle(fig, title)
    return fig


def curves_plot(
    seed_curves: pd.DataFrame, configs: pd.DataFrame, highlight: set, x: str, ylabel: str, title: str
) -> Figure:
    """Loss vs train time per configuration, faceted by seq_len: all configurations thin, the `highlight`
    configuration ids (each arm's chosen setting, tuning.choose_settings) with their mean and 95% CI band over
    test seeds."""
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
        for arm in arm_order(facet["arm"]):
            group = facet[facet["arm"] == arm]
            thin_lines(ax, segments(group, "config_id", x, "mean"), colors[arm], 0.5, 0.3)
            for config_id, g in group[group["config_id"].isin(highlight)].groupby("config_id"):
                name = names.get(config_id, "")
                every = g[g["n"].eq(g["n_seeds"])]  # grid points every seed covers; the tail has fewer seeds
                label = f"{arm}{', ' + name if name else ''} (chosen setting, mean of {g['n_seeds'].max()} test seeds)"
                ax.plot(every[x], every["mean"], color=colors[arm], lw=2, ls=styles.get(name, "-"), label=label)
                ax.fill_between(every[x], every["ci_low"], every["ci_high"], color=colors[arm], alpha=0.2, lw=0)
                tail = g[g[x] >= (every[x].max() if len(every) else -np.inf)]
                if len(tail) > 1:  # where some seeds had stopped: thin and dotted, with how many remain
                    ax.plot(tail[x], tail["mean"], color=colors[arm], lw=0.8, ls=":")
                    ax.annotate(
                        f"{int(tail['n'].iloc[-1])} of {int(tail['n_seeds'].iloc[-1])} seeds",
                        (tail[x].iloc[-1], tail["mean"].iloc[-1]),
                        fontsize=6,
                        color=colors[arm],
                    )
        ax.autoscale_view()
        lo, hi = np.nanpercentile(facet["mean"], [0, 98])
        ax.set_ylim(lo - 0.05 * (hi - lo + 1e-9), hi + 0.05 * (hi - lo + 1e-9))
        ax.set(xlabel="train time (s)", ylabel=ylabel, title=f"seq_len {seq_len}")
        legend(ax)
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
            label=arm,
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
        log_axis(ax.xaxis)
        ax.yaxis.set_minor_formatter(FormatStrFormatter("%.2f"))  # a loss range spans well under a decade
        ax.yaxis.set_major_formatter(FormatStrFormatter("%.2f"))
        ax.yaxis.set_minor_locator(LogLocator(base=10, subs=np.arange(1.0, 10.0, 0.5), numticks=12))
        legend(ax)
    ax.set(xlabel="parameters", ylabel=ylabel, title=wrapped_title(fig, title))
    return fig


def throughput_plot(throughput: pd.DataFrame, title: str) -> Figure:
    """Tokens/s and steps/s vs seq_len per arm (colour) and attention implementation (line style)."""
    fig, axes = new_figure(2, width=5.5)
    if throughput.empty:
        for ax in axes:
            note(ax, "not enough data: no throughput measurements")
    colors = palette(throughput["arm"])
    for ax, value, label in zip(
        axes, ("tokens_per_s_mean", "steps_per_s_mean"), ("tokens / s", "steps / s"), strict=True
    ):
        if not throughput.empty:
            sns.lineplot(
                data=throughput,
                hue_order=arm_order(throughput["arm"]),
                x="seq_len",
                y=value,
                hue="arm",
                style="attention",
                markers=True,
                errorbar=None,
                palette=colors,
                ax=ax,
            )
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.xaxis.set_major_formatter(FormatStrFormatter("%d"))
            ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
            legend(ax)
        ax.set(xlabel="sequence length (tokens)", ylabel=label, title=label)
    set_suptitle(fig, title)
    return fig


def interval_plot(losses: pd.DataFrame, speedups: pd.DataFrame, ylabel: str, title: str) -> Figure:
    """Left: final loss (mean, 95% CI) vs worker interval per seq_len, the standard model as a dashed line.
    Right: worker tokens/s over the standard model's vs interval.

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
            label=f"{arch}, seq_len {seq_len}",
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
        legend(ax)
    set_suptitle(fig, title)
    return fig
