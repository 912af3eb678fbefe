"""What every figure of the report shares: the figure itself (Agg canvas, never pyplot), titles, log axes with
readable ticks, colours per arm, thin line collections, notes, legends outside the data, loss units (nats, with
bits per character beside them) and line styles per cell. Nothing here reads or writes files."""

from __future__ import annotations

import math
import re
import textwrap

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullFormatter
from matplotlib.transforms import ScaledTranslation

from analysis.configs import STANDARD, set_apart

MAX_TICKS = 5  # labelled ticks on a log axis: more crowd a 5-inch panel
LOG_MARGIN = 0.05  # the share of a log axis's data span that autoscaling adds each side
CHAR_WIDTH_IN = 0.065  # the width of an average character of an 8 pt legend label
HANDLE_WIDTH_IN = 0.6  # a legend entry's line sample and padding


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


def tick_label(value: float, _pos=None) -> str:
    """Plain numbers from 0.001 to 99999 (0.003, 2.5, 20000), else 3 significant digits with an unpadded
    exponent (3e-4, 2e11)."""
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return np.format_float_positional(value, precision=3, unique=True, fractional=False, trim="-")
    mantissa, _, exponent = f"{value:.2e}".partition("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def log_ticks(low: float, high: float) -> list[float]:
    """Labelled ticks for a log axis showing [low, high]: the first of decades, 1-2-5, 1-3 or 1-2-3-5 steps that
    puts 3 to MAX_TICKS ticks inside; under a decade, evenly spaced round values; else the densest that fits."""
    exponents = range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1)
    candidates = [
        [m * 10.0**e for e in exponents for m in mantissas if low <= m * 10.0**e <= high]
        for mantissas in ((1,), (1, 2, 5), (1, 3), (1, 2, 3, 5))  # 1-3: about evenly spaced half decades
    ]
    for ticks in candidates:
        if 3 <= len(ticks) <= MAX_TICKS:
            return ticks
    if high / low < 10:
        rounded = MaxNLocator(MAX_TICKS, steps=[1, 2, 2.5, 5, 10]).tick_values(low, high)
        inside = [t for t in rounded if low <= t <= high] or [low, high]
        return inside[:: -(-len(inside) // MAX_TICKS)]
    fitting = [ticks for ticks in candidates if 2 <= len(ticks) <= MAX_TICKS]
    if fitting:
        return fitting[-1]
    decades = candidates[0]
    return decades[:: -(-len(decades) // MAX_TICKS)]


def log_axis(axis, values) -> None:
    """A log axis whose labels never crowd: log_ticks over the finite positive `values` it shows (with the
    autoscale margin), plain labels (tick_label), no labels on minor ticks. Call it after the axis is set to log
    scale."""
    values = np.asarray(values, float).ravel()
    values = values[np.isfinite(values) & (values > 0)]
    if not len(values):
        return
    low, high = values.min(), values.max()
    margin = (high / low) ** LOG_MARGIN  # the axis shows this much more each side (matplotlib's default margin)
    axis.set_major_locator(FixedLocator(log_ticks(low / margin, high * margin)))
    axis.set_major_formatter(FuncFormatter(tick_label))
    axis.set_minor_formatter(NullFormatter())


def fit_ylim(ax, values, also=()) -> None:
    """Y limits that hold every finite value of `values` with a 5% margin each side, never clipping one; `also`
    (context drawn behind them, such as single trials) may extend the bottom but not the top, so a few high
    starts of context lines do not squash the curves the plot is about."""
    values = np.asarray(values, float).ravel()
    values = values[np.isfinite(values)]
    context = np.asarray(also, float).ravel()
    context = context[np.isfinite(context)]
    if not len(values):
        values = context
    if not len(values):
        return
    lo, hi = min(values.min(), context.min() if len(context) else np.inf), values.max()
    pad = 0.05 * (hi - lo) if hi > lo else 0.05 * max(abs(hi), 1.0)
    ax.set_ylim(lo - pad, hi + pad)


NATS_PER_BIT = math.log(2)


def loss_label(text: str) -> str:
    """`text` with the unit every loss of the study has: nats per token (natural-log cross-entropy)."""
    return f"{text} (nats)"


def bits_axis(ax) -> None:
    """A second y axis on the right of a loss panel in bits per character (nats / ln 2; a token is a character
    or a byte in every corpus the study reads). On a log axis, call it once the limits are final."""
    second = ax.secondary_yaxis("right", functions=(lambda n: n / NATS_PER_BIT, lambda b: b * NATS_PER_BIT))
    second.set_ylabel("bits per character")
    if ax.get_yscale() == "log":  # the same readable ticks as the loss axis, over its limits as they are now
        log_axis(second.yaxis, np.asarray(ax.get_ylim()) / NATS_PER_BIT)


def row_ends(axes: list, wrap: int = 3) -> list:
    """The last panel of each row of a new_figure grid: where a shared right-hand axis goes."""
    return [ax for i, ax in enumerate(axes) if i % wrap == wrap - 1 or i == len(axes) - 1]


def palette(labels) -> dict:
    """A stable colour per label, the standard model first (blue)."""
    order = arm_order(labels)
    return dict(zip(order, sns.color_palette("colorblind", max(len(order), 1)), strict=False))


def arm_order(labels) -> list:
    """Standard first, then by arch and numeric worker interval ('worker k=2' before 'worker k=16')."""
    distinct = set(pd.Series(labels).unique())  # a label column may have millions of rows: distinct ones first
    return sorted(
        distinct, key=lambda s: (s != STANDARD, *[int(p) if p.isdigit() else p for p in re.split(r"(\d+)", s)])
    )


MAX_LINE_POINTS = 400  # vertices drawn per line: more than a panel's pixels across, so the thinning never shows


def segments(frame: pd.DataFrame, key: str, x: str, y: str) -> list[np.ndarray]:
    """One (n, 2) array of (x, y) per value of `key`, for a LineCollection (fast at 100k+ points); a line of more
    than MAX_LINE_POINTS points is drawn through that many of them (drawn_points), never recomputed."""
    frame = frame.sort_values([key, x], kind="stable")
    ids = frame[key].to_numpy()
    cuts = np.flatnonzero(ids[1:] != ids[:-1]) + 1
    lines = np.split(frame[[x, y]].to_numpy(float), cuts) if len(frame) else []
    return [line[drawn_points(len(line))] for line in lines]


def drawn_points(n: int, most: int = MAX_LINE_POINTS) -> np.ndarray | slice:
    """Which of a line's `n` points (in x order) to draw: all of them up to `most`, else `most` of them at
    geometrically spaced ranks, first and last included, so a log x axis (where the report's many-point curves
    are drawn) keeps their early points dense; on a linear axis they are denser early, never missing."""
    if n <= most:
        return slice(None)
    return np.unique(np.r_[0, np.geomspace(1, n, most).round().astype(int) - 1, n - 1])


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


def figure_legend(fig: Figure, axes: list, title: str | None = None) -> None:
    """One legend for the whole figure, under its panels and outside every one of them: each label once, in
    the order first drawn. Nothing when no line is labelled (a figure without a finished trial yet)."""
    handles = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    if not handles:
        return
    column_in = HANDLE_WIDTH_IN + CHAR_WIDTH_IN * max(map(len, handles))
    fits = max(1, min(len(handles), int(0.95 * fig.get_figwidth() / column_in)))
    ncols = -(-len(handles) // -(-len(handles) // fits))  # as many rows, columns filled evenly (3 + 3, not 4 + 2)
    fig.legend(
        list(handles.values()), list(handles), loc="outside lower center", ncols=ncols, fontsize=8,
        title=title, title_fontsize=8,
    )  # fmt: skip


def panel_legend(ax, below_in: float = 0.55) -> None:
    """The panel's own legend (where panels label different things), under its x label and outside the data;
    the constrained layout makes room for it."""
    if not ax.get_legend_handles_labels()[1]:
        return
    anchor = ax.transAxes + ScaledTranslation(0, -below_in, ax.figure.dpi_scale_trans)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, 0), bbox_transform=anchor, ncols=2)
