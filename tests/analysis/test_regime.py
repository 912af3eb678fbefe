"""The data regime: epochs at the end, and a warning where validation loss had stopped improving."""

from __future__ import annotations

import numpy as np
import pandas as pd
from frames import empty_metrics, trials_frame
from synth import TRAIN_TOKENS, write_study

from analysis.load import load_study
from analysis.regime import stopped_improving
from analysis.report import analyze
from analysis.stats import final_values


def overfitting_worker(config, steps, loss):
    """The worker's loss falls until its 4th evaluation, then rises by 0.1 nats (the standard keeps improving)."""
    if config["arch"] == "standard":
        return loss
    after = np.arange(len(loss)) > 3
    return np.where(after, loss[3] + 0.1 * np.linspace(0, 1, len(loss)), loss)


def test_a_trial_whose_val_loss_rose_above_its_minimum_by_more_than_the_margin_is_flagged():
    points = pd.DataFrame(
        {
            "trial_id": ["a"] * 4 + ["b"] * 4,
            "step": [10, 20, 30, 40] * 2,
            "epochs": [0.5, 1.0, 1.5, 2.0] * 2,
            "val_loss": [3.0, 2.0, 2.05, 2.3, 3.0, 2.5, 2.2, 2.205],  # b: +0.005 above its minimum, inside 0.01
        }
    )
    trials = trials_frame([dict(arch="standard", seed=0, trial_id="a"), dict(arch="standard", seed=1, trial_id="b")])
    regime = stopped_improving(points, final_values(trials, empty_metrics()))
    assert regime["stopped_improving"].tolist() == [True, False]
    assert regime.loc[0, ["best_step", "best_epochs", "best_loss", "last_loss"]].tolist() == [20, 1.0, 2.0, 2.3]


def test_report_states_epochs_per_arm_and_warns_about_overfitted_comparisons(tmp_path):
    study = write_study(tmp_path, intervals=(4,), seq_lens=(64,), seeds=(0, 1, 2), loss_of=overfitting_worker)
    a = analyze(load_study(str(study)))
    v = a.verdicts.iloc[0]
    end = a.final.groupby("arch")["tokens"].mean() / TRAIN_TOKENS
    assert v["arm_epochs"] == end["worker"] and v["ref_epochs"] == end["standard"]
    assert len(a.regime_warnings) == 1
    warning = a.regime_warnings[0]
    assert warning.startswith("worker k=4 (seq_len 64") and "in 3 of 3 test seeds" in warning
    assert "final losses compare overfitted models" in warning
    best = a.regime[a.regime["stopped_improving"]]
    assert f"epoch {best['best_epochs'].median():.3g}" in warning
