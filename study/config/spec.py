"""Study specs: YAML -> frozen dataclasses, with one clear sentence for every mistake.

A spec names the study, where results go, the data, the budget, evaluation and checkpoint cadence, the default
train and model settings, the axes whose grid product (x random samples x seeds) gives the trials, the resources
of one trial and the scheduler. `load_spec` / `parse_spec` validate everything before anything starts.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from study.config.run import (
    BudgetConfig,
    DataConfig,
    EvalConfig,
    TrainConfig,
    from_mapping,
)
from study.errors import StudyError
from wt_model.config import INITS, ModelConfig

# Axis label -> (ModelConfig.arch, random_worker_phase).
ARCH_LABELS = {
    "standard": ("standard", False),
    "worker": ("worker", False),
    "worker-random-phase": ("worker", True),
}
# Grid axes: name -> (section of the run config, field, type). `seq_len` is the model's block_size.
AXES = {
    "arch": ("model", "arch", str),
    "attention": ("model", "attention", str),
    "init": ("model", "init", str),
    "worker_interval": ("model", "worker_interval", int),
    "seq_len": ("model", "block_size", int),
    "n_embd": ("model", "n_embd", int),
    "n_layer": ("model", "n_layer", int),
    "n_head": ("model", "n_head", int),
    "ffn_hidden": ("model", "ffn_hidden", int),
    "conv_kernel": ("model", "conv_kernel", int),
    "dropout": ("model", "dropout", float),
    "lr": ("train", "lr", float),
    "batch_size": ("train", "batch_size", int),
    "weight_decay": ("train", "weight_decay", float),
    "schedule": ("train", "schedule", str),
    "warmup_frac": ("train", "warmup_frac", float),
}
# Axes that only mean something for the worker model: dropped (not repeated) for the standard model.
WORKER_ONLY_AXES = ("worker_interval", "conv_kernel")
DISTRIBUTIONS = ("uniform", "loguniform", "choice")
SCHEDULERS = ("fifo", "asha")
PRESET_DIR = "presets"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Distribution:
    """One random-search axis: `uniform`/`loguniform` between low and high, or `choice` among values."""

    distribution: str = "loguniform"
    low: float = 0.0
    high: float = 0.0
    values: tuple = ()


@dataclass(frozen=True)
class SampleSpec:
    """Random-search axes, drawn `num_samples` times from a generator seeded by `seed` (stable trial ids)."""

    num_samples: int = 0
    seed: int = 0
    axes: dict = field(default_factory=dict)  # axis name -> Distribution


@dataclass(frozen=True)
class ResourcesSpec:
    """What one trial reserves. Fractions are allowed (but GPUs shared in a timed study skew the clock)."""

    cpus: float = 1.0  # CPU cores per trial; also the trial's torch thread count (rounded down, at least 1)
    gpus: float | None = None  # GPUs per trial; null (auto): 1 when the cluster has GPUs, else 0

    def __post_init__(self) -> None:
        if not (self.cpus > 0 and math.isfinite(self.cpus)):
            raise StudyError(f"resources.cpus={self.cpus!r} is invalid: expected a number > 0.")
        if self.gpus is not None and not (self.gpus >= 0 and math.isfinite(self.gpus)):
            raise StudyError(f"resources.gpus={self.gpus!r} is invalid: expected a number >= 0, or null for auto.")

    def with_gpus_for(self, available_gpus: float) -> ResourcesSpec:
        """Resolve `gpus: null`: one GPU per trial where there are GPUs (timed trials must not share one)."""
        if self.gpus is not None:
            return self
        return dataclasses.replace(self, gpus=1.0 if available_gpus >= 1 else 0.0)


@dataclass(frozen=True)
class SchedulerSpec:
    """`fifo` runs every trial to its budget; `asha` stops poor trials early (hyperparameter searches)."""

    kind: str = "fifo"
    metric: str = "val_loss"  # asha: the metric to minimise
    grace_period_s: float = 30.0  # asha: training seconds (or the budget's unit) before a trial can be stopped
    reduction_factor: float = 3.0  # asha: keep 1 / reduction_factor of the trials at each rung

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULERS:
            raise StudyError(f"scheduler.kind={self.kind!r} is invalid: expected one of {', '.join(SCHEDULERS)}.")
        if self.metric not in ("val_loss", "val_loss_seed"):
            raise StudyError(f"scheduler.metric={self.metric!r} is invalid: expected val_loss or val_loss_seed.")
        if not self.grace_period_s > 0:
            raise StudyError(f"scheduler.grace_period_s={self.grace_period_s!r} is invalid: expected a number > 0.")
        if not self.reduction_factor > 1:
            raise StudyError(f"scheduler.reduction_factor={self.reduction_factor!r} is invalid: expected a number > 1.")


@dataclass(frozen=True)
class StudySpec:
    """A whole study. `axes` maps an axis name to the tuple of its values."""

    name: str = "smoke"
    storage: str = "./wt_results"  # local directory or URI (s3://bucket/prefix, gs://...)
    data: DataConfig = field(default_factory=DataConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint_every_s: float = 60.0  # wall seconds between trial checkpoints (0: only at the end)
    train: TrainConfig = field(default_factory=TrainConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    axes: dict = field(default_factory=dict)
    sample: SampleSpec = field(default_factory=SampleSpec)
    seeds: tuple = (0,)
    resources: ResourcesSpec = field(default_factory=ResourcesSpec)
    max_concurrent: int = 0  # trials at once; 0 lets Ray fill the cluster
    max_failures: int = 2  # retries of a trial that crashed (from its last checkpoint)
    scheduler: SchedulerSpec = field(default_factory=SchedulerSpec)
    tune_seeds: tuple = ()  # seeds whose trials only choose tuned settings (e.g. lr per width); never verdicts
    equivalence_margin: float = 0.01  # nats: |worker - standard| below it counts as equivalent (rows carry it)
    budget_by_arch: dict = field(default_factory=dict)  # arch label -> budget value, overriding budget.value
    allow_shared_device: bool = False  # seconds budgets: let trials share a GPU or a core (the report says so)

    def __post_init__(self) -> None:
        _check_tune_seeds(self.tune_seeds, self.seeds)
        if not (self.equivalence_margin > 0 and math.isfinite(self.equivalence_margin)):
            raise StudyError(
                f"equivalence_margin={self.equivalence_margin!r} is invalid: expected a number > 0 (nats)."
            )
        _check_budgets(self)

    def to_dict(self) -> dict:
        """A plain mapping that `parse_spec` turns back into an equal spec (used for study.yaml)."""
        out = dataclasses.asdict(self)
        out["axes"] = {name: list(values) for name, values in self.axes.items()}
        out["seeds"] = list(self.seeds)
        out["tune_seeds"] = list(self.tune_seeds)
        out["sample"] = {
            "num_samples": self.sample.num_samples,
            "seed": self.sample.seed,
            **{name: _distribution_to_dict(dist) for name, dist in self.sample.axes.items()},
        }
        return out

    def replace(self, **changes) -> StudySpec:
        return dataclasses.replace(self, **changes)


TOP_LEVEL_KEYS = tuple(f.name for f in dataclasses.fields(StudySpec))


def _distribution_to_dict(dist: Distribution) -> dict:
    if dist.distribution == "choice":
        return {"distribution": "choice", "values": list(dist.values)}
    return {"distribution": dist.distribution, "low": dist.low, "high": dist.high}


def parse_spec(document: object) -> StudySpec:
    """Validate a parsed YAML document and build the spec."""
    if not isinstance(document, dict):
        raise StudyError(f"a study spec must be a mapping of keys to values, got {type(document).__name__}.")
    unknown = sorted(set(document) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise StudyError(f"{unknown[0]} is not a known key: expected one of {', '.join(TOP_LEVEL_KEYS)}.")
    simple = {
        key: document[key] for key in ("data", "budget", "eval", "train", "resources", "scheduler") if key in document
    }
    keys = ("name", "storage", "checkpoint_every_s", "max_concurrent", "max_failures")
    for key in (*keys, "equivalence_margin", "allow_shared_device"):
        if key in document:
            simple[key] = document[key]
    partial = from_mapping(_Scalars, simple, "")
    kwargs = {f.name: getattr(partial, f.name) for f in dataclasses.fields(_Scalars)}
    if not NAME_PATTERN.match(kwargs["name"]):
        raise StudyError(
            f"name={kwargs['name']!r} is invalid: expected 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit."
        )
    if not kwargs["storage"]:
        raise StudyError("storage='' is invalid: expected a directory path or a URI such as s3://bucket/prefix.")
    if kwargs["checkpoint_every_s"] < 0:
        raise StudyError(f"checkpoint_every_s={kwargs['checkpoint_every_s']!r} is invalid: expected a number >= 0.")
    if kwargs["max_concurrent"] < 0:
        raise StudyError(f"max_concurrent={kwargs['max_concurrent']!r} is invalid: expected an integer >= 0.")
    if kwargs["max_failures"] < 0:
        raise StudyError(f"max_failures={kwargs['max_failures']!r} is invalid: expected an integer >= 0.")
    kwargs["model"] = _parse_model_defaults(document.get("model", {}))
    kwargs["axes"] = _parse_axes(document.get("axes", {}))
    kwargs["sample"] = _parse_sample(document.get("sample", {}))
    kwargs["seeds"] = _parse_seeds(document.get("seeds", [0]))
    kwargs["tune_seeds"] = _parse_tune_seeds(document.get("tune_seeds", []))
    kwargs["budget_by_arch"] = _parse_budget_by_arch(document.get("budget_by_arch", {}))
    overlap = sorted(set(kwargs["axes"]) & set(kwargs["sample"].axes))
    if overlap:
        raise StudyError(f"axes.{overlap[0]} is also a sample axis: give each axis in one place only.")
    return StudySpec(**kwargs)


@dataclass(frozen=True)
class _Scalars:
    """The parts of StudySpec that `from_mapping` can check directly."""

    name: str = StudySpec.name
    storage: str = StudySpec.storage
    data: DataConfig = field(default_factory=DataConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint_every_s: float = StudySpec.checkpoint_every_s
    train: TrainConfig = field(default_factory=TrainConfig)
    resources: ResourcesSpec = field(default_factory=ResourcesSpec)
    max_concurrent: int = StudySpec.max_concurrent
    max_failures: int = StudySpec.max_failures
    scheduler: SchedulerSpec = field(default_factory=SchedulerSpec)
    equivalence_margin: float = StudySpec.equivalence_margin
    allow_shared_device: bool = StudySpec.allow_shared_device


def _parse_model_defaults(mapping: object) -> ModelConfig:
    """Model defaults; `block_size` is the sequence length when there is no seq_len axis."""
    return from_mapping(ModelConfig, mapping, "model")


def _parse_axes(mapping: object) -> dict:
    if not isinstance(mapping, dict):
        raise StudyError(f"axes must be a mapping of axis name to a list of values, got {mapping!r}.")
    axes = {}
    for name, values in mapping.items():
        if name not in AXES:
            raise StudyError(f"axes.{name} is not a known axis: expected one of {', '.join(AXES)}.")
        if not isinstance(values, list):
            values = [values]
        if not values:
            raise StudyError(f"axes.{name} is empty: give at least one value.")
        axes[name] = tuple(_axis_value(name, value, f"axes.{name}") for value in values)
        if len(set(axes[name])) != len(axes[name]):
            raise StudyError(f"axes.{name}={list(values)!r} repeats a value: list each value once.")
    return axes


def _axis_value(name: str, value: object, path: str):
    kind = AXES[name][2]
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        expected = {int: "an integer", float: "a number", str: "a string"}[kind]
        raise StudyError(f"{path} value {value!r} has the wrong type: expected {expected}.")
    if name == "arch" and value not in ARCH_LABELS:
        raise StudyError(f"{path} value {value!r} is invalid: expected one of {', '.join(ARCH_LABELS)}.")
    if name == "init" and value not in INITS:
        raise StudyError(f"{path} value {value!r} is invalid: expected one of {', '.join(INITS)}.")
    if name == "seq_len" and value < 1:
        raise StudyError(f"{path} value {value!r} is invalid: expected an integer >= 1.")
    return value


def _parse_sample(mapping: object) -> SampleSpec:
    if not isinstance(mapping, dict):
        raise StudyError(f"sample must be a mapping, got {mapping!r}.")
    mapping = dict(mapping)
    num_samples = mapping.pop("num_samples", 0)
    seed = mapping.pop("seed", 0)
    if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples < 0:
        raise StudyError(f"sample.num_samples={num_samples!r} is invalid: expected an integer >= 0.")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise StudyError(f"sample.seed={seed!r} is invalid: expected an integer.")
    axes = {}
    for name, raw in mapping.items():
        if name not in AXES:
            raise StudyError(
                f"sample.{name} is not a known axis: expected num_samples, seed or one of {', '.join(AXES)}."
            )
        axes[name] = _parse_distribution(name, raw)
    if axes and num_samples == 0:
        raise StudyError("sample.num_samples=0 is invalid with sampled axes: expected an integer >= 1.")
    return SampleSpec(num_samples=num_samples, seed=seed, axes=axes)


def _parse_distribution(name: str, raw: object) -> Distribution:
    path = f"sample.{name}"
    if not isinstance(raw, dict):
        raise StudyError(f"{path} must be a mapping such as {{distribution: loguniform, low: 1e-4, high: 1e-2}}.")
    dist = from_mapping(Distribution, raw, path)
    if dist.distribution not in DISTRIBUTIONS:
        raise StudyError(
            f"{path}.distribution={dist.distribution!r} is invalid: expected one of {', '.join(DISTRIBUTIONS)}."
        )
    if dist.distribution == "choice":
        if not dist.values:
            raise StudyError(f"{path}.values is empty: give at least one value to choose from.")
        values = tuple(_axis_value(name, v, f"{path}.values") for v in dist.values)
        return Distribution(distribution="choice", values=values)
    if AXES[name][2] is str:
        raise StudyError(f"{path}.distribution={dist.distribution!r} is invalid for a text axis: use choice.")
    if not (math.isfinite(dist.low) and math.isfinite(dist.high) and dist.low < dist.high):
        raise StudyError(f"{path}: low={dist.low!r}, high={dist.high!r} is invalid: expected low < high.")
    if dist.distribution == "loguniform" and dist.low <= 0:
        raise StudyError(f"{path}.low={dist.low!r} is invalid for loguniform: expected a number > 0.")
    return dist


def _parse_seeds(raw: object) -> tuple:
    if isinstance(raw, int) and not isinstance(raw, bool):
        if raw < 1:
            raise StudyError(f"seeds={raw!r} is invalid: expected a count >= 1 or a list of integer seeds.")
        return tuple(range(raw))
    if not isinstance(raw, list) or not raw:
        raise StudyError(f"seeds={raw!r} is invalid: expected a count >= 1 or a non-empty list of integer seeds.")
    for seed in raw:
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise StudyError(f"seeds value {seed!r} is invalid: expected an integer >= 0.")
    if len(set(raw)) != len(raw):
        raise StudyError(f"seeds={raw!r} repeats a seed: list each seed once.")
    return tuple(raw)


def _parse_tune_seeds(raw: object) -> tuple:
    if not isinstance(raw, list):
        raise StudyError(f"tune_seeds={raw!r} is invalid: expected a list of integer seeds such as [100, 101].")
    return tuple(raw)


def _parse_budget_by_arch(raw: object) -> dict:
    if not isinstance(raw, dict):
        raise StudyError(f"budget_by_arch={raw!r} is invalid: expected a mapping such as {{standard: 966}}.")
    bad = [label for label, v in raw.items() if not isinstance(v, (int, float)) or isinstance(v, bool)]
    if bad:
        raise StudyError(f"budget_by_arch.{bad[0]}={raw[bad[0]]!r} has the wrong type: expected a number.")
    return {label: float(value) for label, value in raw.items()}


def _check_tune_seeds(tune_seeds: tuple, seeds: tuple) -> None:
    """Tuning seeds choose settings, test seeds judge them: the two sets must not share a seed."""
    for seed in tune_seeds:
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
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
        if not (value > 0 and math.isfinite(value)):
            raise StudyError(f"budget_by_arch.{label}={value!r} is invalid: expected a finite number > 0.")
    shortest = min([spec.budget.value, *spec.budget_by_arch.values()])
    if spec.scheduler.kind == "asha" and spec.scheduler.grace_period_s >= shortest:
        raise StudyError(
            f"scheduler.grace_period_s={spec.scheduler.grace_period_s!r} is invalid with asha: expected a number "
            f"below the shortest trial budget, {shortest:g} ({spec.budget.kind})."
        )


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error (PyYAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, what: str) -> object:
    """Parse YAML text strictly; any problem becomes one sentence naming `what`, the line and the column."""
    loader = _StrictLoader(text)  # what yaml.safe_load does, with the stricter loader
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "malformed YAML"
        raise StudyError(f"{what} is not valid YAML{where}: {problem}.") from None
    finally:
        loader.dispose()


def load_yaml(path: Path, what: str) -> object:
    """Read a YAML file, turning every way it can fail into one sentence."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StudyError(f"{what} {str(path)!r} does not exist.") from None
    except IsADirectoryError:
        raise StudyError(f"{what} {str(path)!r} is a directory: expected a YAML file.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StudyError(f"{what} {str(path)!r} cannot be read: {exc}.") from None
    return parse_yaml(text, f"{what} {str(path)!r}")


def load_spec(path: str | Path) -> StudySpec:
    return parse_spec(load_yaml(Path(path), "spec file"))


def preset_names() -> list[str]:
    folder = resources.files("study.config") / PRESET_DIR
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_preset(name: str) -> StudySpec:
    names = preset_names()
    if name not in names:
        raise StudyError(f"--preset {name!r} is not a known preset: expected one of {', '.join(names)}.")
    text = (resources.files("study.config") / PRESET_DIR / f"{name}.yaml").read_text(encoding="utf-8")
    return parse_spec(parse_yaml(text, f"preset {name!r}"))


def dump_spec(spec: StudySpec) -> str:
    return yaml.safe_dump(spec.to_dict(), sort_keys=False)
