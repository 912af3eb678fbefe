"""IsoFLOP profiles (Chinchilla's approach 2 with Porian et al. 2024's checks): the compute-optimal size and
loss per FLOP budget, their power laws across budgets, and arms against a reference (pure functions).

Input: one row per test-seed trial at its chosen setting (lr tuned per size): arm (str), budget_flops (float, C),
n_params (int, N: the caller chooses non-embedding or total parameters; optima and the exponent a are in those
terms), seed (int), final_loss (float; NaN = diverged or failed: counted per size, never fitted).

Profile: per (arm, budget) every finite seed is one point of a least-squares parabola in u = log10 N (size means
weighted by seed counts). Seed noise is taken as equal across a profile's sizes: 1/s^2 weights from 3 seeds rest
on 2 df each (no finite mean) and add noise. The parabola is the true profile's second-order expansion; under
Chinchilla's L = E + A N^-alpha + B (C/6N)^-beta its minimum shifts by ~(alpha - beta) h^2 / 10 in ln N for sizes
over +-h: ~1% in N over one decade, ~4% over two, the same at every budget sampled alike (a is unaffected).

Bootstrap (two-stage case/cluster, percentile intervals): each replicate draws the k sizes with replacement (a
size may appear twice or not at all) and, inside every drawn size, its finite seeds with replacement, and refits.
Replicates with under 3 distinct sizes are dropped (n_boot_ok counts the rest); one opening downward has no
minimum: log n_opt is +-inf (towards falling loss), loss_opt -inf, so it widens the interval. Draws are seeded
by (seed, budget): arms at one budget with the same sizes-by-seeds layout get the same size ranks and seed
labels, so their replicates are paired. Both stages carry seed noise and resampled designs lose sizes, so the
intervals are conservative (tests/analysis/test_isoflop.py: ~0.99 coverage, ~3x a known-variance width).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from analysis.configs import STANDARD
from analysis.inference import ALPHA
from analysis.stats import CONFIDENCE

COLUMNS = ("arm", "budget_flops", "n_params", "seed", "final_loss")
MIN_SIZES = 5  # sizes an identified profile needs (a parabola needs 3; 5 leave 2 df to check its shape)
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


def _fit(u: np.ndarray, means: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted least-squares (c0, c1, c2) of means = c0 + c1 u + c2 u^2 along the last axis (batched).

    Fitted in u minus its weighted mean (conditioning) and returned for u itself; needs 3 distinct u per row.
    """
    centre = (weights * u).sum(-1, keepdims=True) / weights.sum(-1, keepdims=True)
    v = u - centre
    s = [(weights * v**p).sum(-1) for p in range(5)]
    t = np.stack([(weights * v**p * means).sum(-1) for p in range(3)], -1)
    m = np.stack([np.stack(s[i : i + 3], -1) for i in range(3)], -2)
    c0, c1, c2 = np.moveaxis(np.linalg.solve(m, t[..., None])[..., 0], -1, 0)
    m0 = centre[..., 0]
    return np.stack([c0 - c1 * m0 + c2 * m0**2, c1 - 2 * c2 * m0, c2], -1)


