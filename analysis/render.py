"""The report's text: sections in markdown from an analysis (pure), and the page they make in HTML."""

from __future__ import annotations

import html

import pandas as pd
from markdown_it import MarkdownIt

from analysis import configs, figures, render_timing, tables
from analysis.inference import ALPHA, POWER
from analysis.tables import fmt, md_table
from analysis.verdicts import BIASED, verdict_counts
from wt_base.budgets import BUDGET_KINDS

NO_WARNING = "No compared configuration's periodic val loss ended above its minimum by more than the margin."
METRIC_WORDS = {
    "val_loss": "val_loss: mean next-token loss over all validation positions (the fair metric)",
    "val_loss_seed": "val_loss_seed: the seed's metric (worker positions only for worker models)",
}


def _seeds(frame: pd.DataFrame) -> str:
    return ", ".join(map(fmt, sorted(frame["seed"].dropna().unique()))) or "none"


def tuning_statement(chosen: pd.DataFrame, final: pd.DataFrame) -> str:
    """How each arm's tuned setting was chosen, in one bullet: the report's answer to "which learning rate?"."""
    on = chosen["tuned_on"].value_counts()
    test = final[final["seed_role"].eq("test")]
    if set(on.index) <= {"none"}:
        return "- **Tuned settings**: no tuned settings: one configuration per arm."
    parts = []
    if on.get("tune seeds", 0):
        tune = final[final["seed_role"].eq("tune")]
        parts.append(
            f"{on['tune seeds']} arms chose among their settings on tune seeds {_seeds(tune)} (lowest mean final "
            f"loss among settings whose every tuning seed completed); verdicts use only test seeds {_seeds(test)}."
        )
    if on.get("test seeds", 0):
        parts.append(
            f"**tuned on test seeds: biased**: {on['test seeds']} arms had several settings and no tune seeds, so "
            "each setting was chosen on the same seeds its verdict uses (a winner's curse favouring the arm with "
            "more settings); those verdicts are flagged. Add `tune_seeds` to the spec to remove the bias."
        )
    if on.get("no eligible setting", 0):
        parts.append(f"{on['no eligible setting']} arms had no eligible setting (every one lost a tuning seed).")
    if on.get("none", 0):
        parts.append(f"{on['none']} arms had a single setting.")
    return "- **Tuned settings**: " + " ".join(parts)


def covers(a) -> str:
    t, s = a.final, a.study
    statuses = ", ".join(f"{n} {k}" for k, n in t["status"].value_counts().sort_index().items())
    seeds = t[t["seed_role"].eq("test")].groupby("config_id")["seed"].nunique()
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
    orphans = sorted(set(s.metrics["trial_id"].unique()) - set(t["trial_id"]))  # distinct ids first: rows are many
    level = f"{1 - ALPHA:.0%}"
    lines = [
        f"- **Trials**: {len(t)} ({statuses}) in {t['config_id'].nunique()} configurations; "
        f"{len(s.metrics)} evaluation points.",
        f"- **Seeds**: test {_seeds(t[t['seed_role'].eq('test')])} ({fmt(seeds.min())}–{fmt(seeds.max())} per "
        f"configuration); tune {_seeds(t[t['seed_role'].eq('tune')])}.",
        f"- **Hardware**: {devices}; torch {', '.join(t['torch_version'].dropna().unique()) or 'unknown'}; "
        f"git {', '.join(t['git_sha'].dropna().unique()) or 'unknown'}.",
        f"- **Budget**: {budgets}; the train-time clock counts {clock}.",
        f"- **Metric**: {METRIC_WORDS[a.metric]}. Final-loss statistics use completed trials only, at their final "
        "evaluation; trials stopped early by a scheduler, diverged or failed are counted, never averaged in. "
        "Curves use the periodic evaluations only (one validation set).",
        tuning_statement(a.chosen, t),
        "- **Comparisons**: each arm against its reference (the standard model unless its registry entry names "
        "another) in its cell (same seq_len, size, init, attention, batch, budget, data and evaluation; only the "
        "fields the arm is declared to differ in may differ); a paired t-test on per-seed differences where both "
        "arms have the seeds (same data order), Welch's otherwise; "
        f"{level} intervals; p-values Holm-adjusted across the {len(a.verdicts)} verdicts at α={ALPHA:g}; "
        "equivalence by two one-sided tests against the cell's margin.",
    ]
    if s.partial:
        running = int(t["status"].isin(("pending", "running")).sum())
        lines.append(
            f"- **Partial study**: {running} trials are still pending or running; curves and fronts "
            "include their points so far."
        )
    shared = _shared_device_trials(t)
    if shared:
        lines.append(
            f"- **Shared devices**: {shared} trials ran on a seconds budget with `allow_shared_device: true`, "
            "sharing a GPU or a core with other trials: their train time includes that contention, so their "
            "losses at the budget are not those of a dedicated device."
        )
    if orphans:
        lines.append(f"- {len(orphans)} trials have evaluation points but no trial row yet; they are left out.")
    skipped = "; ".join(f"`{f}`" for f in s.skipped_files) or "none"
    lines.append(f"- **Skipped files** (unreadable): {skipped}.")
    return "\n".join(lines)


