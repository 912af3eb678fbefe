"""IsoFLOP profiles (Chinchilla's approach 2 with Porian et al. 2024's checks): the compute-optimal size and
loss per FLOP budget, their power laws across budgets, and arms against a reference (pure functions).

Input: one row per test-seed trial at its chosen setting (lr tuned per size): arm (str), budget_flops (float, C),
n_params (int, N: the caller chooses non-embedding or total parameters; optima and the exponent a are in those
terms), seed (int), final_loss (float; NaN = diverged or failed: counted per size, never fitted).

Profile: per (arm, budget) a least-squares parabola in u = log10 N through every finite run, with one offset per
seed (summing to zero) where seeds repeat across sizes: a seed shares its data order at every size, so its
offset is common to its runs and is no evidence about the shape. The sizes are the design, held fixed. The
parabola's error is the residual mean square about it (lack of fit and seed-to-seed scatter pooled) unless the
pure-error F test of its shape has p < POOL_ALPHA: then the sizes scatter about the curve by more than seeds do
(lr tuned per size leaves each size its own offset) and the lack-of-fit mean square alone, on k - 3 df, is the
error (a "sometimes pool" rule; isoflop_fit.POOL_ALPHA says why 0.05). The curvature's interval is the t
interval on that error's df; the minimum's location -c1 / (2 c2) gets Fieller's interval, exact for a ratio of
normal estimates, bounded exactly when the curvature's interval excludes 0. The parabola is the true profile's
second-order expansion: under Chinchilla's L = E + A N^-alpha + B (C/6N)^-beta its minimum shifts by ~(alpha -
beta) h^2 / 10 in ln N for sizes over +-h centred on the optimum, more on a ladder off its centre
(docs/analysis.md, "Power of the isoFLOP rule", measured by analysis.isoflop_power).

Replicates (for loss_opt's interval, the frontier fits and the arms' differences): the parabola's coefficients
drawn from their sampling distribution (each run's noise Gaussian at the error SD through the same fit, scaled
by sqrt(df / chi2_df) for the error's own uncertainty: a multivariate t), plus, for loss_opt, the seeds' mean
offset (between-seed variance by moments, t on S - 1 df). One opening downward has no minimum: log n_opt is
+-inf (towards falling loss), loss_opt -inf. Draws are seeded by (seed, budget); an arm whose runs match the
reference's (same size ranks and seed labels) gets noise correlated as the two arms' residuals are (shared seeds,
shared data), so frontier_difference's intervals are paired.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from analysis.configs import STANDARD
from analysis.inference import ALPHA
from analysis.isoflop_fit import MIN_SIZES, POOL_ALPHA, Runs, fit_profile, vertex
from analysis.stats import CONFIDENCE

__all__ = ["MIN_SIZES", "POOL_ALPHA", "frontier_difference", "frontier_fits", "isoflop_profiles"]
COLUMNS = ("arm", "budget_flops", "n_params", "seed", "final_loss")
MIN_BUDGETS = 3  # identified budgets an identified frontier needs (a line needs 2; 3 leave 1 df to check it)
MIN_DECADES = 1.0  # span of log10 C an identified frontier needs
MAX_EXPONENT_WIDTH = 0.2  # widest interval of a that still tells Chinchilla's 0.50 from Kaplan's 0.73
N_BOOT = 1000


def _check(frame: pd.DataFrame) -> None:
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"the isoFLOP frame lacks column(s) {missing}; it needs {list(COLUMNS)}")
    for column in ("budget_flops", "n_params"):
        if not (frame[column].astype(float) > 0).all():
            raise ValueError(f"{column} must be positive in every row (got {frame[column].min()})")


def _runs(group: pd.DataFrame) -> tuple[Runs, tuple, str]:
    """The finite runs sorted by size then seed, the seeds per size, and the sizes' diverged counts as text."""
    notes = []
    for n_params, size in group.groupby("n_params", sort=True):
        bad = int(size["final_loss"].isna().sum())
        if bad:
            notes.append(f"N={n_params:.3g}: {bad} of {len(size)}")
    ok = group[group["final_loss"].notna()].sort_values(["n_params", "seed"])
    sizes = np.sort(ok["n_params"].unique().astype(float))
    runs = Runs(
        u=np.log10(sizes),
        size=np.searchsorted(sizes, ok["n_params"].to_numpy(float)),
        seed=ok["seed"].to_numpy(int),
        y=ok["final_loss"].to_numpy(float),
    )
    seeds = tuple(tuple(int(s) for s in g["seed"]) for _, g in ok.groupby("n_params", sort=True))
    return runs, seeds, "; ".join(notes)


