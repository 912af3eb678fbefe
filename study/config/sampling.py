"""Sampled settings: the distributions a spec draws from, for a grid's random draws made up front (`sample:`) and
for a search that draws as the study runs (`search:`), each validated in `__post_init__`.

A search (`search.algorithm` random or tpe) tunes settings *within* an arm and cell: every grid point of the spec
(architecture label and worker interval, crossed with the cell axes) gets its own search with the same number of
samples, run on the tune seeds only, and then the test seeds at the setting chosen there (study.tune.search_state).
So a search may only sample the tuned settings the analysis chooses per arm (`SEARCHABLE`); the arm and cell
fields stay on the grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from wt_base.errors import StudyError, is_int, require
from wt_base.fields import AXES
from wt_model import archs
from wt_model.config import INITS

ARCH_LABELS = tuple(archs.LABELS)  # the values of the arch axis (wt_model.archs); the axes: wt_base.fields.AXES
DISTRIBUTIONS = ("uniform", "loguniform", "choice")
SEARCH_ALGORITHMS = ("grid", "random", "tpe")  # grid: every trial known up front (axes x sample draws x seeds)
# The settings a search may sample: the tuned fields the analysis chooses per arm on the tune seeds
# (analysis.configs.TUNED_FIELDS that are spec axes; tests/study/test_search_spec.py keeps the two equal).
SEARCHABLE = ("lr", "weight_decay", "warmup_frac", "schedule", "dropout")
METRICS = ("val_loss", "val_loss_seed")  # what ASHA and a search may minimise


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
    arm's chosen setting (the lowest mean final `metric` over the tune seeds, as the analysis chooses)."""

    algorithm: str = "grid"  # "grid", "random" or "tpe"
    samples: int = 0  # random/tpe: settings tried per arm and cell (each on every tune seed); the same for all
    seed: int = 0  # seeds the draws (random) or the sampler (tpe)
    metric: str = "val_loss"  # the final metric whose mean over the tune seeds ranks the settings
    startup_samples: int = 0  # tpe: random settings before TPE proposes; 0: half the samples, rounded up
    axes: dict = field(default_factory=dict)  # axis name -> Distribution (only SEARCHABLE settings)

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
            if name not in AXES:
                keys = f"algorithm, samples, seed, metric, startup_samples or one of {', '.join(SEARCHABLE)}"
                raise StudyError(f"search.{name} is not a known key: expected {keys}.")
            if name not in SEARCHABLE:
                raise StudyError(
                    f"search.{name} is a grid-only field: a search tunes settings within an arm and cell "
                    f"({', '.join(SEARCHABLE)}); put {name} under axes."
                )
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
                "expected algorithm random or tpe for a search."
            )

    @property
    def is_search(self) -> bool:
        """True for random and tpe: trials are created as the study runs, not known up front."""
        return self.algorithm != "grid"

    @property
    def tpe_startup(self) -> int:
        """Random settings TPE draws before it proposes from the results (startup_samples, or half the samples)."""
        return self.startup_samples or math.ceil(self.samples / 2)

    def distinct_settings(self) -> int | None:
        """How many different settings the axes allow (None when one of them is continuous)."""
        if any(d.distribution != "choice" for d in self.axes.values()):
            return None
        return math.prod(len(d.values) for d in self.axes.values())

    def to_dict(self) -> dict:
        head = {"algorithm": self.algorithm, "samples": self.samples, "seed": self.seed, "metric": self.metric}
        head["startup_samples"] = self.startup_samples
        return {**head, **{name: dist.to_dict() for name, dist in self.axes.items()}}


# ---- validation ------------------------------------------------------------------------------------------------
def check_axis_value(name: str, value: object, path: str) -> None:
    kind = AXES[name].kind
    if not isinstance(value, kind) or isinstance(value, bool):
        expected = {int: "an integer", float: "a number", str: "a string"}[kind]
        raise StudyError(f"{path} value {value!r} has the wrong type: expected {expected}.")
    allowed = {"arch": ARCH_LABELS, "init": INITS}.get(name)
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
