"""The verdict table: each worker arm against the standard model of its cell, on test seeds (pure).

Each arm is judged at the setting analysis.tuning chose for it; only test seeds enter. Differences are paired
over shared seeds (both arms see the same data order for a seed) or Welch's otherwise (analysis.inference).
p-values are Holm-adjusted across the whole table, raw ones beside; an equivalence test (TOST) against the
cell's margin makes "no difference" a claim of its own; the minimum detectable effect says what each cell
could have seen.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import inference
from analysis.configs import STANDARD
from analysis.inference import ALPHA
from analysis.stats import CELL_COLUMNS

VERDICT_COLUMNS = CELL_COLUMNS + ["cell_extra", "arch", "worker_interval", "conv_kernel", "arm"]
VERDICT_COLUMNS += ["worker_tuned", "standard_tuned", "worker_tuned_on", "standard_tuned_on", "tuning"]
VERDICT_COLUMNS += ["standard_budget_value", "n_worker", "n_standard", "worker_diverged", "standard_diverged"]
VERDICT_COLUMNS += ["worker_epochs", "standard_epochs", "test", "n_pairs", "worker_mean", "standard_mean"]
VERDICT_COLUMNS += ["diff", "diff_ci_low", "diff_ci_high", "p_value", "p_holm", "margin", "p_equiv"]
VERDICT_COLUMNS += ["p_equiv_holm", "mde", "verdict"]
BIASED = "tuned on test seeds: biased"


def verdicts(final: pd.DataFrame, chosen: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """One row per worker arm and cell (stats.final_values, tuning.choose_settings): worker minus standard final
    loss over test seeds, its (1 - alpha) interval, raw and Holm-adjusted p-values, TOST, MDE and a verdict."""
    test = final[final["seed_role"].eq("test")]
    by_config = {k: g for k, g in test.groupby("config_id", sort=False)}
    margins = final.groupby("cell_key", sort=False)["margin"].first()
    epochs = test.groupby("config_id", sort=False)["epochs_end"].mean()
    standards = chosen[chosen["arch"].eq(STANDARD)].set_index("cell_key")
    rows = []
    for _, arm in chosen[~chosen["arch"].eq(STANDARD)].iterrows():
        std = standards.loc[arm["cell_key"]] if arm["cell_key"] in standards.index else None
        w, s = _trials(by_config, arm), _trials(by_config, std)
        row = {c: arm[c] for c in VERDICT_COLUMNS if c in arm.index}
        row.update(
            worker_tuned=arm["tuned"],
            standard_tuned=np.nan if std is None else std["tuned"],
            worker_tuned_on=arm["tuned_on"],
            standard_tuned_on=np.nan if std is None else std["tuned_on"],
            standard_budget_value=np.nan if std is None else std["budget_value"],
            n_worker=int(w["final_loss"].notna().sum()),
            n_standard=int(s["final_loss"].notna().sum()),
            worker_diverged=int(w["status"].eq("diverged").sum()),
            standard_diverged=int(s["status"].eq("diverged").sum()),
            worker_epochs=epochs.get(arm["config_id"], np.nan),
            standard_epochs=np.nan if std is None else epochs.get(std["config_id"], np.nan),
            worker_mean=w["final_loss"].mean(),
            standard_mean=s["final_loss"].mean(),
            margin=float(margins[arm["cell_key"]]),
        )
        row["tuning"] = tuning_words(row["worker_tuned_on"], row["standard_tuned_on"])
        row.update(inference.compare(w, s, row["margin"], alpha))
        rows.append(row)
    out = pd.DataFrame(rows).reindex(columns=VERDICT_COLUMNS)
    out["p_holm"] = inference.holm(out["p_value"])
    out["p_equiv_holm"] = inference.holm(out["p_equiv"])
    out["verdict"] = [verdict_words(r, alpha) for _, r in out.iterrows()]
    for column in ("n_worker", "n_standard", "worker_diverged", "standard_diverged", "n_pairs"):
        out[column] = out[column].astype("int64")
    return out


def _trials(by_config: dict, arm) -> pd.DataFrame:
    """The test-seed trials of an arm's chosen configuration (empty when there is none)."""
    empty = pd.DataFrame({"seed": [], "final_loss": [], "status": [], "epochs_end": []})
    if arm is None or pd.isna(arm["config_id"]):
        return empty
    return by_config.get(arm["config_id"], empty)


def tuning_words(worker_on, standard_on) -> str:
    """How the two arms' settings were chosen, in words: "none", "tune seeds", or the bias flag."""
    on = {v for v in (worker_on, standard_on) if isinstance(v, str)}
    if "test seeds" in on:
        return BIASED
    if "no eligible setting" in on:
        return "no eligible setting"
    return "tune seeds" if "tune seeds" in on else "none"


def verdict_words(row, alpha: float = ALPHA) -> str:
    """'worker better', 'worker worse', 'equivalent within ±m', 'inconclusive', or why no test ran; flagged
    when a setting was chosen on the test seeds."""
    words = _words(row, alpha)
    return f"{words} ({BIASED})" if row["tuning"] == BIASED else words


def _words(row, alpha: float) -> str:
    margin = f"±{row['margin']:g}"
    if row["tuning"] == "no eligible setting":
        return "no eligible setting (every tuned setting lost a tuning seed)"
    if row["n_standard"] == 0 and pd.isna(row["standard_tuned_on"]):
        return "no standard baseline"
    if row["test"] == "none":
        return "insufficient seeds"
    if not np.isfinite(row["p_value"]):
        return "undetermined (no seed-to-seed variance)"
    equivalent = np.isfinite(row["p_equiv_holm"]) and row["p_equiv_holm"] < alpha
    if row["p_holm"] < alpha:
        better = "worker better" if row["diff"] < 0 else "worker worse"
        return f"{better}, by less than {margin}" if equivalent else better
    return f"equivalent within {margin}" if equivalent else "inconclusive"
