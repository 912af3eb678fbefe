"""The init-ablation study as docs/findings.md shows it: per arm and init, the seed-mean val loss at a few steps,
and per arm the paired difference nanogpt - torch of the final loss (same seeds, same data order) with its 95%
interval.

    python benchmarks/init_ablation_table.py [wt_results/init-ablation]
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from scipy import stats

from analysis.load import load_study
from analysis.stats import arm_label
from analysis.tables import md_table

STEPS = (300, 1000, 2000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", nargs="?", default="wt_results/init-ablation")
    study = load_study(parser.parse_args().study)
    arms = [arm_label(a, k) for a, k in zip(study.trials["arch"], study.trials["worker_interval"], strict=True)]
    trials = study.trials.assign(arm=arms)[["trial_id", "arm", "init", "seed"]]
    points = study.metrics.merge(trials, on="trial_id")
    final = points[points["is_final"]]
    at = points[~points["is_final"] & points["step"].isin(STEPS)]
    table = at.pivot_table(index=["arm", "init"], columns="step", values="val_loss")
    table["final"] = final.groupby(["arm", "init"])["val_loss"].mean()
    print("val_loss, mean over seeds (periodic evaluations; final: the whole validation split)")
    print(md_table(table.reset_index()))
    print("\nfinal val_loss, nanogpt - torch, paired by seed")
    paired = final.pivot_table(index=["arm", "seed"], columns="init", values="val_loss")
    rows = []
    for arm, group in paired.groupby(level="arm"):
        diff = (group["nanogpt"] - group["torch"]).dropna().to_numpy()
        half = stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff))
        p = stats.ttest_1samp(diff, 0.0).pvalue
        rows.append((arm, len(diff), diff.mean(), diff.mean() - half, diff.mean() + half, p))
    out = pd.DataFrame(rows, columns=["arm", "seeds", "nanogpt - torch", "CI low", "CI high", "p (paired t)"])
    print(md_table(out))


if __name__ == "__main__":
    main()
