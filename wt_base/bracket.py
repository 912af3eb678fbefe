"""The bracketing rule: where a log-scale walk over one numeric setting goes next, from the results so far
(pure; read by the search that runs it, study.tune.searcher, and by the words that report it).

A unit (an arm in a cell) first runs its start points. While the best point (the lowest mean final loss over
the tune seeds, among the points whose every tune seed completed) is the smallest or the largest value tried,
the next point lies one `factor` beyond that edge (a single start point is at both edges: the walk tries below
it first). Once the best has a tried point on each side (any tried
point is worse than the best by definition: a higher mean, or no eligible result at all, e.g. a diverged seed),
the best is *interior*; with `refine`, one point halfway (geometrically) between the best and each neighbour is
run before it stops (the test seeds then run at the best of all the points). The walk also stops at a bound
(the next point would pass `low` or `high`), at the cap on points, or when no point tried so far is eligible.
The same results always give the same step, so a resumed search that is told the same results walks the same
points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

STOPS = ("interior", "bound", "cap", "no eligible point")  # why a walk ended (BracketStep.stop)
DIGITS = 6  # significant digits a point is rounded to, so a point made twice has one key


@dataclass(frozen=True)
class BracketStep:
    """What the walk does next: `points` to run, or (no points) the reason it `stop`ped."""

    points: tuple = ()  # the next values to run (empty when stopped, or when nothing is to run yet)
    stop: str | None = None  # one of STOPS once the walk has ended


def rounded(value: float) -> float:
    """A point as the walk keeps it: `DIGITS` significant digits."""
    return float(f"{value:.{DIGITS}g}")


def start_factor(start: tuple) -> float:
    """The ratio between neighbouring points a start implies: its geometric spacing (2 for a single point)."""
    if len(start) < 2:
        return 2.0
    ordered = sorted(start)
    return rounded((ordered[-1] / ordered[0]) ** (1 / (len(ordered) - 1)))


def next_step(
    told: dict,
    pending: set,
    start: tuple,
    factor: float,
    low: float,
    high: float,
    max_points: int,
    refine: bool,
) -> BracketStep:
    """The walk's next step. `told` maps each point whose tune seeds have all ended to its mean final loss, or
    None where it is not eligible; `pending` holds the points still running; `low`/`high` bound the values it may
    try (0: no bound); `max_points` caps the points, start and refinements included. No points and no stop:
    wait for the pending results.

    The walk is replayed from the start on every call (each whole step is a function of the points before it),
    so a point already run is never proposed again and a search resumed with the same results takes the same
    steps, however its trials were interleaved when it was stopped."""
    tried = set(told) | set(pending)
    whole = [rounded(v) for v in start]  # the start and the steps beyond an edge: refinements are not among them
    missing = tuple(v for v in whole if v not in tried)
    if missing:
        return BracketStep(points=missing)
    while True:
        if any(v in pending for v in whole):
            return BracketStep()
        eligible = {v: told[v] for v in whole if told[v] is not None and math.isfinite(told[v])}
        if not eligible:
            return BracketStep(stop="no eligible point")
        best = min(eligible, key=lambda v: (eligible[v], v))
        lowest, highest = min(whole), max(whole)
        if best not in (lowest, highest):
            break
        beyond = rounded(best / factor if best == lowest else best * factor)
        if (low and beyond < low) or (high and beyond > high):
            return BracketStep(stop="bound")
        if beyond not in tried:
            return BracketStep(points=(beyond,)) if len(tried) < max_points else BracketStep(stop="cap")
        whole.append(beyond)
    if refine:
        ordered = sorted(whole)
        i = ordered.index(best)
        halves = [rounded(math.sqrt(best * ordered[j])) for j in (i - 1, i + 1)]
        todo = tuple(h for h in halves if h not in tried)[: max(0, max_points - len(tried))]
        if todo:
            return BracketStep(points=todo)
    return BracketStep(stop="interior")


def edge_of(values: list, chosen: float) -> str:
    """'interior', 'bottom' or 'top': where the chosen value lies among the values tried (one value: 'only')."""
    ordered = sorted(set(values))
    if len(ordered) < 2:
        return "only"
    if chosen == ordered[0]:
        return "bottom"
    if chosen == ordered[-1]:
        return "top"
    return "interior"
