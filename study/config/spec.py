"""Study specs: YAML -> frozen dataclasses, with one clear sentence for every mistake.

A spec names the study, where results go, the data, the budget, evaluation and checkpoint cadence, the default
train and model settings, the axes whose grid product (x random samples x seeds) gives the trials, the resources
of one trial and the scheduler. Every dataclass validates itself in `__post_init__`, so a spec built from YAML
(`study.config.specfile`, which only turns the YAML mapping into the dataclasses), in code or by `replace` is
checked before anything starts.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field

from study.config.run import BudgetConfig, DataConfig, EvalConfig, TrainConfig
from study.config.sampling import (  # noqa: F401 (Distribution, SampleSpec: the spec's parts, importable here)
    ARCH_LABELS,
    METRICS,
    SEARCHABLE,
    Distribution,
    SampleSpec,
    SearchSpec,
    check_axis_value,
)
from wt_base.errors import StudyError, is_int, require
from wt_base.fields import AXES
from wt_model.config import ModelConfig

SCHEDULERS = ("fifo", "asha")
LOGGERS = ("tensorboard", "mlflow", "wandb")  # the experiment trackers a study can log to (study.tune.trackers)
PRESET_DIR = "presets"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def cpu_threads(cpus: float) -> int:
    """The torch thread count of a trial that reserves `cpus` cores and sets no train.threads: its CPU allowance
    (rounded down, at least 1), not the node's core count."""
    return max(1, int(cpus))


@dataclass(frozen=True)
class ResourcesSpec:
    """What one trial reserves. Fractions are allowed (but GPUs shared in a timed study skew the clock)."""

    cpus: float = 1.0  # CPU cores per trial; also the trial's torch thread count (cpu_threads)
    gpus: float | None = None  # GPUs per trial; null (auto): 1 when the cluster has GPUs, else 0

    def __post_init__(self) -> None:
        require(self.cpus > 0 and math.isfinite(self.cpus), "resources.cpus", self.cpus, "a number > 0")
        require(
            self.gpus is None or (self.gpus >= 0 and math.isfinite(self.gpus)),
            "resources.gpus",
            self.gpus,
            "a number >= 0, or null for auto",
        )

    def with_gpus_for(self, available_gpus: float) -> ResourcesSpec:
        """Resolve `gpus: null`: one GPU per trial where there are GPUs (timed trials must not share one)."""
        if self.gpus is not None:
            return self
        return dataclasses.replace(self, gpus=1.0 if available_gpus >= 1 else 0.0)


@dataclass(frozen=True)
class SchedulerSpec:
    """`fifo` runs every trial to its budget; `asha` stops poor trials early (hyperparameter searches)."""

    kind: str = "fifo"  # "fifo" or "asha"
    metric: str = "val_loss"  # asha: the metric to minimise
    grace_period_s: float = 30.0  # asha: training seconds (or the budget's unit) before a trial can be stopped
    reduction_factor: float = 3.0  # asha: keep 1 / reduction_factor of the trials at each rung

    def __post_init__(self) -> None:
        require(self.kind in SCHEDULERS, "scheduler.kind", self.kind, f"one of {', '.join(SCHEDULERS)}")
        require(self.metric in METRICS, "scheduler.metric", self.metric, " or ".join(METRICS))
        require(self.grace_period_s > 0, "scheduler.grace_period_s", self.grace_period_s, "a number > 0")
        require(self.reduction_factor > 1, "scheduler.reduction_factor", self.reduction_factor, "a number > 1")


@dataclass(frozen=True)
class MlflowSpec:
    """Where `loggers: [mlflow]` puts its runs."""

    # "": $MLFLOW_TRACKING_URI when set, else a SQLite store in the study directory (<study>/mlflow.db)
    tracking_uri: str = ""

    def __post_init__(self) -> None:
        require(
            isinstance(self.tracking_uri, str),
            "mlflow.tracking_uri",
            self.tracking_uri,
            "a tracking URI (http://host:5000, sqlite:///path/mlflow.db, databricks) or '' for the default",
        )