def _vertex(coef: np.ndarray, u_mid: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(log10 n_opt, loss_opt, curvature d2L/du2) of parabolas; where one opens downward (or is a line),
    log10 n_opt is +inf or -inf by its slope at the sampled centre u_mid, and loss_opt is -inf."""
    c0, c1, c2 = np.moveaxis(coef, -1, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        up = c2 > 0
        u_opt = np.where(up, -c1 / (2 * c2), np.where(c1 + 2 * c2 * u_mid < 0, np.inf, -np.inf))
        loss = np.where(up, c0 - c1**2 / (4 * c2), -np.inf)
    bad = np.isnan(c2)
    return np.where(bad, np.nan, u_opt), np.where(bad, np.nan, loss), 2 * c2


def _arrays(group: pd.DataFrame):
    """Sizes ascending: log10 N, finite losses (k, s) in seed order (NaN padding), finite counts, seed labels,
    and the sizes' diverged counts as text."""
    u, rows, seeds, notes = [], [], [], []
    for n_params, size in group.sort_values(["n_params", "seed"]).groupby("n_params", sort=True):
        ok = size["final_loss"].notna()
        if (~ok).any():
            notes.append(f"N={n_params:.3g}: {int((~ok).sum())} of {len(size)}")
        if ok.any():
            u.append(np.log10(float(n_params)))
            rows.append(size.loc[ok, "final_loss"].to_numpy(float))
            seeds.append(tuple(int(s) for s in size.loc[ok, "seed"]))
    n = np.array([len(r) for r in rows], dtype=int)
    y = np.full((len(rows), max(n, default=0)), np.nan)
    for i, r in enumerate(rows):
        y[i, : len(r)] = r
    return np.array(u), y, n, tuple(seeds), "; ".join(notes)


def _draws(seed: int, budget: float, n_boot: int, k: int, s: int) -> tuple[np.ndarray, np.ndarray]:
    """Uniforms for the size and seed stages, a function of (seed, budget, shape) only (pairs arms)."""
    key = int(np.float64(budget).view(np.int64))
    sizes = np.random.default_rng([seed, key, 0]).random((n_boot, k))
    return sizes, np.random.default_rng([seed, key, 1]).random((n_boot, k, s))


def _bootstrap(u, y, n, sizes, seeds) -> tuple[np.ndarray, ...]:
    """(log10 n_opt, loss_opt, curvature) per replicate of the two-stage bootstrap; NaN where < 3 sizes."""
    pick = (sizes * len(u)).astype(int)  # (B, k) drawn sizes
    count = n[pick]
    draw = (seeds * count[..., None]).astype(int)  # (B, k, s) drawn seeds inside each drawn size
    taken = np.arange(y.shape[1]) < count[..., None]
    means = np.where(taken, y[pick[..., None], draw], 0.0).sum(-1) / count
    distinct = 1 + (np.diff(np.sort(pick, axis=1), axis=1) != 0).sum(1)
    ok = distinct >= 3
    coef = np.full((len(pick), 3), np.nan)
    if ok.any():
        coef[ok] = _fit(u[pick[ok]], means[ok], count[ok].astype(float))
    return _vertex(coef, float(u.mean()))


def _interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval over the non-NaN values (infinite ones included); NaN when none."""
    values = values[~np.isnan(values)]
    if not len(values):
        return np.nan, np.nan
    tail = (1 - confidence) / 2
    low, high = np.quantile(values, [tail, 1 - tail], method="inverted_cdf")
    return float(low), float(high)


def _lack_of_fit(u, y, n, coef) -> dict:
    """Residual SD about the parabola and the pure-error F test (lack-of-fit SS vs seed-to-seed SS)."""
    fitted = np.polyval(coef[::-1], u)
    means = np.nanmean(y, axis=1)
    ss_pure = float(np.nansum((y - means[:, None]) ** 2))
    ss_lack = float((n * (means - fitted) ** 2).sum())
    df_lack, df_pure = len(u) - 3, int(n.sum()) - len(u)
    out = dict(resid_sd=np.sqrt((ss_pure + ss_lack) / (n.sum() - 3)) if n.sum() > 3 else np.nan, lof_df=df_lack)
    out.update(pure_error_sd=np.sqrt(ss_pure / df_pure) if df_pure > 0 else np.nan, pure_error_df=df_pure)
    out.update(lof_f=np.nan, lof_p=np.nan)
    if df_lack > 0 and df_pure > 0 and ss_pure > 0:
        out["lof_f"] = (ss_lack / df_lack) / (ss_pure / df_pure)
        out["lof_p"] = float(stats.f.sf(out["lof_f"], df_lack, df_pure))
    return out


def _profile_reasons(row: dict, u_opt: float, b_lo: float, b_hi: float, confidence: float) -> list[str]:
    """Why a profile's optimum is not identified (empty when it is); u_opt, b_lo, b_hi: log10 n_opt, interval."""
    if row["n_sizes"] < MIN_SIZES:
        return [f"{row['n_sizes']} sizes with a finite loss (needs {MIN_SIZES})"]
    u_lo, u_hi = row["log10_n_min"], row["log10_n_max"]
    if not row["curvature"] > 0:
        return ["the parabola opens downward: no minimum"]
    reasons = []
    if not row["curvature_low"] > 0:
        reasons.append(f"flat: the curvature's {confidence:.0%} interval reaches {row['curvature_low']:.3g}")
    if not u_lo <= u_opt <= u_hi:
        reasons.append(f"edge minimum: N={row['n_opt']:.3g} lies outside the sampled {10**u_lo:.3g}-{10**u_hi:.3g}")
    if not b_hi - b_lo <= u_hi - u_lo:
        reasons.append(f"the n_opt interval spans {b_hi - b_lo:.2f} decades, wider than the {u_hi - u_lo:.2f} sampled")
    return reasons


def _profile(group: pd.DataFrame, budget: float, n_boot: int, seed: int, confidence: float) -> dict:
    u, y, n, seeds, diverged = _arrays(group)
    n_bad = int(group["final_loss"].isna().sum())
    row = dict(n_sizes=len(u), n_points=int(n.sum()), n_diverged=n_bad, diverged=diverged, seeds_per_size=seeds)
    row.update(log10_n_min=u.min() if len(u) else np.nan, log10_n_max=u.max() if len(u) else np.nan, n_boot_ok=0)
    note = f"; {n_bad} of {len(group)} runs diverged or failed ({diverged})" if n_bad else ""
    if len(u) < 3:
        return dict(row, identified=False, reason=f"not identified: {len(u)} sizes with a finite loss (needs 3)" + note)
    coef = _fit(u, np.nanmean(y, axis=1), n.astype(float))
    u_opt, loss, curvature = _vertex(coef, float(u.mean()))
    boot_u, boot_loss, boot_curv = _bootstrap(u, y, n, *_draws(seed, budget, n_boot, len(u), y.shape[1]))
    with np.errstate(over="ignore"):
        row.update(n_opt=10 ** float(u_opt), loss_opt=float(loss), curvature=float(curvature))
        row["n_opt_low"], row["n_opt_high"] = 10.0 ** np.array(_interval(boot_u, confidence))
    row["parabola"] = tuple(float(c) for c in coef)
    for name, values in (("loss_opt", boot_loss), ("curvature", boot_curv)):
        row[f"{name}_low"], row[f"{name}_high"] = _interval(values, confidence)
    row.update(_lack_of_fit(u, y, n, coef), n_boot_ok=int((~np.isnan(boot_u)).sum()))
    reasons = _profile_reasons(row, float(u_opt), *_interval(boot_u, confidence), confidence)
    note += f"; lack of fit (p={row['lof_p']:.2g}): the shape is not a parabola" if row["lof_p"] < ALPHA else ""
    reason = "not identified: " + "; ".join(reasons) if reasons else "identified"
    return dict(row, identified=not reasons, reason=reason + note, boot_log10_n_opt=boot_u, boot_loss_opt=boot_loss)


PROFILE_COLUMNS = ["arm", "budget_flops", "identified", "reason", "n_sizes", "n_points", "n_diverged", "diverged"]
PROFILE_COLUMNS += [f"{v}{s}" for v in ("n_opt", "loss_opt", "curvature") for s in ("", "_low", "_high")]
PROFILE_COLUMNS += ["log10_n_min", "log10_n_max", "resid_sd", "pure_error_sd", "lof_f", "lof_df", "pure_error_df"]
PROFILE_COLUMNS += ["lof_p", "n_boot_ok", "parabola", "seeds_per_size", "boot_log10_n_opt", "boot_loss_opt"]


def isoflop_profiles(frame: pd.DataFrame, n_boot: int = N_BOOT, seed: int = 0, confidence=CONFIDENCE) -> pd.DataFrame:
    """One row per (arm, budget_flops): the parabola in log10 N, its optimum and whether it is identified.

    n_opt / loss_opt: the parabola's minimum and its value, with bootstrap intervals (module docstring);
    curvature: d2L/d(log10 N)^2 in nats per decade^2; parabola: (c0, c1, c2) of L = c0 + c1 u + c2 u^2,
    u = log10 N; resid_sd: seed points about the parabola; pure_error_sd and lof_f / lof_p: the pure-error F test
    of the parabola's shape (lack-of-fit on lof_df, pure error on pure_error_df degrees of freedom; NaN without
    replicate seeds or with fewer than 4 sizes); n_diverged / diverged: NaN losses, in total and per size.
    identified is False (reason says why) with fewer than MIN_SIZES sizes, a parabola opening downward or
    flat (curvature interval reaching 0), a minimum outside the sampled sizes, or an n_opt interval wider than
    them. boot_log10_n_opt / boot_loss_opt hold the replicates for frontier_fits and frontier_difference.
    """
    _check(frame)
    rows = []
    for (arm, budget), group in frame.groupby(["arm", "budget_flops"], sort=True):
        rows.append(dict(arm=arm, budget_flops=float(budget), **_profile(group, budget, n_boot, seed, confidence)))
    return pd.DataFrame(rows).reindex(columns=PROFILE_COLUMNS)


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
