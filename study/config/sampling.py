"""Sampled settings: the distributions a spec draws from, for a grid's random draws made up front (`sample:`) and
for a search that draws as the study runs (`search:`), and the bracket a bracketing search walks, each validated
in `__post_init__`.

A search (`search.algorithm` random, tpe or bracket) tunes settings *within* an arm and cell: every grid point
of the spec (architecture label and worker interval, crossed with the cell axes) gets its own search (the same
number of samples, or the same bracket), run on the tune seeds only, and then the test seeds at the setting
chosen there (study.tune.search_state). So a search may only sample the tuned settings the analysis chooses per
arm (`SEARCHABLE`); the arm and cell fields stay on the grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from wt_base import bracket
from wt_base.errors import StudyError, is_int, require
from wt_base.fields import AXES, TUNED
from wt_model import archs
from wt_model.config import INITS

ARCH_LABELS = tuple(archs.LABELS)  # the values of the arch axis (wt_model.archs); the axes: wt_base.fields.AXES
DISTRIBUTIONS = ("uniform", "loguniform", "choice")
SEARCH_ALGORITHMS = ("grid", "random", "tpe", "bracket")  # grid: every trial known up front (axes x draws x seeds)
SEARCHABLE = TUNED  # the settings a search may sample: those each arm chooses for itself (wt_base.fields)
METRICS = ("val_loss", "val_loss_seed")  # what ASHA and a search may minimise
# A bracket never walks a setting to or past the value where its field stops being valid (warmup_frac and
# dropout must stay below 1): its highest point is this, whatever the spec's own `high`.
BRACKET_CEILING = {"warmup_frac": 0.9, "dropout": 0.9}
EXTRA_POINTS = 4  # a bracket's default cap: its start points and this many more (and 2 more with refine)


@dataclass(frozen=True)
class Distribution:
    """One sampled axis: `uniform`/`loguniform` between low and high, or `choice` among values.
    Validated by the `SampleSpec` or `SearchSpec` holding it, which knows the axis (and so the type of its values)."""

    distribution: str = "loguniform"  # "uniform", "loguniform" or "choice"
    low: float = 0.0  # uniform/loguniform: lower bound (loguniform: > 0)
    high: float = 0.0  # uniform/loguniform: upper bound, above low
    values: tuple = ()  # choice: the values to choose from

    def to_dict(self) -> dict:
        if self.distribution == "choice":
            return {"distribution": "choice", "values": list(self.values)}
        return {"distribution": self.distribution, "low": self.low, "high": self.high}

    def describe(self) -> str:
        """'loguniform(0.0001, 0.01)' or 'choice(constant, cosine)', as the dry run says it."""
        if self.distribution == "choice":
            return f"choice({', '.join(map(str, self.values))})"
        return f"{self.distribution}({self.low:g}, {self.high:g})"


@dataclass(frozen=True)
class Bracket:
    """search.algorithm bracket: one numeric setting walked on a log scale (wt_base.bracket): the start points
    first, then one point beyond whichever edge holds the best mean, until the best is interior, a bound or the
    cap is reached. Validated by the `SearchSpec` holding it, which knows the axis."""

    start: tuple = ()  # the first points, run together (each > 0, distinct)
    factor: float = 0.0  # ratio between neighbouring points; 0: the start's own spacing (2 for one point)
    low: float = 0.0  # the smallest value the walk may try; 0: no bound
    high: float = 0.0  # the largest value the walk may try; 0: no bound (but BRACKET_CEILING)
    max_points: int = 0  # the most points per unit, start and refinements included; 0: start + EXTRA_POINTS
    refine: bool = False  # once interior: one point halfway (geometrically) to each neighbour of the best

    @property
    def step(self) -> float:
        """The factor between neighbouring points."""
        return self.factor or bracket.start_factor(self.start)

    @property
    def cap(self) -> int:
        """The most points a unit runs."""
        return self.max_points or len(self.start) + EXTRA_POINTS + (2 if self.refine else 0)

    def to_dict(self) -> dict:
        out = {"start": list(self.start), "factor": self.factor, "low": self.low, "high": self.high}
        return {**out, "max_points": self.max_points, "refine": self.refine}

    def describe(self) -> str:
        """'bracket from 0.001, 0.002, 0.004 by x2 (at most 7 points)', as the dry run says it."""
        bounds = [f"{side} {v:g}" for side, v in (("low", self.low), ("high", self.high)) if v]
        extra = (", " + ", ".join(bounds) if bounds else "") + (", refined" if self.refine else "")
        start = ", ".join(f"{v:g}" for v in self.start)
        return f"bracket from {start} by x{self.step:g} (at most {self.cap} points{extra})"

    def check(self, name: str) -> None:
        path = f"search.{name}"
        if AXES[name].kind is not float:
            raise StudyError(f"{path} is a text setting: a bracket walks a number; search it with tpe or random.")
        start = self.start if isinstance(self.start, (list, tuple)) else (self.start,)
        if not start or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in start):
            raise StudyError(
                f"{path}.start={self.start!r} is invalid: expected a list of numbers such as [1e-3, 2e-3]."
            )
        if any(not (v > 0 and math.isfinite(v)) for v in start):
            raise StudyError(f"{path}.start={list(start)!r} is invalid: a log-scale walk needs numbers > 0.")
        if len({bracket.rounded(v) for v in start}) != len(start):
            raise StudyError(f"{path}.start={list(start)!r} repeats a value: list each value once.")
        require(self.factor == 0 or self.factor > 1, f"{path}.factor", self.factor, "a number > 1 (0: the start's)")
        require(self.step > 1, f"{path}.start", list(start), "points that differ (or a single point)")
        require(self.low >= 0, f"{path}.low", self.low, "a number >= 0 (0: no bound)")
        require(self.high >= 0, f"{path}.high", self.high, "a number >= 0 (0: no bound)")
        ceiling = BRACKET_CEILING.get(name)
        if ceiling is not None and self.high > ceiling:
            raise StudyError(f"{path}.high={self.high!r} is invalid: {name} must stay below 1; expected <= {ceiling}.")
        top = self.highest_allowed(name)
        if (self.low and min(start) < self.low) or (top and max(start) > top):
            raise StudyError(
                f"{path}.start={list(start)!r} lies outside its bounds (low {self.low:g}, high {top:g}; 0: none): "
                "expected start points within them."
            )
        require(
            is_int(self.max_points) and (self.max_points == 0 or self.max_points >= len(start)),
            f"{path}.max_points",
            self.max_points,
            f"0 (start + {EXTRA_POINTS}) or an integer >= the {len(start)} start points",
        )
        require(isinstance(self.refine, bool), f"{path}.refine", self.refine, "true or false")

    def highest_allowed(self, name: str) -> float:
        """The walk's upper bound for axis `name`: the spec's `high`, and never past BRACKET_CEILING (0: none)."""
        ceiling = BRACKET_CEILING.get(name, 0.0)
        return min(v for v in (self.high, ceiling) if v) if (self.high or ceiling) else 0.0


@dataclass(frozen=True)
class Ladder:
    """search.ladder: the sizes an isoFLOP profile (an arm at one budget) may climb to (wt_base.ladder). The
    spec's `sizes` are where each profile starts (each one a rung); while its minimum over sizes (the tune seeds'
    mean at each size's chosen setting) has fewer than `margin` sizes tried on a side, the next rung beyond runs,
    each with its own search. Checked against the spec's sizes by study.config.search_space.check_ladder."""

    rungs: tuple = ()  # the sizes, smallest first: mappings of the same axes (n_embd, n_layer, n_head, ...)
    max_sizes: int = 0  # the most sizes a profile runs, its start included; 0: no cap but the ladder's ends
    margin: int = 1  # sizes tried on each side of the minimum before it counts as interior

    @property
    def keys(self) -> tuple:
        """The axes a rung sets."""
        return tuple(self.rungs[0]) if self.rungs else ()

    def index_of(self, point: dict) -> int | None:
        """The rung `point` (axis -> value) stands on, or None."""
        part = {name: point.get(name) for name in self.keys}
        return next((i for i, rung in enumerate(self.rungs) if rung == part), None)

    def to_dict(self) -> dict:
        return {"rungs": [dict(r) for r in self.rungs], "max_sizes": self.max_sizes, "margin": self.margin}

    def __post_init__(self) -> None:
        path = "search.ladder"
        example = "[{n_embd: 32, n_layer: 1, n_head: 2}, {n_embd: 48, n_layer: 1, n_head: 2}]"
        if not isinstance(self.rungs, tuple) or len(self.rungs) < 2:
            raise StudyError(f"{path}.rungs={self.rungs!r} is invalid: expected 2 or more sizes such as {example}.")
        for i, rung in enumerate(self.rungs):
            where = f"{path}.rungs[{i}]"
            if not isinstance(rung, dict) or not rung:
                raise StudyError(f"{where}={rung!r} is invalid: expected a mapping such as {{n_embd: 32, n_layer: 1}}.")
            for name, value in rung.items():
                if name not in AXES or name in ("arch", "budget_value") or name in SEARCHABLE:
                    allowed = [n for n in AXES if n not in ("arch", "budget_value") and n not in SEARCHABLE]
                    raise StudyError(
                        f"{where}.{name} is not an axis a rung can set: expected one of {', '.join(allowed)} "
                        "(the arm and the budget define the profile; tuned settings are searched per size)."
                    )
                check_axis_value(name, value, f"{where}.{name}")
            if set(rung) != set(self.rungs[0]):
                raise StudyError(
                    f"{where} sets {', '.join(sorted(rung))}; rungs[0] sets {', '.join(sorted(self.rungs[0]))}: "
                    "give every rung the same keys."
                )
        if len({tuple(sorted(r.items())) for r in self.rungs}) != len(self.rungs):
            raise StudyError(f"{path}.rungs repeats a size: list each size once.")
        require(is_int(self.max_sizes) and self.max_sizes >= 0, f"{path}.max_sizes", self.max_sizes, "an integer >= 0")
        require(is_int(self.margin) and self.margin >= 1, f"{path}.margin", self.margin, "an integer >= 1")