@dataclass(frozen=True)
class StudySpec:
    """A whole study, validated when built (from YAML by `parse_spec`, in code, or by `replace`)."""

    name: str = "smoke"  # 1-64 letters, digits, '_', '.' or '-': the study's directory under storage
    storage: str = "./wt_results"  # local directory or URI (s3://bucket/prefix, gs://...)
    data: DataConfig = field(default_factory=DataConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint_every_s: float = 60.0  # wall seconds between trial checkpoints (0: only at the end)
    train: TrainConfig = field(default_factory=TrainConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    axes: dict = field(default_factory=dict)  # axis name -> tuple of its values (the grid)
    sample: SampleSpec = field(default_factory=SampleSpec)
    search: SearchSpec = field(default_factory=SearchSpec)  # grid (default), random or tpe: study.config.sampling
    seeds: tuple = (0,)  # training seeds of the trials behind verdicts
    resources: ResourcesSpec = field(default_factory=ResourcesSpec)
    max_concurrent: int = 0  # trials at once; 0 lets Ray fill the cluster
    max_failures: int = 2  # retries of a trial that crashed (from its last checkpoint)
    scheduler: SchedulerSpec = field(default_factory=SchedulerSpec)
    tune_seeds: tuple = ()  # seeds whose trials only choose tuned settings (e.g. lr per width); never verdicts
    equivalence_margin: float = 0.01  # nats: |worker - standard| below it counts as equivalent (rows carry it)
    budget_by_arch: dict = field(default_factory=dict)  # arch label -> budget value, overriding budget.value
    allow_shared_device: bool = False  # seconds budgets: let trials share a GPU or a core (the report says so)
    target_loss: float | None = None  # pre-registered time-to-target loss (nats), recorded in every trial row
    # axis values that go together, each entry crossed with the grid: model sizes (n_embd, n_layer, n_head, and the
    # batch that suits them) in a scaling study, where a full grid of widths x depths would waste most trials
    sizes: tuple = ()
    max_epochs: float | None = None  # refuse, before anything starts, a trial that would pass over its data more
    loggers: tuple = ()  # experiment trackers, any of tensorboard, mlflow, wandb: one point per evaluation each
    mlflow: MlflowSpec = field(default_factory=MlflowSpec)  # with loggers: [mlflow]

    def __post_init__(self) -> None:
        require(
            isinstance(self.name, str) and NAME_PATTERN.match(self.name) is not None,
            "name",
            self.name,
            "1-64 letters, digits, '_', '.' or '-', starting with a letter or digit",
        )
        require(bool(self.storage), "storage", self.storage, "a directory path or a URI such as s3://bucket/prefix")
        require(self.checkpoint_every_s >= 0, "checkpoint_every_s", self.checkpoint_every_s, "a number >= 0")
        require(
            is_int(self.max_concurrent) and self.max_concurrent >= 0,
            "max_concurrent",
            self.max_concurrent,
            "an integer >= 0",
        )
        require(
            is_int(self.max_failures) and self.max_failures >= 0, "max_failures", self.max_failures, "an integer >= 0"
        )
        require(
            isinstance(self.allow_shared_device, bool), "allow_shared_device", self.allow_shared_device, "true or false"
        )
        require(
            self.equivalence_margin > 0 and math.isfinite(self.equivalence_margin),
            "equivalence_margin",
            self.equivalence_margin,
            "a number > 0 (nats)",
        )
        require(
            self.target_loss is None or (self.target_loss > 0 and math.isfinite(self.target_loss)),
            "target_loss",
            self.target_loss,
            "a loss > 0 in nats, or null for a target from the tune seeds",
        )
        _check_axes(self.axes)
        _check_sizes(self.sizes)
        sized = {name for entry in self.sizes for name in entry}
        for name in sorted(set(self.axes) | sized):
            if name in self.sample.axes:
                where = "axes" if name in self.axes else "sizes"
                raise StudyError(f"{where}.{name} is also a sample axis: give each axis in one place only.")
            if name in self.axes and name in sized:
                raise StudyError(f"axes.{name} is also set by sizes: give each axis in one place only.")
        if self.budget_by_arch and ("budget_value" in self.axes or "budget_value" in sized):
            raise StudyError("budget_by_arch and a budget_value axis both set trial budgets: give one of them.")
        require(
            self.max_epochs is None or (self.max_epochs > 0 and math.isfinite(self.max_epochs)),
            "max_epochs",
            self.max_epochs,
            "a number of passes > 0, or null for no cap",
        )
        _check_loggers(self.loggers)
        _check_seeds(self.seeds)
        _check_tune_seeds(self.tune_seeds, self.seeds)
        _check_budgets(self)
        _check_search(self, sized)

    def to_dict(self) -> dict:
        """A plain mapping that `parse_spec` turns back into an equal spec (used for study.yaml)."""
        out = dataclasses.asdict(self)
        out["axes"] = {name: list(values) for name, values in self.axes.items()}
        out["seeds"] = list(self.seeds)
        out["tune_seeds"] = list(self.tune_seeds)
        out["sizes"] = [dict(entry) for entry in self.sizes]
        out["loggers"] = list(self.loggers)
        out["sample"] = {
            "num_samples": self.sample.num_samples,
            "seed": self.sample.seed,
            **{name: dist.to_dict() for name, dist in self.sample.axes.items()},
        }
        out["search"] = self.search.to_dict()
        return out

    def replace(self, **changes) -> StudySpec:
        return dataclasses.replace(self, **changes)


# ---- validation (called from __post_init__) ----------------------------------------------------------------
def _check_axes(axes: dict) -> None:
    for name, values in axes.items():
        if name not in AXES:
            raise StudyError(f"axes.{name} is not a known axis: expected one of {', '.join(AXES)}.")
        require(isinstance(values, tuple), f"axes.{name}", values, "a tuple of values")
        if not values:
            raise StudyError(f"axes.{name} is empty: give at least one value.")
        for value in values:
            check_axis_value(name, value, f"axes.{name}")
        if len(set(values)) != len(values):
            raise StudyError(f"axes.{name}={list(values)!r} repeats a value: list each value once.")


def _check_sizes(sizes: tuple) -> None:
    """Each entry: a mapping of axis names to one value each, all entries naming the same axes."""
    require(isinstance(sizes, tuple), "sizes", sizes, "a list of mappings such as {n_embd: 64, n_layer: 2}")
    for i, entry in enumerate(sizes):
        if not isinstance(entry, dict) or not entry:
            raise StudyError(f"sizes[{i}]={entry!r} is invalid: expected a mapping such as {{n_embd: 64, n_layer: 2}}.")
        for name, value in entry.items():
            if name not in AXES:
                raise StudyError(f"sizes[{i}].{name} is not an axis a size can set: expected one of {', '.join(AXES)}.")
            check_axis_value(name, value, f"sizes[{i}].{name}")
        if set(entry) != set(sizes[0]):
            raise StudyError(
                f"sizes[{i}] sets {', '.join(sorted(entry))}; sizes[0] sets {', '.join(sorted(sizes[0]))}: "
                "give every size the same keys."
            )
    if len({tuple(sorted(e.items())) for e in sizes}) != len(sizes):
        raise StudyError("sizes repeats an entry: list each size once.")


def _check_loggers(loggers: tuple) -> None:
    require(isinstance(loggers, tuple), "loggers", loggers, f"a list of trackers: any of {', '.join(LOGGERS)}")
    for name in loggers:
        require(name in LOGGERS, "loggers value", name, f"one of {', '.join(LOGGERS)}")
    if len(set(loggers)) != len(loggers):
        raise StudyError(f"loggers={list(loggers)!r} repeats a tracker: list each tracker once.")


def _check_seeds(seeds: tuple) -> None:
    require(isinstance(seeds, tuple) and len(seeds) > 0, "seeds", seeds, "a non-empty tuple of integer seeds")
    for seed in seeds:
        require(is_int(seed) and seed >= 0, "seeds value", seed, "an integer >= 0")
    if len(set(seeds)) != len(seeds):
        raise StudyError(f"seeds={list(seeds)!r} repeats a seed: list each seed once.")


def _check_tune_seeds(tune_seeds: tuple, seeds: tuple) -> None:
    """Tuning seeds choose settings, test seeds judge them: the two sets must not share a seed."""
    require(isinstance(tune_seeds, tuple), "tune_seeds", tune_seeds, "a tuple of integer seeds")
    for seed in tune_seeds:
        if not is_int(seed) or seed < 0:
            raise StudyError(f"tune_seeds value {seed!r} is invalid: expected an integer >= 0.")
        if seed in seeds:
            raise StudyError(f"tune_seeds value {seed} is also in seeds: a seed either tunes or tests, never both.")
    if len(set(tune_seeds)) != len(tune_seeds):
        raise StudyError(f"tune_seeds={list(tune_seeds)!r} repeats a seed: list each seed once.")


def _check_budgets(spec: StudySpec) -> None:
    """budget_by_arch: known labels, positive values; ASHA's grace period below every trial's budget."""
    for label, value in spec.budget_by_arch.items():
        if label not in ARCH_LABELS:
            raise StudyError(
                f"budget_by_arch.{label} is not an architecture: expected one of {', '.join(ARCH_LABELS)}."
            )
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise StudyError(f"budget_by_arch.{label}={value!r} has the wrong type: expected a number.")
        require(value > 0 and math.isfinite(value), f"budget_by_arch.{label}", value, "a finite number > 0")
    shortest = min([spec.budget.value, *spec.budget_by_arch.values()])
    if spec.scheduler.kind == "asha" and spec.scheduler.grace_period_s >= shortest:
        raise StudyError(
            f"scheduler.grace_period_s={spec.scheduler.grace_period_s!r} is invalid with asha: expected a number "
            f"below the shortest trial budget, {shortest:g} ({spec.budget.kind})."
        )


def _check_search(spec: StudySpec, sized: set) -> None:
    """A search (random, tpe) tunes settings per grid point on the tune seeds, then runs the test seeds at the
    chosen one: it needs tune seeds, draws nothing up front, and leaves the tuned settings off the grid (else the
    analysis would choose among grid values the search never compared)."""
    search = spec.search
    if not search.is_search:
        return
    where = f"with search.algorithm {search.algorithm}"
    if not spec.tune_seeds:
        raise StudyError(
            f"tune_seeds is empty {where}: the samples run on tune seeds and the test seeds (seeds) then run at "
            "each arm's chosen setting; give tune_seeds such as [100, 101]."
        )
    if spec.sample.num_samples or spec.sample.axes:
        raise StudyError(f"sample is invalid {where}: give the sampled axes under search, not sample.")
    for name in sorted(set(spec.axes) | sized):
        if name in SEARCHABLE:
            source = "axes" if name in spec.axes else "sizes"
            raise StudyError(
                f"{source}.{name} is a tuned setting, invalid on the grid {where}: search it (search.{name}) or "
                "fix it in train/model."
            )
