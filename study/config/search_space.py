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
from wt_base import ladder as wt_ladder
from wt_base.errors import StudyError
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
    worker interval, as `expand` does not repeat its trials). With a ladder: the sizes each profile starts with."""
    out: dict[str, Unit] = {}
    for point in grid_points(spec):
        unit = _unit(spec, point)
        out.setdefault(unit.key, unit)
    return list(out.values())


def _unit(spec: StudySpec, point: dict) -> Unit:
    trial = make_trial(spec, point, 0)
    return Unit(key=unit_key(spec, trial), label=trial.arch, point=point, name=_unit_name(trial, point))


@dataclass(frozen=True)
class Profile:
    """search.ladder: an arm at one budget (a grid point without its size) whose sizes climb the ladder
    (wt_base.ladder): one unit per rung, of which it starts with `start` and may run those in `reach`."""

    key: str  # its first rung's unit key (stable, and the same for every worker interval of an arm without one)
    name: str  # readable: "standard, seq_len 128, budget_value 1e+11"
    rungs: tuple  # a Unit per rung of the ladder
    start: tuple  # the rungs it starts with (the spec's sizes for it)
    reach: tuple  # the rungs it may run (wt_base.ladder.reach)
    most_added: int  # the most sizes it may add to its start


def profiles(spec: StudySpec) -> list[Profile]:
    """The spec's profiles in grid order (none without search.ladder)."""
    ladder = spec.search.ladder
    if ladder is None:
        return []
    found: dict[str, tuple] = {}  # profile key -> (its grid point without the size, its rung units, start rungs)
    for unit in units(spec):
        base = {name: value for name, value in unit.point.items() if name not in ladder.keys}
        key = _unit(spec, {**base, **ladder.rungs[0]}).key  # the same for every size of one arm and budget
        if key not in found:
            found[key] = (base, tuple(_unit(spec, {**base, **rung}) for rung in ladder.rungs), set())
        found[key][2].add(ladder.index_of(unit.point))
    out = []
    for key, (base, rungs, start) in found.items():
        reach, most = wt_ladder.reach(tuple(sorted(start)), len(rungs), ladder.max_sizes)
        name = _unit_name(make_trial(spec, {**base, **ladder.rungs[0]}, 0), base)
        out.append(Profile(key, name, rungs, tuple(sorted(start)), reach, most))
    return out


def all_units(spec: StudySpec) -> list[Unit]:
    """Every unit the search may run: its start units, then each profile's rungs within its reach."""
    out = {u.key: u for u in units(spec)}
    for profile in profiles(spec):
        for rung in profile.reach:
            out.setdefault(profile.rungs[rung].key, profile.rungs[rung])
    return list(out.values())


def most_units(spec: StudySpec) -> list[Unit]:
    """The units of the search's most costly course: its start units and, per profile, the most sizes it may
    add, taken from the largest rungs within its reach (a size's trials share its profile's budget, so under a
    steps or tokens budget the larger sizes cost the most)."""
    out = {u.key: u for u in units(spec)}
    for profile in profiles(spec):
        added = [r for r in profile.reach if r not in profile.start]
        for rung in sorted(added, reverse=True)[: profile.most_added]:
            out.setdefault(profile.rungs[rung].key, profile.rungs[rung])
    return list(out.values())


def check_ladder(spec: StudySpec) -> None:
    """search.ladder against the spec: every size a rung, the rungs growing in parameters for every profile, and
    max_sizes no fewer than any profile's start."""
    ladder = spec.search.ladder
    if not spec.sizes:
        raise StudyError(
            "search.ladder needs sizes: each arm and budget starts at the sizes listed there (each one a rung), "
            "such as sizes: [{arch: standard, budget_value: 1.0e+11, n_embd: 32, n_layer: 1, n_head: 2}]."
        )
    for i, entry in enumerate(spec.sizes):
        lacking = [name for name in ladder.keys if name not in entry]
        if lacking:
            raise StudyError(
                f"sizes[{i}] lacks {', '.join(lacking)}, which every rung of search.ladder sets: give each size "
                "the rungs' keys."
            )
        if ladder.index_of(entry) is None:
            size = ", ".join(f"{name} {entry[name]}" for name in ladder.keys)
            raise StudyError(f"sizes[{i}] ({size}) is not a rung of search.ladder: expected one of its rungs.")
    for profile in profiles(spec):
        counts = [_non_embedding(spec, unit) for unit in profile.rungs]
        for i in range(1, len(counts)):
            if counts[i] <= counts[i - 1]:
                raise StudyError(
                    f"search.ladder.rungs[{i}] has {counts[i]:,} non-embedding parameters for {profile.name}, "
                    f"not more than rungs[{i - 1}]'s {counts[i - 1]:,}: list the rungs smallest first."
                )
        if ladder.max_sizes and ladder.max_sizes < len(profile.start):
            raise StudyError(
                f"search.ladder.max_sizes={ladder.max_sizes} is below the {len(profile.start)} sizes "
                f"{profile.name} starts with: expected 0 or at least {len(profile.start)}."
            )


def _non_embedding(spec: StudySpec, unit: Unit) -> int:
    from wt_model.flops import count_params

    return count_params(make_trial(spec, unit.point, 0).run.model).non_embedding


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
    """How many trials the search will run at most (every unit's trials_per_unit; with a ladder, each profile's
    start and the most sizes it may add)."""
    return len(most_units(spec)) * trials_per_unit(spec)


def probe_trials(spec: StudySpec, units_: list[Unit] | None = None) -> list[Trial]:
    """One trial per unit (default: every unit the search may run, all_units) at a stand-in setting (each searched
    axis at the spec's own value), for what does not depend on the setting: the data checks (sequence length,
    passes over the data: a ladder's every reachable size is checked before the study starts) and the dry run's
    table."""
    return [make_trial(spec, unit.point, spec.tune_seeds[0]) for unit in units_ or all_units(spec)]


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
        f"{name} {value:g}" if isinstance(value, float) else f"{name} {value}"  # budget_value 3e+09, not 3000000000.0
        for name, value in point.items()
        if name not in ("arch", "worker_interval")
        and not (AXES[name].section == "model" and not archs.applies(AXES[name].name, model.arch))
    ]
    return ", ".join([arm, *cell])
