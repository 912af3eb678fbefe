"""Per-trial final values, summaries over seeds and seed-mean curves (pure: DataFrame in, DataFrame out).

Vocabulary used across the analysis (analysis.configs has the rules):
  - a *configuration* is a trial's whole run configuration except its seed (`config_key`, `config_id`);
  - a *cell* is what both architectures share when compared (`cell_key`): shape, init, attention, batch,
    budget, data and evaluation;
  - an *arm* is an architecture inside a cell (`arm_key`, labelled `arm`: "standard", "worker k=4");
  - *tuned* settings (lr, weight decay, ...) are chosen per arm on tuning seeds (analysis.tuning);
  - seeds have a *role*: "tune" seeds choose tuned settings, "test" seeds (the default) judge them.
Final-loss statistics use completed trials only, at their final evaluation; curves use only the periodic
evaluation set (curve_points), so one line never joins two different validation sets.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from analysis import configs
from analysis.configs import STANDARD

# the cell's fields that are trials columns, in the order tables show them
CELL_COLUMNS = ["seq_len", "n_embd", "n_layer", "n_head", "ffn_hidden", "batch_size", "init", "attention"]
CELL_COLUMNS += ["budget_kind", "budget_value", "count_eval_in_budget", "eval_protocol", "corpus"]
SETTING_COLUMNS = [c for c in configs.COLUMN_PATHS if c != "seed"]
CONFIDENCE = 0.95  # level of every confidence interval (verdicts test at 1 - CONFIDENCE)
DEFAULT_MARGIN = 0.01  # nats: the equivalence margin when trials carry none (studies before the column)


def arm_label(arch: str, worker_interval, extra: str = "") -> str:
    """'standard', 'worker k=4', 'worker-random-phase k=4', with `extra` ('conv_kernel 5') when given."""
    label = arch if arch == STANDARD or pd.isna(worker_interval) else f"{arch} k={int(worker_interval)}"
    return f"{label}, {extra}" if extra else label


def final_values(trials: pd.DataFrame, metrics: pd.DataFrame, metric: str = "val_loss") -> pd.DataFrame:
    """One row per trial: its settings, keys, seed role, status, `final_loss`, throughput and data regime.

    `final_loss` is the trial's final `metric` (whole validation split) for completed trials, from the trial row
    or else its final evaluation point; NaN for every other status (running, stopped by a scheduler, diverged,
    failed), so such seeds are counted but never averaged. Throughput, `epochs_end` and
    `train_minus_val_end` come from the last evaluation point (running trials have them too).
    """
    out = trials.copy()
    fields = configs.config_fields(out)
    for column in SETTING_COLUMNS:  # older studies: settings missing as columns are read from config_json
        filler = fields[column] if column in fields.columns else pd.Series(None, index=out.index, dtype=object)
        if column not in out:
            out[column] = filler.infer_objects()
        elif out[column].isna().any():
            filled = out[column].astype(object).where(out[column].notna(), filler)
            try:
                out[column] = filled.astype(out[column].dtype)
            except (TypeError, ValueError):
                out[column] = filled.infer_objects()
    out["seed_role"] = out["seed_role"].fillna("test") if "seed_role" in out else "test"
    margin = out["equivalence_margin"] if "equivalence_margin" in out else pd.Series(np.nan, index=out.index)
    out["margin"] = margin.astype(float).fillna(DEFAULT_MARGIN)
    out["final_loss"] = _final_loss(out, metrics, metric)
    last = metrics.drop_duplicates("trial_id", keep="last").set_index("trial_id")
    time_s = out["trial_id"].map(last["train_time_s"]).astype(float)
    time_s = time_s.where(time_s > 0)
    out["steps_per_s"] = out["trial_id"].map(last["step"]).astype(float) / time_s
    out["tokens_per_s"] = out["trial_id"].map(last["tokens"]).astype(float) / time_s
    for column in ("epochs", "target_epochs", "train_minus_val"):
        values = last[column] if column in last.columns else pd.Series(dtype=float)
        out[f"{column}_end"] = out["trial_id"].map(values).astype(float)
    # The train - val gap reflects the two texts as much as overfitting (it is negative for a model far from
    # converged when the validation text is easier): read it against its own value early in training.
    gaps = metrics[["trial_id", "train_minus_val", "is_final"]]  # the columns it needs, not a copy of every one
    gaps = gaps[~gaps["is_final"]].dropna(subset=["train_minus_val"]) if len(metrics) else gaps
    first = gaps.drop_duplicates("trial_id", keep="first").set_index("trial_id")["train_minus_val"]
    out["train_minus_val_start"] = out["trial_id"].map(first).astype(float)
    out["train_minus_val_change"] = out["train_minus_val_end"] - out["train_minus_val_start"]
    return _with_keys(out, fields)


def _final_loss(trials: pd.DataFrame, metrics: pd.DataFrame, metric: str) -> pd.Series:
    finals = metrics[metrics["is_final"]].drop_duplicates("trial_id", keep="last").set_index("trial_id")[metric]
    loss = trials[metric].astype(float).where(trials[metric].notna(), trials["trial_id"].map(finals).astype(float))
    loss = loss.where(trials["status"].eq("completed"))
    return loss.where(np.isfinite(loss))


def _with_keys(out: pd.DataFrame, fields: pd.DataFrame) -> pd.DataFrame:
    """Add config/cell/arm/tuned keys, ids and labels (analysis.configs)."""
    cell, arm, tuned = configs.split_fields(fields)
    full = fields["eval.final_full"] if "eval.final_full" in fields else pd.Series(None, index=out.index)
    periodic_set = (full.eq(False) | out["eval_protocol"].eq("seed")).astype(object)
    out["final_on_periodic_set"] = periodic_set.where(full.notna() | out["eval_protocol"].eq("seed"), None)
    out["config_key"] = configs.keys_of(fields, cell + arm + tuned)
    out["cell_key"] = configs.keys_of(fields, cell)
    out["arm_key"] = configs.keys_of(fields, arm)
    out["config_id"] = out.groupby("config_key", sort=True).ngroup()
    out["cell_id"] = out.groupby("cell_key", sort=True).ngroup()
    out["tuned"] = configs.describe(fields, configs.varying(fields, tuned))
    extra_arm = configs.varying(fields, [f for f in arm if f in ("conv_kernel", "budget_value")])
    extra = configs.describe(fields, extra_arm)
    out["arm"] = [arm_label(a, k, e) for a, k, e in zip(out["arch"], out["worker_interval"], extra, strict=True)]
    out["cell_extra"] = configs.describe(fields, configs.varying(fields, [f for f in cell if f not in CELL_COLUMNS]))
    return out


def t_interval(n: pd.Series, mean: pd.Series, std: pd.Series, confidence: float = CONFIDENCE):
    """Student-t confidence interval of a mean; NaN where n < 2."""
    n = n.astype(float)
    half = stats.t.ppf(0.5 + confidence / 2, (n - 1).where(n >= 2)) * std / np.sqrt(n)
    return mean - half, mean + half


def seed_summary(frame: pd.DataFrame, keys: list[str], value: str = "final_loss") -> pd.DataFrame:
    """Aggregate seeds: n (finite values), mean, std and the 95% t-interval of `value` per group of `keys`."""
    grouped = frame.groupby(keys, dropna=False, sort=True)[value]
    out = grouped.agg(n="count", mean="mean", std="std").reset_index()
    out["n"] = out["n"].astype("int64")
    out["ci_low"], out["ci_high"] = t_interval(out["n"], out["mean"], out["std"])
    return out


def config_summary(final: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration: final loss over its test seeds (n, mean, std, 95% CI), trials by status and
    seed role, size, mean throughput and the data regime at the end (epochs, train minus val loss)."""
    test = final[final["seed_role"].eq("test")]
    loss = seed_summary(test, ["config_id"]).set_index("config_id")
    status = final.assign(n=1).pivot_table(index="config_id", columns="status", values="n", aggfunc="sum")
    grouped = final.groupby("config_id", sort=True)
    labels = ["arm", "tuned", "cell_key", "arm_key", "cell_extra", *SETTING_COLUMNS]
    out = grouped[labels + (["token_unit"] if "token_unit" in final else [])].first()
    out = out.join(loss.reindex(out.index))
    out["n"] = out["n"].fillna(0).astype("int64")
    out["n_trials"] = grouped["trial_id"].count()
    out["n_tune"] = grouped["seed_role"].agg(lambda s: int(s.eq("tune").sum()))
    for name in ("completed", "stopped", "diverged", "failed"):
        out[f"n_{name}"] = status[name].reindex(out.index).fillna(0).astype("int64") if name in status else 0
    out["n_params"] = grouped["n_params"].first()
    out["flops_per_token"] = grouped["flops_per_token"].first()
    ends = ["epochs_end", "target_epochs_end", "train_minus_val_end", "train_minus_val_change"]
    for column in ("steps_per_s", "tokens_per_s", *ends):
        out[column] = test.groupby("config_id")[column].mean().reindex(out.index)
    return out.reset_index()


