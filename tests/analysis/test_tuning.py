"""Tuned settings are chosen on tuning seeds, among settings every tuning seed completed; verdicts use test seeds."""

from __future__ import annotations

import numpy as np
import pytest
from frames import arm_rows, final_frame

from analysis.tuning import choose_settings
from analysis.verdicts import verdicts


def tune(arch, lr, losses, **extra):
    return [dict(r, seed_role="tune", lr=lr) for r in arm_rows(arch, losses, start_seed=100, **extra)]


def judge(arch, lr, losses):
    return [dict(r, lr=lr) for r in arm_rows(arch, losses)]


def test_the_tuned_lr_is_chosen_on_tune_seeds_only_and_the_verdict_uses_test_seeds():
    rows = (
        tune("standard", 1e-3, [2.0, 2.0])
        + judge("standard", 1e-3, [2.0, 2.01, 2.02])
        + tune("worker", 1e-3, [1.90, 1.91])  # best on the tuning seeds
        + tune("worker", 3e-3, [1.95, 1.96])
        + judge("worker", 1e-3, [1.80, 1.81, 1.82])
        + judge("worker", 3e-3, [1.50, 1.51, 1.52])  # best on the test seeds: must not be chosen
    )
    final = final_frame(rows)
    chosen = choose_settings(final).set_index("arch")
    assert chosen.loc["worker", "tuned"] == "lr 0.001" and chosen.loc["worker", "tuned_on"] == "tune seeds"
    assert chosen.loc["worker", "tuning_seeds"] == "100, 101"
    assert chosen.loc["standard", "tuned_on"] == "none"
    v = verdicts(final, choose_settings(final)).iloc[0]
    assert v["n_arm"] == 3 and v["arm_mean"] == pytest.approx(1.81)  # test seeds of lr 1e-3 only
    assert v["diff"] == pytest.approx(-0.2)
    assert v["tuning"] == "tune seeds" and "biased" not in v["verdict"]


def test_a_setting_with_a_diverged_tuning_seed_is_ineligible():
    rows = (
        tune("standard", 1e-3, [2.0, 2.0])
        + [dict(r, seed_role="tune", lr=1e-2) for r in arm_rows("standard", [1.0], start_seed=100)]
        + [dict(arch="standard", seed=101, seed_role="tune", lr=1e-2, val_loss=np.nan, status="diverged")]
        + judge("standard", 1e-3, [2.0, 2.1])
        + judge("standard", 1e-2, [1.0, 1.1])
    )
    chosen = choose_settings(final_frame(rows)).iloc[0]
    # lr 1e-2 has the lowest loss on its surviving tuning seed, but one of its tuning seeds diverged
    assert chosen["tuned"] == "lr 0.001" and (chosen["n_settings"], chosen["n_eligible"]) == (2, 1)


def test_no_eligible_setting_is_said():
    rows = [
        dict(arch="standard", seed=100, seed_role="tune", lr=lr, val_loss=np.nan, status="failed")
        for lr in (1e-3, 1e-2)
    ]
    rows += judge("standard", 1e-3, [2.0, 2.1]) + judge("worker", 1e-3, [1.9, 2.0])
    final = final_frame(rows)
    chosen = choose_settings(final).set_index("arch")
    assert chosen.loc["standard", "tuned_on"] == "no eligible setting" and np.isnan(chosen.loc["standard", "config_id"])
    assert verdicts(final, choose_settings(final))["verdict"].tolist() == [
        "no eligible setting (every tuned setting lost a tuning seed)"
    ]


def test_without_tune_seeds_the_choice_falls_back_to_test_seeds_and_is_flagged():
    rows = (
        judge("standard", 1e-3, [2.0, 2.1, 2.2])
        + judge("standard", 3e-4, [2.5, 2.6, 2.7])
        + judge("worker", 1e-3, [2.6, 2.7, 2.8])
        + judge("worker", 3e-4, [1.9, 2.0, 2.1])
    )
    final = final_frame(rows)
    chosen = choose_settings(final).set_index("arch")
    assert (chosen.loc["worker", "tuned"], chosen.loc["standard", "tuned"]) == ("lr 0.0003", "lr 0.001")
    assert set(chosen["tuned_on"]) == {"test seeds"}
    v = verdicts(final, choose_settings(final)).iloc[0]
    assert v["tuning"] == "tuned on test seeds: biased"
    assert v["verdict"].endswith("(tuned on test seeds: biased)")


def test_one_setting_per_arm_has_nothing_to_tune():
    final = final_frame(judge("standard", 1e-3, [2.0, 2.1]) + judge("worker", 3e-4, [1.9, 2.0]))
    chosen = choose_settings(final)
    assert set(chosen["tuned_on"]) == {"none"} and chosen["n_settings"].tolist() == [1, 1]
    assert verdicts(final, chosen).iloc[0]["tuning"] == "none"


def test_the_analysis_chooses_by_the_rule_the_search_runs_its_test_seeds_by():
    """wt_base.choice is the one rule: the analysis' choice on a frame equals the search's on the same results,
    including a tie (to the smaller key) and a setting whose best seed diverged."""
    from study.tune.search_state import Outcome, chosen_setting
    from wt_base import choice

    tuned = {1e-3: [2.0, 2.2], 2e-3: [2.1, 2.1], 4e-3: [1.0, np.nan], 8e-3: [2.3, 2.4]}  # 1e-3 ties 2e-3
    rows = []
    for lr, losses in tuned.items():
        rows += tune("worker", lr, losses)
    rows += judge("worker", 1e-3, [1.9, 2.0]) + tune("standard", 1e-3, [2.0, 2.0])
    final = final_frame(rows)
    chosen = choose_settings(final).set_index("arch").loc["worker"]
    mine = final[final["arch"].eq("worker") & final["seed_role"].eq("tune")]
    outcomes = {
        config_id: {s: Outcome(st, v) for s, st, v in zip(g["seed"], g["status"], g["final_loss"], strict=True)}
        for config_id, g in mine.groupby("config_id")
    }
    tied = [config_id for config_id, g in mine.groupby("config_id") if g["lr"].iloc[0] in (1e-3, 2e-3)]
    assert chosen_setting(outcomes) == chosen["config_id"] == min(tied)  # the tie goes to the smaller key
    assert chosen["tuned"] in ("lr 0.001", "lr 0.002") and chosen["n_eligible"] == 3
    assert choice.setting_mean([("completed", 1.0), ("diverged", np.nan)]) is None
    assert choice.choose({"b": 1.0, "a": 1.0, "c": None}) == "a" and choice.choose({"a": None}) is None


def test_the_writer_never_imports_the_reader():
    """Nothing under study/train or study/tune imports the analysis (issue 29): the rules both need live in
    wt_base."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    found = []
    for path in sorted([*root.glob("study/train/*.py"), *root.glob("study/tune/*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found += [f"{path.relative_to(root)}: {n}" for n in names if n == "analysis" or n.startswith("analysis.")]
    assert found == []