def _shared_device_trials(t) -> int:
    """Trials whose seconds budget was allowed to run on a shared device (a column since schema version 2)."""
    if "allow_shared_device" not in t:
        return 0
    allowed = t["allow_shared_device"].astype("boolean").fillna(False).astype(bool)
    clocked = t["budget_kind"].map(lambda kind: kind in BUDGET_KINDS and BUDGET_KINDS[kind].measured)
    return int((allowed & clocked.astype(bool)).sum())


def _epochs(value) -> str:
    return f"{value:.3g}" if pd.notna(value) else "—"


def regime_section(a) -> str:
    v = a.verdicts
    epochs = (
        "Passes over the training split at the end, mean over test seeds, counted in input tokens and, in "
        "brackets, in supervised targets (the positions the training loss is taken at: a worker model is "
        "supervised only at its worker rows, so at equal FLOPs it reads more tokens than the standard model but "
        "may be supervised on fewer targets): "
        + "; ".join(
            f"{r['arm']} {_epochs(r['arm_epochs'])} ({_epochs(r['arm_target_epochs'])}) vs {r['reference']} "
            f"{_epochs(r['ref_epochs'])} ({_epochs(r['ref_target_epochs'])})"
            for _, r in v.drop_duplicates(["arm", "arm_epochs"]).iterrows()
        )
        + ". The train − val gap is shown against its value at the first evaluation (summary table): its sign "
        "reflects the two texts as much as the model, and overfitting shows as the gap falling over training."
        if len(v)
        else "No comparisons."
    )
    if not a.regime_warnings:
        return f"{epochs}\n\n{NO_WARNING}"
    return f"{epochs}\n\n{len(a.regime_warnings)} compared configurations had stopped improving: see Warnings."


def execution_mix(final: pd.DataFrame) -> str:
    """One sentence when trials ran on execution settings that the analysis keeps apart (configs.execution_fields:
    device, dtype, compile mode, threads, attention kernels under a clock budget), else ""."""
    fields = configs.config_fields(final)
    mixed = [c for c in fields.columns if c.startswith("exec.") and fields[c].dropna().astype(str).nunique() > 1]
    if not mixed:
        return ""
    parts = []
    for column in mixed:
        counts = fields[column].dropna().astype(str).value_counts()
        parts.append(f"{column[5:]}: " + ", ".join(f"{value} ({n} trials)" for value, n in counts.items()))
    return (
        "**Trials ran on different execution settings** (" + "; ".join(parts) + "). What a budget buys depends on "
        "them, so trials that differ in them are separate cells, never seeds of one: compare the cells' rows, "
        "or project step-budgeted curves onto one machine (`wt-study analyze --timing`)."
    )


APPROACH3_SHOWN = ["arm", "n_runs", "E", "alpha", "beta", "a3", "a3_low", "a3_high", "n_distinct_resamples"]