def _interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval over the non-NaN values (infinite ones included); NaN when none."""
    values = values[~np.isnan(values)]
    if not len(values):
        return np.nan, np.nan
    tail = (1 - confidence) / 2
    low, high = np.quantile(values, [tail, 1 - tail], method="inverted_cdf")
    return float(low), float(high)


def _profile(group: pd.DataFrame, confidence: float) -> tuple[dict, dict | None]:
    """One profile's row (without its replicates) and the fit behind it (None with under 3 sizes)."""
    runs, seeds, diverged = _runs(group)
    n_bad = int(group["final_loss"].isna().sum())
    row = dict(n_sizes=len(runs.u), n_points=len(runs.y), n_diverged=n_bad, diverged=diverged, seeds_per_size=seeds)
    row.update(log10_n_min=runs.u.min() if len(runs.u) else np.nan, log10_n_max=runs.u.max() if len(runs.u) else np.nan)
    note = f"; {n_bad} of {len(group)} runs diverged or failed ({diverged})" if n_bad else ""
    if len(runs.u) < 3:
        reason = f"not identified: {len(runs.u)} sizes with a finite loss (needs 3)" + note
        return dict(row, identified=False, reason=reason, n_boot_ok=0), None
    fit = fit_profile(runs, confidence)
    row.update({k: v for k, v in fit.items() if not k.startswith("_")})
    reasons = fit["_reasons"]
    note += f"; lack of fit (p={row['lof_p']:.2g}): the shape is not a parabola" if row["lof_p"] < ALPHA else ""
    reason = "not identified: " + "; ".join(reasons) if reasons else "identified"
    return dict(row, identified=not reasons, reason=reason + note), fit


def _replicates(fit: dict, z, w, u_error, u_level) -> tuple[np.ndarray, np.ndarray]:
    """(log10 n_opt, loss_opt) per replicate from standard normals z (B, n) and w (B,), uniforms (B,)."""
    df, level_df = fit["error_df"], fit["_level_df"]
    scale = fit["error_sd"] * np.sqrt(df / stats.chi2.ppf(u_error, df))
    coef = fit["_coef"] + scale[:, None] * (z @ fit["_hat"].T)
    u_opt, loss, _ = vertex(coef, fit["_u_mid"])
    if fit["_level_sd"] > 0:
        loss = loss + fit["_level_sd"] * w * np.sqrt(level_df / stats.chi2.ppf(u_level, level_df))
    return u_opt, loss


def _budget_draws(fits: dict, layouts: dict, reference: str, budget: float, n_boot: int, seed: int) -> dict:
    """arm -> (log10 n_opt, loss_opt) replicates at one budget; arms laid out as the reference get noise
    correlated with its own by the correlation of their matched runs' residuals (seed offsets included)."""
    key = int(np.float64(budget).view(np.int64))
    tiny = np.finfo(float).tiny
    common = np.random.default_rng([seed, key, 0])
    ref = fits.get(reference)
    n_ref = len(ref["_unblocked"]) if ref is not None else 0
    z_ref, w_ref = common.standard_normal((n_boot, n_ref)), common.standard_normal(n_boot)
    shared = np.maximum(common.random((2, n_boot)), tiny)
    out = {}
    for j, (arm, fit) in enumerate(sorted(fits.items())):
        own = np.random.default_rng([seed, key, 1 + j])
        z, w = own.standard_normal((n_boot, len(fit["_unblocked"]))), own.standard_normal(n_boot)
        uniforms = np.maximum(own.random((2, n_boot)), tiny)
        if ref is not None and layouts[arm] == layouts[reference]:
            a, r = fit["_unblocked"], ref["_unblocked"]
            rho = float(np.clip(a @ r / np.sqrt((a @ a) * (r @ r)), -1, 1)) if (a @ a) * (r @ r) > 0 else 0.0
            z, w = rho * z_ref + np.sqrt(1 - rho**2) * z, rho * w_ref + np.sqrt(1 - rho**2) * w
            uniforms = shared
        out[arm] = _replicates(fit, z, w, *uniforms)
    return out


