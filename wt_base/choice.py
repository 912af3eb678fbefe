"""The chosen-setting rule: which tuned setting an arm is judged at, from the final results of the seeds that
choose (pure, stdlib only). The search that runs the test seeds at the chosen setting (study.tune.search_state)
and the analysis that reports it (analysis.tuning) both call it, so the setting the test seeds ran at is always
the one the report calls chosen.

A seed's result is *eligible* when its trial completed with a finite final loss. A setting is eligible when every
one of its choosing seeds is; its value is then the mean of their final losses (a diverged, failed, stopped or
unfinished seed makes the whole setting ineligible: a setting is never judged on its lucky seeds). The chosen
setting is the eligible one with the lowest mean, ties going to the smaller key; none when no setting is
eligible.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping


def eligible(status: object, final: object) -> bool:
    """True for a seed whose trial completed with a finite final loss."""
    if status != "completed" or final is None:
        return False
    try:
        return math.isfinite(float(final))
    except (TypeError, ValueError):
        return False


def setting_mean(results: Iterable[tuple[object, object]]) -> float | None:
    """The mean final loss of a setting's choosing seeds, from their (status, final loss) pairs; None when it has
    none or any of them is not eligible."""
    results = list(results)
    if not results or not all(eligible(status, final) for status, final in results):
        return None
    return math.fsum(float(final) for _, final in results) / len(results)


def choose(means: Mapping) -> object | None:
    """The key of the chosen setting: the lowest mean among the eligible ones (`means`: key -> setting_mean, None
    where not eligible), ties to the smaller key; None when none is eligible."""
    ranked = {key: mean for key, mean in means.items() if mean is not None and math.isfinite(mean)}
    if not ranked:
        return None
    return min(ranked, key=lambda key: (ranked[key], key))
