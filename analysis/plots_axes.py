"""Loss along other x axes: one panel per axis (steps, tokens, supervised targets, FLOPs, measured time, each
machine's projected time) or per profiled machine, the chosen configurations' seed means (pure: frames in, a
Figure out; nothing here reads or writes files)."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from analysis.configs import set_apart
from analysis.plot_base import (
    CELL_FIELDS,
    LINE_STYLES,
    arm_order,
    bits_axis,
    figure_legend,
    new_figure,
    note,
    palette,
    row_ends,
    segments,
    set_suptitle,
    thin_lines,
)


def panel_curves_plot(
    means: pd.DataFrame, configs: pd.DataFrame, panels: list[tuple], ylabel: str, title: str
) -> Figure:
    """One panel per (panel value, x label) of `panels`: each configuration's mean loss (`means`: panel, config_id,
    x, n, n_seeds, mean) where every one of its seeds covers x, colour per arm, and a line style per cell when
    there are few cells (every line of an arm in one style, with one legend entry per arm, when there are many).
    One legend under the grid; a panel that shows fewer configurations than the others says so in its title.

    `configs` holds the configurations shown (config_id, arm and the cell settings: tuning.choose_settings rows).
    """
    fig, axes = new_figure(len(panels) or 1, width=4.6, height=3.6)
    if not panels:
        note(axes[0], "not enough data: no axis to draw")
        return fig
    colors = palette(configs["arm"])
    names = dict(zip(configs["config_id"], set_apart(configs, ("seq_len", *CELL_FIELDS)), strict=True))
    few = len(set(names.values())) <= len(LINE_STYLES)
    styles = dict(zip(sorted(set(names.values())), LINE_STYLES, strict=False)) if few else {}
    arm_of = configs.set_index("config_id")["arm"]
    shown = means[means["n"].eq(means["n_seeds"]) & np.isfinite(means["mean"])]
    cells = shown.drop_duplicates("config_id")["config_id"].map(arm_of).value_counts()  # per arm, in any panel
    seeds = shown.groupby("config_id")["n_seeds"].max()
    for ax, (panel, xlabel) in zip(axes, panels, strict=True):
        data = shown[shown["panel"].eq(panel)]
        if data.empty:
            note(ax, "nothing to draw: no profiled shape, or no x every seed covers")
        for arm in arm_order(arm_of[data["config_id"].unique()]) if len(data) else []:
            lines = data[data["config_id"].map(arm_of).eq(arm)]
            if not few:  # many cells: one collection per arm, one legend entry
                thin_lines(ax, segments(lines, "config_id", "x", "mean"), colors[arm], 1.0, 0.8)
                ax.plot([], [], color=colors[arm], lw=1.0, label=f"{arm} ({cells[arm]} cells)")
                continue
            for config_id, line in lines.sort_values("x").groupby("config_id", sort=True):
                name = names.get(config_id, "")
                n = int(seeds[config_id])
                label = f"{arm}{', ' + name if name else ''} ({n} seed{'s' * (n != 1)})"
                ax.plot(line["x"], line["mean"], color=colors[arm], ls=styles.get(name, "-"), lw=1.8, label=label)
        missing = int(cells.sum()) - data["config_id"].nunique()
        if missing and len(data):
            ax.set_title(f"{missing} of {int(cells.sum())} configurations have no point here", fontsize=8)
        ax.autoscale_view()
        ax.set(xlabel=textwrap.fill(xlabel, 48), ylabel=ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))  # large counts: an offset, never overlap
    for ax in row_ends(axes):
        bits_axis(ax)
    figure_legend(fig, axes)
    set_suptitle(fig, title)
    return fig


def axes_plot(curves: pd.DataFrame, configs: pd.DataFrame, labels: dict, ylabel: str, title: str) -> Figure:
    """Loss against each axis of `labels` (axis -> x label), from axes.axis_curves."""
    panels = [(axis, label) for axis, label in labels.items() if axis in set(curves["axis"])]
    return panel_curves_plot(curves.rename(columns={"axis": "panel"}), configs, panels, ylabel, title)


def timing_plot(means: pd.DataFrame, configs: pd.DataFrame, machines: list, ylabel: str, title: str) -> Figure:
    """Loss against projected time, one panel per profiled machine (retime.Retiming.means)."""
    frame = means.rename(columns={"machine": "panel", "projected_time_s": "x"})
    panels = [(m, f"projected time on {m} (s)") for m in machines]
    return panel_curves_plot(frame, configs, panels, ylabel, title)
