"""The ladder rule: which size of a scaling ladder an isoFLOP profile (an arm at one budget) runs next, from the
sizes it has run (pure; read by the search that runs it, study.tune.search_state, and by the words that report it).

A ladder is a list of sizes, its *rungs*, smallest first (search.ladder.rungs). A profile starts with the rungs
its spec gives it (the spec's `sizes` for that arm and budget); each size's tuned setting is searched on its own
(its own lr bracket, say). Once every size tried has been decided, a size's value is the mean final loss over
the tune seeds at its chosen setting (wt_base.choice), or none when no setting of it was eligible (it counts as
worse than any eligible size). The *minimum* is the size with the lowest value (ties to the smaller). While it
has fewer than `margin` tried sizes below it, or above it (margin 1: the minimum is the smallest or the largest
size tried), the next rung beyond the sizes tried on that side is added (the side with fewer first, below on a
tie; a side whose next rung is past the ladder's end gives way to the other). The profile ends once the minimum
is *interior* (`margin` tried sizes on each side), at the ladder's end on every side it needs (`bound`), at
`max_sizes` (`cap`), or when no size has an eligible setting, and says which (wt_base.bracket.STOPS).
The same results always give the same step, so a resumed study that is told the same results adds the same sizes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

STOP_WORDS = {  # why a profile stopped adding sizes (wt_base.bracket.STOPS), as a summary says it
    "interior": "the minimum is interior",
    "bound": "stopped at the ladder's end, the minimum at the edge",
    "cap": "stopped at max_sizes, the minimum at the edge",
    "no eligible point": "no size has an eligible setting",
}


@dataclass(frozen=True)
class LadderStep:
    """What the profile does next: `rungs` (ladder indices) to add, or (no rungs) the reason it `stop`ped."""

    rungs: tuple = ()  # the next rung indices to run (empty when stopped, or while sizes are still searched)
    stop: str | None = None  # one of STOPS once the profile has ended


def next_rungs(told: dict, pending: set, start: tuple, n_rungs: int, max_sizes: int, margin: int = 1) -> LadderStep:
    """The profile's next step. `told` maps each rung whose search is decided to its value (None where it had
    no eligible setting); `pending` holds the rungs still searched; `start` the rungs it starts with;
    `n_rungs` the ladder's length; `max_sizes` caps the sizes (0: none but the ladder's ends). No rungs and no
    stop: wait for the pending sizes."""
    tried = set(told) | set(pending)
    missing = tuple(r for r in sorted(start) if r not in tried)
    if missing:
        return LadderStep(rungs=missing)
    if pending:
        return LadderStep()
    eligible = {r: v for r, v in told.items() if v is not None and math.isfinite(v)}
    if not eligible:
        return LadderStep(stop="no eligible point")
    best = min(eligible, key=lambda r: (eligible[r], r))
    below, above = sum(r < best for r in tried), sum(r > best for r in tried)
    if below >= margin and above >= margin:
        return LadderStep(stop="interior")
    sides = sorted((count, side) for side, count in ((0, below), (1, above)) if count < margin)
    for _, side in sides:
        beyond = min(tried) - 1 if side == 0 else max(tried) + 1
        if 0 <= beyond < n_rungs:
            if max_sizes and len(tried) >= max_sizes:
                return LadderStep(stop="cap")
            return LadderStep(rungs=(beyond,))
    return LadderStep(stop="bound")


def reach(start: tuple, n_rungs: int, max_sizes: int) -> tuple[tuple, int]:
    """(every rung a profile starting at `start` may run, the most sizes it may add): the rule only adds the rung
    next to those tried, so it stays within max_sizes - len(start) rungs of its start on either side."""
    extra = (max_sizes or n_rungs) - len(start)
    low, high = max(0, min(start) - extra), min(n_rungs - 1, max(start) + extra)
    outside = [r for r in range(low, high + 1) if r < min(start) or r > max(start)]
    return tuple(sorted({*start, *outside})), max(0, min(extra, len(outside)))
