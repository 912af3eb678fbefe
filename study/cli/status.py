"""`wt-study status PATH`: where a study stands, from its Parquet results and saved spec only.

Safe while the study runs: it reads files that the sink writes atomically and starts nothing.
"""

from __future__ import annotations

import math
import sys
import time

from study.tune.plan import load_saved_spec
from wt_base.budgets import BUDGET_KINDS
from wt_base.fields import SHOWN
from wt_base.lease import live_holder
from wt_base.schema import FINISHED_STATUSES


def study_status(path: str) -> dict:
    """Counts by status, per-trial budget use, best loss per architecture and an ETA (seconds or None)."""
    from analysis.load import load_study

    spec, location = load_saved_spec(path)
    study = load_study(path, empty_ok=True)  # early in a run: the trials it has, before any evaluation
    trials = study.trials.copy()
    metrics = study.metrics
    kind = BUDGET_KINDS[spec.budget.kind]
    if kind.trials_column is None:  # only the metrics rows carry it (FLOPs)
        spent = metrics.groupby("trial_id")[kind.metric].max() if len(metrics) else None
        trials["used"] = trials["trial_id"].map(spent).fillna(0.0) if spent is not None else 0.0
    else:
        trials["used"] = trials[kind.trials_column].fillna(0.0)
    trials["used_frac"] = (trials["used"] / trials["budget_value"].fillna(spec.budget.value)).clip(upper=1.0)
    trials.loc[trials["status"].isin(["completed", "diverged"]), "used_frac"] = 1.0  # stopped: what it used
    best = {}
    if len(metrics):
        finite = metrics[metrics["val_loss"].map(lambda v: v is not None and math.isfinite(v))]
        by_trial = finite.groupby("trial_id")["val_loss"].min()
        arch = trials.set_index("trial_id")["arch"]
        for trial_id, loss in by_trial.items():
            label = arch.get(trial_id, "?")
            best[label] = min(loss, best.get(label, math.inf))
    return {
        "spec": spec,
        "trials": trials,
        "counts": trials["status"].value_counts().to_dict(),
        "best": best,
        "eta_s": _eta_seconds(spec, trials),
        "skipped_files": study.skipped_files,
        "driver": live_holder(location),  # the live driver's lease (wt_base.lease), None when none runs
    }


def budget_line(spec, trials) -> str:
    """'Budget per trial: 300s (seconds)'; every budget its trials hold where they hold several (a budget axis,
    or a scaling ladder's sizes with their own budgets), not only the spec's default."""
    kind = BUDGET_KINDS[spec.budget.kind]
    by_arch = "".join(f", {arch} {kind.format(value)}" for arch, value in spec.budget_by_arch.items())
    values = sorted(set(trials["budget_value"].dropna().astype(float))) if "budget_value" in trials else []
    if len(values) > 1 and not by_arch:
        shown = f"{len(values)} budgets, {', '.join(kind.format(v) for v in values)}"
    else:
        shown = kind.format(spec.budget.value)
    return f"Budget per trial: {shown} ({kind.name}){by_arch}"


def trial_settings(trials) -> list[str]:
    """Per trial (in row order), "init nanogpt, lr 0.001": the settings a trial id does not show (it shows arch,
    interval, seq_len, n_embd and seed; wt_base.fields.SHOWN) that vary across the trials, so two trials that
    differ only by them can be told apart."""
    from analysis.configs import set_apart

    return set_apart(trials, SHOWN)


def _eta_seconds(spec, trials) -> float | None:
    """Remaining budget x (wall / train time of finished trials) / concurrency; clock (seconds) budgets only."""
    if not BUDGET_KINDS[spec.budget.kind].measured:
        return None
    budgets = trials["budget_value"].fillna(spec.budget.value)
    remaining = ((1.0 - trials["used_frac"]) * budgets)[~trials["status"].isin([*FINISHED_STATUSES, "failed"])].sum()
    finished = trials[trials["status"] == "completed"]
    ratio = 1.3
    if len(finished) and finished["train_time_s"].sum() > 0:
        ratio = finished["wall_time_s"].sum() / finished["train_time_s"].sum()
    running = int((trials["status"] == "running").sum())
    concurrency = spec.max_concurrent or max(1, running)
    return remaining * ratio / max(1, concurrency)


