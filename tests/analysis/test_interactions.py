"""Interactions (differences in differences) against hand-built frames with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from frames import arm_rows, final_frame
from scipy import stats

from analysis.interactions import interaction_table
from analysis.tuning import choose_settings

N_SEEDS = 8


def study(groups: dict, seed_starts: dict | None = None):
    """final, chosen of a study: `groups` maps (arch, {field: value}) to per-seed losses."""
    rows = []
    for (arch, fields), losses in groups.items():
        start = (seed_starts or {}).get((arch, fields), 0)
        rows += [dict(r, **dict(fields)) for r in arm_rows(arch, losses, start_seed=start)]
    final = final_frame(rows)
    return final, choose_settings(final)


def init_study(gap_torch, gap_nanogpt, unpaired=False, seed_sd=0.05, noise_sd=0.01):
    """Standard and worker at init torch and nanogpt; each seed shifts all four of its trials alike."""
    rng = np.random.default_rng(0)
    seed_effect = seed_sd * rng.standard_normal(N_SEEDS)
    noise = noise_sd * rng.standard_normal((4, N_SEEDS))
    means = {("standard", "torch"): 2.0, ("worker", "torch"): 2.0 + gap_torch}
    means.update({("standard", "nanogpt"): 2.02, ("worker", "nanogpt"): 2.02 + gap_nanogpt})
    groups = {(a, (("init", i),)): m + seed_effect + noise[k] for k, ((a, i), m) in enumerate(means.items())}
    starts = {key: 100 for key in groups if key[0] == "worker"} if unpaired else None  # no seed in all four
    return study(groups, starts)


def test_a_known_init_interaction_is_recovered_with_a_paired_test():
    final, chosen = init_study(gap_torch=-0.03, gap_nanogpt=0.02)  # the gap is 0.05 larger at nanogpt
    (row,) = [r for _, r in interaction_table(final, chosen).iterrows()]  # one row: init
    assert (row["factor"], row["level_a"], row["level_b"], row["by_alt"]) == ("init", "nanogpt", "torch", "worker k=4")
    # DiD = gap at level_b (torch) - gap at level_a (nanogpt)
    assert row["test"] == "paired" and row["n_seeds"] == N_SEEDS and row["df"] == N_SEEDS - 1
    assert row["did_ci_low"] < -0.05 < row["did_ci_high"] and row["p_holm"] < 0.05
    assert row["did"] == pytest.approx(-0.05, abs=0.02)
    assert row["did"] == pytest.approx(
        (row["mean_b_alt"] - row["mean_b_ref"]) - (row["mean_a_alt"] - row["mean_a_ref"])
    )
    assert row["words"].startswith("interaction: worker k=4 − standard is 0.0")  # the gap is lower at torch
    assert "lower at init torch than at init nanogpt (CI [+0.0" in row["words"]
    assert row["words"].endswith("worker k=4 fares better against standard there")


def test_no_interaction_gives_an_interval_covering_zero():
    final, chosen = init_study(gap_torch=-0.03, gap_nanogpt=-0.03)
    row = interaction_table(final, chosen).iloc[0]
    assert row["did_ci_low"] < 0 < row["did_ci_high"] and row["p_value"] > 0.05
    assert row["words"].startswith("no interaction shown (CI [")


def test_without_shared_seeds_the_test_is_welch_over_four_groups():
    paired = interaction_table(*init_study(gap_torch=-0.03, gap_nanogpt=0.02)).iloc[0]
    final, chosen = init_study(gap_torch=-0.03, gap_nanogpt=0.02, unpaired=True)  # the same losses, other seeds
    row = interaction_table(final, chosen).iloc[0]
    assert row["test"] == "Welch" and row["did"] == pytest.approx(paired["did"])
    test = final[final["seed_role"].eq("test")]
    by_group = test.groupby(["arch", "init"])["final_loss"]
    se = np.sqrt((by_group.var(ddof=1) / by_group.count()).sum())
    assert row["se"] == pytest.approx(se)
    assert N_SEEDS - 1 <= row["df"] <= 4 * (N_SEEDS - 1)  # the Welch-Satterthwaite bounds
    assert row["did_ci_low"] < -0.05 < row["did_ci_high"]
    # the seed effect (sd 0.05) cancels within a seed but not across groups: pairing is far sharper
    width = row["did_ci_high"] - row["did_ci_low"]
    assert width > 3 * (paired["did_ci_high"] - paired["did_ci_low"])


def test_welch_df_of_four_equal_groups_is_their_pooled_df():
    deviations = np.array([-0.02, -0.01, 0.0, 0.01, 0.02])
    means = {("standard", "torch"): 2.0, ("worker", "torch"): 1.9, ("standard", "nanogpt"): 2.1}
    means[("worker", "nanogpt")] = 2.1
    groups = {(a, (("init", i),)): m + deviations for (a, i), m in means.items()}
    final, chosen = study(groups, {key: 10 * k for k, key in enumerate(groups)})
    row = interaction_table(final, chosen).iloc[0]
    se = np.sqrt(4 * deviations.var(ddof=1) / 5)
    assert row["test"] == "Welch" and row["df"] == pytest.approx(16.0) and row["se"] == pytest.approx(se)
    assert row["did"] == pytest.approx(-0.1)  # torch gap -0.1, nanogpt gap 0
    half = stats.t.ppf(0.975, 16) * se
    assert [row["did_ci_low"], row["did_ci_high"]] == pytest.approx([-0.1 - half, -0.1 + half])
    assert row["p_value"] == pytest.approx(2 * stats.t.sf(0.1 / se, 16))


def test_holm_adjusts_across_the_rows_and_the_words_follow_it():
    spread = 0.01 * np.array([-1.0, 0.0, 1.0])
    standard = 2.0 + 0.01 * np.arange(3)
    groups = {("standard", (("init", "torch"),)): standard, ("standard", (("init", "nanogpt"),)): standard}
    for k, p in ((2, 0.03), (4, 0.04)):  # per-seed DiDs whose t-test has raw p exactly p
        did = stats.t.ppf(1 - p / 2, 2) * 0.01 / np.sqrt(3) + spread
        groups[("worker", (("init", "torch"), ("worker_interval", k)))] = standard
        groups[("worker", (("init", "nanogpt"), ("worker_interval", k)))] = standard + did
    table = interaction_table(*study(groups)).set_index("arm")
    assert table.loc[["worker k=2", "worker k=4"], "p_value"].tolist() == pytest.approx([0.03, 0.04])
    assert table.loc[["worker k=2", "worker k=4"], "p_holm"].tolist() == pytest.approx([0.06, 0.06])  # 2 x 0.03
    assert table["words"].str.startswith("no interaction shown").all()  # significant raw, not after Holm


def test_a_factor_is_crossed_only_when_the_gap_exists_at_each_level():
    losses = 2.0 + 0.01 * np.arange(3)
    one_init = {(a, (("seq_len", s),)): losses for a in ("standard", "worker") for s in (64, 128)}
    assert interaction_table(*study(one_init))["factor"].tolist() == ["seq_len"]  # one init: no init row
    no_baseline = {("standard", (("init", "torch"),)): losses, ("worker", (("init", "torch"),)): losses}
    no_baseline[("worker", (("init", "nanogpt"),))] = losses  # no standard model at nanogpt: no gap there
    assert interaction_table(*study(no_baseline)).empty
    intervals = {("standard", ()): losses, **{("worker", (("worker_interval", k),)): losses for k in (2, 4)}}
    assert interaction_table(*study(intervals)).empty  # an arm field alone: worker k=4 - worker k=2, a main effect


def test_two_arm_fields_crossed_on_a_grid_give_a_did_among_worker_arms():
    rng = np.random.default_rng(1)
    groups = {("standard", ()): 2.0 + 0.01 * rng.standard_normal(N_SEEDS)}
    for k in (2, 4):
        for c in (3, 5):
            mean = 2.0 - 0.01 * k + 0.02 * (c == 5) + 0.03 * (k == 4 and c == 5)  # interaction +0.03
            groups[("worker", (("worker_interval", k), ("conv_kernel", c)))] = mean + 0.002 * rng.standard_normal(
                N_SEEDS
            )
    (row,) = [r for _, r in interaction_table(*study(groups)).iterrows()]
    assert row["factor"] == "conv_kernel x worker_interval"
    assert (row["field"], row["level_a"], row["level_b"]) == ("worker_interval", "2", "4")
    assert (row["by"], row["by_ref"], row["by_alt"], row["arm"]) == (
        "conv_kernel",
        "conv_kernel 3",
        "conv_kernel 5",
        "worker",
    )
    assert row["test"] == "paired" and row["did"] == pytest.approx(0.03, abs=0.004)
    assert row["did_ci_low"] < 0.03 < row["did_ci_high"]
    assert "conv_kernel 5 − conv_kernel 3 is 0.0" in row["words"]  # higher at k=4, so lower at k=2
    assert "lower at worker_interval 2 than at worker_interval 4 (CI [+0.0" in row["words"]


def test_an_interaction_whose_groups_lost_seeds_is_flagged_and_draws_nothing_from_the_survivors():
    """2 of 5 worker seeds at init torch diverged; the survivors alone show a clear interaction (the old rule's
    words), but a lost seed is the worst outcome (analysis.outcomes), so the row says who lost what instead."""
    rng = np.random.default_rng(2)
    seed_effect, noise = 0.05 * rng.standard_normal(5), 0.002 * rng.standard_normal((4, 5))
    means = {("standard", "torch"): 2.0, ("worker", "torch"): 1.97, ("standard", "nanogpt"): 2.02}
    means[("worker", "nanogpt")] = 2.04  # the gap is 0.05 larger at nanogpt
    rows = []
    for k, ((arch, init), mean) in enumerate(means.items()):
        for r in arm_rows(arch, mean + seed_effect + noise[k], init=init):
            lost = arch == "worker" and init == "torch" and r["seed"] >= 3
            rows.append(dict(r, status="diverged", val_loss=np.nan) if lost else r)
    final = final_frame(rows)
    (row,) = [r for _, r in interaction_table(final, choose_settings(final)).iterrows()]
    assert row["test"] == "paired" and row["n_seeds"] == 3 and row["p_holm"] < 0.05  # the survivors' numbers stay
    assert row["n_lost"] == 2 and row["lost"] == "worker k=4 at init torch unstable: 2 diverged of 5"
    assert row["words"] == "worker k=4 at init torch unstable: 2 diverged of 5: no claim from the survivors"
    stopped = final.assign(status=np.where(final["status"].eq("diverged"), "stopped", final["status"]))
    (row,) = [r for _, r in interaction_table(stopped, choose_settings(stopped)).iterrows()]
    assert row["lost"] == "worker k=4 at init torch incomplete: 2 not finished of 5"  # the verdicts' word for it
