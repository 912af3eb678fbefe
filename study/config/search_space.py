"""The trials of a search study (search.algorithm random, tpe or bracket), made as it runs.

A search has one *unit* per grid point of the spec: an arm (architecture label, and worker interval where it
applies) in a cell (the other grid axes). Each unit is searched on its own with `search.samples` settings of the
searched axes (a bracket: its start points, then as many as its walk takes, up to its cap), each run on every
tune seed, then its test seeds run at the setting chosen there. A trial of a
search is an ordinary trial (`study.config.space.make_trial` of the grid point plus the setting, and a seed), so
it has the same stable id (`trial_id`: a hash of what changes the math), trial row and status as a grid trial;
only its setting is not known before the study runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from dataclasses import dataclass

from study.config.space import Trial, draw, grid_points, make_trial, math_key
from study.config.spec import StudySpec
from wt_base.fields import AXES, lookup
from wt_model import archs


@dataclass(frozen=True)
class Unit:
    """One search: a grid point (an arm in a cell)."""

    key: str  # stable: a hash of what its trials compute, without their seed and searched settings
    label: str  # the architecture label (spec axis arch)
    point: dict  # axis -> value: the grid point
    name: str  # readable, for the dry run and messages: "worker k=4, seq_len 32"


def units(spec: StudySpec) -> list[Unit]:
    """The spec's units in grid order, one per distinct grid point (the standard model is not repeated per
    worker interval, as `expand` does not repeat its trials)."""
    out: dict[str, Unit] = {}
    for point in grid_points(spec):
        trial = make_trial(spec, point, 0)
        key = unit_key(spec, trial)
        out.setdefault(key, Unit(key=key, label=trial.arch, point=point, name=_unit_name(trial, point)))
    return list(out.values())


def search_trial(spec: StudySpec, unit: Unit, setting: dict, seed: int) -> Trial:
    """The trial of `setting` (searched axis -> value) with training seed `seed` in `unit`."""
    return make_trial(spec, {**unit.point, **setting}, seed)


def setting_of(spec: StudySpec, trial: Trial) -> dict:
    """The searched axes' values of a trial (axis -> value, in the spec's order)."""
    stored = trial.to_dict()
    return {name: lookup(stored, AXES[name].path) for name in spec.search.axes}


def setting_key(setting: dict) -> str:
    """A setting as text, equal for equal settings (the key the search and the chosen-setting rule use)."""
    return json.dumps(setting, sort_keys=True)


def unit_key(spec: StudySpec, trial: Trial) -> str:
    """The unit a trial belongs to: a hash of its math key with the seed at 0 and every searched setting at the
    spec's own value, so all trials of one grid point share it, whatever their setting and seed."""
    run = trial.run
    base = {"model": {}, "train": {"seed": 0}}
    for name in spec.search.axes:
        axis = AXES[name]
        base[axis.section][axis.name] = getattr(getattr(spec, axis.section), axis.name)
    run = dataclasses.replace(
        run,
        model=dataclasses.replace(run.model, **base["model"]),
        train=dataclasses.replace(run.train, **base["train"]),
    )
    canonical = json.dumps(math_key(trial.arch, run), sort_keys=True, default=str)
    return hashlib.sha1(canonical.encode()).hexdigest()[:12]


def settings_per_unit(spec: StudySpec) -> tuple[int, int]:
    """(settings a unit starts with, the most it runs): a bracket's start points and its cap, else samples."""
    if spec.search.bracket:
        walk = spec.search.bracket[1]
        return len(walk.start), walk.cap
    return spec.search.samples, spec.search.samples


def trials_per_unit(spec: StudySpec) -> int:
    """The most settings x tune seeds, then the test seeds (fewer when no setting of a unit was eligible, or
    when a bracket ends before its cap)."""
    return settings_per_unit(spec)[1] * len(spec.tune_seeds) + len(spec.seeds)


def planned_trials(spec: StudySpec) -> int:
    """How many trials the search will run at most (every unit's trials_per_unit)."""
    return len(units(spec)) * trials_per_unit(spec)


def probe_trials(spec: StudySpec) -> list[Trial]:
    """One trial per unit at a stand-in setting (each searched axis at the spec's own value), for what does not
    depend on the setting: the data checks (sequence length, passes over the data) and the dry run's table."""
    return [make_trial(spec, unit.point, spec.tune_seeds[0]) for unit in units(spec)]


def random_settings(spec: StudySpec) -> list[dict]:
    """search.algorithm random: `samples` distinct settings drawn from a generator seeded by search.seed, the same
    list for every unit (so both arms try the same settings). Fixed by the spec: a resumed search skips the
    settings it has tried and runs the rest of this list."""
    rng = random.Random(spec.search.seed)
    drawn: dict[str, dict] = {}
    while len(drawn) < spec.search.samples:  # the spec allows at least `samples` distinct settings
        setting = {name: draw(rng, dist) for name, dist in spec.search.axes.items()}
        drawn.setdefault(setting_key(setting), setting)
    return list(drawn.values())


def _unit_name(trial: Trial, point: dict) -> str:
    arm = trial.arch
    if archs.applies("worker_interval", trial.run.model.arch):
        arm += f" k={trial.run.model.worker_interval}"
    model = trial.run.model
    cell = [
        f"{name} {value}"
        for name, value in point.items()
        if name not in ("arch", "worker_interval")
        and not (AXES[name].section == "model" and not archs.applies(AXES[name].name, model.arch))
    ]
    return ", ".join([arm, *cell])