@dataclass(frozen=True)
class SampleSpec:
    """Random-search axes, drawn `num_samples` times from a generator seeded by `seed` (stable trial ids)."""

    num_samples: int = 0  # random draws of the sampled axes (each combined with every grid point)
    seed: int = 0  # seeds the draws, so the same spec always gives the same trials
    axes: dict = field(default_factory=dict)  # axis name -> Distribution

    def __post_init__(self) -> None:
        require(
            is_int(self.num_samples) and self.num_samples >= 0,
            "sample.num_samples",
            self.num_samples,
            "an integer >= 0",
        )
        require(is_int(self.seed), "sample.seed", self.seed, "an integer")
        for name, dist in self.axes.items():
            if name not in AXES:
                raise StudyError(
                    f"sample.{name} is not a known axis: expected num_samples, seed or one of {', '.join(AXES)}."
                )
            check_distribution("sample", name, dist)
        if self.axes and self.num_samples == 0:
            raise StudyError("sample.num_samples=0 is invalid with sampled axes: expected an integer >= 1.")


@dataclass(frozen=True)
class SearchSpec:
    """How the tuned settings are found. `grid` (the default) runs the trials the axes and `sample:` give, all
    known up front. `random` and `tpe` search each arm and cell on its own, as the study runs: `samples` settings
    drawn from the axes given here (random: the same draws for every arm; tpe: Optuna's TPE through Ray Tune's
    OptunaSearch, proposing from the results so far), each run on every tune seed, then the test seeds at the
    arm's chosen setting (the lowest mean final `metric` over the tune seeds, as the analysis chooses). `bracket`
    walks one setting (a `Bracket`) per arm and cell until its best is interior (wt_base.bracket), then the same."""

    algorithm: str = "grid"  # "grid", "random", "tpe" or "bracket"
    samples: int = 0  # random/tpe: settings tried per arm and cell (each on every tune seed); the same for all
    seed: int = 0  # seeds the draws (random) or the sampler (tpe)
    metric: str = "val_loss"  # the final metric whose mean over the tune seeds ranks the settings
    startup_samples: int = 0  # tpe: random settings before TPE proposes; 0: half the samples, rounded up
    axes: dict = field(default_factory=dict)  # axis name -> Distribution (a Bracket with bracket; SEARCHABLE only)
    ladder: Ladder | None = None  # a scaling ladder each arm and budget climbs until its minimum is interior

    def __post_init__(self) -> None:
        require(
            self.algorithm in SEARCH_ALGORITHMS,
            "search.algorithm",
            self.algorithm,
            f"one of {', '.join(SEARCH_ALGORITHMS)}",
        )
        require(is_int(self.seed), "search.seed", self.seed, "an integer")
        require(self.metric in METRICS, "search.metric", self.metric, " or ".join(METRICS))
        require(
            is_int(self.startup_samples) and self.startup_samples >= 0,
            "search.startup_samples",
            self.startup_samples,
            "an integer >= 0 (0: half the samples)",
        )
        if self.algorithm == "grid":
            self._check_grid()
            return
        if self.ladder is not None and not isinstance(self.ladder, Ladder):
            raise StudyError("search.ladder must be a mapping such as {rungs: [...], max_sizes: 7}.")
        if self.algorithm == "bracket":
            self._check_bracket()
            return
        require(
            is_int(self.samples) and self.samples >= 1,
            "search.samples",
            self.samples,
            f"an integer >= 1 with algorithm {self.algorithm} (settings tried per arm)",
        )
        if not self.axes:
            raise StudyError(
                f"search with algorithm {self.algorithm} has no sampled axis: give one or more of "
                f"{', '.join(SEARCHABLE)}, such as lr: {{distribution: loguniform, low: 1.0e-4, high: 1.0e-2}}."
            )
        for name, dist in self.axes.items():
            self._check_searchable(name)
            check_distribution("search", name, dist)
            if dist.distribution == "choice" and len(set(dist.values)) != len(dist.values):
                raise StudyError(f"search.{name}.values={list(dist.values)!r} repeats a value: list each value once.")
        distinct = self.distinct_settings()
        if distinct is not None and self.samples > distinct:
            raise StudyError(
                f"search.samples={self.samples} is invalid: the choices given have only {distinct} distinct "
                f"settings: expected at most {distinct}."
            )
        if self.algorithm == "tpe" and self.startup_samples > self.samples:
            raise StudyError(
                f"search.startup_samples={self.startup_samples} is invalid with samples={self.samples}: expected "
                "at most the samples (or 0 for half of them)."
            )

    def _check_searchable(self, name: str) -> None:
        if name not in AXES:
            keys = f"algorithm, samples, seed, metric, startup_samples, ladder or one of {', '.join(SEARCHABLE)}"
            raise StudyError(f"search.{name} is not a known key: expected {keys}.")
        if name not in SEARCHABLE:
            raise StudyError(
                f"search.{name} is a grid-only field: a search tunes settings within an arm and cell "
                f"({', '.join(SEARCHABLE)}); put {name} under axes."
            )

    def _check_bracket(self) -> None:
        """One setting, walked by its Bracket; the points are the rule's, so samples and startup are not taken."""
        for key, value in (("samples", self.samples), ("startup_samples", self.startup_samples)):
            if value:
                raise StudyError(
                    f"search.{key}={value} is invalid with algorithm bracket: its points follow from the results; "
                    "cap them with max_points under the bracketed setting (e.g. search.lr.max_points)."
                )
        if len(self.axes) != 1:
            given = ", ".join(self.axes) or "none"
            numeric = ", ".join(n for n in SEARCHABLE if AXES[n].kind is float)
            raise StudyError(
                f"search with algorithm bracket walks one setting at a time, got {given}: give exactly one of "
                f"{numeric}, such as lr: {{start: [1.0e-3, 2.0e-3, 4.0e-3]}}."
            )
        name, walk = next(iter(self.axes.items()))
        self._check_searchable(name)
        if not isinstance(walk, Bracket):
            raise StudyError(f"search.{name} must be a mapping such as {{start: [1.0e-3, 2.0e-3, 4.0e-3]}}.")
        walk.check(name)

    @property
    def bracket(self) -> tuple[str, Bracket] | None:
        """(axis, its Bracket) for a bracket search; None otherwise."""
        return next(iter(self.axes.items())) if self.algorithm == "bracket" else None

    def _check_grid(self) -> None:
        if self.samples:
            raise StudyError(
                f"search.samples={self.samples} is invalid with algorithm grid: a grid's random draws are "
                "sample.num_samples; expected algorithm random or tpe for a search."
            )
        if self.axes:
            name = next(iter(self.axes))
            raise StudyError(
                f"search.{name} is invalid with algorithm grid: a grid's sampled axes go under sample:; "
                "expected algorithm random, tpe or bracket for a search."
            )
        if self.ladder is not None:
            raise StudyError(
                "search.ladder is invalid with algorithm grid: a ladder adds sizes as the study runs; expected "
                "algorithm random, tpe or bracket (a grid's sizes are all under sizes:)."
            )

    @property
    def is_search(self) -> bool:
        """True for random, tpe and bracket: trials are created as the study runs, not known up front."""
        return self.algorithm != "grid"

    @property
    def tpe_startup(self) -> int:
        """Random settings TPE draws before it proposes from the results (startup_samples, or half the samples)."""
        return self.startup_samples or math.ceil(self.samples / 2)

    def distinct_settings(self) -> int | None:
        """How many different settings the axes allow (None when one of them is continuous, or walked)."""
        if self.bracket or any(d.distribution != "choice" for d in self.axes.values()):
            return None
        return math.prod(len(d.values) for d in self.axes.values())

    def to_dict(self) -> dict:
        head = {"algorithm": self.algorithm, "samples": self.samples, "seed": self.seed, "metric": self.metric}
        head["startup_samples"] = self.startup_samples
        if self.ladder is not None:  # only when set, so the study.yaml of a study without one reads as before
            head["ladder"] = self.ladder.to_dict()
        return {**head, **{name: dist.to_dict() for name, dist in self.axes.items()}}


