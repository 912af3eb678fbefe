"""The verdict table: each arm against its reference arm in its cell, on test seeds (pure).

An arm's reference is the one its registry entry names (wt_model.archs: the standard model for every arm so far),
in the same cell: the fields an arm is declared to differ in (`settings`, `differs`) are arm fields, so a variant
that changes one config field is compared with its reference (analysis.configs.split_fields). Columns say `arm_*`
for the arm and `ref_*` for its reference; verdicts.csv files of older studies (`worker_*`, `standard_*`) are read
back through `upgrade_columns`.

Each arm is judged at the setting analysis.tuning chose for it; only test seeds enter. Differences are paired
over shared seeds (both arms see the same data order for a seed) or Welch's otherwise (analysis.inference).
p-values are Holm-adjusted across the whole table, raw ones beside. Against the cell's margin, an equivalence test
(TOST) and its converse (a difference beyond the margin) make "no difference" and "a big difference" claims of
their own, and the smallest margin the cell could certify says what its seeds can show; the minimum detectable
effect says what the cell could have seen. A cell where a test seed of either arm diverged, failed or did not
finish is never "better" or "worse" from its survivors: its verdict says which arm lost seeds, and a paired
sign-flip test that counts a lost seed as the worst outcome stands beside the t-test, with the smallest p it can
give. A cell where either side's tuned setting
was chosen at the edge of the range it tried (analysis.tuning) is "not comparable", never "better" or "worse":
the arm may be judged short of its optimum.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import inference
from analysis.configs import reference_of
from analysis.inference import ALPHA
from analysis.outcomes import KINDS, LOST, flag_words, outcome_counts
from analysis.stats import CELL_COLUMNS
from wt_model.archs import REFERENCE

VERDICT_COLUMNS = CELL_COLUMNS + ["cell_extra", "arch", "worker_interval", "conv_kernel", "arm", "reference"]
VERDICT_COLUMNS += ["arm_tuned", "ref_tuned", "arm_tuned_on", "ref_tuned_on", "tuning"]
VERDICT_COLUMNS += ["arm_edge", "ref_edge"]  # tuning.choose_settings' edge of each side ('' when interior)
VERDICT_COLUMNS += ["ref_budget_value", "arm_seeds", "ref_seeds", "n_arm", "n_ref"]
VERDICT_COLUMNS += ["arm_diverged", "ref_diverged", "arm_failed", "ref_failed"]
VERDICT_COLUMNS += ["arm_unfinished", "ref_unfinished", "arm_epochs", "ref_epochs"]
VERDICT_COLUMNS += ["arm_target_epochs", "ref_target_epochs", "test", "n_pairs", "arm_mean"]
VERDICT_COLUMNS += ["ref_mean", "diff", "se", "df", "diff_ci_low", "diff_ci_high", "p_value", "p_holm"]
VERDICT_COLUMNS += ["p_signflip", "p_signflip_holm", "p_signflip_min", "margin", "p_equiv", "p_equiv_holm"]
VERDICT_COLUMNS += ["p_noneq", "p_noneq_holm", "min_margin", "mde", "verdict"]  # min_margin, mde: at alpha / rows
BIASED = "tuned on test seeds: biased"


def verdicts(final: pd.DataFrame, chosen: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """One row per arm with a reference, per cell (stats.final_values, tuning.choose_settings): arm minus reference
    final loss over test seeds, its (1 - alpha) interval (unadjusted), raw and Holm-adjusted p-values, the sign-flip
    test, TOST and its converse, the smallest certifiable margin, the MDE, seed counts by outcome and a verdict."""
    test = final[final["seed_role"].eq("test")]
    by_config = {k: g for k, g in test.groupby("config_id", sort=False)}
    margins = final.groupby("cell_key", sort=False)["margin"].first()
    means = test.groupby("config_id", sort=False)[["epochs_end", "target_epochs_end"]].mean()
    references = {(r["cell_key"], r["arch"]): r for _, r in chosen.iterrows()}
    rows = []
    for _, arm in chosen.iterrows():
        reference = reference_of(arm["arch"])
        if reference is None:
            continue
        std = references.get((arm["cell_key"], reference))
        w, s = _trials(by_config, arm), _trials(by_config, std)
        row = {c: arm[c] for c in VERDICT_COLUMNS if c in arm.index}
        row.update(
            reference=reference,
            arm_tuned=arm["tuned"],
            ref_tuned=np.nan if std is None else std["tuned"],
            arm_tuned_on=arm["tuned_on"],
            ref_tuned_on=np.nan if std is None else std["tuned_on"],
            ref_budget_value=np.nan if std is None else std["budget_value"],
            margin=float(margins[arm["cell_key"]]),
            arm_edge=_text(arm.get("edge")),
            ref_edge="" if std is None else _text(std.get("edge")),
        )
        for side, trials, config in (("arm", w, arm), ("ref", s, std)):
            row.update(_outcomes(side, trials))
            for column, name in (("epochs_end", "epochs"), ("target_epochs_end", "target_epochs")):
                known = config is not None and config["config_id"] in means.index
                row[f"{side}_{name}"] = means.loc[config["config_id"], column] if known else np.nan
        row["tuning"] = tuning_words(row["arm_tuned_on"], row["ref_tuned_on"])
        row.update(inference.compare(w, s, row["margin"], alpha, int(chosen["arch"].map(reference_of).notna().sum())))
        row.update(inference.sign_flip(*_ranked(w, s)))
        rows.append(row)
    out = pd.DataFrame(rows).reindex(columns=VERDICT_COLUMNS)
    for column in ("p", "p_signflip", "p_equiv", "p_noneq"):
        raw = "p_value" if column == "p" else column
        out[f"{column}_holm"] = inference.holm(out[raw])
    out["verdict"] = [verdict_words(r, alpha) for _, r in out.iterrows()]
    counts = [c for c in VERDICT_COLUMNS if c in _COUNTS]
    out[counts] = out[counts].astype("int64")
    return out


_COUNTS = {"n_arm", "n_ref", "n_pairs", "arm_seeds", "ref_seeds"}
_COUNTS |= {f"{side}_{what}" for side in ("arm", "ref") for what in ("diverged", "failed", "unfinished")}
# verdicts.csv columns of studies analysed before arms named their reference -> today's names
OLD_COLUMNS = {
    f"{old}_{what}": f"{new}_{what}"
    for old, new in (("worker", "arm"), ("standard", "ref"))
    for what in (
        "tuned",
        "tuned_on",
        "edge",
        "budget_value",
        "seeds",
        "diverged",
        "failed",
        "unfinished",
        "epochs",
        "target_epochs",
        "mean",
    )
}
OLD_COLUMNS |= {"n_worker": "n_arm", "n_standard": "n_ref"}


def upgrade_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """A verdicts frame read from an older verdicts.csv (worker_*/standard_* columns) with today's column names;
    its missing `reference` is the standard model, the only reference then."""
    out = frame.rename(columns={old: new for old, new in OLD_COLUMNS.items() if old in frame.columns})
    if "reference" not in out.columns and "arm" in out.columns:
        out.insert(list(out.columns).index("arm") + 1, "reference", REFERENCE)
    return out


def _outcomes(side: str, trials: pd.DataFrame) -> dict:
    """Test seeds of one arm's chosen configuration, by outcome."""
    counts = {f"{side}_{k}": n for k, n in outcome_counts(trials["status"]).items()}
    counts[f"n_{side}"] = int(trials["final_loss"].notna().sum())
    counts[f"{side}_mean"] = trials["final_loss"].mean()  # over the seeds with a final loss
    return counts


