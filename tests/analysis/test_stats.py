"""Final values, configurations, summaries over seeds and curve points, on cases with known answers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from frames import arm_rows, final_frame
from pandas.testing import assert_frame_equal
from synth import write_study

from analysis.inference import welch
from analysis.load import load_study
from analysis.stats import config_summary, curve_points, final_values, seed_summary
from wt_base.schema import SCHEMA_VERSION, TRIALS_SCHEMA, conform

# Welch's t-test, Wikipedia "Welch's t-test", example 1 (published: t = -2.46, dof = 24.99, p = 0.021)
WIKI_A1 = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
WIKI_A2 = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]


def test_welch_matches_the_published_example_and_the_hand_formula():
    result = welch(np.array(WIKI_A1), np.array(WIKI_A2))
    assert result["p_value"] == pytest.approx(0.021, abs=0.0005)
    # hand formula: t = (m1 - m2) / sqrt(s1^2/n1 + s2^2/n2), Welch-Satterthwaite dof, CI = diff +- t_crit * se
    a, b = np.array(WIKI_A1), np.array(WIKI_A2)
    se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    assert (a.mean() - b.mean()) / se == pytest.approx(-2.46, abs=0.005)
    assert result["df"] == pytest.approx(24.99, abs=0.01) and result["se"] == pytest.approx(se)
    t_crit = 2.0595  # t table, 0.975 quantile at 25 dof: the interval is at 1 - alpha = 95%, like the test
    assert result["diff"] == pytest.approx(a.mean() - b.mean())
    assert result["diff_ci_low"] == pytest.approx(result["diff"] - t_crit * se, abs=2e-3)
    assert result["diff_ci_high"] == pytest.approx(result["diff"] + t_crit * se, abs=2e-3)


def test_seed_summary_uses_the_t_interval():
    frame = pd.DataFrame({"g": ["x"] * 4 + ["y"], "final_loss": [1.0, 2.0, 3.0, 4.0, 7.0]})
    half = 3.182446 * np.std([1, 2, 3, 4], ddof=1) / 2  # t table: 0.975 quantile at 3 dof
    expected = pd.DataFrame(
        {
            "g": ["x", "y"],
            "n": np.array([4, 1], dtype="int64"),
            "mean": [2.5, 7.0],
            "std": [np.std([1, 2, 3, 4], ddof=1), np.nan],
            "ci_low": [2.5 - half, np.nan],
            "ci_high": [2.5 + half, np.nan],
        }
    )
    assert_frame_equal(seed_summary(frame, ["g"]), expected, atol=1e-5)


def test_two_weight_decays_by_two_seeds_are_two_configurations_of_two_seeds(tmp_path):
    # issue #12 finding 1: weight_decay was no configuration key, so this came out as one configuration of n=4
    study = load_study(str(write_study(tmp_path, archs=("standard",), seq_lens=(64,), weight_decays=(0.0, 0.1))))
    summary = config_summary(final_values(study.trials, study.metrics))
    assert len(summary) == 2
    assert summary["n"].tolist() == [2, 2]
    assert sorted(summary["weight_decay"]) == [0.0, 0.1]


def test_a_setting_only_in_config_json_still_separates_configurations():
    def config(beta1, weight_decay):
        run = {"train": {"beta1": beta1, "weight_decay": weight_decay, "seed": 0, "device": "cpu"}}
        return json.dumps({"trial_id": "x", "arch": "standard", "run": run})

    rows = [
        dict(arch="standard", seed=s, val_loss=2.0, config_json=config(beta1, 0.1), weight_decay=None)
        for beta1 in (0.9, 0.95)
        for s in (0, 1)
    ]
    final = final_frame(rows)
    assert final["config_id"].nunique() == 2  # beta1 has no column, but it is part of the configuration
    assert final.groupby("config_id")["seed"].nunique().tolist() == [2, 2]
    assert final["weight_decay"].tolist() == [0.1] * 4  # an older study's null column is read from config_json
    assert final["tuned"].unique().tolist() == ["train.beta1 0.9", "train.beta1 0.95"]


def test_seed_device_and_threads_never_separate_configurations():
    rows = [
        dict(arch="standard", seed=s, val_loss=2.0, config_json=json.dumps({"run": {"train": {"seed": s, **extra}}}))
        for s, extra in ((0, {"device": "cpu", "threads": 1}), (1, {"device": "cuda", "threads": 4}))
    ]
    assert final_frame(rows)["config_id"].nunique() == 1


def test_only_completed_trials_have_a_final_loss_and_stopped_ones_are_counted():
    rows = arm_rows("standard", [2.0, 2.1]) + [
        dict(arch="standard", seed=2, val_loss=1.5, status="stopped"),  # ASHA ended it early: no final loss
        dict(arch="standard", seed=3, val_loss=np.nan, status="diverged"),
    ]
    final = final_frame(rows)
    assert final["final_loss"].isna().tolist() == [False, False, True, True]
    summary = config_summary(final).iloc[0]
    assert (summary["n"], summary["n_stopped"], summary["n_diverged"], summary["n_completed"]) == (2, 1, 1, 2)
    assert summary["mean"] == pytest.approx(2.05)


def test_a_trial_stopped_by_the_scheduler_before_the_stopped_status_reads_as_stopped(tmp_path):
    study = write_study(tmp_path, archs=("standard",), seq_lens=(64,))
    first = load_study(str(study)).trials.iloc[0]
    row = {name: None if pd.isna(first[name]) else first[name] for name in TRIALS_SCHEMA.names}
    row.update(status="completed", note="stopped early by the scheduler", schema_version=SCHEMA_VERSION)
    pq.write_table(conform([row], TRIALS_SCHEMA), study / "results" / "trials" / "999999-z.parquet")
    loaded = load_study(str(study))
    final = final_values(loaded.trials, loaded.metrics)
    stopped = final[final["trial_id"].eq(first["trial_id"])].iloc[0]
    assert stopped["status"] == "stopped" and np.isnan(stopped["final_loss"])


def test_curve_points_keep_the_final_point_only_on_the_periodic_validation_set(tmp_path):
    same = load_study(str(write_study(tmp_path / "same", final_full=False)))
    full = load_study(str(write_study(tmp_path / "full", final_full=True)))
    assert len(curve_points(same.metrics)) == len(same.metrics)  # eval.final_full off: one validation set
    points = curve_points(full.metrics)
    assert not points["is_final"].any() and len(points) == len(full.metrics) - len(full.trials)
    # the final loss itself still comes from the final (whole-split) evaluation
    final = final_values(full.trials, full.metrics).set_index("trial_id")["final_loss"]
    whole_split = full.metrics[full.metrics["is_final"]].set_index("trial_id")["val_loss"]
    assert (full.metrics.loc[full.metrics["is_final"], "val_tokens"] == 65536).all()
    assert np.allclose(final, whole_split.reindex(final.index))


def test_a_run_with_only_its_final_evaluation_keeps_it_on_the_curve_when_the_set_is_the_periodic_one(tmp_path):
    # a budget shorter than the evaluation interval: one point per trial, the final one (smoke preset, 4 s)
    for final_full, kept in ((False, True), (True, False)):
        study = load_study(str(write_study(tmp_path / str(final_full), n_points=1, final_full=final_full)))
        points = curve_points(study.metrics, final_values(study.trials, study.metrics))
        assert (len(points) == len(study.metrics)) is kept and (kept or points.empty)