PROFILE_COLUMNS = ["arm", "budget_flops", "identified", "reason", "n_sizes", "n_points", "n_diverged", "diverged"]
PROFILE_COLUMNS += [f"{v}{s}" for v in ("n_opt", "loss_opt", "curvature") for s in ("", "_low", "_high")]
PROFILE_COLUMNS += ["log10_n_min", "log10_n_max", "resid_sd", "pure_error_sd", "lof_f", "lof_df", "pure_error_df"]
PROFILE_COLUMNS += ["lof_p", "error_term", "error_sd", "error_df", "curvature_t", "n_opt_outside_decades"]
PROFILE_COLUMNS += ["seed_blocks", "n_boot_ok", "parabola", "seeds_per_size", "boot_log10_n_opt", "boot_loss_opt"]


def isoflop_profiles(
    frame: pd.DataFrame, n_boot: int = N_BOOT, seed: int = 0, confidence=CONFIDENCE, reference: str = STANDARD
) -> pd.DataFrame:
    """One row per (arm, budget_flops): the parabola in log10 N, its optimum and whether it is identified.

    n_opt / loss_opt: the parabola's minimum and its value; n_opt's interval is Fieller's, loss_opt's from the
    replicates (module docstring); curvature: d2L/d(log10 N)^2 in nats per decade^2 with its t interval
    (curvature_t on error_df df); parabola: (c0, c1, c2) of L = c0 + c1 u + c2 u^2, u = log10 N, for the average
    seed; error_term "pooled" or "size scatter" (POOL_ALPHA) with error_sd; resid_sd: runs about the parabola and
    the seed offsets (seed_blocks: whether there are any); pure_error_sd and lof_f / lof_p: the pure-error F test
    of the parabola's shape (lack of fit on lof_df, pure error on pure_error_df degrees of freedom; NaN without
    replicate seeds or with fewer than 4 sizes); n_diverged / diverged: NaN losses, in total and per size;
    n_opt_outside_decades: how far the minimum lies above (+) or below (-) the sampled sizes (0 inside).
    identified is False (reason says why, with the numbers) with fewer than MIN_SIZES sizes, no residual df, a
    parabola opening downward or flat (curvature interval reaching 0), a minimum outside the sampled sizes, or
    an n_opt interval wider than them. boot_log10_n_opt / boot_loss_opt hold n_boot replicates (none with
    n_boot=0: the identified rule does not use them) for frontier_fits and frontier_difference; `reference` is
    the arm whose replicates the others are paired with.
    """
    _check(frame)
    rows = []
    for budget, at in frame.groupby("budget_flops", sort=True):
        fits, layouts, part = {}, {}, []
        for arm, group in at.groupby("arm", sort=True):
            row, fit = _profile(group, confidence)
            part.append(dict(arm=arm, budget_flops=float(budget), **row))
            if fit is not None:
                fits[arm], layouts[arm] = fit, row["seeds_per_size"]
        draws = _budget_draws(fits, layouts, reference, budget, n_boot, seed) if n_boot > 0 else {}
        for row in part:
            nothing = np.full(n_boot, np.nan)
            u, loss = draws.get(row["arm"], (nothing, nothing))
            row.update(boot_log10_n_opt=u, boot_loss_opt=loss, n_boot_ok=int((~np.isnan(u)).sum()))
            if "loss_opt" in row:
                row["loss_opt_low"], row["loss_opt_high"] = _interval(loss, confidence)
        rows += part
    out = pd.DataFrame(rows).sort_values(["arm", "budget_flops"], kind="stable").reset_index(drop=True)
    return out.reindex(columns=PROFILE_COLUMNS)


