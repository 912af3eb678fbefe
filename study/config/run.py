"""Run configuration for one training run: model + train + budget + eval + data, as frozen dataclasses.

`train()` takes a `RunConfig`; the study spec parses its YAML sections straight into these classes with
`from_mapping`, which rejects unknown keys and wrong types with one sentence naming the field.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field

from wt_base.budgets import BUDGET_KINDS as BUDGET_TABLE
from wt_base.errors import StudyError, require
from wt_model.config import ModelConfig

BUDGET_KINDS = tuple(BUDGET_TABLE)
SCHEDULES = ("constant", "linear", "cosine")
EVAL_PROTOCOLS = ("stream", "seed")
DEVICES = ("auto", "cpu", "cuda")
# field -> its allowed values: __post_init__ checks them, and `wt-study train` offers them as flag choices
CHOICES = {
    "train.schedule": SCHEDULES,
    "train.device": DEVICES,
    "budget.kind": BUDGET_KINDS,
    "eval.protocol": EVAL_PROTOCOLS,
}
COMPILE_MODES = ("off", "default", "reduce-overhead", "auto")  # see study/train/compiled.py


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of one run."""

    batch_size: int = 16  # sequences per step (the seed uses 16)
    lr: float = 3e-4  # peak learning rate of AdamW (the seed's constant 3e-4)
    weight_decay: float = 0.01  # AdamW weight decay (torch's default, as the seed)
    beta1: float = 0.9  # AdamW beta1
    beta2: float = 0.999  # AdamW beta2 (torch's default, as the seed)
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping (the seed clips at 1.0)
    schedule: str = "constant"  # "constant" (seed), "linear" (warmup + linear decay to 0), "cosine"
    warmup_frac: float = 0.0  # fraction of the budget spent warming up (linear and cosine schedules)
    seed: int = 0  # seeds parameters, batch sampling, dropout
    device: str = "auto"  # "auto" (cuda when available), "cpu" or "cuda"
    # torch.compile: "off", "default", "reduce-overhead" (+ CUDA graphs) or "auto" (reduce-overhead on CUDA, off on
    # a CPU); true means "default", false "off". Compile warm-up is not counted in the budget.
    compile: bool | str = False
    threads: int = 0  # torch intra-op threads on CPU; 0 means the run's CPU allowance

    def __post_init__(self) -> None:
        _require_choices(self, "train")
        require(self.batch_size >= 1, "train.batch_size", self.batch_size, "an integer >= 1")
        require(self.lr > 0 and math.isfinite(self.lr), "train.lr", self.lr, "a number > 0")
        require(self.weight_decay >= 0, "train.weight_decay", self.weight_decay, "a number >= 0")
        require(0 <= self.beta1 < 1, "train.beta1", self.beta1, "a number in [0, 1)")
        require(0 <= self.beta2 < 1, "train.beta2", self.beta2, "a number in [0, 1)")
        require(self.grad_clip >= 0, "train.grad_clip", self.grad_clip, "a number >= 0 (0 disables)")
        require(0 <= self.warmup_frac < 1, "train.warmup_frac", self.warmup_frac, "a number in [0, 1)")
        require(self.threads >= 0, "train.threads", self.threads, "an integer >= 0")
        require(
            isinstance(self.compile, bool) or self.compile in COMPILE_MODES,
            "train.compile",
            self.compile,
            f"true, false or one of {', '.join(COMPILE_MODES)}",
        )


@dataclass(frozen=True)
class BudgetConfig:
    """How long a run trains. For `seconds` only training steps count (README, "What is measured"; wt_base.budgets)."""

    kind: str = "seconds"  # "seconds" (training time), "steps", "tokens" or "flops" (analytic training FLOPs)
    value: float = 300.0  # the limit in the kind's unit
    count_eval_in_budget: bool = False  # seconds only: let evaluation time eat the budget (the seed's definition)

    def __post_init__(self) -> None:
        _require_choices(self, "budget")
        require(self.value > 0 and math.isfinite(self.value), "budget.value", self.value, "a finite number > 0")


