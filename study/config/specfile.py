"""Spec files: YAML <-> `StudySpec`. Reading turns the YAML mapping into the dataclasses (types only: the
dataclasses validate the values, see `study.config.spec`); presets are spec files shipped in the package."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from study.config.run import coerce, from_mapping
from study.config.sampling import Bracket, Ladder
from study.config.search_space import check_ladder
from study.config.spec import AXES, PRESET_DIR, Distribution, SampleSpec, SearchSpec, StudySpec
from wt_base.errors import StudyError, is_int, require
from wt_base.yamlio import dump_yaml, load_yaml, parse_yaml

EXAMPLE_DISTRIBUTION = "{distribution: loguniform, low: 1e-4, high: 1e-2}"


def parse_spec(document: object) -> StudySpec:
    """Build the spec from a parsed YAML document. The sections whose YAML form is not their dataclass's own
    (axes, sample, search, seeds, tune_seeds, budget_by_arch, sizes, loggers) are converted first; `from_mapping` then
    rejects unknown keys and wrong types, `StudySpec.__post_init__` (with its parts') checks the values, and a
    ladder is checked against the sizes (study.config.search_space.check_ladder)."""
    if not isinstance(document, dict):
        raise StudyError(f"a study spec must be a mapping of keys to values, got {type(document).__name__}.")
    doc = dict(document)
    for key, convert in _YAML_FORMS.items():
        if key in doc:
            doc[key] = convert(doc[key])
    spec = from_mapping(StudySpec, doc, "")
    if spec.search.ladder is not None:  # against the sizes the spec expands to: after the spec checked itself
        check_ladder(spec)
    return spec


def _axes_from_yaml(mapping: object) -> dict:
    """axis name -> tuple of values; a single value is a one-value axis; ints are numbers on float axes."""
    if not isinstance(mapping, dict):
        raise StudyError(f"axes must be a mapping of axis name to a list of values, got {mapping!r}.")
    return {
        name: tuple(_axis_value_from_yaml(name, v) for v in (values if isinstance(values, list) else [values]))
        for name, values in mapping.items()
    }


def _axis_value_from_yaml(name: str, value: object) -> object:
    if name in AXES and AXES[name].kind is float:
        try:
            return coerce(float, value, f"axes.{name}")
        except StudyError:
            return value  # the axis check names the value and the type
    return value


def _sample_from_yaml(mapping: object) -> SampleSpec:
    """`sample:` holds num_samples, seed and one mapping per sampled axis, side by side."""
    settings, axes = _sampled_from_yaml("sample", mapping, ("num_samples", "seed"))
    return SampleSpec(**settings, axes=axes)


def _search_from_yaml(mapping: object) -> SearchSpec:
    """`search:` holds algorithm, samples, seed, metric, startup_samples, ladder and one mapping per sampled
    axis."""
    keys = ("algorithm", "samples", "seed", "metric", "startup_samples", "ladder")
    walked = isinstance(mapping, dict) and mapping.get("algorithm") == "bracket"
    settings, axes = _sampled_from_yaml("search", mapping, keys, Bracket if walked else Distribution)
    if "ladder" in settings:
        settings["ladder"] = _ladder_from_yaml(settings["ladder"])
    return SearchSpec(**settings, axes=axes)


def _ladder_from_yaml(raw: object) -> Ladder:
    """`search.ladder:` rungs (a list of size mappings, as `sizes` entries), max_sizes and margin."""
    if not isinstance(raw, dict):
        raise StudyError(f"search.ladder must be a mapping such as {{rungs: [...], max_sizes: 7}}, got {raw!r}.")
    rungs = raw.get("rungs", ())
    if isinstance(rungs, list):
        rungs = tuple(
            {name: _axis_value_from_yaml(name, v) for name, v in rung.items()} if isinstance(rung, dict) else rung
            for rung in rungs
        )
    return from_mapping(Ladder, {**raw, "rungs": rungs}, "search.ladder")


def _sampled_from_yaml(section: str, mapping: object, keys: tuple, kind: type = None) -> tuple[dict, dict]:
    """The section's own keys (`keys`) and its sampled axes (every other key: a mapping of `kind` each, a
    Distribution unless said: a bracket search's axis is a Bracket)."""
    kind = kind or Distribution
    if not isinstance(mapping, dict):
        raise StudyError(f"{section} must be a mapping, got {mapping!r}.")
    mapping = dict(mapping)
    settings = {key: mapping.pop(key) for key in keys if key in mapping}
    axes = {}
    for name, raw in mapping.items():
        path = f"{section}.{name}"
        if not isinstance(raw, dict):
            example = "{start: [1.0e-3, 2.0e-3, 4.0e-3]}" if kind is Bracket else EXAMPLE_DISTRIBUTION
            raise StudyError(f"{path} must be a mapping such as {example}.")
        if kind is Bracket:
            start = raw.get("start", ())
            if isinstance(start, list):  # YAML's list; ints are numbers here
                start = tuple(_axis_value_from_yaml(name, v) for v in start)
            axes[name] = from_mapping(Bracket, {**raw, "start": start}, path)
            continue
        dist = from_mapping(Distribution, raw, path)
        if dist.distribution == "choice":  # only the values count
            values = dist.values if isinstance(dist.values, (list, tuple)) else (dist.values,)
            dist = Distribution("choice", values=tuple(_axis_value_from_yaml(name, v) for v in values))
        axes[name] = dist
    return settings, axes


def _seeds_from_yaml(raw: object) -> tuple:
    """A count n (seeds 0..n-1) or a list of seeds."""
    if is_int(raw):
        require(raw >= 1, "seeds", raw, "a count >= 1 or a list of integer seeds")
        return tuple(range(raw))
    require(isinstance(raw, list) and len(raw) > 0, "seeds", raw, "a count >= 1 or a non-empty list of integer seeds")
    return tuple(raw)


def _tune_seeds_from_yaml(raw: object) -> tuple:
    require(isinstance(raw, list), "tune_seeds", raw, "a list of integer seeds such as [100, 101]")
    return tuple(raw)


def _budget_by_arch_from_yaml(raw: object) -> dict:
    require(isinstance(raw, dict), "budget_by_arch", raw, "a mapping such as {standard: 966}")
    return {label: coerce(float, value, f"budget_by_arch.{label}") for label, value in raw.items()}


def _sizes_from_yaml(raw: object) -> tuple:
    """A list of mappings; float axes take ints (a budget of 1e15 written 1000000000000000)."""
    require(isinstance(raw, list), "sizes", raw, "a list of mappings such as [{n_embd: 64, n_layer: 2}]")
    return tuple(
        {name: _axis_value_from_yaml(name, v) for name, v in entry.items()} if isinstance(entry, dict) else entry
        for entry in raw
    )


def _loggers_from_yaml(raw: object) -> tuple:
    require(isinstance(raw, list), "loggers", raw, "a list of trackers such as [tensorboard, mlflow]")
    return tuple(raw)


_YAML_FORMS = {
    "loggers": _loggers_from_yaml,
    "sizes": _sizes_from_yaml,
    "axes": _axes_from_yaml,
    "sample": _sample_from_yaml,
    "search": _search_from_yaml,
    "seeds": _seeds_from_yaml,
    "tune_seeds": _tune_seeds_from_yaml,
    "budget_by_arch": _budget_by_arch_from_yaml,
}


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
    return dump_yaml(spec.to_dict())
