"""The report's tables: analysis frames -> display frames and markdown (pure; nothing here writes files)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.configs import STANDARD
from analysis.stats import CELL_COLUMNS
from analysis.targets import UNREACHED
from wt_model import archs

SEED_SETTINGS = {"seq_len": 1024, "n_embd": 256, "n_layer": 4, "n_head": 4, "batch_size": 16}
SEED_INTERVAL = 4


def fmt(value, digits: int = 4) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "—"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(value)
    if isinstance(value, (float, np.floating)):
        if float(value).is_integer() and abs(value) < 1e6:
            return str(int(value))
        return f"{value:.{digits}g}" if abs(value) >= 1e4 or abs(value) < 1e-2 else f"{value:.{digits}f}"
    return str(value)


def md_cell(text: str) -> str:
    """Text as one markdown table cell: a '|' in it is escaped (it would end the cell), a line break is a space."""
    return str(text).replace("|", "\\|").replace("\r\n", " ").replace("\n", " ")


def md_table(frame: pd.DataFrame, digits: int = 4) -> str:
    if frame.empty:
        return "_(none)_"
    head = "| " + " | ".join(md_cell(c) for c in frame.columns) + " |"
    rule = "| " + " | ".join(":---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(md_cell(fmt(v, digits)) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def varying(frame: pd.DataFrame, keys: list[str]) -> list[str]:
    """The keys that take more than one value in `frame` (constant ones are stated once, not per row)."""
    return [k for k in keys if k in frame.columns and frame[k].astype(str).nunique(dropna=False) > 1]


def config_label(row) -> str:
    """A configuration in words, init and tuned settings included."""
    k = "" if pd.isna(row.get("worker_interval")) else f" k={fmt(row['worker_interval'])}"  # only an arch with one
    tuned = f", {row['tuned']}" if isinstance(row.get("tuned"), str) and row["tuned"] else ""
    return (
        f"{row['arch']}{k}, {row['attention']}, init {row['init']}, seq_len {fmt(row['seq_len'])}, "
        f"n_embd {fmt(row['n_embd'])}, n_layer {fmt(row['n_layer'])}, n_head {fmt(row['n_head'])}, "
        f"batch {fmt(row['batch_size'])}, lr {fmt(row['lr'])}, weight_decay {fmt(row['weight_decay'])}, "
        f"{row['schedule']}{tuned}, budget {fmt(row['budget_value'])} {row['budget_kind']}"
    )


def _text(column: pd.Series) -> pd.Series:
    return column.astype(object).where(column.notna(), "").astype(str)


def _p(value) -> str:
    return f"{value:.2g}" if pd.notna(value) else "—"


def verdict_glance(v: pd.DataFrame) -> pd.DataFrame:
    """The verdicts in words with their intervals, for the report's first screen: the cell columns that vary, the
    arm, its reference, the difference in final loss with its unadjusted interval, and the verdict."""
    keys = varying(v, [*CELL_COLUMNS, "cell_extra"]) if len(v) > 1 else []
    out = v[keys].rename(columns={"cell_extra": "cell"})
    out["arm"], out["reference"] = v["arm"], v["reference"]
    out["arm − ref [CI]"] = [_interval(r) for _, r in v.iterrows()]
    out["verdict"] = v["verdict"]
    return out


def _interval(row) -> str:
    """'-0.040 [-0.067, -0.012]' in nats; '—' where the cell has no test."""
    if pd.isna(row["diff"]):
        return "—"
    low, high = row["diff_ci_low"], row["diff_ci_high"]
    ci = "" if pd.isna(low) or pd.isna(high) else f" [{low:+.3f}, {high:+.3f}]"
    return f"{row['diff']:+.3f}{ci}"


def verdict_table(v: pd.DataFrame) -> pd.DataFrame:
    """The verdict frame (analysis.verdicts) for reading: cell columns that vary (init always), both arms'
    settings and seeds, the test, raw and Holm p-values, equivalence, detectable effect and the verdict."""
    keys = [k for k in (varying(v, CELL_COLUMNS) if len(v) > 1 else ["seq_len"]) if k != "init"] + ["init"]
    if _text(v["cell_extra"]).ne("").any():
        keys.append("cell_extra")
    cols = keys + ["arm", "reference"]
    if _text(v["arm_tuned"]).ne("").any() or _text(v["ref_tuned"]).ne("").any():
        cols += ["arm_tuned", "ref_tuned"]
    cols += ["tuning"]
    if (v["ref_budget_value"].astype(float) != v["budget_value"].astype(float)).any():
        cols += ["budget_value", "ref_budget_value"]
    out = v.copy()
    for side in ("arm", "ref"):  # "5/5", or "3/5 (2 diverged)": completed of the test seeds, and why not
        out[f"{side}_n"] = [_seed_count(r, side) for _, r in v.iterrows()]
    cols += ["arm_n", "ref_n", "arm_epochs", "ref_epochs", "arm_target_epochs"]
    cols += ["ref_target_epochs", "test", "diff", "diff_ci_low", "diff_ci_high", "p_value", "p_holm"]
    cols += ["p_signflip_holm", "p_signflip_min", "p_equiv_holm", "p_noneq_holm", "min_margin", "mde", "verdict"]
    out = out[list(dict.fromkeys(cols))]
    for column in ("p_value", "p_holm", "p_signflip_holm", "p_signflip_min", "p_equiv_holm", "p_noneq_holm"):
        out[column] = [_p(p) for p in out[column]]
    for column in ("arm_epochs", "ref_epochs", "arm_target_epochs", "ref_target_epochs"):
        out[column] = [f"{e:.3g}" if pd.notna(e) else "—" for e in out[column]]
    return out.rename(
        columns={
            "cell_extra": "cell",
            "arm_tuned": "tuned (arm)",
            "ref_tuned": "tuned (ref)",
            "budget_value": "budget (arm)",
            "ref_budget_value": "budget (ref)",
            "arm_n": "seeds (arm)",
            "ref_n": "seeds (ref)",
            "arm_epochs": "epochs (arm)",
            "ref_epochs": "epochs (ref)",
            "arm_target_epochs": "target epochs (arm)",
            "ref_target_epochs": "target epochs (ref)",
            "diff": "arm − ref",
            "diff_ci_low": "CI low (unadj.)",
            "diff_ci_high": "CI high (unadj.)",
            "p_value": "p",
            "p_holm": "p (Holm)",
            "p_signflip_holm": "p sign-flip (Holm)",
            "p_signflip_min": "smallest p sign-flip",
            "p_equiv_holm": "p equiv. (Holm)",
            "p_noneq_holm": "p beyond margin (Holm)",
            "min_margin": "smallest margin shown (α/m)",
            "mde": "MDE (80%, α/m)",
        }
    )


def _seed_count(row, side: str) -> str:
    """Completed of the arm's test seeds, and what became of the others: "3/5 (2 diverged)"."""
    lost = [f"{row[f'{side}_{k}']} {k}" for k in ("diverged", "failed") if row[f"{side}_{k}"]]
    if row[f"{side}_unfinished"]:
        lost.append(f"{row[f'{side}_unfinished']} not finished")
    count = f"{row[f'n_{side}']}/{row[f'{side}_seeds']}"
    return f"{count} ({', '.join(lost)})" if lost else count


