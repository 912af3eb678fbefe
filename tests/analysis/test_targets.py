"""Time to target against hand-built frames with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
from frames import arm_rows, final_frame
from pandas.testing import assert_frame_equal

from analysis.pareto import best_so_far
from analysis.targets import censored_median, default_targets, target_summary, time_to_target
from analysis.tuning import choose_settings

NAN = np.nan


def metrics_frame(rows):
    return pd.DataFrame(rows, columns=["trial_id", "step", "train_time_s", "val_loss"])


def test_time_to_target_first_crossing_or_nan():
    curves = best_so_far(
        metrics_frame(
            [
                ("a", 1, 1.0, 3.0),
                ("a", 2, 2.0, 2.0),  # reaches 2.0 exactly: counts (<=)
                ("b", 1, 1.0, 2.5),  # never reaches
                ("c", 1, 5.0, 1.0),  # single point, reached at once
            ]
        )
    )
    targets = pd.DataFrame({"trial_id": ["a", "b", "c"], "target": [2.0, 2.0, 2.0]})
    expected = pd.DataFrame({"trial_id": ["a", "b", "c"], "target": [2.0] * 3, "train_time_s": [2.0, NAN, 5.0]})
    assert_frame_equal(time_to_target(curves, targets), expected)


def test_censored_median_needs_half_the_seeds_to_reach_the_target():
    assert np.isnan(censored_median([1.0, NAN, NAN]))  # 1 of 3 reached: fewer than half
    assert censored_median([3.0, 1.0, NAN]) == 3.0  # 2 of 3: the time by which half had reached it
    assert censored_median([1.0, 2.0, NAN, NAN]) == 2.0  # exactly half
    assert np.isnan(censored_median([4.0, NAN, NAN, NAN, NAN]))
    # the old rule (mean over the seeds that reached it) would have said 4.0 / 1.0 here


def curve_rows(final, losses_by_trial, times=(1.0, 2.0, 3.0)):
    rows = [
        (trial_id, i + 1, t, loss)
        for trial_id, losses in zip(final["trial_id"], losses_by_trial, strict=True)
        for i, (t, loss) in enumerate(zip(times, losses, strict=True))
    ]
    return best_so_far(metrics_frame(rows))


def test_default_target_is_reached_by_every_standard_seed_and_times_come_from_the_same_configuration():
    tune = [
        dict(arch="standard", seed=100, seed_role="tune", lr=lr, val_loss=v) for lr, v in ((1e-3, 2.0), (1e-2, 2.5))
    ]
    final = final_frame(
        arm_rows("standard", [1.9, 2.0, 2.1], lr=1e-3)  # chosen on the tune seed
        + arm_rows("standard", [1.0, 1.0, 1.0], lr=1e-2)  # better on test seeds, never the reference
        + arm_rows("worker", [2.0, 2.2, 2.4])
        + tune
    )
    chosen = choose_settings(final)
    curves = curve_rows(
        final,
        [[2.5, 2.1, 1.9], [2.5, 2.2, 2.0], [2.6, 2.3, 2.1]]  # standard lr 1e-3: lowest 1.9, 2.0, 2.1
        + [[1.0, 1.0, 1.0]] * 3
        + [[2.0, 2.0, 2.0], [2.2, 2.2, 2.2], [2.4, 2.4, 2.4]]  # worker: 1 of 3 seeds reaches 2.1
        + [[2.0, 2.0, 2.0], [2.5, 2.5, 2.5]],
    )
    targets = default_targets(final, chosen, curves)
    assert set(targets["target"]) == {2.1}  # the worst of the chosen standard seeds' lowest losses
    summary = target_summary(time_to_target(curves, targets), final, chosen).set_index("config_id")
    std = summary.loc[chosen.set_index("arch").loc["standard", "config_id"]]
    assert (std["n_reached"], std["n_seeds"], std["train_time_s_to_target"]) == (3, 3, 3.0)
    other = summary.loc[final.loc[final["lr"].eq(1e-2), "config_id"].iloc[0]]
    assert other["train_time_s_to_target"] == 1.0 and other["speedup"] == 3.0  # reference: 3.0 s, not 1.0 s
    worker = summary.loc[chosen.set_index("arch").loc["worker", "config_id"]]
    assert (worker["n_reached"], worker["n_seeds"]) == (1, 3)
    assert np.isnan(worker["train_time_s_to_target"]) and np.isnan(worker["speedup"])


def test_no_chosen_standard_setting_means_no_target_and_no_crash():
    # lr swept without tuning seeds and a seed failed at every lr: no standard setting is chosen, so no cell has
    # a reference and nothing has a target (this crashed: the empty target column came out string-typed and the
    # comparison with the losses raised)
    std = arm_rows("standard", [2.0, NAN], lr=1e-3) + arm_rows("standard", [NAN, 2.1], lr=1e-2)
    std = [dict(r, status="failed") if np.isnan(r["val_loss"]) else r for r in std]
    final = final_frame(std + arm_rows("worker", [2.0, 2.2]))
    chosen = choose_settings(final)
    assert chosen.loc[chosen["arch"].eq("standard"), "config_id"].isna().all()
    done = final[final["status"].eq("completed")]
    curves = curve_rows(done, [[2.5, 2.0, 2.0]] * len(done))
    targets = default_targets(final, chosen, curves)
    assert targets.empty and targets["target"].dtype == float
    assert time_to_target(curves, targets).empty