def isoflop_text(a) -> str:
    """The isoFLOP section's words and tables (analysis.isoflop), or why the study has none."""
    if "why_not" in a.isoflop:
        return f"_(none: {a.isoflop['why_not']})_"
    iso = a.isoflop
    profiles = iso["profiles"][["arm", "budget_flops", "n_sizes", "n_diverged", "n_opt", "n_opt_low", "n_opt_high"]]
    profiles = profiles.assign(
        loss_opt=iso["profiles"]["loss_opt"], lof_p=iso["profiles"]["lof_p"], identified=iso["profiles"]["identified"],
        reason=iso["profiles"]["reason"],
    )  # fmt: skip
    fits = iso["fits"][["arm", "identified", "reason", "n_identified", "budget_decades"]].assign(
        a=iso["fits"]["n_opt_exponent"], a_low=iso["fits"]["n_opt_exponent_low"],
        a_high=iso["fits"]["n_opt_exponent_high"], lack_of_fit=iso["fits"]["lack_of_fit"],
    )  # fmt: skip
    statements = "\n".join(f"- {s}." for s in iso["differences"]["statement"].dropna()) or "- (no comparison)"
    return "\n\n".join(
        [
            "Per arm and FLOP budget, a parabola in log N through the test seeds' final losses at each size's chosen "
            "setting (Chinchilla's approach 2), one offset per seed: the compute-optimal size N_opt (Fieller "
            "interval) and its loss, a lack-of-fit test where seeds repeat, and *not identified* where the data "
            "cannot pin the optimum (fewer than 5 sizes, a minimum outside the sizes, a flat or downward parabola: "
            "the reason gives the numbers). N is the non-embedding parameter count.",
            md_table(profiles),
            "Across budgets: N_opt = G·C^a per arm (identified profiles only; not identified with fewer than 3 "
            "budgets or less than a decade of them):",
            md_table(fits),
            "The two arms' frontiers side by side, at each budget:",
            statements,
            "Cross-check, Chinchilla's approach 3: L(N, D) = E + A/N^alpha + B/D^beta per arm (Huber loss on log "
            "loss, every run; intervals from seed resamples) and the N_opt exponent a3 it implies "
            "(isoflop_approach3.csv, the runs in isoflop_runs.csv); each arm against the reference by both "
            "approaches (isoflop_comparison.csv):",
            md_table(iso["approach3"].reindex(columns=APPROACH3_SHOWN)),
            md_table(iso["comparison"].drop(columns=["reference_exponent"], errors="ignore")),
        ]
    )


def interaction_text(table: pd.DataFrame) -> str:
    if table.empty:
        return "_(none: the study crosses no setting with the architecture)_"
    shown = table[["factor", "level_a", "level_b", "arm", "context", "n_seeds", "did", "did_ci_low"]].copy()
    shown["did_ci_high"], shown["p_holm"], shown["words"] = table["did_ci_high"], table["p_holm"], table["words"]
    return md_table(shown.rename(columns={"did": "difference-in-differences", "p_holm": "p (Holm)"}))


def tuning_section(a, image) -> str:
    """Per arm and cell, the value its verdicts use, the range it was chosen from and whether it is interior."""
    t = a.tuning
    if t.empty:
        return "_(no arm tried more than one value of a numeric tuned setting)_"
    rows = []
    for (_, _, field), g in t.groupby(["cell_key", "arm_key", "field"], sort=False):
        first, picked = g.iloc[0], g[g["chosen"]]
        shape = ", ".join(f"{n} {int(first[n])}" for n in ("seq_len", "n_embd", "n_layer") if pd.notna(first[n]))
        where = {"interior": "interior", "bottom": "**bottom: not comparable**", "top": "**top: not comparable**"}
        rows.append(
            {
                "arm": first["arm"],
                "cell": shape,
                "setting": field,
                "chosen": fmt(picked["value"].iloc[0]) if len(picked) else "—",
                "tried": ", ".join(f"{v:g}" for v in g["value"]),
                "mean at chosen": fmt(picked["mean"].iloc[0]) if len(picked) else "—",
                "where": where.get(first["position"], first["position"]),
            }
        )
    return "\n\n".join(
        [
            "Each arm's final loss at every value of its tuned setting, on the seeds that chose it (the tune "
            "seeds): the chosen value has the lowest mean. A value at either end of what was tried may not be the "
            "arm's optimum, so that cell's verdict is \"not comparable\" (a bracket search walks past an edge "
            "until its best is interior, and stops at an edge only at its bound or cap). Every point is in "
            "tuning.csv.",
            image("tuning.png"),
            md_table(pd.DataFrame(rows)),
        ]
    )


