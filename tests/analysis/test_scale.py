"""The paths rewritten for studies of millions of evaluation points (benchmarks/bench_analysis.py) give exactly
what the slow, obvious implementations kept here give: the reader's last-row-per-key and key order, curve_points,
the tuning points, the plots' distinct labels and thinned lines, and the verdicts, summary and fronts built on
them, on a study whose files interleave trials (as the sink's flushes do) and repeat rows (as after a resume)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pandas.testing import assert_frame_equal
from synth import write_study

from analysis import brackets, load, plot_base, report, stats, tuning
from wt_base.layout import METRICS_DIR, RESULTS_DIR


def _status(index, config):
    return {3: "diverged", 7: "running", 10: "stopped"}.get(index, "completed")


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("scale")
    study = write_study(
        root, lrs=(3e-4, 1e-3), tune_seeds=(9,), seeds=(0, 1, 2), final_full=True, duplicate=True,
        status_of=_status, n_points=9, n_files=4,
    )  # fmt: skip
    # rewrite the metric files with rows of all trials interleaved, in write order, a resumed trial's
    # re-reported steps (with another loss) in a later file
    metrics = sorted((study / RESULTS_DIR / METRICS_DIR).glob("*.parquet"))
    table = pa.concat_tables([pq.read_table(f) for f in metrics])
    for f in metrics:
        f.unlink()
    order = np.random.default_rng(0).permutation(len(table))
    shuffled = table.take(order)
    chunks = np.array_split(np.arange(len(shuffled)), 5)
    for i, chunk in enumerate(chunks):
        pq.write_table(shuffled.take(chunk), study / RESULTS_DIR / METRICS_DIR / f"{i + 1:06d}-c.parquet")
    again = shuffled.slice(0, 40)
    again = again.set_column(again.schema.get_field_index("val_loss"), "val_loss", pa.array(np.full(40, 2.5)))
    pq.write_table(again, study / RESULTS_DIR / METRICS_DIR / "000099-c.parquet")
    return study


def _reference_repeated(frame, key):
    return frame.duplicated(subset=key, keep="last")


def _reference_sorted(frame, key):
    return frame.sort_values(key, kind="stable")


def _reference_curve_points(metrics, final=None):
    """stats.curve_points as first written: two filtered copies, concatenated and sorted."""
    periodic = metrics[~metrics["is_final"]]
    tokens = periodic.drop_duplicates("trial_id", keep="last").set_index("trial_id")["val_tokens"]
    last = metrics[metrics["is_final"]]
    same_set = last["val_tokens"].eq(last["trial_id"].map(tokens)).fillna(False).astype(bool)
    if final is not None:
        known = last["trial_id"].map(final.set_index("trial_id")["final_on_periodic_set"])
        same_set = known.astype(object).where(known.notna(), same_set).astype(bool)
    return pd.concat([periodic, last[same_set]]).sort_values(["trial_id", "step"], kind="stable")


def _reference_tuning_points(final, chosen):
    """brackets.tuning_points with a scan of every trial per arm (as first written)."""
    rows = []
    for _, arm in chosen.dropna(subset=["config_id"]).iterrows():
        if arm["tuned_on"] in ("none", "no eligible setting"):
            continue
        role = "tune" if arm["tuned_on"] == "tune seeds" else "test"
        mine = final[final["cell_key"].eq(arm["cell_key"]) & final["arm_key"].eq(arm["arm_key"])]
        picked = final[final["config_id"].eq(arm["config_id"])].iloc[0]
        judged = mine[mine["seed_role"].eq(role)]
        for field in tuning.NUMERIC_TUNED:
            values = sorted(mine[field].dropna().unique()) if field in mine else []
            if len(values) < 2:
                continue
            position = brackets.edge_of(values, picked[field])
            for value, group in judged.groupby(field, sort=True):
                ok = group["status"].eq("completed") & np.isfinite(group["final_loss"].astype(float))
                losses = group.sort_values("seed")["final_loss"].astype(float)
                rows.append(
                    {
                        **{c: arm[c] if c in arm.index else picked.get(c) for c in brackets.TUNING_COLUMNS[:8]},
                        "field": field,
                        "value": float(value),
                        "seed_role": role,
                        "n_seeds": len(group),
                        "n_eligible": int(ok.sum()),
                        "mean": float(group.loc[ok, "final_loss"].mean()) if ok.all() else np.nan,
                        "seed_losses": ", ".join("lost" if np.isnan(v) else f"{v:.4f}" for v in losses),
                        "chosen": bool(value == picked[field]),
                        "position": position,
                    }
                )
    return pd.DataFrame(rows, columns=brackets.TUNING_COLUMNS)


def _reference_seed_points(final, points):
    if points.empty:
        return pd.DataFrame(columns=["cell_key", "arm_key", "field", "value", "seed", "final_loss"])
    parts = []
    for (cell, arm, field, role), group in points.groupby(["cell_key", "arm_key", "field", "seed_role"]):
        mine = final[final["cell_key"].eq(cell) & final["arm_key"].eq(arm) & final["seed_role"].eq(role)]
        seeds = mine[mine[field].isin(group["value"])][[field, "seed", "final_loss"]]
        parts.append(seeds.rename(columns={field: "value"}).assign(cell_key=cell, arm_key=arm, field=field))
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def both(study_dir):
    """The study loaded and analysed with the fast paths, and with the reference ones."""
    fast = load.load_study(str(study_dir))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(load, "_repeated_keys", _reference_repeated)
        patch.setattr(load, "_sorted_by_key", _reference_sorted)
        slow = load.load_study(str(study_dir))
        patch.setattr(stats, "curve_points", _reference_curve_points)
        patch.setattr(brackets, "tuning_points", _reference_tuning_points)
        patch.setattr(brackets, "seed_points", _reference_seed_points)
        slow_analysis = report.analyze(slow)
    return fast, slow, report.analyze(fast), slow_analysis


def test_the_reader_keeps_the_same_rows_in_the_same_order(both):
    fast, slow, _, _ = both
    assert_frame_equal(fast.metrics, slow.metrics, check_exact=True)
    assert_frame_equal(fast.trials, slow.trials, check_exact=True)
    # the re-reported steps won, once each
    assert not fast.metrics.duplicated(["trial_id", "step"]).any()
    assert (fast.metrics["val_loss"] == 2.5).sum() == 40


@pytest.mark.parametrize("sort", [False, True])
def test_curve_points_match_the_concatenating_reference(both, sort):
    fast, _, analysis, _ = both
    metrics = fast.metrics.sample(frac=1.0, random_state=1) if sort else fast.metrics
    for final in (None, analysis.final):
        got, want = stats.curve_points(metrics, final), _reference_curve_points(metrics, final)
        assert len(got) < len(metrics)  # the full-set final points left out: the test sees the filter
        assert_frame_equal(got, want, check_exact=True)


def test_curve_points_keep_periodic_before_final_at_a_repeated_step():
    metrics = pd.DataFrame(
        {"trial_id": ["b", "a", "a", "a"], "step": [1, 2, 2, 1], "is_final": [False, True, False, False]}
    ).assign(val_tokens=4096)
    assert_frame_equal(stats.curve_points(metrics), _reference_curve_points(metrics), check_exact=True)


def test_analysis_frames_are_the_same_as_the_reference_paths(both):
    _, _, fast, slow = both
    assert len(fast.verdicts) and len(fast.tuning) and len(fast.tuning_seeds)
    for name in ("final", "chosen", "summary", "verdicts", "fronts", "seed_curves", "targets", "axes", "tuning"):
        assert_frame_equal(getattr(fast, name), getattr(slow, name), check_exact=True, obj=name)
    assert_frame_equal(fast.tuning_seeds, slow.tuning_seeds, check_exact=True)
    for x in fast.curves:
        assert_frame_equal(fast.curves[x], slow.curves[x], check_exact=True)


def test_key_codes_fall_back_where_they_cannot_be_exact():
    frame = pd.DataFrame({"trial_id": ["b", None, "a", "a"], "step": [1, 2, 3, 3]})
    assert load._key_codes(frame, ["trial_id", "step"]) is None  # a missing id
    huge = pd.DataFrame({"trial_id": ["a", "b", "a"], "step": [0, 2**62, 0]})
    assert load._key_codes(huge, ["trial_id", "step"]) is None  # codes x steps would overflow
    for frame in (pd.DataFrame({"trial_id": ["b", "a", "a", "b"], "step": [5, 3, 3, -1]}), huge):
        assert (
            load._repeated_keys(frame, ["trial_id", "step"]).tolist()
            == _reference_repeated(frame, ["trial_id", "step"]).tolist()
        )
        assert_frame_equal(
            load._sorted_by_key(frame, ["trial_id", "step"]), _reference_sorted(frame, ["trial_id", "step"])
        )


def test_plots_draw_every_label_once_and_thin_only_long_lines():
    labels = pd.Series(["worker k=16", "standard", "worker k=2"] * 100_000)
    assert plot_base.arm_order(labels) == ["standard", "worker k=2", "worker k=16"]
    assert list(plot_base.palette(labels)) == ["standard", "worker k=2", "worker k=16"]
    n = 10_000
    frame = pd.DataFrame({"trial_id": np.repeat(["a", "b"], [n, 5]), "x": np.r_[np.arange(n), np.arange(5)]})
    frame["y"] = 1.0 / (1.0 + frame["x"])
    long, short = plot_base.segments(frame, "trial_id", "x", "y")
    assert len(short) == 5 and len(long) <= plot_base.MAX_LINE_POINTS + 2
    assert long[0, 0] == 0 and long[-1, 0] == n - 1  # both ends drawn
    assert np.all(np.diff(long[:, 0]) > 0) and np.all(long[:, 1] == 1.0 / (1.0 + long[:, 0]))  # points, not made up
    assert np.all(long[:20, 0] == np.arange(20))  # dense at the start (a log axis)
