"""The report's figures read without the text: legends outside the data, loss units, the intervals a title
promises, readable log ticks, nothing a plot is about clipped (checked on the Figure objects)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from synth import write_study

from analysis.figures import figures
from analysis.load import load_study
from analysis.plot_base import MAX_TICKS, log_ticks, tick_label
from analysis.report import analyze


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """3 test seeds, two arms with two intervals, two seq_lens: every plot but scaling, isoFLOP and timing."""
    root = tmp_path_factory.mktemp("seeded")
    return figures(analyze(load_study(str(write_study(root, seeds=(0, 1, 2))))))


@pytest.fixture(scope="module")
def one_seed(tmp_path_factory):
    root = tmp_path_factory.mktemp("one_seed")
    return figures(analyze(load_study(str(write_study(root, seeds=(0,), seq_lens=(64,))))))


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """An lr swept on tune seeds, two attention implementations."""
    study = write_study(
        tmp_path_factory.mktemp("tuned"), intervals=(4,), seq_lens=(64,), lrs=(3e-4, 1e-3), tune_seeds=(100,),
        attentions=("sdpa", "naive"),
    )  # fmt: skip
    return figures(analyze(load_study(str(study))))


def _panels(fig):
    return [ax for ax in fig.axes if ax.get_visible()]


def _labels(fig) -> list[str]:
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
    return [t.get_text() for legend in legends for t in legend.get_texts()]


def test_every_legend_sits_outside_every_panel(seeded, tuned):
    for name, fig in {**seeded, **{f"tuned {k}": v for k, v in tuned.items()}}.items():
        fig.canvas.draw()
        legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
        assert legends, name
        for legend in legends:
            box = legend.get_window_extent()
            for ax in _panels(fig):
                assert not box.overlaps(ax.get_window_extent()), f"{name}: legend over panel {ax.get_title()!r}"


def test_a_panel_grid_has_one_shared_legend(seeded):
    for name in ("axes.png", "pareto_time.png", "curves.png", "interval.png", "throughput.png"):
        fig = seeded[name]
        assert len(fig.legends) == 1 and not any(ax.get_legend() for ax in fig.axes), name
        labels = _labels(fig)
        assert len(labels) == len(set(labels)), name  # every entry once, not once per panel


def test_every_loss_axis_gives_its_unit_and_bits_per_character_beside_it(seeded):
    for name, fig in seeded.items():
        losses = [ax for ax in _panels(fig) if "loss" in ax.get_ylabel()]
        assert all("(nats)" in ax.get_ylabel() for ax in losses), name
    fig = seeded["curves.png"]
    fig.canvas.draw()
    (bits,) = [child for ax in fig.axes for child in ax.child_axes if child.get_ylabel() == "bits per character"]
    nats = bits._parent.get_ylim()  # the axis it converts
    assert bits.get_ylim() == pytest.approx(np.asarray(nats) / math.log(2))


def test_the_curves_plot_draws_the_interval_its_title_promises(seeded, one_seed):
    fig = seeded["curves.png"]
    assert "95% CI over 3 test seeds" in " ".join(fig.get_suptitle().split())  # the title is wrapped
    for ax in _panels(fig):
        bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
        heights = [np.ptp(path.vertices[:, 1]) for band in bands for path in band.get_paths()]
        assert len(heights) == 3 and min(heights) > 0, ax.get_title()  # one band per chosen arm
    single = " ".join(one_seed["curves.png"].get_suptitle().split())
    assert "no interval" in single and "95% CI" not in single


def test_nothing_a_plot_is_about_leaves_its_axes(seeded):
    """Chosen curves, their bands and every front stay inside the limits (a percentile cut clipped the first
    point); only thin context lines (single trials, other settings) may leave the top."""
    for name in ("curves.png", "pareto_time.png", "pareto_flops.png", "interval.png"):
        for ax in _panels(seeded[name]):
            (x0, x1), (y0, y1) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
            for line in ax.get_lines():
                x, y = (np.asarray(v, float) for v in line.get_data())
                if line.get_transform() != ax.transData:  # axhline: x in axes coordinates
                    x = np.full_like(y, x0)
                inside = (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
                assert inside[np.isfinite(x) & np.isfinite(y)].all(), f"{name}: {line.get_label()}"
            for band in (c for c in ax.collections if isinstance(c, PolyCollection)):
                for path in band.get_paths():
                    assert y0 <= path.vertices[:, 1].min() and path.vertices[:, 1].max() <= y1, name


def test_log_ticks_are_few_round_values_inside_the_data():
    assert log_ticks(5e10, 1.5e12) == pytest.approx([5e10, 1e11, 2e11, 5e11, 1e12])  # 1-2-5
    assert log_ticks(2e10, 3e12) == pytest.approx([3e10, 1e11, 3e11, 1e12, 3e12])  # 1-2-5 gives 7: 1-3
    assert log_ticks(6.5, 42) == pytest.approx([10, 20, 30])  # 1-2-5 gives 2: 1-2-3-5
    assert log_ticks(19_000, 35_000) == pytest.approx([20_000, 25_000, 30_000, 35_000])  # under a decade
    assert log_ticks(1e10, 1e18) == pytest.approx([1e10, 1e12, 1e14, 1e16, 1e18])  # decades, thinned
    for low, high in ((1.7, 2.1), (3e-4, 0.02), (40, 61), (1, 1e20)):
        ticks = log_ticks(low, high)
        assert 2 <= len(ticks) <= MAX_TICKS and all(low <= t <= high for t in ticks), (low, high, ticks)
    assert [tick_label(v) for v in (20_000, 2.5, 0.003, 3e-4, 2e11, 1e18)] == [
        "20000",
        "2.5",
        "0.003",
        "3e-4",
        "2e11",
        "1e18",
    ]


def test_throughput_ticks_are_plain_and_apart_and_attention_is_named_only_where_it_varies(seeded, tuned):
    fig = seeded["throughput.png"]
    fig.canvas.draw()
    for ax in _panels(fig):
        low, high = sorted(ax.get_ylim())
        shown = [t for t in ax.yaxis.get_majorticklabels() if t.get_text() and low <= t.get_position()[1] <= high]
        assert 2 <= len(shown) <= MAX_TICKS, ax.get_title()
        assert all(t.get_text().replace(".", "").isdigit() for t in shown), [t.get_text() for t in shown]
        boxes = [t.get_window_extent() for t in shown]
        assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :]), ax.get_title()
        assert not [t for t in ax.yaxis.get_minorticklabels() if t.get_text()]  # minor ticks unlabelled
    assert not [label for label in _labels(fig) if "sdpa" in label or "attention" in label]
    assert {"standard, sdpa attention", "standard, naive attention"} <= set(_labels(tuned["throughput.png"]))


def test_pareto_legends_say_what_each_front_is_and_the_overall_front_is_on_top(seeded, tuned):
    labels = _labels(tuned["pareto_time.png"])
    assert "standard, its chosen lr" in labels and "worker k=4, its chosen lr" in labels
    assert "lowest of all configurations (any arm, any setting)" in labels
    assert not [label for label in labels if "(1)" in label or "descriptive" in label]
    ax = _panels(seeded["pareto_flops.png"])[0]
    order = {line.get_label(): line.get_zorder() for line in ax.get_lines()}
    overall = order.pop("lowest of all configurations")
    assert overall > max(z for label, z in order.items() if not label.startswith("each trial"))
    assert "3 configurations, 1 per arm" in ax.get_title()  # standard, k=2, k=4
