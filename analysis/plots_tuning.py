"""The tuning plot: per cell, each arm's final loss against the setting it was tuned on (the choosing seeds as
dots, their mean as a line, the chosen value as a star), so a reader sees whether the choice is interior or at
the edge of what was tried (analysis.brackets). Frames in, a Figure out."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from analysis.plot_base import arm_order, log_axis, new_figure, palette, set_suptitle

EDGE_WORDS = {"bottom": "at the bottom of its range", "top": "at the top of its range"}


def _panel_title(cell: pd.DataFrame) -> str:
    first = cell.iloc[0]
    parts = [f"{n} {int(first[n])}" for n in ("seq_len", "n_embd", "n_layer") if pd.notna(first[n])]
    if cell["budget_value"].notna().any():
        parts.append(f"budget {float(first['budget_value']):g}")
    return ", ".join(parts)


def tuning_plot(points: pd.DataFrame, seeds: pd.DataFrame, metric: str, title: str) -> Figure:
    """One panel per cell and tuned setting; one colour per arm, the same in every panel, one legend below."""
    panels = list(points.groupby(["cell_key", "field"], sort=False))
    fig, axes = new_figure(len(panels), width=5.0, height=3.8)
    colours = palette(points["arm"])
    for ax, ((cell_key, field), cell) in zip(axes, panels, strict=True):
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
        log_axis(ax.xaxis)
        ax.set_xlabel(field)
        ax.set_ylabel(f"final {metric} (nats)")
        ax.set_title(_panel_title(cell) + ("\n" + "; ".join(edges) if edges else ""), fontsize=9)
    handles = {}
    for ax in axes:  # every arm once, whichever panel it first appears in
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    labels = arm_order(handles)
    extra = "dots: the choosing seeds; line: their mean; star: the chosen value"
    fig.legend(
        [handles[k] for k in labels],
        labels,
        loc="outside lower center",
        ncols=max(1, len(labels)),
        fontsize=8,
        title=extra,
    )
    set_suptitle(fig, title)
    return fig
