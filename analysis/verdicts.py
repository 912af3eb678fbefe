"""The verdict table: each arm against the standard model of its cell, on test seeds (pure).

Each arm is judged at the setting analysis.tuning chose for it; only test seeds enter. Differences are paired
over shared seeds (both arms see the same data order for a seed) or Welch's otherwise (analysis.inference).
p-values are Holm-adjusted across the whole table, raw ones beside. Against the cell's margin, an equivalence test
(TOST) and its converse (a difference beyond the margin) make "no difference" and "a big difference" claims of
their own, and the smallest margin the cell could certify says what its seeds can show; the minimum detectable
effect says what the cell could have seen. A cell where a test seed of either arm diverged, failed or did not
finish is never "better" or "worse" from its survivors: its verdict says which arm lost seeds, and a rank test
that counts a lost seed as the worst outcome stands beside the t-test. A cell where either side's tuned setting
was chosen at the edge of the range it tried (analysis.tuning) is "not comparable", never "better" or "worse":
the arm may be judged short of its optimum.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import inference
from analysis.configs import STANDARD
from analysis.inference import ALPHA
from analysis.stats import CELL_COLUMNS

LOST = ("diverged", "failed")  # a lost seed: the run gave no final loss (counted as the worst outcome)
UNFINISHED = ("stopped", "running", "pending")  # no final loss yet, or ended early by a scheduler
VERDICT_COLUMNS = CELL_COLUMNS + ["cell_extra", "arch", "worker_interval", "conv_kernel", "arm"]
VERDICT_COLUMNS += ["worker_tuned", "standard_tuned", "worker_tuned_on", "standard_tuned_on", "tuning"]
VERDICT_COLUMNS += ["worker_edge", "standard_edge"]  # tuning.choose_settings' edge of each side ('' when interior)
VERDICT_COLUMNS += ["standard_budget_value", "worker_seeds", "standard_seeds", "n_worker", "n_standard"]
VERDICT_COLUMNS += ["worker_diverged", "standard_diverged", "worker_failed", "standard_failed"]
VERDICT_COLUMNS += ["worker_unfinished", "standard_unfinished", "worker_epochs", "standard_epochs"]
VERDICT_COLUMNS += ["worker_target_epochs", "standard_target_epochs", "test", "n_pairs", "worker_mean"]
VERDICT_COLUMNS += ["standard_mean", "diff", "se", "df", "diff_ci_low", "diff_ci_high", "p_value", "p_holm"]
VERDICT_COLUMNS += ["p_rank", "p_rank_holm", "margin", "p_equiv", "p_equiv_holm", "p_noneq", "p_noneq_holm"]
VERDICT_COLUMNS += ["min_margin", "mde", "verdict"]
BIASED = "tuned on test seeds: biased"


def verdicts(final: pd.DataFrame, chosen: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """One row per non-standard arm and cell (stats.final_values, tuning.choose_settings): arm minus standard
    final loss over test seeds, its (1 - alpha) interval (unadjusted), raw and Holm-adjusted p-values, the rank
    test, TOST and its converse, the smallest certifiable margin, the MDE, seed counts by outcome and a verdict."""
    test = final[final["seed_role"].eq("test")]
    by_config = {k: g for k, g in test.groupby("config_id", sort=False)}
    margins = final.groupby("cell_key", sort=False)["margin"].first()
    means = test.groupby("config_id", sort=False)[["epochs_end", "target_epochs_end"]].mean()
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
            margin=float(margins[arm["cell_key"]]),
            worker_edge=_text(arm.get("edge")),
            standard_edge="" if std is None else _text(std.get("edge")),
        )
        for side, trials, config in (("worker", w, arm), ("standard", s, std)):
            row.update(_outcomes(side, trials))
            for column, name in (("epochs_end", "epochs"), ("target_epochs_end", "target_epochs")):
                known = config is not None and config["config_id"] in means.index
                row[f"{side}_{name}"] = means.loc[config["config_id"], column] if known else np.nan
        row["tuning"] = tuning_words(row["worker_tuned_on"], row["standard_tuned_on"])
        row.update(inference.compare(w, s, row["margin"], alpha))
        row["p_rank"] = inference.rank_test(_ranked(w), _ranked(s))
        rows.append(row)
    out = pd.DataFrame(rows).reindex(columns=VERDICT_COLUMNS)
    for column in ("p", "p_rank", "p_equiv", "p_noneq"):
        raw = "p_value" if column == "p" else column
        out[f"{column}_holm"] = inference.holm(out[raw])
    out["verdict"] = [verdict_words(r, alpha) for _, r in out.iterrows()]
    counts = [c for c in VERDICT_COLUMNS if c.startswith(("n_", "worker_", "standard_")) and c in _COUNTS]
    out[counts] = out[counts].astype("int64")
    return out


_COUNTS = {"n_worker", "n_standard", "n_pairs", "worker_seeds", "standard_seeds"}
_COUNTS |= {f"{side}_{what}" for side in ("worker", "standard") for what in ("diverged", "failed", "unfinished")}


def _outcomes(side: str, trials: pd.DataFrame) -> dict:
    """Test seeds of one arm's chosen configuration, by outcome."""
    status = trials["status"]
    return {
        f"{side}_seeds": len(trials),
        f"n_{side}": int(trials["final_loss"].notna().sum()),
        f"{side}_diverged": int(status.eq("diverged").sum()),
        f"{side}_failed": int(status.eq("failed").sum()),
        f"{side}_unfinished": int(status.isin(UNFINISHED).sum()),
        f"{side}_mean": trials["final_loss"].mean(),  # over the seeds with a final loss
    }