def _ranked(arm: pd.DataFrame, ref: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Both sides' final losses paired by seed (the seeds both ran), every lost seed (diverged, failed) as +inf,
    the worst outcome, an unfinished one as NaN (inference.sign_flip leaves its pair out)."""

    def by_seed(trials: pd.DataFrame) -> pd.Series:
        loss = trials["final_loss"].astype(float).where(~trials["status"].isin(LOST), np.inf)
        loss = pd.Series(loss.to_numpy(float), index=trials["seed"].to_numpy())
        return loss[~loss.index.duplicated()]

    a, r = by_seed(arm), by_seed(ref)
    shared = a.index.intersection(r.index)
    return a.loc[shared].to_numpy(float), r.loc[shared].to_numpy(float)


def _trials(by_config: dict, arm) -> pd.DataFrame:
    """The test-seed trials of an arm's chosen configuration (empty when there is none)."""
    empty = pd.DataFrame({"seed": [], "final_loss": [], "status": [], "epochs_end": [], "target_epochs_end": []})
    if arm is None or pd.isna(arm["config_id"]):
        return empty
    return by_config.get(arm["config_id"], empty)


def tuning_words(arm_on, ref_on) -> str:
    """How the two arms' settings were chosen, in words: "none", "tune seeds", or the bias flag."""
    on = {v for v in (arm_on, ref_on) if isinstance(v, str)}
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
    sides = ((row["arm"], row["arm_edge"]), (row["reference"], row["ref_edge"]))
    return "; ".join(f"{name}'s {edge}" for name, edge in sides if _text(edge))


def _lost_words(row) -> str:
    """Which side lost or did not finish test seeds, in analysis.outcomes' words (the one rule for lost seeds)."""
    sides = [(row["arm"], "arm"), (row["reference"], "ref")]
    return flag_words([(name, {k: row[f"{side}_{k}"] for k in ("seeds", *KINDS)}) for name, side in sides])


def _words(row, alpha: float) -> str:
    margin = f"±{row['margin']:g}"
    if row["tuning"] == "no eligible setting":
        return "no eligible setting (every tuned setting lost a tuning seed)"
    if row["ref_seeds"] == 0 and pd.isna(row["ref_tuned_on"]):
        return f"no {row['reference']} baseline"
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
