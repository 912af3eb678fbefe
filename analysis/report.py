"""The analysis pipeline and the only writer: report.md (or .html), summary.csv and the plots.

`analyze(study)` turns a loaded study into frames (pure); `write_report(analysis, out_dir)` renders them.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import pareto, plots, scaling, stats
from analysis.load import Study
from analysis.plots import PLOTS  # noqa: F401  (re-exported: the report's file names)
from analysis.stats import ARM_KEYS, CELL_KEYS, STANDARD

SEED_SETTINGS = {"seq_len": 1024, "n_embd": 256, "n_layer": 4, "n_head": 4, "batch_size": 16}
SEED_INTERVAL = 4
SEED_AT_S = 120.0  # the seed's "Loss @ 120s" column
METRIC_WORDS = {
    "val_loss": "val_loss: mean next-token loss over all validation positions (the fair metric)",
    "val_loss_seed": "val_loss_seed: the seed's metric (worker positions only for worker models)",
}


@dataclass(frozen=True)
class Analysis:
    """Every frame the report shows; each comes from a pure function of the study."""

    study: Study
    metric: str
    final: pd.DataFrame  # one row per trial (stats.final_values)
    summary: pd.DataFrame  # one row per configuration, with time-to-target
    verdicts: pd.DataFrame  # stats.verdicts
    curves: dict  # x column -> best-so-far curves with arch
    fronts: pd.DataFrame  # columns front, scope, trial_id, cost, best_loss
    seed_curves: pd.DataFrame
    throughput: pd.DataFrame
    speedups: pd.DataFrame
    fits: pd.DataFrame
    loss_at: pd.DataFrame  # trial_id, loss_at (the seed's Loss @ 120s)


def analyze(study: Study, metric: str = "val_loss", target_loss: float | None = None) -> Analysis:
    final = stats.final_values(study.trials, study.metrics, metric)
    arch_of = final.set_index("trial_id")["arch"]
    curves, fronts = {}, []
    for x, name in (("train_time_s", "loss vs train time"), ("flops", "loss vs FLOPs")):
        c = pareto.best_so_far(study.metrics, metric, x)
        c = c.assign(arch=c["trial_id"].map(arch_of)).dropna(subset=["arch"])
        curves[x] = c
        for scope, front in (("all", pareto.pareto_front(c, x)), (None, pareto.pareto_front(c, x, by=["arch"]))):
            front = front.assign(front=name, scope=scope or front["arch"]).rename(columns={x: "cost"})
            fronts.append(front[["front", "scope", "trial_id", "step", "cost", "best_loss"]])
    reach = pareto.time_to_target(curves["train_time_s"], pareto.default_targets(final, target_loss))
    to_target = pareto.target_speedups(reach, final)[
        ["config_id", "target", "n_reached", "train_time_s_to_target", "speedup"]
    ]
    summary = stats.config_summary(final).merge(to_target, on="config_id", how="left")
    throughput = scaling.throughput_summary(final)
    return Analysis(
        study=study,
        metric=metric,
        final=final,
        summary=summary,
        verdicts=stats.verdicts(final),
        curves=curves,
        fronts=pd.concat(fronts, ignore_index=True),
        seed_curves=stats.seed_curves(study.metrics, final, metric),
        throughput=throughput,
        speedups=scaling.speedup_vs_interval(throughput),
        fits=scaling.power_law_fits(final),
        loss_at=pareto.loss_at(study.metrics, metric, SEED_AT_S),
    )


# ----------------------------------------------------------------------------------------------- formatting


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


def md_table(frame: pd.DataFrame, digits: int = 4) -> str:
    if frame.empty:
        return "_(none)_"
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "| " + " | ".join(":---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(fmt(v, digits) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def varying(frame: pd.DataFrame, keys: list[str]) -> list[str]:
    """The keys that take more than one value in `frame` (constant ones are stated once, not per row)."""
    return [k for k in keys if frame[k].nunique(dropna=False) > 1]


def config_label(row) -> str:
    k = "" if row["arch"] == STANDARD else f" k={fmt(row['worker_interval'])}"
    return (
        f"{row['arch']}{k}, {row['attention']}, seq_len {fmt(row['seq_len'])}, n_embd {fmt(row['n_embd'])}, "
        f"n_layer {fmt(row['n_layer'])}, n_head {fmt(row['n_head'])}, batch {fmt(row['batch_size'])}, "
        f"lr {row['lr']:g}, {row['schedule']}, budget {fmt(row['budget_value'])} {row['budget_kind']}"
    )


# ----------------------------------------------------------------------------------------------- sections


def covers(a: Analysis) -> str:
    t, s = a.final, a.study
    statuses = ", ".join(f"{n} {k}" for k, n in t["status"].value_counts().sort_index().items())
    seeds = t.groupby("config_id")["seed"].nunique()
    devices = ", ".join(f"{d} ({n} trials)" for d, n in t["device_name"].fillna("unknown").value_counts().items())
    budgets = ", ".join(
        f"{fmt(v)} {k}" for k, v in t[["budget_kind", "budget_value"]].drop_duplicates().itertuples(index=False)
    )
    eval_in = t["count_eval_in_budget"].dropna().unique()
    clock = (
        "training steps only (evaluation, checkpointing and compile warm-up excluded from the clock)"
        if not any(eval_in)
        else "evaluation counted inside the budget, as the seed did"
    )
    if len(eval_in) > 1:
        clock = "mixed: some trials count evaluation inside the budget, others do not (compared separately)"
    orphans = sorted(set(s.metrics["trial_id"]) - set(t["trial_id"]))
    lines = [
        f"- **Trials**: {len(t)} ({statuses}) in {t['config_id'].nunique()} configurations; "
        f"{len(s.metrics)} evaluation points.",
        f"- **Seeds**: {', '.join(map(fmt, sorted(t['seed'].dropna().unique())))}; "
        f"{seeds.min()}–{seeds.max()} per configuration.",
        f"- **Hardware**: {devices}; torch {', '.join(t['torch_version'].dropna().unique()) or 'unknown'}; "
        f"git {', '.join(t['git_sha'].dropna().unique()) or 'unknown'}.",
        f"- **Budget**: {budgets}; the train-time clock counts {clock}.",
        f"- **Metric**: {METRIC_WORDS[a.metric]}. Final-loss statistics use completed trials only; diverged and "
        "failed trials are counted, never averaged in.",
        "- **Comparisons**: worker variants vs the standard model with the same seq_len, size, batch, attention "
        "implementation and budget; each at its own best learning-rate setting; 95% t-intervals over seeds; "
        "Welch t-test, significant at p<0.01.",
    ]
    if s.partial:
        running = int(t["status"].isin(("pending", "running")).sum())
        lines.append(
            f"- **Partial study**: {running} trials are still pending or running; curves and fronts "
            "include their points so far."
        )
    if orphans:
        lines.append(f"- {len(orphans)} trials have evaluation points but no trial row yet; they are left out.")
    skipped = "; ".join(f"`{f}`" for f in s.skipped_files) or "none"
    lines.append(f"- **Skipped files** (unreadable): {skipped}.")
    return "\n".join(lines)


def verdict_table(a: Analysis) -> pd.DataFrame:
    v = a.verdicts
    keys = varying(v, CELL_KEYS) if len(v) > 1 else ["seq_len"]
    out = v[keys + [c for c in stats.VERDICT_COLUMNS if c not in CELL_KEYS]].copy()
    out["p_value"] = [f"{p:.2g}" if pd.notna(p) else "—" for p in out["p_value"]]
    return out.rename(
        columns={
            "worker_interval": "k",
            "worker_lr": "lr (w)",
            "standard_lr": "lr (std)",
            "n_worker": "seeds (w)",
            "n_standard": "seeds (std)",
            "diff": "worker − std",
            "diff_ci_low": "CI low",
            "diff_ci_high": "CI high",
        }
    )


def seed_tables(a: Analysis) -> str:
    f = a.final.merge(a.loss_at, on="trial_id", how="left")
    match = np.logical_and.reduce([f[k].eq(v).fillna(False).to_numpy() for k, v in SEED_SETTINGS.items()])
    match &= (f["arch"].eq(STANDARD) | f["worker_interval"].eq(SEED_INTERVAL).fillna(False)).to_numpy()
    settings = ", ".join(f"{k} {v}" for k, v in SEED_SETTINGS.items()) + f", worker_interval {SEED_INTERVAL}"
    if match.any():
        text, subset = f"Trials matching the seed's settings ({settings}).", f[match]
    else:
        text, subset = f"No trial matches the seed's settings ({settings}); the same table per cell:", f
    done = subset[subset["status"].eq("completed") & subset["final_loss"].notna()]
    if done.empty:
        return text + "\n\n_No completed trials yet._"
    best = stats.select_best(done, CELL_KEYS + ARM_KEYS)
    parts = [text]
    for key, cell in best.groupby(CELL_KEYS, dropna=False, sort=True):
        c = dict(zip(CELL_KEYS, key, strict=True))
        parts.append(
            f"#### seq_len {fmt(c['seq_len'])}, n_embd {fmt(c['n_embd'])}, n_layer {fmt(c['n_layer'])}, "
            f"{c['attention']}, budget {fmt(c['budget_value'])} {c['budget_kind']}"
        )
        parts.append(md_table(_seed_rows(cell, multi_interval=not match.any()), digits=4))
        seeds = ", ".join(f"{arm}: {n}" for arm, n in cell.groupby("arm")["seed"].nunique().items())
        parts.append(
            f"Means over seeds ({seeds}); Loss @ 120s is n/a where a run was shorter than 120 s of "
            "train time; Speedup is steps/s relative to the standard model."
        )
    return "\n\n".join(parts)


def _seed_rows(cell: pd.DataFrame, multi_interval: bool) -> pd.DataFrame:
    names = {
        STANDARD: "Standard Transformer",
        "worker": "WorkerTransformer",
        "worker-random-phase": "WorkerTransformer (random phase)",
    }
    arms = cell.groupby(ARM_KEYS, dropna=False, sort=True)
    std_speed = cell.loc[cell["arch"].eq(STANDARD), "steps_per_s"].mean()
    rows = []
    for (arch, k), g in sorted(arms, key=lambda item: (item[0][0] != STANDARD, item[0][0], item[0][1])):
        name = names.get(arch, arch) + (f" (k={fmt(k)})" if multi_interval and arch != STANDARD else "")
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


def best_per_arch(a: Analysis) -> pd.DataFrame:
    s = a.summary[a.summary["mean"].notna()].sort_values("mean", kind="stable")
    best = s.drop_duplicates(["arch", "budget_kind", "budget_value"]).sort_values(["budget_value", "arch"])
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


def front_table(a: Analysis) -> pd.DataFrame:
    configs = a.final.set_index("trial_id")
    grouped = a.fronts.groupby(["front", "scope", "trial_id"], sort=True)
    f = grouped.agg(points=("cost", "count"), best_loss=("best_loss", "min")).reset_index()
    f["configuration"] = [config_label(configs.loc[t]) for t in f["trial_id"]]
    f["seed"] = [configs.loc[t, "seed"] for t in f["trial_id"]]
    f = f[["front", "scope", "trial_id", "configuration", "seed", "points", "best_loss"]]
    return f.rename(columns={"points": "points on front", "best_loss": "lowest loss on front"})


def cell_summary_table(a: Analysis) -> pd.DataFrame:
    s = a.summary
    keys = varying(s, CELL_KEYS + ["lr", "schedule"])
    cols = [
        "arm",
        *keys,
        "n",
        "mean",
        "ci_low",
        "ci_high",
        "n_diverged",
        "n_params",
        "tokens_per_s",
        "train_time_s_to_target",
        "speedup",
    ]
    return s[cols].rename(
        columns={
            "n": "seeds",
            "mean": "final loss",
            "train_time_s_to_target": "time to target (s)",
            "speedup": "speedup to target",
        }
    )


def fits_table(a: Analysis) -> pd.DataFrame:
    f = a.fits[a.fits["fitted"].astype(bool)]
    return f[
        [
            "arm",
            "seq_len",
            "attention",
            "budget_value",
            "n_sizes",
            "E",
            "E_low",
            "E_high",
            "A",
            "alpha",
            "alpha_low",
            "alpha_high",
        ]
    ]


# ----------------------------------------------------------------------------------------------- writing


def render(a: Analysis, target_loss: float | None) -> str:
    s = a.study
    target = (
        f"{target_loss:g} (given)"
        if target_loss is not None
        else "the standard model's mean final loss in the same cell"
    )
    status = " (partial: some trials are still running)" if s.partial else ""
    sections = [
        f"# Study `{s.name}`{status}",
        "## What this covers",
        covers(a),
        "## Verdicts: worker variant minus standard model, final " + a.metric,
        "Negative differences mean the worker variant reached a lower loss; CI is the 95% Welch interval.",
        md_table(verdict_table(a)),
        "## The seed's table",
        seed_tables(a),
        "## Best configuration per architecture",
        md_table(best_per_arch(a)),
        "## Pareto fronts",
        "![pareto_time](pareto_time.png)\n\n![pareto_flops](pareto_flops.png)",
        "Configurations of every trial on a front:",
        md_table(front_table(a)),
        "## Learning curves",
        "![curves](curves.png)",
        "## Scaling",
        "![scaling_params](scaling_params.png)",
        "Power-law fits L = E + A·N^-alpha (95% bootstrap CI), only for series with at least 4 model sizes:",
        md_table(fits_table(a)),
        "## Throughput and worker interval",
        "![throughput](throughput.png)\n\n![interval](interval.png)",
        "## Summary per configuration",
        f"Time to target: first train time at which the best-so-far loss reaches {target}, mean over the seeds "
        "that reached it; speedup is the standard model's time over the configuration's. All columns are in "
        "summary.csv.",
        md_table(cell_summary_table(a)),
    ]
    return "\n\n".join(sections) + "\n"


def write_report(a: Analysis, out_dir, fmt_: str = "md", target_loss: float | None = None) -> Path:
    """Write the plots, summary.csv and report.md (plus report.html for fmt_="html"); returns the report path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for file_name, fig in plots.figures(a).items():
        fig.savefig(out / file_name, dpi=110)
        fig.clear()
    a.summary.to_csv(out / "summary.csv", index=False)
    text = render(a, target_loss)
    (out / "report.md").write_text(text, encoding="utf-8")
    if fmt_ == "html":
        (out / "report.html").write_text(markdown_to_html(text, a.study.name), encoding="utf-8")
        return out / "report.html"
    return out / "report.md"


