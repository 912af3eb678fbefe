"""What every figure of the report shares: the figure itself (Agg canvas, never pyplot), titles, log axes,
colours per arm, thin line collections, notes, and line styles per cell. Nothing here reads or writes files."""

from __future__ import annotations

import re
import textwrap

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from analysis.configs import STANDARD, set_apart


def new_figure(n: int = 1, width: float = 7.0, height: float = 4.5, wrap: int = 3) -> tuple[Figure, list]:
    """A figure with `n` axes, `wrap` per row at most; returns the first n axes (the rest are hidden)."""
    ncols, nrows = max(min(n, wrap), 1), max(-(-n // wrap), 1)
    with sns.axes_style("whitegrid"):
        fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
        FigureCanvasAgg(fig)
        axes = list(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def wrapped_title(fig: Figure, title: str) -> str:
    """A title wrapped to the figure's width (about 10 characters per inch at the default size)."""
    return textwrap.fill(title, width=max(40, int(fig.get_figwidth() * 10)))


def set_suptitle(fig: Figure, title: str) -> None:
    fig.suptitle(wrapped_title(fig, title))


def log_axis(axis, integers: bool = False) -> None:
    """A log axis whose labels never overlap: labelled major ticks at 1, 2 and 5 per decade (at most ~8), no
    labels on minor ticks. `integers`: labels as plain numbers (token counts), else compact (1e+12, 0.5)."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=8))
    axis.set_minor_locator(LogLocator(base=10, subs="auto", numticks=12))
    axis.set_minor_formatter(NullFormatter())
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}" if integers or 1e-3 <= abs(v) < 1e5 else f"{v:.0e}"))


def palette(labels) -> dict:
    """A stable colour per label, the standard model first (blue)."""
    return dict(zip(arm_order(labels), sns.color_palette("colorblind", max(len(set(labels)), 1)), strict=False))


def arm_order(labels) -> list:
    """Standard first, then by arch and numeric worker interval ('worker k=2' before 'worker k=16')."""
    return sorted(
        set(labels), key=lambda s: (s != STANDARD, *[int(p) if p.isdigit() else p for p in re.split(r"(\d+)", s)])
    )


def segments(frame: pd.DataFrame, key: str, x: str, y: str) -> list[np.ndarray]:
    """One (n, 2) array of (x, y) per value of `key`, for a LineCollection (fast at 100k+ points)."""
    frame = frame.sort_values([key, x], kind="stable")
    ids = frame[key].to_numpy()
    cuts = np.flatnonzero(ids[1:] != ids[:-1]) + 1
    return np.split(frame[[x, y]].to_numpy(float), cuts) if len(frame) else []


def thin_lines(ax, segments, color, width: float, alpha: float) -> None:
    lines = LineCollection(segments, colors=[color], linewidths=width, alpha=alpha)
    lines.set_in_layout(False)  # layout never needs the extent of 100k vertices
    ax.add_collection(lines)


def note(ax, text: str) -> None:
    ax.text(
        0.5,
        0.5,
        text,
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=10,
        wrap=True,
        bbox={"boxstyle": "round", "facecolor": "lightyellow", "edgecolor": "grey"},
    )


LINE_STYLES = ["-", "--", ":", "-."]
CELL_FIELDS = ("init", "attention", "n_embd", "n_layer", "n_head", "batch_size", "conv_kernel", "lr")


def cell_names(chosen: pd.DataFrame) -> dict:
    """config_id -> the settings that tell the chosen configurations of one panel apart beyond their arm
    ("init torch"), or "" where nothing does."""
    return dict(zip(chosen["config_id"], set_apart(chosen, CELL_FIELDS), strict=True))


def legend(ax, fontsize: int = 7, loc: str = "upper right") -> None:
    """The panel's legend, or none where nothing in it is labelled (a panel without a finished trial yet)."""
    if ax.get_legend_handles_labels()[1]:
        ax.legend(fontsize=fontsize, loc=loc)
