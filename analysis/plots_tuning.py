"""The tuning plot: per cell, each arm's final loss against the setting it was tuned on (the choosing seeds as
dots, their mean as a line, the chosen value as a star), so a reader sees whether the choice is interior or at
the edge of what was tried (analysis.brackets). Frames in, a Figure out."""

from __future__ import annotations

import json

import pandas as pd
from matplotlib.figure import Figure

from analysis.configs import set_apart
from analysis.plot_base import (
    arm_order,
    bits_axis,
    figure_legend,
    log_axis,
    loss_label,
    new_figure,
    palette,
    row_ends,
    set_suptitle,
)

TITLE_FIELDS = ("seq_len", "n_embd", "n_layer", "budget_value")  # what every panel title states
EDGE_WORDS = {"bottom": "at the bottom of its range", "top": "at the top of its range"}


def _panel_title(cell: pd.DataFrame) -> str:
    first = cell.iloc[0]
    parts = [f"{n} {int(first[n])}" for n in TITLE_FIELDS[:3] if pd.notna(first[n])]
    if cell["budget_value"].notna().any():
        parts.append(f"budget {float(first['budget_value']):g}")
    return ", ".join(parts)


def _panel_titles(panels: list) -> list[str]:
    """Each panel's title; where two would read the same, with the cell settings that tell them apart (from the
    cell key, configs.keys_of: attention, init, ...)."""
    titles = [_panel_title(cell) for _, cell in panels]
    if len(set(titles)) == len(titles):
        return titles
    cells = pd.DataFrame([json.loads(cell_key) for (cell_key, _), _ in panels])
    apart = set_apart(cells, [c for c in cells.columns if c not in TITLE_FIELDS])
    return [f"{title}, {more}" if more else title for title, more in zip(titles, apart, strict=True)]


def tuning_plot(points: pd.DataFrame, seeds: pd.DataFrame, metric: str, title: str) -> Figure:
    """One panel per cell and tuned setting; one colour per arm, the same in every panel, one legend below."""
    panels = list(points.groupby(["cell_key", "field"], sort=False))
    fig, axes = new_figure(len(panels), width=5.0, height=3.8)
    colours = palette(points["arm"])
    for ax, ((cell_key, field), cell), head in zip(axes, panels, _panel_titles(panels), strict=True):
        edges = []
        for arm in arm_order(cell["arm"]):
            mine = cell[cell["arm"].eq(arm)].sort_values("value")
            colour = colours[arm]
            dots = seeds[seeds["cell_key"].eq(cell_key) & seeds["arm_key"].isin(mine["arm_key"])]
            dots = dots[dots["field"].eq(field)]
            ax.scatter(dots["value"], dots["final_loss"], s=10, color=colour, alpha=0.45, linewidths=0)
            ax.plot(mine["value"], mine["mean"], "-o", color=colour, markersize=4, label=arm)
            best = mine[mine["chosen"]]
            ax.scatter(best["value"], best["mean"], marker="*", s=180, color=colour, edgecolors="black", zorder=5)
            position = mine["position"].iloc[0]
            if position in EDGE_WORDS:
                edges.append(f"{arm} {EDGE_WORDS[position]}")
        ax.set_xscale("log")
        log_axis(ax.xaxis, cell["value"])
        ax.set_xlabel(field)
        ax.set_ylabel(loss_label(f"final {metric}"))
        ax.set_title(head + ("\n" + "; ".join(edges) if edges else ""), fontsize=9)
    for ax in row_ends(axes):
        bits_axis(ax)
    figure_legend(fig, axes, title="dots: the choosing seeds; line: their mean; star: the chosen value")
    set_suptitle(fig, title)
    return fig