def seed_tables(final: pd.DataFrame, chosen: pd.DataFrame, loss_at: pd.DataFrame) -> str:
    """The seed's README table per cell (test seeds of each arm's chosen setting), for trials with the seed's
    settings, or for every cell when none match."""
    f = final[final["seed_role"].eq("test")].merge(loss_at, on="trial_id", how="left")
    f = f[f["config_id"].isin(chosen["config_id"].dropna())]
    match = np.logical_and.reduce([f[k].eq(v).fillna(False).to_numpy(bool) for k, v in SEED_SETTINGS.items()])
    match &= (f["arch"].eq(STANDARD) | f["worker_interval"].eq(SEED_INTERVAL).fillna(False)).to_numpy(bool)
    settings = ", ".join(f"{k} {v}" for k, v in SEED_SETTINGS.items()) + f", worker_interval {SEED_INTERVAL}"
    if match.any():
        text, subset = f"Trials matching the seed's settings ({settings}).", f[match]
    else:
        text, subset = f"No trial matches the seed's settings ({settings}); the same table per cell:", f
    done = subset[subset["status"].eq("completed") & subset["final_loss"].notna()]
    if done.empty:
        return text + "\n\n_No completed trials yet._"
    parts = [text]
    for _, cell in done.groupby("cell_key", sort=True):
        c = cell.iloc[0]
        parts.append(
            f"#### seq_len {fmt(c['seq_len'])}, n_embd {fmt(c['n_embd'])}, n_layer {fmt(c['n_layer'])}, "
            f"init {c['init']}, {c['attention']}, budget {fmt(c['budget_value'])} {c['budget_kind']}"
        )
        parts.append(md_table(_seed_rows(cell, multi_interval=not match.any()), digits=4))
        seeds = ", ".join(f"{arm}: {n}" for arm, n in cell.groupby("arm")["seed"].nunique().items())
        parts.append(
            f"Means over test seeds ({seeds}); Loss @ 120s is n/a where a run was shorter than 120 s of "
            "train time; Speedup is steps/s relative to the standard model."
        )
    return "\n\n".join(parts)


