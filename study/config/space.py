"""Expansion of a study spec into trials: grid x random samples x seeds, deduplicated, with stable ids.

Axes that do not apply to an architecture are dropped for it (the standard model has no worker interval, so it
is not repeated per interval). Each trial's id is a hash of its full run configuration, so the same spec always
gives the same ids (resume relies on this) and two identical configurations collapse into one trial.
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
from study.config.spec import ARCH_LABELS, AXES, WORKER_ONLY_AXES, StudySpec
from wt_base.errors import StudyError
from wt_model.config import ModelConfig

STANDARD_WORKER_INTERVAL = 1  # stored for the standard model, which ignores it, so its ids do not vary


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
    tuned settings), then the test seeds'."""
    trials: dict[str, Trial] = {}
    points = _points(spec)
    for seeds in (spec.tune_seeds, spec.seeds):
        for point in points:
            for seed in seeds:
                trial = _make_trial(spec, point, seed)
                trials.setdefault(trial.trial_id, trial)
    return list(trials.values())


def seed_role(spec: StudySpec, seed: int) -> str:
    """ "tune" for a seed that only chooses tuned settings (spec.tune_seeds), "test" for one behind verdicts."""
    return "tune" if seed in spec.tune_seeds else "test"


def _points(spec: StudySpec) -> list[dict]:
    """Grid points (dicts of axis -> value), each combined with every random sample."""
    names = list(spec.axes)
    grid = [dict(zip(names, values, strict=True)) for values in itertools.product(*spec.axes.values())]
    if spec.sample.num_samples == 0:
        return grid
    rng = random.Random(spec.sample.seed)
    samples = [
        {name: _draw(rng, dist) for name, dist in spec.sample.axes.items()} for _ in range(spec.sample.num_samples)
    ]
    return [{**g, **s} for g in grid for s in samples]


def _draw(rng: random.Random, dist) -> object:
    if dist.distribution == "choice":
        return dist.values[rng.randrange(len(dist.values))]
    if dist.distribution == "uniform":
        return rng.uniform(dist.low, dist.high)
    return math.exp(rng.uniform(math.log(dist.low), math.log(dist.high)))


def _make_trial(spec: StudySpec, point: dict, seed: int) -> Trial:
    label = point.get("arch", "worker" if spec.model.arch == "worker" else "standard")
    arch, random_phase = ARCH_LABELS[label]
    model_changes: dict = {"arch": arch, "random_worker_phase": random_phase}
    train_changes: dict = {"seed": seed}
    for name, value in point.items():
        if name == "arch" or (arch == "standard" and name in WORKER_ONLY_AXES):
            continue
        section, field_name, kind = AXES[name]
        value = kind(value) if kind is not str else value
        (model_changes if section == "model" else train_changes)[field_name] = value
    if arch == "standard":
        model_changes["worker_interval"] = STANDARD_WORKER_INTERVAL
    where = ", ".join(f"{k}={v}" for k, v in point.items()) or "the defaults"
    try:
        model = dataclasses.replace(spec.model, **model_changes)
        train = dataclasses.replace(spec.train, **train_changes)
    except ValueError as exc:
        raise StudyError(f"trial with {where}: {exc}") from None
    budget = spec.budget
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


def trial_id(label: str, run: RunConfig) -> str:
    """A readable, stable id: arch, interval, sequence length, width, seed and a hash of everything."""
    canonical = json.dumps({"arch": label, "run": run.to_dict()}, sort_keys=True, default=str)
    digest = hashlib.sha1(canonical.encode()).hexdigest()[:8]
    m: ModelConfig = run.model
    interval = f"k{m.worker_interval}_" if m.arch == "worker" else ""
    return f"{label}_{interval}T{m.block_size}_d{m.n_embd}_s{run.train.seed}_{digest}"


def total_budget(spec: StudySpec, trials: list[Trial]) -> dict:
    """Trials, budgets per trial and the study's length in the budget's unit: the trials' budgets spread over
    `concurrency` slots, longest first, each to the least loaded slot (trials x budget / concurrency when every
    trial has the same budget)."""
    budgets = sorted((t.run.budget.value for t in trials), reverse=True)
    concurrency = max(1, min(spec.max_concurrent or len(trials), len(trials)))
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
    if spec.budget.kind == "seconds":
        gpus = spec.resources.gpus
        out["gpu_hours"] = None if gpus is None else sum(budgets) * gpus / 3600
        out["cpu_hours"] = sum(budgets) * spec.resources.cpus / 3600
    return out