def curve_points(metrics: pd.DataFrame, final: pd.DataFrame | None = None) -> pd.DataFrame:
    """The evaluation points one learning curve may join: every periodic point, and the final point only when
    it used the periodic validation set.

    Whether it did comes from the trial's configuration (`final_on_periodic_set` of final_values: eval.final_full
    off, or the seed's protocol); where that is unknown, from the points (same `val_tokens` as the trial's
    periodic evaluations).
    """
    periodic = metrics.loc[~metrics["is_final"], ["trial_id", "val_tokens"]]  # two columns: no copy of the rest
    tokens = periodic.drop_duplicates("trial_id", keep="last").set_index("trial_id")["val_tokens"]
    last = metrics.loc[metrics["is_final"], ["trial_id", "val_tokens"]]
    same_set = last["val_tokens"].eq(last["trial_id"].map(tokens)).fillna(False).astype(bool)
    if final is not None:
        known = last["trial_id"].map(final.set_index("trial_id")["final_on_periodic_set"])
        same_set = known.astype(object).where(known.notna(), same_set).astype(bool)
    # the rows, order and index of concat([periodic, last[same_set]]).sort_values(["trial_id", "step"],
    # kind="stable") (periodic before final at a tie), with one copy of the frame instead of three
    keep = ~metrics["is_final"].to_numpy(bool)
    keep[np.flatnonzero(~keep)[same_set.to_numpy(bool)]] = True
    points = metrics[keep]
    return points if _in_key_order(points) else points.sort_values(["trial_id", "step", "is_final"], kind="stable")


