"""The report's caveats on hand-built frames: step speeds that moved with the machine's load, grid edges."""

from __future__ import annotations

import numpy as np
from frames import arm_rows, final_frame

from analysis.caveats import edge_of_grid, throughput_consistency
from analysis.tables import best_per_arch
from analysis.tuning import choose_settings


def with_speed(rows, steps_per_s):
    """Trials whose last evaluation point ran at `steps_per_s` (a metrics frame of one point per trial)."""
    import pandas as pd
    from frames import METRIC_COLUMNS, trials_frame

    from analysis.stats import final_values

    trials = trials_frame(rows)
    metrics = pd.DataFrame(
        {
            "trial_id": trials["trial_id"],
            "step": (np.asarray(steps_per_s) * 100).round().astype(int),
            "tokens": 0,
            "train_time_s": 100.0,
            "is_final": True,
            "val_loss": trials["val_loss"],
            "val_loss_seed": trials["val_loss"],
            "epochs": 0.1,
            "train_minus_val": 0.0,
            "val_tokens": 1024,
        }
    )[METRIC_COLUMNS]
    return final_values(trials, metrics)


def test_step_speeds_of_one_shape_that_moved_with_the_machines_load_are_named():
    """The init ablation showed 2.59x and 3.59x step speedups for two workers differing only in init."""
    rows = [dict(r, init="torch", budget_kind="steps") for r in arm_rows("worker", [2.0, 2.01, 2.02])]
    rows += [dict(r, init="nanogpt", budget_kind="steps") for r in arm_rows("worker", [2.1, 2.11, 2.12])]
    final = with_speed(rows, [2.59, 2.60, 2.58, 3.59, 3.60, 3.58])
    (line,) = throughput_consistency(final)
    assert "worker k=4" in line and "differ by 39%" in line and "init nanogpt" in line and "init torch" in line
    steady = with_speed(rows, [2.59, 2.60, 2.58, 2.61, 2.57, 2.60])
    assert throughput_consistency(steady) == []


def test_a_setting_chosen_at_the_edge_of_its_grid_is_named():
    rows = []
    for lr, loss in ((1e-3, 2.1), (2e-3, 2.0), (4e-3, 1.9)):  # the largest lr is best: the optimum may lie beyond
        rows += [dict(r, seed_role="tune", lr=lr) for r in arm_rows("worker", [loss, loss + 0.01], start_seed=100)]
        rows += [dict(r, lr=lr) for r in arm_rows("worker", [loss, loss + 0.01])]
    final = final_frame(rows)
    (line,) = edge_of_grid(final, choose_settings(final))
    assert "the chosen lr at the top of the tried range (0.001-0.004); the best may lie beyond it" in line
    middle = final_frame([r for r in rows if r["lr"] != 4e-3] + [dict(r, lr=4e-3, val_loss=2.3) for r in rows[-4:]])
    assert edge_of_grid(middle, choose_settings(middle)) == []


def test_the_best_configuration_is_per_cell_not_across_sequence_lengths():
    from analysis.stats import config_summary

    rows = arm_rows("worker", [2.0, 2.01], seq_len=64) + arm_rows("worker", [1.5, 1.51], seq_len=128)
    best = best_per_arch(config_summary(final_frame(rows)))
    assert len(best) == 2  # one per seq_len: the longer context's lower loss does not hide the shorter one


def test_a_caveat_names_the_whole_shape_and_the_budget_where_budgets_differ():
    """scaling-cpu has sizes of one width at two depths, and one cell per FLOP budget: a caveat says which."""
    rows = [dict(r, n_layer=2, budget_kind="steps") for r in arm_rows("worker", [2.0, 2.01, 2.02])]
    rows += [dict(r, n_layer=2, init="nanogpt", budget_kind="steps") for r in arm_rows("worker", [2.1, 2.11, 2.12])]
    (line,) = throughput_consistency(with_speed(rows, [2.59, 2.60, 2.58, 3.59, 3.60, 3.58]))
    assert "(seq_len 64, n_embd 64, n_layer 2)" in line
    edge = []
    for budget in (1e11, 3e11):
        for lr, loss in ((1e-3, 2.1), (4e-3, 1.9)):
            edge += [dict(r, seed_role="tune", lr=lr, budget_value=budget) for r in arm_rows("worker", [loss], 100)]
            edge += [dict(r, lr=lr, budget_value=budget) for r in arm_rows("worker", [loss, loss + 0.01])]
    final = final_frame(edge)
    lines = edge_of_grid(final, choose_settings(final))
    assert [line.split(")")[0] for line in lines] == [
        "worker k=4 (seq_len 64, n_embd 64, n_layer 2, budget 1e+11",
        "worker k=4 (seq_len 64, n_embd 64, n_layer 2, budget 3e+11",
    ]


def test_a_flops_study_whose_test_seeds_have_not_finished_says_so_not_that_it_has_no_flops_budgets():
    from analysis.scaling import isoflop_frame, isoflop_ready

    rows = [dict(r, budget_kind="flops", status="pending") for r in arm_rows("worker", [2.0, 2.1])]
    final = final_frame(rows)
    frame = isoflop_frame(final, choose_settings(final))
    assert (
        frame.empty and isoflop_ready(frame, final) == "no test seed of a chosen FLOPs-budget setting has finished yet"
    )
    steps = final_frame([dict(r, budget_kind="steps") for r in arm_rows("worker", [2.0, 2.1])])
    assert isoflop_ready(isoflop_frame(steps, choose_settings(steps)), steps) == "the study has no FLOPs budgets"


def test_the_scaling_plot_of_a_study_without_finished_test_seeds_says_so():
    from types import SimpleNamespace

    import pandas as pd

    from analysis.figures import left_out

    summary = pd.DataFrame({"config_id": [0, 1], "arm": ["standard", "worker k=4"], "mean": np.nan, "n_params": 1e4})
    a = SimpleNamespace(
        summary=summary,
        chosen=pd.DataFrame({"config_id": [0, 1]}),
        final=pd.DataFrame({"worker_interval": [np.nan, 4]}),
        throughput=pd.DataFrame(),
        isoflop={},
        axis_curves=pd.DataFrame(),
        retiming=None,
        tuning=pd.DataFrame(),
    )
    assert left_out(a)["scaling_params.png"] == "no chosen configuration has a finished test seed yet"
    a.summary = summary.assign(mean=[2.0, 1.9])
    assert "lie within 1x of each other" in left_out(a)["scaling_params.png"]