def markdown_to_html(text: str, title: str) -> str:
    """The small markdown subset the report uses: headings, tables, images, bullets, bold, code, paragraphs."""

    def inline(s: str) -> str:
        s = html.escape(s)
        s = re.sub(r"!\[([^\]]*)\]\(([^)]+)\)", r'<img alt="\1" src="\2">', s)
        s = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", s)
        s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
        return re.sub(r"_\(([^)]*)\)_", r"<i>(\1)</i>", s)

    body = []
    for block in text.split("\n\n"):
        lines = block.strip().splitlines()
        if not lines:
            continue
        if lines[0].startswith("#"):
            level = len(lines[0]) - len(lines[0].lstrip("#"))
            body.append(f"<h{level}>{inline(lines[0][level:].strip())}</h{level}>")
        elif lines[0].startswith("|"):
            rows = [[inline(c.strip()) for c in ln.strip().strip("|").split("|")] for ln in lines if ":---" not in ln]
            head = "".join(f"<th>{c}</th>" for c in rows[0])
            rest = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows[1:])
            body.append(f"<table><tr>{head}</tr>{rest}</table>")
        elif lines[0].startswith("- "):
            body.append("<ul>" + "".join(f"<li>{inline(ln[2:])}</li>" for ln in lines) + "</ul>")
        else:
            body.append(f"<p>{inline(' '.join(lines))}</p>")
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:3px 6px}img{max-width:100%}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
