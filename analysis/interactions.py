"""Interactions: does the worker's gap to the standard model change with another setting? (pure)

A verdict compares a worker arm with the standard model inside one cell. Whether that gap depends on a setting
is a claim about two cells at once, a difference in differences (DiD) of final losses on test seeds at the
settings analysis.tuning chose. A study crosses two kinds of setting with the architecture:
  - a *cell* field (init, attention, seq_len, ...): both models vary with it. The gap (worker − standard) is
    measured in two cells that differ in that field only, and DiD = gap at level b − gap at level a;
  - two *arm* fields crossed on a grid (conv_kernel × worker_interval): only the worker arms vary with them, so
    one arm field alone is no interaction with the architecture ((worker k=4 − standard) − (worker k=2 −
    standard) is worker k=4 − worker k=2, a main effect). Within one cell and architecture,
    DiD = (k2,c2 − k2,c1) − (k1,c2 − k1,c1).
Per-seed DiDs over the seeds whose four trials all completed when there are at least 2 (a paired t-test: the
seeds share data order), else Welch's: se² = Σ s²ᵢ/nᵢ over the four groups, Welch–Satterthwaite df.
p-values are Holm-adjusted across the table. A row in which any of the four groups lost a test seed (diverged,
failed) or has one unfinished is flagged as the verdicts flag a cell (analysis.outcomes: `lost` says which group
lost which seeds) and draws no interaction, or its absence, from the survivors; its numbers are the survivors'.
"""

from __future__ import annotations

import json
from collections import defaultdict
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

from analysis import inference
from analysis.configs import STANDARD
from analysis.inference import ALPHA
from analysis.outcomes import flag_words, outcome_counts

GROUPS = ("a_ref", "a_alt", "b_ref", "b_alt")  # (level of field, level of by): a/b of field, ref/alt of by
INTERACTION_COLUMNS = ["factor", "field", "level_a", "level_b", "by", "by_ref", "by_alt", "arm", "context"]
INTERACTION_COLUMNS += ["cell_key_a", "cell_key_b", "test", "n_seeds", *(f"mean_{g}" for g in GROUPS)]
INTERACTION_COLUMNS += ["gap_a", "gap_b", "did", "se", "df", "did_ci_low", "did_ci_high", "p_value", "p_holm"]
INTERACTION_COLUMNS += ["n_lost", "lost", "words"]
NOT_CROSSED = ("arch", "model.arch")  # arm fields that name the architecture itself


