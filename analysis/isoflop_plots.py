"""IsoFLOP figures: profiles per budget and the compute-optimal frontier (pure: frames in, Figures out).

Figures are plain `matplotlib.figure.Figure` objects on the Agg canvas; pyplot (its global figure registry and
backend selection) is never touched and nothing is saved or shown. Log axes carry few labelled ticks
(plot_base.log_axis), and each panel's legend sits under it, outside the data.
"""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.plot_base import (
    arm_order,
    bits_axis,
    log_axis,
    new_figure,
    palette,
    panel_legend,
    row_ends,
    tick_label,
)


def _budget_colours(budgets) -> dict:
    budgets = sorted(set(budgets))
    cmap = matplotlib.colormaps["viridis"]
    return {b: cmap(0.85 * i / max(len(budgets) - 1, 1)) for i, b in enumerate(budgets)}


def _errors(centre: float, low: float, high: float):
    """An errorbar half-width pair, or None where the interval is not finite."""
    return [[centre - low], [high - centre]] if np.isfinite([centre, low, high]).all() else None


def _profile_panel(ax, points: pd.DataFrame, profiles: pd.DataFrame, colours: dict) -> list:
    """Seeds, size means, the parabola over the sampled sizes and the optimum with its intervals, per budget."""
    xs = []
    for _, p in profiles.sort_values("budget_flops").iterrows():
        colour, data = colours[p["budget_flops"]], points[points["budget_flops"].eq(p["budget_flops"])]
        ax.scatter(data["n_params"], data["final_loss"], s=8, color=colour, alpha=0.35, lw=0)
        means = data.groupby("n_params")["final_loss"].mean()
        label = f"C={tick_label(p['budget_flops'])}" + (f", {p['n_diverged']} diverged" if p["n_diverged"] else "")
        label += "" if p["identified"] else ", not identified"
        ax.plot(means.index, means.to_numpy(), "o", color=colour, ms=4, label=label)
        xs += list(means.index)
        if isinstance(p["parabola"], tuple):
            u = np.linspace(p["log10_n_min"], p["log10_n_max"], 100)
            ls = "-" if p["identified"] else "--"
            ax.plot(10**u, np.polyval(p["parabola"][::-1], u), ls, color=colour, lw=1.2)
        if 10 ** p["log10_n_min"] <= p["n_opt"] <= 10 ** p["log10_n_max"]:  # False for NaN, 0 and inf
            xerr = _errors(p["n_opt"], p["n_opt_low"], p["n_opt_high"])
            yerr = _errors(p["loss_opt"], p["loss_opt_low"], p["loss_opt_high"])
            marker = dict(marker="*", ms=11, mfc=colour) if p["identified"] else dict(marker="X", ms=8, mfc="white")
            ax.errorbar(p["n_opt"], p["loss_opt"], xerr=xerr, yerr=yerr, color="black", capsize=2, lw=0.8, **marker)
    return xs


def isoflop_figure(frame: pd.DataFrame, profiles: pd.DataFrame) -> Figure:
    """One panel per arm: final loss vs N per budget (seeds faint, size means as dots, one colour per budget),
    the fitted parabola over the sampled sizes (dashed where not identified) and the optimum (star) with its
    n_opt and loss_opt intervals. An optimum outside the sampled sizes is not drawn: it would be extrapolated."""
    arms = arm_order(profiles["arm"])
    fig, axes = new_figure(len(arms), width=6.0)
    colours = _budget_colours(profiles["budget_flops"])
    for ax, arm in zip(axes, arms, strict=True):
        xs = _profile_panel(ax, frame[frame["arm"].eq(arm)], profiles[profiles["arm"].eq(arm)], colours)
        ax.set_xscale("log")
        log_axis(ax.xaxis, xs)
        ax.set(xlabel="parameters N", ylabel="final loss (nats)", title=f"{arm}: isoFLOP profiles")
        panel_legend(ax)
    for ax in row_ends(axes):
        bits_axis(ax)
    return fig


def _frontier_panel(ax, profiles: pd.DataFrame, fits: pd.DataFrame, name: str, colours: dict) -> list:
    """`name` (n_opt or loss_opt) vs C per arm with intervals, and the arm's power law over its used budgets."""
    ys = []
    for arm in arm_order(profiles["arm"]):
        rows = profiles[profiles["arm"].eq(arm)].sort_values("budget_flops")
        inside = rows["n_opt"].astype(float).between(10 ** rows["log10_n_min"], 10 ** rows["log10_n_max"])
        hidden, rows = int((~inside).sum()), rows[inside]
        for identified, part in rows.groupby("identified"):
            low, high = (part[f"{name}_{s}"].to_numpy(float) for s in ("low", "high"))
            y = part[name].to_numpy(float)
            finite = np.isfinite(low) & np.isfinite(high) & (low > 0)
            err = np.where(finite, [y - low, high - y], 0.0)  # an unbounded interval gets no bar (hollow marker)
            style = dict(color=colours[arm], mfc=colours[arm] if identified else "white", capsize=3)
            label = arm if identified else f"{arm} (not identified)"
            ax.errorbar(part["budget_flops"], y, yerr=err, fmt="o", label=label, **style)
            ys += list(y) + list(low[finite]) + list(high[finite])
        if hidden:
            ax.plot([], [], "x", color=colours[arm], label=f"{arm}: {hidden} without an optimum among its sizes")
        fit = fits[fits["arm"].eq(arm)]
        if len(fit) and np.isfinite(fit[f"{name}_exponent"].iloc[0]):
            f = fit.iloc[0]
            c = np.geomspace(min(f["budgets_used"]), max(f["budgets_used"]), 50)
            text = f"{f[f'{name}_exponent']:.3f} [{f[f'{name}_exponent_low']:.3f}, {f[f'{name}_exponent_high']:.3f}]"
            ls = "-" if f["identified"] else "--"
            label = f"{arm} fit: C^{text}"
            ax.plot(c, f[f"{name}_coef"] * c ** f[f"{name}_exponent"], ls, color=colours[arm], label=label)
    return ys


def frontier_figure(profiles: pd.DataFrame, fits: pd.DataFrame) -> Figure:
    """Two panels, log-log: L_opt vs C and N_opt vs C, every arm with its intervals (hollow where not identified,
    without a bar where the interval is unbounded; profiles without a fitted minimum inside their sampled sizes
    are counted in the legend, not drawn) and its fitted power law (frontier_fits, dashed where not
    identified) over the budgets it used, labelled with the exponent and its interval."""
    fig, (loss_ax, n_ax) = new_figure(2, width=6.0)
    colours = palette(profiles["arm"])
    for ax, name, ylabel in ((loss_ax, "loss_opt", "L_opt (nats)"), (n_ax, "n_opt", "N_opt (parameters)")):
        ys = _frontier_panel(ax, profiles, fits, name, colours)
        ax.set_xscale("log")
        ax.set_yscale("log")
        log_axis(ax.xaxis, profiles["budget_flops"])
        log_axis(ax.yaxis, ys)
        ax.set(xlabel="compute C (FLOPs)", ylabel=ylabel, title=f"{ylabel.split()[0]} vs compute")
        panel_legend(ax)
    return fig