def _ranked(trials: pd.DataFrame) -> np.ndarray:
    """Final losses with every lost seed (diverged, failed) as +inf, the worst outcome; unfinished seeds left out."""
    lost = trials["status"].isin(LOST)
    loss = trials["final_loss"].astype(float).where(~lost, np.inf)
    return loss[lost | loss.notna()].to_numpy(float)


def _trials(by_config: dict, arm) -> pd.DataFrame:
    """The test-seed trials of an arm's chosen configuration (empty when there is none)."""
    empty = pd.DataFrame({"seed": [], "final_loss": [], "status": [], "epochs_end": [], "target_epochs_end": []})
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
    """What the row supports, in words a reviewer would sign; flagged when a setting was chosen on test seeds.

    A side chosen at the edge of what it tried comes first ("not comparable: standard's lr at the top of the
    tried range (0.001-0.004)"), then a lost or unfinished test seed ("worker k=4 unstable: 2 of 5 diverged").
    Otherwise, by the
    Holm-adjusted tests at `alpha` against the margin m: "better/worse, by more than ±m" (the difference and its
    converse-of-equivalence test), "better/worse, within ±m" (different, yet inside the margin), "better/worse"
    (the size against m not shown), "equivalent within ±m" (TOST), or "not shown (MDE x)" (no claim: neither a
    difference nor equivalence; the seeds could only have seen a difference of x)."""
    words = _words(row, alpha)
    return f"{words} ({BIASED})" if row["tuning"] == BIASED else words


def _text(value) -> str:
    return value if isinstance(value, str) else ""


def not_comparable(row) -> str:
    """'' when both sides were chosen inside what they tried; else the words that say which was not, and where
    ("standard's lr at the top of the tried range (0.001-0.004)")."""
    sides = ((row["arm"], row["worker_edge"]), (STANDARD, row["standard_edge"]))
    return "; ".join(f"{name}'s {edge}" for name, edge in sides if _text(edge))


def _lost_words(row) -> str:
    parts = []
    for side in ("worker", "standard"):
        name = row["arm"] if side == "worker" else STANDARD
        seeds = row[f"{side}_seeds"]
        lost = {k: row[f"{side}_{k}"] for k in ("diverged", "failed", "unfinished") if row[f"{side}_{k}"]}
        if lost:
            what = ", ".join(f"{n} {k}" if k != "unfinished" else f"{n} not finished" for k, n in lost.items())
            parts.append(f"{name} {'unstable' if set(lost) - {'unfinished'} else 'incomplete'}: {what} of {seeds}")
    return "; ".join(parts)


def _words(row, alpha: float) -> str:
    margin = f"±{row['margin']:g}"
    if row["tuning"] == "no eligible setting":
        return "no eligible setting (every tuned setting lost a tuning seed)"
    if row["standard_seeds"] == 0 and pd.isna(row["standard_tuned_on"]):
        return "no standard baseline"
    edge = not_comparable(row)
    if edge:  # an arm judged short of its optimum: no better or worse, whatever the tests say
        return f"not comparable: {edge}"
    lost = _lost_words(row)
    if lost:
        return lost
    if row["test"] == "none":
        return "insufficient seeds"
    if not np.isfinite(row["p_value"]):
        return "undetermined (no seed-to-seed variance)"

    def shown(column: str) -> bool:
        return bool(np.isfinite(row[column]) and row[column] < alpha)

    if shown("p_holm"):
        better = f"{row['arch']} better" if row["diff"] < 0 else f"{row['arch']} worse"
        if shown("p_noneq_holm"):
            return f"{better}, by more than {margin}"
        return f"{better}, within {margin}" if shown("p_equiv_holm") else better
    if shown("p_equiv_holm"):
        return f"equivalent within {margin}"
    mde = f" (MDE {row['mde']:.2g})" if np.isfinite(row["mde"]) else ""
    return f"not shown{mde}"


def verdict_counts(v: pd.DataFrame) -> str:
    """The verdicts counted by kind, the not-comparable cells apart: '4 verdicts: 1 better, 1 not shown; 2 not
    comparable (a side's tuned setting at the edge of its tried range)'."""
    if v.empty:
        return "no verdicts"
    words = v["verdict"].astype(str)
    apart = words.str.startswith("not comparable")
    kinds = words[~apart].str.replace(r"^\S+ (k=\d+ )?(better|worse).*$", r"\2", regex=True)
    kinds = kinds.str.replace(r" \(MDE.*$| within .*$|:.*$", "", regex=True)
    counted = ", ".join(f"{n} {k}" for k, n in kinds.value_counts().sort_index().items())
    text = f"{len(v)} verdict{'s' if len(v) != 1 else ''}: {counted or 'none comparable'}"
    if apart.any():
        text += f"; {int(apart.sum())} not comparable (a side's tuned setting at the edge of its tried range)"
    return text