# ---- validation ------------------------------------------------------------------------------------------------
def check_axis_value(name: str, value: object, path: str) -> None:
    kind = AXES[name].kind
    if not isinstance(value, kind) or isinstance(value, bool):
        expected = {int: "an integer", float: "a number", str: "a string"}[kind]
        raise StudyError(f"{path} value {value!r} has the wrong type: expected {expected}.")
    allowed = {"arch": tuple(archs.LABELS), "init": INITS}.get(name)  # the registry as it stands
    if allowed is not None and value not in allowed:
        raise StudyError(f"{path} value {value!r} is invalid: expected one of {', '.join(allowed)}.")
    if name == "seq_len" and value < 1:
        raise StudyError(f"{path} value {value!r} is invalid: expected an integer >= 1.")


def check_distribution(section: str, name: str, dist: object) -> None:
    """One sampled axis of `section` ("sample" or "search")."""
    path = f"{section}.{name}"
    if not isinstance(dist, Distribution):
        raise StudyError(f"{path} must be a mapping such as {{distribution: loguniform, low: 1e-4, high: 1e-2}}.")
    require(
        dist.distribution in DISTRIBUTIONS,
        f"{path}.distribution",
        dist.distribution,
        f"one of {', '.join(DISTRIBUTIONS)}",
    )
    if dist.distribution == "choice":
        if not dist.values:
            raise StudyError(f"{path}.values is empty: give at least one value to choose from.")
        for value in dist.values:
            check_axis_value(name, value, f"{path}.values")
        return
    if AXES[name].kind is str:
        raise StudyError(f"{path}.distribution={dist.distribution!r} is invalid for a text axis: use choice.")
    if not (math.isfinite(dist.low) and math.isfinite(dist.high) and dist.low < dist.high):
        raise StudyError(f"{path}: low={dist.low!r}, high={dist.high!r} is invalid: expected low < high.")
    if dist.distribution == "loguniform" and dist.low <= 0:
        raise StudyError(f"{path}.low={dist.low!r} is invalid for loguniform: expected a number > 0.")