@dataclass(frozen=True)
class EvalConfig:
    """When and on what a run is evaluated."""

    every_s: float = 0.0  # evaluate every this many seconds of training time (0: use every_steps)
    every_steps: int = 0  # or every this many steps (0: use every_s); with both 0 only the final evaluation
    val_tokens: int = 65536  # tokens per periodic evaluation from the fixed validation stream
    protocol: str = "stream"  # "stream" (non-overlapping windows) or "seed" (first batches of stride-1 windows)
    final_full: bool = True  # the final evaluation covers the whole validation split

    def __post_init__(self) -> None:
        require(self.every_s >= 0, "eval.every_s", self.every_s, "a number >= 0")
        require(self.every_steps >= 0, "eval.every_steps", self.every_steps, "an integer >= 0")
        require(
            not (self.every_s > 0 and self.every_steps > 0),
            "eval.every_steps",
            self.every_steps,
            "0 when eval.every_s is set (choose one)",
        )
        require(self.val_tokens >= 1, "eval.val_tokens", self.val_tokens, "an integer >= 1")
        _require_choices(self, "eval")


@dataclass(frozen=True)
class DataConfig:
    """Where the text comes from."""

    corpus: str = "tinyshakespeare"  # a known corpus name or a path to a local UTF-8 text file
    cache_dir: str = ""  # download cache; "" means $WT_CACHE_DIR or the user's cache dir
    val_fraction: float = 0.1  # last fraction of the text held out for validation (the seed's 90/10)

    def __post_init__(self) -> None:
        require(bool(self.corpus), "data.corpus", self.corpus, "a corpus name or a file path")
        require(0 < self.val_fraction < 1, "data.val_fraction", self.val_fraction, "a number in (0, 1)")


@dataclass(frozen=True)
class RunConfig:
    """Everything one training run needs. The sequence length is `model.block_size`."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    data: DataConfig = field(default_factory=DataConfig)
    checkpoint_every_s: float = 0.0  # wall seconds between checkpoints handed to on_checkpoint (0: end only)

    def __post_init__(self) -> None:
        require(
            self.checkpoint_every_s >= 0 and math.isfinite(self.checkpoint_every_s),
            "checkpoint_every_s",
            self.checkpoint_every_s,
            "a number of seconds >= 0 (0: only at the end)",
        )

    @property
    def seq_len(self) -> int:
        return self.model.block_size

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, mapping: dict) -> RunConfig:
        return from_mapping(cls, mapping, "")


def _require_choices(config: object, section: str) -> None:
    for path, allowed in CHOICES.items():
        if path.startswith(f"{section}."):
            value = getattr(config, path.removeprefix(f"{section}."))
            require(value in allowed, path, value, f"one of {', '.join(allowed)}")


def from_mapping(cls: type, mapping: object, where: str):
    """Build dataclass `cls` from a mapping, strictly: unknown keys and wrong types raise StudyError.

    `where` is the dotted path of the mapping in the user's file, used in messages (e.g. "train").
    Nested dataclass fields are built recursively. ValueErrors from validation become StudyErrors.
    """
    prefix = f"{where}." if where else ""
    if not isinstance(mapping, dict):
        raise StudyError(f"{where or 'the document'} must be a mapping of keys to values, got {mapping!r}.")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise StudyError(f"{prefix}{unknown[0]} is not a known key: expected one of {', '.join(sorted(fields))}.")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in mapping.items():
        kwargs[name] = coerce(hints[name], value, f"{prefix}{name}")
    try:
        return cls(**kwargs)
    except StudyError:
        raise
    except (ValueError, TypeError) as exc:
        raise StudyError(f"{where or cls.__name__}: {exc}") from None


def coerce(hint: object, value: object, path: str):
    """Check `value` against a simple type hint; ints are accepted for floats, and a dataclass field takes a
    mapping (built with `from_mapping`) or an instance already built."""
    if dataclasses.is_dataclass(hint):
        return value if isinstance(value, hint) else from_mapping(hint, value, path)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return coerce(option, value, path)
            except StudyError:
                continue
        raise StudyError(f"{path}={value!r} has the wrong type: expected {hint}.")
    if hint is type(None):
        if value is None:
            return None
        raise StudyError(f"{path}={value!r} has the wrong type: expected null.")
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    else:
        return value
    name = getattr(hint, "__name__", str(hint))
    allowed = {"bool": "true or false", "int": "an integer", "float": "a number", "str": "a string"}[name]
    raise StudyError(f"{path}={value!r} has the wrong type: expected {allowed}.")
