"""Expansion of a study spec into trials: grid x random samples x seeds, deduplicated, with stable ids.

Axes that do not apply to an architecture (wt_model.archs: the standard model has no worker interval) are
dropped for it, so it is not repeated per interval, and such fields keep their defaults in its config.

A trial's id hashes only what changes the math (`math_key`: the run config without the execution settings of
wt_base.fields.EXECUTION_PATHS, without fields its architecture does not read, and without values equal to
their defaults), so a release that adds a config field with a default leaves every id as it was, and two
trials that would compute the same collapse into one. Ids are stored with a study (its trial rows): resume runs
that stored list and never re-derives ids, so even a change of this rule leaves running studies alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import random
from dataclasses import dataclass

from study.config.run import RunConfig
from study.config.spec import StudySpec
from wt_base.budgets import BUDGET_KINDS
from wt_base.errors import StudyError
from wt_base.fields import AXES, EXECUTION_PATHS
from wt_model import archs
from wt_model.config import ModelConfig, label_settings

# How trial ids are made; recorded in every trial row (trials column id_scheme; null in rows written before it):
#   1 (releases up to 2c32965): sha1 of the whole RunConfig, so any new config field changed every id;
#   2: sha1 of `math_key` (what changes the math, defaults left out).
# Studies keep the ids they were started with (resume reads them from the trial rows), so a new scheme needs no
# rewrite of old studies: tests/upgrade pins both the stored ids of a scheme-1 study and scheme-2 ids.
ID_SCHEME = 2


@dataclass(frozen=True)
class Trial:
    """One trial: the axis label of its architecture, its run configuration and its stable id."""

    trial_id: str
    arch: str  # axis label: standard, worker or worker-random-phase
    run: RunConfig

    def to_dict(self) -> dict:
        return {"trial_id": self.trial_id, "arch": self.arch, "run": self.run.to_dict()}

    @classmethod
    def from_dict(cls, mapping: dict) -> Trial:
        return cls(trial_id=mapping["trial_id"], arch=mapping["arch"], run=RunConfig.from_dict(mapping["run"]))


def expand(spec: StudySpec) -> list[Trial]:
    """All trials of a spec, in a stable order, each validated: the tuning seeds' trials first (they choose the
    tuned settings), then the test seeds'. A search study (search.algorithm random or tpe) knows none up front:
    its trials are made as it runs (study.config.search_space, study.tune.search_state), so this is empty."""
    if spec.search.is_search:
        return []
    trials: dict[str, Trial] = {}
    points = grid_points(spec)
    for seeds in (spec.tune_seeds, spec.seeds):
        for point in points:
            for seed in seeds:
                trial = make_trial(spec, point, seed)
                trials.setdefault(trial.trial_id, trial)
    return list(trials.values())


def seed_role(spec: StudySpec, seed: int) -> str:
    """ "tune" for a seed that only chooses tuned settings (spec.tune_seeds), "test" for one behind verdicts."""
    return "tune" if seed in spec.tune_seeds else "test"


def grid_points(spec: StudySpec) -> list[dict]:
    """Grid points (dicts of axis -> value), each combined with every random sample."""
    names = list(spec.axes)
    grid = [dict(zip(names, values, strict=True)) for values in itertools.product(*spec.axes.values())]
    if spec.sizes:
        grid = [{**g, **size} for g in grid for size in spec.sizes]
    if spec.sample.num_samples == 0:
        return grid
    rng = random.Random(spec.sample.seed)
    samples = [
        {name: draw(rng, dist) for name, dist in spec.sample.axes.items()} for _ in range(spec.sample.num_samples)
    ]
    return [{**g, **s} for g in grid for s in samples]


def draw(rng: random.Random, dist) -> object:
    """One value of a Distribution (study.config.sampling) from `rng`."""
    if dist.distribution == "choice":
        return dist.values[rng.randrange(len(dist.values))]
    if dist.distribution == "uniform":
        return rng.uniform(dist.low, dist.high)
    return math.exp(rng.uniform(math.log(dist.low), math.log(dist.high)))


def make_trial(spec: StudySpec, point: dict, seed: int) -> Trial:
    """The trial of grid point `point` (axis -> value, sampled settings included) and training seed `seed`."""
    label = point.get("arch", spec.model.arch)
    arch = archs.of_label(label)
    defaults = ModelConfig()
    model_changes = label_settings(label)
    changes: dict = {"model": model_changes, "train": {"seed": seed}, "budget": {}}
    for name, value in point.items():
        axis = AXES[name]
        if name == "arch" or (axis.section == "model" and not archs.applies(axis.name, arch.name)):
            continue
        if axis.section == "model" and axis.name in dict(arch.settings):
            fixed = dict(arch.settings)[axis.name]
            raise StudyError(
                f"axis {name}={value!r} cannot apply to arch {label!r}, which sets {axis.name}={fixed!r} itself "
                f"(wt_model.archs): drop {label!r} from the arch axis or the {name} axis."
            )
        changes[axis.section][axis.name] = axis.kind(value) if axis.kind is not str else value
    for name in archs.ARM_FIELDS:  # fields this architecture does not read keep their defaults
        if not archs.applies(name, arch.name):
            model_changes[name] = getattr(defaults, name)
    where = ", ".join(f"{k}={v}" for k, v in point.items()) or "the defaults"
    try:
        model = dataclasses.replace(spec.model, **model_changes)
        train = dataclasses.replace(spec.train, **changes["train"])
        budget = dataclasses.replace(spec.budget, **changes["budget"])
    except ValueError as exc:
        raise StudyError(f"trial with {where}: {exc}") from None
    if label in spec.budget_by_arch:
        budget = dataclasses.replace(budget, value=spec.budget_by_arch[label])
    run = RunConfig(
        model=model,
        train=train,
        budget=budget,
        eval=spec.eval,
        data=spec.data,
        checkpoint_every_s=spec.checkpoint_every_s,
    )
    return Trial(trial_id=trial_id(label, run), arch=label, run=run)


def math_key(label: str, run: RunConfig) -> dict:
    """What a trial computes, as a nested mapping: the run config without execution settings (EXECUTION_PATHS),
    without model fields its architecture does not read, and without values equal to their defaults, plus the
    arch label. Two trials with equal keys compute the same; a new config field with a default changes no key."""
    arch = archs.of_label(label)
    ignored = set(EXECUTION_PATHS) | {
        f"run.model.{name}" for name in archs.ARM_FIELDS if not archs.applies(name, arch.name)
    }

    def prune(node: dict, default: dict, path: str) -> dict:
        out = {}
        for name, value in node.items():
            where = f"{path}.{name}"
            if where in ignored:
                continue
            if isinstance(value, dict):
                value = prune(value, default.get(name, {}), where)
                if value:
                    out[name] = value
            elif name not in default or value != default[name]:
                out[name] = value
        return out

    return {"arch": label, "run": prune(run.to_dict(), RunConfig().to_dict(), "run")}


def trial_id(label: str, run: RunConfig) -> str:
    """A readable, stable id: arch, interval, sequence length, width, seed and a hash of `math_key`."""
    canonical = json.dumps(math_key(label, run), sort_keys=True, default=str)
    digest = hashlib.sha1(canonical.encode()).hexdigest()[:8]
    m: ModelConfig = run.model
    interval = f"k{m.worker_interval}_" if archs.applies("worker_interval", m.arch) else ""
    return f"{label}_{interval}T{m.block_size}_d{m.n_embd}_s{run.train.seed}_{digest}"


def total_budget(spec: StudySpec, trials: list[Trial], concurrency: int | None = None) -> dict:
    """Trials, budgets per trial and the study's length in the budget's unit: the trials' budgets spread over
    `concurrency` slots (default: max_concurrent, else every trial at once), longest first, each to the least
    loaded slot (trials x budget / concurrency when every trial has the same budget)."""
    budgets = sorted((t.run.budget.value for t in trials), reverse=True)
    if concurrency is None:
        concurrency = spec.max_concurrent or len(trials)
    concurrency = max(1, min(concurrency, len(trials)))
    slots = [0.0] * concurrency
    for value in budgets:
        slots[slots.index(min(slots))] += value
    out = {
        "trials": len(trials),
        "budget_kind": spec.budget.kind,
        "budget_values": sorted(set(budgets)),
        "concurrency": concurrency,
        "study_length": max(slots),
    }
    if BUDGET_KINDS[spec.budget.kind].measured:
        gpus = spec.resources.gpus
        out["gpu_hours"] = None if gpus is None else sum(budgets) * gpus / 3600
        out["cpu_hours"] = sum(budgets) * spec.resources.cpus / 3600
    return out