def warnings_section(a) -> str:
    """Every warning of the report, one bullet each (regime, step speeds, grid edges, tuning on test seeds)."""
    lines = [f"- {w}." for w in a.warnings]
    if (a.verdicts["tuning"] == BIASED).any():
        lines.append("- some arms were tuned on their test seeds (no tune seeds): their verdicts are flagged biased.")
    return "\n".join(lines) if lines else "None: no check found a reason to distrust the tables below."


def render(a, target_loss: float | None) -> str:
    s = a.study
    target = (
        f"{target_loss:g} (given)"
        if target_loss is not None
        else "the cell's target (a pre-registered `target_loss`, else the median over the tune seeds of the cell's "
        "chosen standard configuration of the loss they had reached at 80% of their run; without tune seeds the "
        "worst test seed's lowest loss, flagged in the table)"
    )
    status = " (partial: some trials are still running)" if s.partial else ""
    level = f"{1 - ALPHA:.0%}"
    skipped = figures.left_out(a)

    def image(name: str) -> str:
        stem = name.removesuffix(".png")
        return f"_({stem} left out: {skipped[name]}.)_" if name in skipped else f"![{stem}]({name})"

    sections = [f"# Study `{s.name}`{status}"]
    sections += [
        f"**{verdict_counts(a.verdicts)}.** Each arm minus its reference, final {a.metric} in nats (negative: the "
        f"arm is better), with its {level} interval (unadjusted; the verdict uses Holm-adjusted tests); every "
        "column in [the verdict details](#verdicts-in-detail) and verdicts.csv.",
        md_table(tables.verdict_glance(a.verdicts)),
    ]
    mix = execution_mix(a.final)
    if mix:
        sections.append(mix)
    sections += ["## Warnings", warnings_section(a)]
    sections += [
        "## What this covers",
        covers(a),
        "## Verdicts in detail",
        f"Each arm minus its reference, final {a.metric}.",
        f"Negative differences mean the arm reached a lower loss. CI: the {level} interval of the test (paired or "
        "Welch), **unadjusted** (the verdicts use the Holm-adjusted p-values beside it, so an interval that just "
        f"excludes 0 can sit beside a verdict that does not claim a difference). p: raw; p (Holm): adjusted across "
        f"the table, the one the verdict uses at α={ALPHA:g}. p sign-flip: an exact paired permutation test over "
        "the seeds in which a diverged or failed seed counts as the worst outcome; smallest p sign-flip: the "
        "lowest p it can give with that many seeds (2/2^n: 0.25 with 3), so where it is not below α the test "
        "cannot decide. p equiv.: two one-sided tests that |difference| < the margin; p beyond margin: the "
        "converse, that |difference| > the margin (both Holm-adjusted). A high p equiv. means equivalence was *not "
        "shown*, not that the arms differ. Smallest margin shown: the margin these seeds would certify as "
        f"equivalent at α/m, m = {len(a.verdicts)} rows (Bonferroni: what Holm's first step asks, enough for any "
        "row). MDE: the smallest true difference the cell's test would detect "
        f"with {POWER:.0%} power at α/m (noncentral t), given its seeds and their spread. Seeds: completed "
        "of the chosen setting's test seeds; a cell where an arm lost or did not finish a seed gets no "
        "better/worse verdict from its survivors.",
        f"**{verdict_counts(a.verdicts)}.**",
        md_table(tables.verdict_table(a.verdicts)),
        "## Tuned settings",
        tuning_section(a, image),
        "## Data regime",
        regime_section(a),
        "## Interactions",
        "Where the study crosses a setting with the architecture (init, attention, seq_len, ... against worker vs "
        "standard) or two worker settings (conv_kernel x worker_interval), the difference-in-differences: how "
        "much the arm's gap to the standard model changes between the setting's levels, paired by seed where "
        "all four trials of a seed exist, with its interval and a Holm-adjusted p across the table.",
        interaction_text(a.interactions),
        "## The seed's table",
        tables.seed_tables(a.final, a.chosen, a.loss_at),
        "## Best configuration per architecture",
        "Lowest mean final loss over test seeds per architecture and cell (descriptive: chosen on the same seeds "
        "it reports; never across sequence lengths or sizes, whose losses are not comparable).",
        md_table(tables.best_per_arch(a.summary)),
        "## Pareto fronts",
        f"{image('pareto_time.png')}\n\n{image('pareto_flops.png')}",
        "Fronts of seed-mean best-so-far curves, one per (seq_len, attention). Each arm's front is drawn over the "
        "configurations chosen for it on tune seeds (one per cell), so an arm with more settings does not win by "
        "taking a minimum over them; the front over all configurations is descriptive, with its count. A "
        "configuration that lost a test seed (diverged, failed) is on no front, as it gets no verdict. Every "
        "configuration on a front:",
        md_table(tables.front_table(a.fronts, a.summary)),
        "Points on its arm's front: how many of the front's steps the configuration holds among its arm's chosen "
        "configurations; on the lowest of all: among every configuration of the panel. The configurations, each "
        "once:",
        md_table(tables.front_key(a.fronts, a.summary, a.final).drop(columns="config_id")),
        "## Learning curves",
        image("curves.png"),
        "## Scaling",
        image("scaling_params.png"),
        "Power-law fits L = E + A·N^-alpha to each size's mean test-seed loss at the arm's chosen setting (95% "
        "bootstrap CI, seeds resampled within sizes), only for series with at least 4 model sizes:",
        md_table(tables.fits_table(a.fits)),
        "## Compute-optimal frontiers (isoFLOP)",
        isoflop_text(a),
        image("isoflop.png"),
        image("frontier.png"),
        "## Throughput and worker interval",
        f"{image('throughput.png')}\n\n{image('interval.png')}",
        render_timing.axes_section(a, image),
        render_timing.timing_section(a, image),
        "## Summary per configuration",
        f"Time to target: the train time at which a seed's best-so-far periodic loss reaches {target}, "
        "interpolated between the two evaluations around the crossing; the median over the configuration's test "
        "seeds that reached it or ran to their end (a seed that never reached it counts as censored; — when fewer "
        "than half reached it). Seeds the scheduler stopped, or that diverged or failed, are counted apart and "
        "left out: they are not slow seeds. Speedup: the chosen standard configuration's median over this one's, "
        "with a 95% bootstrap interval over seeds (paired where both arms have the same seeds; shown only when at "
        "least 95% of the resamples have a median). All columns are in summary.csv.",
        md_table(tables.cell_summary_table(a.summary)),
    ]
    return "\n\n".join(part for part in sections if part) + "\n"