def interaction_table(final: pd.DataFrame, chosen: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """One row per (factor, levels, arm, context): the DiD of mean test-seed final loss, se, df, its (1 - alpha)
    interval, raw and Holm-adjusted p-values, seeds used, the four group means (over the seeds the test used),
    both gaps, the groups' lost or unfinished test seeds (n_lost, `lost` in words) and a sentence. Columns:
    INTERACTION_COLUMNS.

    `final` from stats.final_values, `chosen` from tuning.choose_settings (each arm at its chosen setting).
    For a cell field, by is "arch", by_ref "standard" and by_alt the worker arm; for two arm fields, field and
    by are the two fields (by_ref/by_alt the latter's levels) and arm is the architecture.
    """
    test = final[final["seed_role"].eq("test")]
    losses = {c: _by_seed(g) for c, g in test.groupby("config_id", sort=False)}
    outcomes = {c: outcome_counts(g["status"]) for c, g in test.groupby("config_id", sort=False)}
    rows = []
    for quad in _quads(chosen.dropna(subset=["config_id"])):
        groups = [losses.get(quad["configs"][g], {}) for g in GROUPS]
        row = {**{k: v for k, v in quad.items() if k != "configs"}, **did_test(groups, alpha)}
        sides = [(_group_name(quad, g), outcomes[quad["configs"][g]]) for g in GROUPS if quad["configs"][g] in outcomes]
        row.update(n_lost=sum(c["diverged"] + c["failed"] + c["unfinished"] for _, c in sides), lost=flag_words(sides))
        rows.append(row)
    out = pd.DataFrame(rows).reindex(columns=INTERACTION_COLUMNS)
    out["p_holm"] = inference.holm(out["p_value"])
    out["words"] = [interaction_words(r, alpha) for _, r in out.iterrows()]
    return out.astype({"n_seeds": "int64", "n_lost": "int64"})


def _group_name(quad: dict, group: str) -> str:
    """'worker k=4 at init torch' (a cell field) or 'worker at worker_interval 2, conv_kernel 5' (two arm fields)."""
    level = quad["level_a"] if group.startswith("a_") else quad["level_b"]
    by = quad["by_ref"] if group.endswith("_ref") else quad["by_alt"]
    where = f"{quad['field']} {level}"
    return f"{by} at {where}" if quad["by"] == "arch" else f"{quad['arm']} at {where}, {by}"


def _quads(arms: pd.DataFrame) -> list[dict]:
    """The 2x2 comparisons the (cell, arm) rows of `arms` (cell_key, arm_key, arch, arm, config_id) allow."""
    cells = {key: json.loads(key) for key in sorted(arms["cell_key"].unique())}
    names = sorted({f for d in cells.values() for f in d})
    shown = [f for f in names if len({_level(d[f]) for d in cells.values()}) > 1]  # fields the cells vary
    quads = [q for field in shown for q in _cell_quads(arms, cells, field, shown)]
    for cell_key, workers in arms[~arms["arch"].eq(STANDARD)].groupby("cell_key", sort=True):
        context = _describe(cells[cell_key], shown)
        quads += [q for pair in _arm_pairs(workers) for q in _arm_quads(workers, cell_key, pair, context)]
    return quads


def _cell_quads(arms: pd.DataFrame, cells: dict, field: str, shown: list[str]) -> list[dict]:
    """Comparisons across two levels of cell field `field`: the same worker arm and the standard in two cells
    that differ in `field` only."""
    by_context = defaultdict(dict)  # the other cell fields -> {level: cell_key}
    for key, d in cells.items():
        by_context[json.dumps({f: v for f, v in d.items() if f != field}, sort_keys=True)][_level(d[field])] = key
    standard = arms[arms["arch"].eq(STANDARD)].drop_duplicates("cell_key").set_index("cell_key")["config_id"]
    workers = arms[~arms["arch"].eq(STANDARD)].drop_duplicates(["cell_key", "arm_key"])
    quads = []
    for levels in by_context.values():
        for a, b in combinations(sorted(levels, key=_order), 2):
            ca, cb = levels[a], levels[b]
            if ca not in standard.index or cb not in standard.index:
                continue
            wa, wb = (workers[workers["cell_key"].eq(c)].set_index("arm_key") for c in (ca, cb))
            for arm_key in sorted(set(wa.index) & set(wb.index)):
                arm = wa.loc[arm_key, "arm"]
                configs = dict(zip(GROUPS, [standard[ca], wa.loc[arm_key, "config_id"], standard[cb],
                                            wb.loc[arm_key, "config_id"]], strict=True))  # fmt: skip
                quads.append(dict(factor=field, field=field, level_a=_text(a), level_b=_text(b), by="arch",
                                  by_ref=STANDARD, by_alt=arm, arm=arm, context=_describe(cells[ca], shown, field),
                                  cell_key_a=ca, cell_key_b=cb, configs=configs))  # fmt: skip
    return quads


def _arm_pairs(workers: pd.DataFrame) -> list[tuple[str, str]]:
    """(field, by): pairs of arm fields that vary among one cell's worker arms, the later name as `field`."""
    fields = sorted({f for key in workers["arm_key"] for f in json.loads(key)} - set(NOT_CROSSED))
    varying = [f for f in fields if workers["arm_key"].map(lambda k, f=f: _level(json.loads(k).get(f))).nunique() > 1]
    return [(field, by) for by, field in combinations(varying, 2)]


def _arm_quads(workers: pd.DataFrame, cell_key: str, pair: tuple[str, str], context: str) -> list[dict]:
    """Comparisons on a 2x2 sub-grid of arm fields (field, by) among worker arms of one cell and architecture."""
    field, by = pair
    grids = defaultdict(dict)  # the other arm fields -> {(field level, by level): row}
    for _, row in workers.drop_duplicates("arm_key").iterrows():
        d = json.loads(row["arm_key"])
        if d.get(field) is not None and d.get(by) is not None:  # an architecture that reads both
            rest = json.dumps({f: v for f, v in d.items() if f not in pair}, sort_keys=True)
            grids[rest][(_level(d[field]), _level(d[by]))] = row
    quads = []
    for grid in grids.values():
        field_levels = sorted({f for f, _ in grid}, key=_order)
        by_levels = sorted({b for _, b in grid}, key=_order)
        for (a, b), (r, t) in ((fa, br) for fa in combinations(field_levels, 2) for br in combinations(by_levels, 2)):
            cells = [(a, r), (a, t), (b, r), (b, t)]
            if not all(c in grid for c in cells):
                continue
            configs = {g: grid[c]["config_id"] for g, c in zip(GROUPS, cells, strict=True)}
            quads.append(dict(factor=f"{by} x {field}", field=field, level_a=_text(a), level_b=_text(b), by=by,
                              by_ref=f"{by} {_text(r)}", by_alt=f"{by} {_text(t)}", arm=grid[cells[0]]["arch"],
                              context=context, cell_key_a=cell_key, cell_key_b=cell_key, configs=configs))  # fmt: skip
    return quads


def did_test(groups: list[dict], alpha: float = ALPHA) -> dict:
    """DiD = (b_alt − b_ref) − (a_alt − a_ref) of four {seed: loss} groups (GROUPS order): paired over the seeds
    in all four when there are at least 2, else Welch's when every group has 2 seeds, else no test."""
    shared = sorted(set.intersection(*(set(g) for g in groups)))
    if len(shared) >= 2:
        values = [np.array([g[s] for s in shared]) for g in groups]
        gap_a, gap_b = values[1] - values[0], values[3] - values[2]
        result = inference.paired(gap_b, gap_a, alpha)  # a t-test of the per-seed DiDs
        n_seeds = len(shared)
    else:
        values = [np.array(list(g.values()), float) for g in groups]
        result = _welch4(values, alpha) if min(map(len, values)) >= 2 else {"test": "none"}
        n_seeds = min(map(len, values))
    means = [float(v.mean()) if len(v) else np.nan for v in values]
    out = {f"mean_{g}": m for g, m in zip(GROUPS, means, strict=True)}
    out.update(gap_a=means[1] - means[0], gap_b=means[3] - means[2], n_seeds=n_seeds)
    out.update(did=out["gap_b"] - out["gap_a"], se=np.nan, df=np.nan, did_ci_low=np.nan, did_ci_high=np.nan)
    out.update(p_value=np.nan, test=result["test"])
    if "diff" in result:
        out.update(se=result["se"], df=result["df"], p_value=result["p_value"])
        out.update(did_ci_low=result["diff_ci_low"], did_ci_high=result["diff_ci_high"])
    return out


def _welch4(values: list[np.ndarray], alpha: float) -> dict:
    """Welch-style test of the DiD of four independent groups: se² = Σ s²ᵢ/nᵢ, Welch–Satterthwaite df."""
    var = np.array([np.var(v, ddof=1) / len(v) for v in values])
    n = np.array([len(v) for v in values])
    did = values[3].mean() - values[2].mean() - values[1].mean() + values[0].mean()
    se = float(np.sqrt(var.sum()))
    out = {"test": "Welch", "diff": float(did), "se": se, "df": np.nan, "diff_ci_low": np.nan, "diff_ci_high": np.nan}
    if not se > inference.VARIANCE_FLOOR * (1.0 + abs(did)):
        return {**out, "se": 0.0, "p_value": np.nan}
    df = float(var.sum() ** 2 / np.sum(var**2 / (n - 1)))
    half = stats.t.ppf(1 - alpha / 2, df) * se
    p = float(2 * stats.t.sf(abs(did) / se, df))
    return {**out, "df": df, "diff_ci_low": did - half, "diff_ci_high": did + half, "p_value": p}


def interaction_words(row, alpha: float = ALPHA) -> str:
    """'interaction: worker k=4 − standard is 0.05 lower at init torch than at init nanogpt (CI [+0.03, +0.07]):
    worker k=4 fares better against standard there', 'no interaction shown (CI [...])', or why nothing was
    tested. The sentence's interval is of the amount it names (how much lower), so it reads the same way round.
    A row whose groups lost seeds says so and nothing else: no claim from the survivors."""
    if row.get("lost"):
        return f"{row['lost']}: no claim from the survivors"
    if row["test"] == "none":
        return "insufficient seeds"
    if not np.isfinite(row["p_value"]):
        return "undetermined (no seed-to-seed variance)"
    ci = f"CI [{row['did_ci_low']:+.3g}, {row['did_ci_high']:+.3g}]"
    if not row["p_holm"] < alpha:
        return f"no interaction shown ({ci})"
    # did = gap at level_b - gap at level_a, the gap being by_alt - by_ref: the lower gap is where by_alt fares better
    if row["did"] < 0:
        better, other, low, high = row["level_b"], row["level_a"], -row["did_ci_high"], -row["did_ci_low"]
    else:
        better, other, low, high = row["level_a"], row["level_b"], row["did_ci_low"], row["did_ci_high"]
    field, alt, ref = row["field"], row["by_alt"], row["by_ref"]
    return (
        f"interaction: {alt} − {ref} is {abs(row['did']):.3g} lower at {field} {better} than at {field} {other} "
        f"(CI [{low:+.3g}, {high:+.3g}]): {alt} fares better against {ref} there"
    )


def _by_seed(trials: pd.DataFrame) -> dict:
    """seed -> final loss of the test trials that completed with one."""
    loss = trials["final_loss"].to_numpy(float)
    keep = np.isfinite(loss)
    return dict(zip(trials["seed"].to_numpy()[keep].tolist(), loss[keep].tolist(), strict=True))


def _level(value) -> str:
    """A field's value as a hashable level (its JSON text)."""
    return json.dumps(value, sort_keys=True)


def _order(level: str):
    """Numbers in numeric order, then everything else by its text."""
    value = json.loads(level)
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return (0, float(value), "") if number else (1, 0.0, level)


def _text(level: str) -> str:
    value = json.loads(level)
    if value is None:
        return "—"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _describe(cell: dict, shown: list[str], leave_out: str | None = None) -> str:
    """'seq_len 64, attention sdpa': the cell's values of the fields that vary across the study."""
    return ", ".join(f"{f} {_text(_level(cell[f]))}" for f in shown if f != leave_out)
