"""Seeds, intervals, Welch tests and verdicts on textbook cases with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from analysis.stats import CELL_KEYS, seed_summary, select_best, verdicts, welch

# Welch's t-test, Wikipedia "Welch's t-test", example 1 (published: t = -2.46, dof = 24.99, p = 0.021)
WIKI_A1 = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
WIKI_A2 = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]


def test_welch_matches_the_published_example_and_the_hand_formula():
    result = welch(np.array(WIKI_A1), np.array(WIKI_A2))
    assert result["p_value"] == pytest.approx(0.021, abs=0.0005)
    # hand formula: t = (m1 - m2) / sqrt(s1^2/n1 + s2^2/n2), Welch-Satterthwaite dof, CI = diff +- t_crit * se
    a, b = np.array(WIKI_A1), np.array(WIKI_A2)
    se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    t = (a.mean() - b.mean()) / se
    assert t == pytest.approx(-2.46, abs=0.005)
    dof = se**4 / ((a.var(ddof=1) / len(a)) ** 2 / (len(a) - 1) + (b.var(ddof=1) / len(b)) ** 2 / (len(b) - 1))
    assert dof == pytest.approx(24.99, abs=0.01)
    t_crit = 2.0595  # t table, 0.975 quantile at 25 dof
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


def cell_trials(rows):
    """rows: (arch, worker_interval, lr, seed, final_loss, status) in one cell."""
    cell = dict(
        seq_len=64,
        n_embd=64,
        n_layer=2,
        n_head=4,
        batch_size=16,
        attention="sdpa",
        budget_kind="seconds",
        budget_value=20.0,
        count_eval_in_budget=False,
        eval_protocol="stream",
        corpus="tiny",
    )
    out = [
        dict(cell, arch=a, worker_interval=k, lr=lr, seed=s, final_loss=loss, status=st, trial_id=f"t{i}")
        for i, (a, k, lr, s, loss, st) in enumerate(rows)
    ]
    frame = pd.DataFrame(out)
    frame["worker_interval"] = frame["worker_interval"].astype("Int64")
    return frame.assign(schedule="constant", dropout=0.0, ffn_hidden=256, random_worker_phase=False)


def test_verdicts_worker_better_worse_and_no_difference():
    better = cell_trials(
        [("standard", None, 1e-3, s, 2.0 + 0.01 * s, "completed") for s in range(4)]
        + [("worker", 4, 1e-3, s, 1.8 + 0.01 * s, "completed") for s in range(4)]
        + [("worker", 2, 1e-3, s, 2.2 + 0.01 * s, "completed") for s in range(4)]
        + [("worker", 8, 1e-3, s, 2.0 + 0.02 * (s % 2) - 0.01, "completed") for s in range(4)]
    )
    v = verdicts(better).set_index("worker_interval")
    assert v.loc[4, "verdict"] == "worker better (p<0.01)"
    assert v.loc[4, "diff"] == pytest.approx(-0.2)
    assert v.loc[2, "verdict"] == "worker worse (p<0.01)"
    assert v.loc[8, "verdict"] == "no significant difference at p<0.01"
    assert list(v.columns[: len(CELL_KEYS)]) == CELL_KEYS


def test_no_verdict_with_fewer_than_two_seeds_per_arm():
    frame = cell_trials(
        [("standard", None, 1e-3, 0, 2.0, "completed"), ("standard", None, 1e-3, 1, 2.1, "completed")]
        + [("worker", 4, 1e-3, 0, 1.0, "completed")]  # one seed only
        + [("worker", 2, 1e-3, 0, 1.0, "completed"), ("worker", 2, 1e-3, 1, 1.1, "diverged")]
    )
    v = verdicts(frame).set_index("worker_interval")
    assert set(v["verdict"]) == {"insufficient seeds"}
    assert v["p_value"].isna().all()
    assert v.loc[2, "n_worker"] == 1  # the diverged seed does not count


def test_no_standard_baseline_is_said():
    frame = cell_trials([("worker", 4, 1e-3, s, 1.0 + s / 10, "completed") for s in range(3)])
    assert verdicts(frame)["verdict"].tolist() == ["no standard baseline"]


def test_each_arm_is_compared_at_its_own_best_learning_rate():
    frame = cell_trials(
        [("standard", None, 1e-3, s, 2.0 + 0.01 * s, "completed") for s in range(3)]
        + [("standard", None, 3e-4, s, 2.5 + 0.01 * s, "completed") for s in range(3)]
        + [("worker", 4, 1e-3, s, 2.6 + 0.01 * s, "completed") for s in range(3)]
        + [("worker", 4, 3e-4, s, 1.9 + 0.01 * s, "completed") for s in range(3)]
    )
    best = select_best(frame, CELL_KEYS + ["arch", "worker_interval"])
    assert sorted(best["lr"].unique()) == [3e-4, 1e-3]
    v = verdicts(frame).iloc[0]
    assert (v["worker_lr"], v["standard_lr"]) == (3e-4, 1e-3)
    assert v["diff"] == pytest.approx(-0.1)