def _line(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares (slope, intercept) of each row of y on x (batched over leading axes)."""
    xc = x - x.mean()
    with np.errstate(invalid="ignore"):
        slope = (y * xc).sum(-1) / (xc**2).sum()
        return slope, y.mean(-1) - slope * x.mean()


def _power_law(x, y, boot, confidence: float, name: str) -> dict:
    """y = intercept + slope x in log10-log10 with bootstrap intervals; residuals; chi-square lack of fit of the
    residuals against the budgets' bootstrap SDs ((q84 - q16) / 2) on m - 2 df."""
    slope, intercept = _line(x, y)
    boot_slope, boot_intercept = _line(x, boot)
    ok = np.isfinite(boot).all(1)
    out = {f"{name}_exponent": float(slope), f"{name}_coef": 10 ** float(intercept), f"{name}_boot_ok": int(ok.sum())}
    unbounded = (~ok).mean() > (1 - confidence) / 2  # too many dropped replicates to trust either tail
    out[f"{name}_exponent_low"], out[f"{name}_exponent_high"] = _interval(boot_slope[ok], confidence)
    low, high = (-np.inf, np.inf) if unbounded else _interval(boot_intercept[ok], confidence)
    if unbounded:
        out[f"{name}_exponent_low"], out[f"{name}_exponent_high"] = -np.inf, np.inf
    out[f"{name}_coef_low"], out[f"{name}_coef_high"] = 10**low, 10**high
    resid = y - (intercept + slope * x)
    out[f"{name}_resid"] = tuple(float(r) for r in resid)
    q16, q84 = np.nanquantile(np.where(np.isfinite(boot), boot, np.nan), [0.16, 0.84], axis=0)
    with np.errstate(divide="ignore"):
        chi2 = float(((resid / ((q84 - q16) / 2)) ** 2).sum())
    out[f"{name}_lof_p"] = float(stats.chi2.sf(chi2, len(x) - 2)) if len(x) > 2 else np.nan
    return out


def _frontier(used: pd.DataFrame, confidence: float) -> dict:
    """Power laws of N_opt and L_opt over the identified profiles `used` (2 or more budgets)."""
    x = np.log10(used["budget_flops"].to_numpy(float))
    boot_n = np.column_stack(used["boot_log10_n_opt"].to_list())
    with np.errstate(divide="ignore", invalid="ignore"):
        boot_loss = np.log10(np.column_stack(used["boot_loss_opt"].to_list()))
    out = _power_law(x, np.log10(used["n_opt"].to_numpy(float)), boot_n, confidence, "n_opt")
    out.update(_power_law(x, np.log10(used["loss_opt"].to_numpy(float)), boot_loss, confidence, "loss_opt"))
    p = [out["n_opt_lof_p"], out["loss_opt_lof_p"]]
    if np.isnan(p).all():
        out["lack_of_fit"] = "no check: 2 budgets fit a line exactly"
    else:
        words = ["consistent with", "beyond"]
        out["lack_of_fit"] = (
            f"N_opt residuals {words[p[0] < ALPHA]} the profiles' uncertainty (p={p[0]:.2g}); "
            f"L_opt residuals {words[p[1] < ALPHA]} it (p={p[1]:.2g})"
        )
    return out


def _frontier_reasons(out: dict) -> list[str]:
    reasons = []
    if out["n_identified"] < MIN_BUDGETS:
        reasons.append(f"{out['n_identified']} of {out['n_budgets']} budgets identified (needs {MIN_BUDGETS})")
    if not out["budget_decades"] >= MIN_DECADES:
        reasons.append(f"identified budgets span {out['budget_decades']:.2f} decades (needs {MIN_DECADES:g})")
    width = out.get("n_opt_exponent_high", np.nan) - out.get("n_opt_exponent_low", np.nan)
    if out["n_identified"] >= 2 and not width <= MAX_EXPONENT_WIDTH:
        reasons.append(f"the interval of a is {width:.3g} wide (at most {MAX_EXPONENT_WIDTH:g})")
    return reasons


def frontier_fits(profiles: pd.DataFrame, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """One row per arm: N_opt(C) = G C^a and L_opt(C) = H C^b, least squares in log10-log10 over the identified
    profiles only (n_opt_* for G and a, loss_opt_* for H and b; coefficients are per FLOP, in the caller's N).

    L_opt's power law describes the observed budgets only (it has no floor E; a floor needs more budgets than a
    study has). Intervals: the profiles' bootstrap replicates (every budget's seeds and sizes resampled, the
    profiles refitted) go through the same fit; replicates with an unbounded profile are dropped (*_boot_ok
    count the rest) and, when more than the interval's tail are, the intervals are (-inf, inf).
    *_resid: log10 residuals per used budget; *_lof_p: chi-square of the residuals against the profiles'
    bootstrap SDs (m - 2 df), summarised in lack_of_fit. identified is False with fewer than MIN_BUDGETS
    identified budgets, a span under MIN_DECADES decades or an interval of a wider than MAX_EXPONENT_WIDTH.
    """
    rows = []
    for arm, group in profiles.groupby("arm", sort=True):
        used = group[group["identified"].astype(bool)].sort_values("budget_flops")
        x = np.log10(used["budget_flops"].to_numpy(float))
        out = dict(arm=arm, n_budgets=len(group), n_identified=len(used), budget_decades=np.ptp(x) if len(x) else 0.0)
        out["budgets_used"] = tuple(used["budget_flops"])
        if len(used) >= 2:
            out.update(_frontier(used, confidence))
        reasons = _frontier_reasons(out)
        out.update(identified=not reasons, reason="not identified: " + "; ".join(reasons) if reasons else "identified")
        rows.append(out)
    columns = ["arm", "identified", "reason", "n_budgets", "n_identified", "budget_decades", "budgets_used"]
    for name in ("n_opt", "loss_opt"):
        columns += [f"{name}_{v}{s}" for v in ("exponent", "coef") for s in ("", "_low", "_high")]
        columns += [f"{name}_resid", f"{name}_lof_p", f"{name}_boot_ok"]
    return pd.DataFrame(rows).reindex(columns=columns + ["lack_of_fit"])


def _words(out: dict, confidence: float) -> tuple[str, str]:
    """("lower" | "higher" | "not distinguishable", a sentence) for a frontier_difference row."""
    start, best = f"at C={out['budget_flops']:.3g} FLOPs the best {out['arm']}", f"the best {out['reference']} model"
    interval = f"{confidence:.0%} interval {out['diff_low']:+.3f} to {out['diff_high']:+.3f}"
    if out["diff_high"] < 0 or out["diff_low"] > 0:
        word, side = ("lower", "below") if out["diff_high"] < 0 else ("higher", "above")
        return word, f"{start} is {abs(out['diff']):.3f} nats {side} {best} ({interval})"
    return "not distinguishable", f"{start} and {best} are not distinguishable ({out['diff']:+.3f}, {interval})"


def frontier_difference(profiles: pd.DataFrame, reference: str = STANDARD, confidence: float = CONFIDENCE):
    """One row per (arm other than `reference`, budget): diff = loss_opt(arm) - loss_opt(reference), nats.

    Takes isoflop_profiles' frame (one call, one seed, so replicates at a budget are paired by index: where both
    profiles have the same sizes-by-seeds layout, `paired`, they resampled the same size ranks and seed labels).
    words: "lower" / "higher" (interval excludes 0), "not distinguishable", or "not identified" when either
    profile is not (or the reference has no profile at that budget); statement says it in a sentence.
    """
    ref = profiles[profiles["arm"].eq(reference)].set_index("budget_flops")
    rows = []
    for _, row in profiles[~profiles["arm"].eq(reference)].sort_values(["arm", "budget_flops"]).iterrows():
        out = dict(arm=row["arm"], reference=reference, budget_flops=row["budget_flops"], loss_opt=row["loss_opt"])
        other = ref.loc[row["budget_flops"]] if row["budget_flops"] in ref.index else None
        if other is None:
            statement = f"at C={row['budget_flops']:.3g} FLOPs there is no {reference} profile"
            rows.append(dict(out, words="not identified", statement=statement))
            continue
        with np.errstate(invalid="ignore"):  # both -inf (no minimum in either replicate): NaN, dropped
            boot = np.atleast_1d(np.asarray(row["boot_loss_opt"], float) - np.asarray(other["boot_loss_opt"], float))
        out.update(reference_loss_opt=other["loss_opt"], diff=row["loss_opt"] - other["loss_opt"])
        out.update(paired=row["seeds_per_size"] == other["seeds_per_size"], n_boot_ok=int((~np.isnan(boot)).sum()))
        out["diff_low"], out["diff_high"] = _interval(boot, confidence)
        if not (row["identified"] and other["identified"]):
            which = [name for name, r in ((row["arm"], row), (reference, other)) if not r["identified"]]
            profiles_ = "profiles are" if len(which) > 1 else "profile is"
            statement = f"at C={row['budget_flops']:.3g} FLOPs the {' and '.join(which)} {profiles_} not identified"
            out.update(words="not identified", statement=statement)
        else:
            out["words"], out["statement"] = _words(out, confidence)
        rows.append(out)
    columns = ["arm", "reference", "budget_flops", "words", "diff", "diff_low", "diff_high", "loss_opt"]
    return pd.DataFrame(rows).reindex(columns=columns + ["reference_loss_opt", "paired", "n_boot_ok", "statement"])


COMPARISON_COLUMNS = ["approach", "arm", "reference", "exponent", "reference_exponent", "exponent_ratio"]
COMPARISON_COLUMNS += ["exponent_ratio_low", "exponent_ratio_high", "c_max", "loss_opt_ratio", "loss_opt_ratio_low"]
COMPARISON_COLUMNS += ["loss_opt_ratio_high", "reason"]


def frontier_comparison(profiles: pd.DataFrame, fits: pd.DataFrame, reference: str = STANDARD, confidence=CONFIDENCE):
    """One row per arm other than `reference` (approach 2): the ratio of the N_opt exponents a (arm / reference)
    over the budgets both arms have identified, and of L_opt at the largest of them, with intervals from the
    profiles' paired replicates; where either frontier is not identified, reason says why (frontier_fits' words)."""
    rows = []
    fit_of = fits.set_index("arm")
    ref = profiles[profiles["arm"].eq(reference) & profiles["identified"].astype(bool)].set_index("budget_flops")
    for arm, group in profiles[~profiles["arm"].eq(reference)].groupby("arm", sort=True):
        out = dict(approach=2, arm=arm, reference=reference)
        used = group[group["identified"].astype(bool)].set_index("budget_flops")
        common = sorted(set(used.index) & set(ref.index))
        failed = [f"{name}: {fit_of.loc[name, 'reason']}" for name in (arm, reference)
                  if name in fit_of.index and not fit_of.loc[name, "identified"]]  # fmt: skip
        if len(common) < 2 or failed:
            why = failed or [f"{len(common)} budgets identified in both arms (needs 2)"]
            rows.append(dict(out, reason="not identified: " + "; ".join(why)))
            continue
        x = np.log10(np.array(common))
        slopes = {}
        for name, frame in ((arm, used), (reference, ref)):
            point = _line(x, np.log10(frame.loc[common, "n_opt"].to_numpy(float)))[0]
            boot = np.column_stack(frame.loc[common, "boot_log10_n_opt"].to_list())
            slopes[name] = (point, _line(x, np.where(np.isfinite(boot), boot, np.nan))[0])
        top = common[-1]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio_a = slopes[arm][1] / slopes[reference][1]
            ratio_l = np.asarray(used.loc[top, "boot_loss_opt"]) / np.asarray(ref.loc[top, "boot_loss_opt"])
        out.update(exponent=slopes[arm][0], reference_exponent=slopes[reference][0], c_max=top)
        out.update(exponent_ratio=slopes[arm][0] / slopes[reference][0])
        out["exponent_ratio_low"], out["exponent_ratio_high"] = _interval(ratio_a, confidence)
        out["loss_opt_ratio"] = used.loc[top, "loss_opt"] / ref.loc[top, "loss_opt"]
        out["loss_opt_ratio_low"], out["loss_opt_ratio_high"] = _interval(ratio_l, confidence)
        rows.append(dict(out, reason=f"identified at {len(common)} common budgets"))
    return pd.DataFrame(rows).reindex(columns=COMPARISON_COLUMNS)
