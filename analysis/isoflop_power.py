"""Power of the isoFLOP rule on synthetic ladders: how often a profile is identified, how far approach 2's
minimum lies from the truth, and how often its interval covers it, against curvature, seed noise and where the
optimum sits on the ladder (pure numpy; benchmarks/isoflop_power.py prints the table docs/analysis.md shows).

A ladder is `n_sizes` sizes evenly spaced in log10 N over `decades`, `seeds` runs per size with independent
Gaussian noise of SD `seed_sd` (nats). The true profile has curvature `curvature` (d2L/d(log10 N)^2, nats per
decade^2) at its optimum, which lies at `position` along the ladder (0.5: centred, 0.25: a quarter of the way
up, 0: at the smallest size). Shapes: "parabola" (approach 2's own model: unbiased wherever the ladder lies) and
"chinchilla": L = E + A N^-alpha + B' N^beta, the profile of L = E + A N^-alpha + B D^-beta at D = C / 6N,
alpha = 0.34 and beta = 0.28 (Hoffmann et al. 2022), scaled to the same curvature at its optimum; it rises
faster towards small N, so a parabola through a ladder off its centre moves its minimum.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.isoflop_fit import Runs, fit_profile

ALPHA_N, BETA_D = 0.34, 0.28  # Chinchilla's exponents (Hoffmann et al. 2022, approach 3)
POSITIONS = {"centre": 0.5, "quarter": 0.25, "edge": 0.0}  # the optimum's place along the ladder, small end = 0
SHAPES = ("parabola", "chinchilla")


def profile_loss(u: np.ndarray, curvature: float, shape: str) -> np.ndarray:
    """True loss minus its minimum at u = log10 N - log10 N_opt, with `curvature` nats/decade^2 at u = 0."""
    if shape == "parabola":
        return curvature / 2 * u**2
    if shape == "chinchilla":
        # at the optimum alpha A N^-alpha = beta B' N^beta = K, and the curvature is K (alpha + beta) ln(10)^2
        k = curvature / ((ALPHA_N + BETA_D) * np.log(10) ** 2)
        loss = k / ALPHA_N * 10 ** (-ALPHA_N * u) + k / BETA_D * 10 ** (BETA_D * u)
        return loss - k / ALPHA_N - k / BETA_D
    raise ValueError(f"shape must be one of {SHAPES} (got {shape!r})")


def _ladder(position: float, n_sizes: int, decades: float) -> np.ndarray:
    """log10 N - log10 N_opt of the ladder's sizes."""
    if not 0 <= position <= 1:
        raise ValueError(f"position must lie in [0, 1] along the ladder (got {position})")
    return np.linspace(0.0, decades, n_sizes) - position * decades


def bias_decades(curvature: float, position: float, shape: str, n_sizes: int = 5, decades: float = 1.0) -> float:
    """Approach 2's minimum minus the true one (decades of N) without noise: the parabola's bias on this ladder."""
    u = _ladder(position, n_sizes, decades)
    c2, c1, _ = np.polyfit(u, profile_loss(u, curvature, shape), 2)
    return float(-c1 / (2 * c2)) if c2 > 0 else np.nan


def power_cell(
    curvature: float, seed_sd: float, position: float, shape: str = "chinchilla", n_draws: int = 300,
    seed: int = 0, n_sizes: int = 5, seeds: int = 3, decades: float = 1.0,
) -> dict:  # fmt: skip
    """One cell: n_draws noisy ladders through analysis.isoflop_fit (the report's rule, without replicates).

    identified: the share identified; covered: of those, the share whose n_opt interval holds the truth;
    bias_decades: the noiseless parabola's minimum minus the truth; median_error_decades: the median of the
    identified draws' minimum minus the truth; t: the curvature's analytic t with known noise (its mean).
    """
    rng = np.random.default_rng([seed, int(1e6 * curvature), int(1e6 * seed_sd), int(1e6 * position)])
    u = _ladder(position, n_sizes, decades)
    clean = np.repeat(profile_loss(u, curvature, shape), seeds)
    size, seed_of = np.repeat(np.arange(n_sizes), seeds), np.tile(np.arange(seeds), n_sizes)
    identified, covered, errors = 0, 0, []
    for _ in range(n_draws):
        fit = fit_profile(Runs(u, size, seed_of, 2.0 + clean + seed_sd * rng.standard_normal(len(clean))))
        if fit["_reasons"]:
            continue
        identified += 1
        covered += bool(fit["n_opt_low"] <= 1.0 <= fit["n_opt_high"])  # the truth is u = 0: N / N_opt = 1
        errors.append(np.log10(fit["n_opt"]))
    v = u - u.mean()
    se_c2 = seed_sd / np.sqrt(seeds) / np.sqrt(((v**2 - (v**2).mean()) ** 2).sum())
    return dict(
        shape=shape, position=position, curvature=curvature, seed_sd=seed_sd, t=curvature / 2 / se_c2,
        n_draws=n_draws, identified=identified / n_draws, covered=covered / identified if identified else np.nan,
        bias_decades=bias_decades(curvature, position, shape, n_sizes, decades),
        median_error_decades=float(np.median(errors)) if errors else np.nan,
    )  # fmt: skip


def power_table(
    curvatures=(0.1, 0.3, 0.6, 1.2), seed_sds=(0.01, 0.02, 0.04), positions=(0.5, 0.25, 0.0),
    shape: str = "chinchilla", n_draws: int = 300, seed: int = 0, **ladder,
) -> pd.DataFrame:  # fmt: skip
    """power_cell over every (position, curvature, seed_sd), one row each."""
    rows = [
        power_cell(c, sd, p, shape, n_draws, seed, **ladder) for p in positions for c in curvatures for sd in seed_sds
    ]
    return pd.DataFrame(rows)