def _seed_rows(cell: pd.DataFrame, multi_interval: bool) -> pd.DataFrame:
    names = {label: variant.title for label, (_, variant) in archs.LABELS.items()}
    std_speed = cell.loc[cell["arch"].eq(STANDARD), "steps_per_s"].mean()
    rows = []
    arms = sorted(cell.groupby("arm", sort=True), key=lambda item: (item[1]["arch"].iloc[0] != STANDARD, item[0]))
    for arm, g in arms:
        arch = g["arch"].iloc[0]
        extra = arm.removeprefix(arch).lstrip(" ,")  # "k=4" of "worker k=4"; "" for an arm without settings
        name = names.get(arch, arch) + (f" ({extra})" if multi_interval and extra else "")
        speed, at = g["steps_per_s"].mean(), g["loss_at"].mean()
        rows.append(
            {
                "Model": name,
                "Speed (steps/s)": f"{speed:.2f}",
                "Train Time": f"{g['train_time_s'].mean():.0f}s",
                "Final Val Loss": f"{g['final_loss'].mean():.4f}",
                "Loss @ 120s": "n/a" if pd.isna(at) or g["loss_at"].isna().any() else f"{at:.2f}",
                "Params": f"{g['n_params'].iloc[0] / 1e6:.2f}M",
                "Speedup": "n/a" if pd.isna(std_speed) else f"{speed / std_speed:.2f}x",
            }
        )
    return pd.DataFrame(rows)


def best_per_arch(summary: pd.DataFrame) -> pd.DataFrame:
    """The lowest-loss configuration of each architecture in each cell (not across sequence lengths or sizes,
    whose losses are not comparable)."""
    s = summary[summary["mean"].notna()].sort_values("mean", kind="stable")
    best = s.drop_duplicates(["arch", "cell_key"]).sort_values([*CELL_COLUMNS, "arch"], kind="stable")
    return pd.DataFrame(
        {
            "arch": best["arch"],
            "configuration": [config_label(r) for _, r in best.iterrows()],
            "final loss": best["mean"],
            "CI low": best["ci_low"],
            "CI high": best["ci_high"],
            "seeds": best["n"],
        }
    )


