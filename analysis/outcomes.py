"""What became of a seed: one rule for lost seeds in every table (pure).

A test seed is *lost* when its run diverged or failed: the run delivered no model at its end. Wherever seeds are
ranked or timed, a lost seed is the worst outcome, whatever it showed before it was lost (MLPerf counts a run
that never converges against the result): its final loss ranks as +inf (the verdicts' paired sign-flip test)
and its time to a target is +inf, "never reached", inside the censored median over seeds (a median that is inf is "not
reached"). An *unfinished* seed (stopped by a scheduler, still running or pending) has no final outcome: it is
counted, never ranked, and a curve uses what it observed. A comparison in which any side lost a seed is flagged
in words that say which arm lost which seeds ("worker k=4 unstable: 2 diverged of 5"), and draws no better or
worse from the survivors: the verdicts, the interactions, the projected verdicts and the axes table say so,
and the Pareto fronts leave the configuration out.
Final-loss comparisons (verdicts, interactions) flag an unfinished seed too ("incomplete"): its final loss is
not there to compare.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

LOST = ("diverged", "failed")  # the run gave no model at its end: the worst outcome
UNFINISHED = ("stopped", "running", "pending")  # no final outcome yet, or ended early by a scheduler
KINDS = ("diverged", "failed", "unfinished")  # what outcome_counts counts besides the seeds


def is_lost(status) -> np.ndarray:
    """Per trial status: whether the seed is lost (LOST)."""
    return pd.Series(status, dtype=object).isin(LOST).to_numpy(bool)


def lost_as_never(times, status) -> np.ndarray:
    """Times to a target with every lost seed's time set to +inf (never reached, whatever it reached before)."""
    return np.where(is_lost(status), np.inf, np.asarray(times, float))


def outcome_counts(status) -> dict[str, int]:
    """{"seeds", "diverged", "failed", "unfinished"}: one arm's test seeds by outcome."""
    status = pd.Series(status, dtype=object)
    counts = {"seeds": len(status), "diverged": int(status.eq("diverged").sum())}
    counts.update(failed=int(status.eq("failed").sum()), unfinished=int(status.isin(UNFINISHED).sum()))
    return counts


def outcome_words(name: str, counts, unfinished: bool = True) -> str:
    """'worker k=4 unstable: 2 diverged of 5', 'standard incomplete: 1 not finished of 5', or '' when the arm lost
    no seed (`counts` as outcome_counts gives them; unfinished=False leaves unfinished seeds unflagged)."""
    kinds = KINDS if unfinished else LOST
    lost = {k: int(counts[k]) for k in kinds if counts[k]}
    if not lost:
        return ""
    what = ", ".join(f"{n} {k}" if k != "unfinished" else f"{n} not finished" for k, n in lost.items())
    return f"{name} {'unstable' if set(lost) - {'unfinished'} else 'incomplete'}: {what} of {counts['seeds']}"


def flag_words(sides, unfinished: bool = True) -> str:
    """The outcome_words of every (name, counts) side that lost seeds, joined by '; ' ('' when none did)."""
    return "; ".join(w for w in (outcome_words(n, c, unfinished) for n, c in sides) if w)


def configs_with_lost_seeds(final: pd.DataFrame) -> set:
    """The configurations (config_id) with a lost test seed: a front, like a verdict, draws nothing from their
    survivors (stats.final_values' frame: seed_role, status, config_id)."""
    test = final[final["seed_role"].eq("test")] if "seed_role" in final.columns else final
    return set(test.loc[is_lost(test["status"]), "config_id"].dropna())