def _in_key_order(frame: pd.DataFrame) -> bool:
    """True when the rows are in strictly increasing (trial_id, step) order (as analysis.load returns them)."""
    if len(frame) < 2:
        return True
    codes, _ = pd.factorize(frame["trial_id"], sort=True)  # sorted uniques: codes order as the ids do
    steps = frame["step"].to_numpy(float)
    if (codes < 0).any() or np.isnan(steps).any():
        return False
    same = codes[1:] == codes[:-1]
    return bool((codes[1:] >= codes[:-1]).all() and (steps[1:][same] > steps[:-1][same]).all())


def seed_curves(
    points: pd.DataFrame,
    final: pd.DataFrame,
    metric: str = "val_loss",
    x: str = "train_time_s",
    n_grid: int = 40,
    common: bool = False,
) -> pd.DataFrame:
    """Mean and 95% CI over the test seeds of `metric` vs `x` per configuration, on one grid per configuration.

    `points` holds one curve per trial (curve_points, or pareto.best_so_far with metric "best_loss"). With
    common=False the grid is `n_grid` points from the configuration's first to last x and a seed counts only
    inside its own range; with common=True it is the union of the seeds' own x values inside the range every
    seed covers (one seed: exactly its points). Columns: config_id, x, n, n_seeds, mean, std, ci_low, ci_high.
    """
    test = final[final["seed_role"].eq("test")].set_index("trial_id")["config_id"]
    m = points[["trial_id", x, metric]].dropna(subset=[x]).reset_index(drop=True)
    m = m.assign(config_id=m["trial_id"].map(test)).dropna(subset=["config_id"])
    m = m.sort_values(["config_id", "trial_id"], kind="stable")
    config_ids, trial_ids = m["config_id"].to_numpy(), m["trial_id"].to_numpy()
    xs, ys = m[x].to_numpy(float), m[metric].to_numpy(float)
    frames = []
    for c in runs(config_ids):
        seeds = [(xs[c][t], ys[c][t]) for t in runs(trial_ids[c])]
        frames.append(_seed_grid(int(config_ids[c][0]), seeds, x, n_grid, common))
    columns = ["config_id", x, "n", "n_seeds", "mean", "std", "ci_low", "ci_high"]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in columns})
    out = pd.concat(frames, ignore_index=True)
    out["ci_low"], out["ci_high"] = t_interval(pd.Series(out["n"]), out["mean"], out["std"])
    return out[columns]


def runs(values: np.ndarray) -> list[slice]:
    """Slices of the runs of equal consecutive values (a sorted column's groups)."""
    if len(values) == 0:
        return []
    cuts = np.flatnonzero(values[1:] != values[:-1]) + 1
    bounds = np.r_[0, cuts, len(values)]
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _seed_grid(config_id: int, seeds: list, x: str, n_grid: int, common: bool) -> pd.DataFrame:
    """Seeds' curves (x, y arrays) interpolated onto one grid: mean, std and count per grid point."""
    if common:
        low, high = max(xs.min() for xs, _ in seeds), min(xs.max() for xs, _ in seeds)
        grid = np.unique(np.concatenate([xs for xs, _ in seeds]))
        grid = grid[(grid >= low) & (grid <= high)]
    else:
        grid = np.linspace(min(xs.min() for xs, _ in seeds), max(xs.max() for xs, _ in seeds), n_grid)
    values = np.vstack([np.interp(grid, xs, ys, left=np.nan, right=np.nan) for xs, ys in seeds])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN grid points (no seed covers them)
        mean, std = np.nanmean(values, axis=0), np.nanstd(values, axis=0, ddof=1)
    n = np.isfinite(values).sum(axis=0)
    return pd.DataFrame({"config_id": config_id, x: grid, "n": n, "n_seeds": len(seeds), "mean": mean, "std": std})