def heading_id(text: str) -> str:
    """A heading's anchor as GitHub writes it ("Verdicts in detail" -> "verdicts-in-detail"), so links in the
    report work in report.md on GitHub and in report.html alike."""
    kept = "".join(c for c in text.lower() if c.isalnum() or c in " -_")
    return kept.strip().replace(" ", "-")


def markdown_to_html(text: str, title: str, images: dict[str, str] | None = None) -> str:
    """The report as one HTML page (CommonMark and GFM tables, by markdown-it-py; raw HTML in the text is shown
    as text). `images` maps an image's file name to what its src becomes (report.py: the PNG as a data URI, so
    that the page is one file); names not in it stay as they are."""
    images = images or {}
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = md.parse(text)
    for token, inline in zip(tokens, tokens[1:], strict=False):  # headings get ids, so the text can link to them
        if token.type == "heading_open":
            token.attrSet("id", heading_id(inline.content))
    for token in tokens:
        for child in token.children or ():
            if child.type == "image":
                src = str(child.attrGet("src"))
                child.attrSet("src", images.get(src, src))
    style = (  # a table wider than the page scrolls inside its own box: nothing is off-screen at 1280 px
        "body{font-family:sans-serif;max-width:1100px;margin:auto;padding:0 8px}"
        "table{border-collapse:collapse;font-size:13px;display:block;max-width:100%;overflow-x:auto}"
        "td,th{border:1px solid #ccc;padding:3px 6px}img{max-width:100%}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>\n" + md.renderer.render(tokens, md.options, {}) + "</body></html>\n"
    )