def front_table(fronts: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """Every configuration on a front, once per front and panel: its key (front_key), its arm, how many points it
    has on its arm's front (over the arm's chosen configurations) and on the lowest of all configurations."""
    keys = ["front", "seq_len", "attention", "config_id"]
    f = fronts.assign(on=np.where(fronts["scope"].eq("all"), "all", "arm"))
    points = f.pivot_table(index=keys, columns="on", values="cost", aggfunc="count", fill_value=0)
    points = points.reindex(columns=["arm", "all"], fill_value=0).reset_index()
    best = f.groupby(keys, sort=True)["best_loss"].min().reset_index(drop=True)
    labels = front_key(fronts, summary).set_index("config_id")
    out = points[[k for k in keys if k != "config_id"]].copy()
    if out["attention"].nunique() == 1:
        out = out.drop(columns="attention")
    out["configuration"] = points["config_id"].map(labels["key"]).to_numpy()
    out["arm"] = points["config_id"].map(labels["arm"]).to_numpy()
    out["points on its arm's front"] = points["arm"].to_numpy()
    out["points on the lowest of all"] = points["all"].to_numpy()
    out["lowest seed-mean loss (nats)"] = best.to_numpy()
    return out


def front_key(fronts: pd.DataFrame, summary: pd.DataFrame, final: pd.DataFrame | None = None) -> pd.DataFrame:
    """The configurations on any front, each once: a short key ("C1") the front table uses, its arm, its whole
    configuration in words and (with `final`) its test-seed trials."""
    ids = sorted(fronts["config_id"].dropna().unique())
    configs = summary.drop_duplicates("config_id").set_index("config_id")
    out = pd.DataFrame({"key": [f"C{n}" for n in range(1, len(ids) + 1)], "config_id": ids})
    out["arm"] = [configs.loc[c, "arm"] for c in ids]
    out["configuration"] = [config_label(configs.loc[c]) for c in ids]
    if final is not None:
        test = final[final["seed_role"].eq("test")]
        trials = test.groupby("config_id")["trial_id"].agg(lambda t: ", ".join(sorted(t)))
        out["test trials"] = out["config_id"].map(trials)
    return out


def cell_summary_table(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration, standard first, then by arm, cell and tuned settings."""
    order = summary["arch"].ne(STANDARD).rename("_order")
    summary = summary.join(order).sort_values(
        ["_order", "arch", "worker_interval", *CELL_COLUMNS, "tuned"], kind="stable", na_position="first"
    )
    keys = [k for k in varying(summary, CELL_COLUMNS) if k != "init"]
    cols = ["arm", *keys, "init", "tuned", "n", "mean", "ci_low", "ci_high", "n_tune", "n_stopped", "n_diverged"]
    cols += ["n_failed", "n_params", "tokens_per_s", "epochs_end", "target_epochs_end", "train_minus_val_end"]
    cols += ["train_minus_val_change"]
    cols += ["target", "target_source"]
    extra = ["n_reached", "n_seeds", *UNREACHED.values(), "train_time_s_to_target", "speedup"]
    out = summary.reindex(columns=cols + extra + ["speedup_ci_low", "speedup_ci_high", "token_unit"])
    units = out["token_unit"].fillna("char").map({"char": "bpc", "byte": "bpb"}).fillna("bpc")
    out.insert(
        cols.index("mean") + 1,
        "final bits",
        [f"{m / np.log(2):.4f} {u}" if pd.notna(m) else "—" for m, u in zip(out["mean"], units, strict=True)],
    )
    out["reached"] = [_reached(row) for _, row in out.iterrows()]
    out["speedup"] = [
        "—" if pd.isna(s) else f"{s:.2f}x" + (f" [{lo:.2f}, {hi:.2f}]" if pd.notna(lo) else "")
        for s, lo, hi in zip(out["speedup"], out["speedup_ci_low"], out["speedup_ci_high"], strict=True)
    ]
    cols.insert(cols.index("mean") + 1, "final bits")
    out = out[cols + ["reached", "train_time_s_to_target", "speedup"]]
    return out.rename(
        columns={
            "n": "test seeds",
            "mean": "final loss",
            "n_tune": "tune seeds",
            "n_stopped": "stopped",
            "n_diverged": "diverged",
            "n_failed": "failed",
            "epochs_end": "epochs",
            "target_epochs_end": "target epochs",
            "train_minus_val_end": "train − val",
            "train_minus_val_change": "train − val since its first evaluation",
            "target_source": "target from",
            "train_time_s_to_target": "median time to target (s)",
            "speedup": "speedup to target [95% CI]",
        }
    )


def _reached(row) -> str:
    """ "3/5 (1 stopped, 1 diverged)": seeds that reached the target of all its test seeds, and why the others
    have no time (a stopped or diverged seed is not a seed that never got there)."""
    if pd.isna(row["target"]):
        return "—"
    apart = [f"{fmt(row[c])} {s}" for s, c in UNREACHED.items() if pd.notna(row.get(c)) and row[c]]
    return f"{fmt(row['n_reached'])}/{fmt(row['n_seeds'])}" + (f" ({', '.join(apart)})" if apart else "")


def fits_table(fits: pd.DataFrame) -> pd.DataFrame:
    f = fits[fits["fitted"].astype(bool)]
    cols = ["arm", "seq_len", "init", "attention", "budget_value", "n_sizes", "n_points", "E", "E_low", "E_high"]
    return f[cols + ["A", "alpha", "alpha_low", "alpha_high"]]