def print_status(path: str, out=None) -> int:
    out = out or sys.stdout
    starting = _starting(path)
    if starting:
        print(starting, file=out)
        return 0
    status = study_status(path)
    spec, trials = status["spec"], status["trials"]
    counts = status["counts"]
    order = ("completed", "stopped", "running", "pending", "diverged", "failed")
    print(
        f"Study {spec.name}: {len(trials)} trials | " + ", ".join(f"{counts.get(s, 0)} {s}" for s in order),
        file=out,
    )
    print(budget_line(spec, trials), file=out)
    trials = trials.assign(settings=trial_settings(trials))
    width = max((len(t) for t in trials["trial_id"]), default=0)
    settings_width = max((len(t) for t in trials["settings"]), default=0)
    for row in trials.sort_values(["status", "trial_id", "settings"]).itertuples():
        bar = "#" * round(row.used_frac * 20)
        loss = "" if row.val_loss is None or not math.isfinite(row.val_loss) else f"  final val_loss {row.val_loss:.4f}"
        error = f"  error: {row.error}" if isinstance(row.error, str) and row.error else ""
        name = f"{row.trial_id:<{width}}" + (f"  {row.settings:<{settings_width}}" if settings_width else "")
        print(f"  {name}  {row.status:<9}  [{bar:<20}] {row.used_frac:6.1%}{loss}{error}", file=out)
    if status["best"]:
        best = ", ".join(f"{a} {v:.4f}" for a, v in sorted(status["best"].items()))
        print(f"Best val_loss so far, over every periodic evaluation (not only final ones): {best}", file=out)
    if status["eta_s"] is not None and sum(counts.get(s, 0) for s in FINISHED_STATUSES) < len(trials):
        print(f"ETA: about {status['eta_s'] / 60:.1f} min of wall clock (if resumed / still running)", file=out)
    for name in status["skipped_files"]:
        print(f"warning: skipped unreadable results file {name}", file=out)
    search_done = True
    if spec.search.is_search:
        search_done = _print_search(spec, trials, out)
    holder = status["driver"]
    if holder is not None:
        print(f"Driver: {holder.describe(time.time())}", file=out)
    if counts.get("pending", 0) + counts.get("running", 0) + counts.get("failed", 0) or not search_done:
        print("Not finished" + (": it is being run" if holder else f": wt-study resume {path}"), file=out)
    return 0


def _starting(path: str) -> str | None:
    """A study whose driver holds its lease but has not yet recorded its trials (its first seconds), in words."""
    from wt_base.layout import SPEC_FILE
    from wt_base.storage import read_text, resolve

    location = resolve(path, "PATH")
    holder = live_holder(location)
    if holder is None or read_text(location, SPEC_FILE) is not None:
        return None
    return f"Study at {path} is starting: {holder.describe(time.time())} has not recorded its trials yet."


def _print_search(spec, trials, out) -> bool:
    """A search study's trials are made as it runs: how many of the planned ones have started, each arm's
    chosen setting so far, and whether the search has run everything it will (study.tune.search_state)."""
    from study.config.search_space import planned_trials
    from study.tune.search_state import rows_progress

    rows = trials.drop(columns=["settings"]).astype(object).where(trials.notna(), None).to_dict("records")
    search = rows_progress(spec, rows)
    if search.complete():
        print(f"Search ({spec.search.algorithm}): finished, {len(trials)} trials", file=out)
    else:
        started = f"{len(trials)} of up to {planned_trials(spec)} trials started"
        print(f"Search ({spec.search.algorithm}): {started}; the rest are made as it runs", file=out)
    for line in search.summary():
        print(f"  {line}", file=out)
    return search.complete()
