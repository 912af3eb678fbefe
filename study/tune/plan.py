"""A study's plan: every check that needs no cluster (spec, storage, data, trials), made before anything is
written, and the saved spec of an existing study.

The layout of a study directory is wt_base.layout's.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass

from study.config.run import DataConfig
from study.config.spec import StudySpec
from study.config.specfile import parse_spec
from wt_base.budgets import BUDGET_KINDS
from wt_base.errors import StudyError
from wt_base.layout import SPEC_FILE, TUNE_DIR
from wt_base.storage import Location, check_location, check_writable, read_text, resolve


@dataclass(frozen=True)
class Plan:
    """A validated study, ready to start: its corpus is loaded, nothing has been written yet."""

    spec: StudySpec
    # list[study.config.space.Trial]: the spec's expansion, or the stored list of a started study (a search study:
    # none up front, its started trials on resume; study.config.search_space)
    trials: list
    location: Location  # the study directory
    corpus: object  # study.train.corpora.MappedCorpus (pickles as its folder: Ray ships no tokens)
    note: str = ""  # resume: how this version's expansion of the spec differs from the stored trials ("" if not)

    @property
    def tune_location(self) -> Location:
        return self.location.join(TUNE_DIR)

    @property
    def shapes(self) -> list:
        """Trials standing for every shape the study runs, for the resource checks: its trials, or a search
        study's one per arm and cell (a setting changes no shape: study.config.sampling.SEARCHABLE)."""
        if not self.spec.search.is_search:
            return self.trials
        from study.config.search_space import probe_trials

        return probe_trials(self.spec)


def plan(spec: StudySpec, *, for_resume: bool = False, dry_run: bool = False) -> Plan:
    """Validate a spec, load its corpus and expand its trials, without touching the cluster or writing anything.

    The vocabulary size comes from the corpus, so the spec's model.vocab_size is set from it (for a dry run, a
    named corpus not yet downloaded is planned with its published size and vocabulary). For a resume, the
    trials are the study's stored list (its trial rows, written when it started), whatever this version's
    expansion of the spec would give: a study is its trial list, so an upgrade never changes what it runs. A
    search study (search.algorithm random, tpe or bracket) has no trial before it runs; its data checks take one
    trial per arm and cell, which need what every setting of it needs (with search.ladder, every size a profile
    may reach, so a size the ladder adds later never exceeds max_epochs or the corpus).
    """
    from study.config.regime import check_max_epochs
    from study.config.search_space import probe_trials
    from study.config.space import expand
    from study.train.corpora import corpus_outline, load_corpus
    from study.train.data import check_corpus_fits

    location = resolve(spec.storage, "storage").join(spec.name)
    check_writable(location, "storage")
    if not for_resume and read_text(location, SPEC_FILE) is not None:
        raise StudyError(
            f"a study named {spec.name!r} already exists at {location.uri}: finish it with "
            f"`wt-study resume {location.uri}` or choose another --name."
        )
    corpus = corpus_outline(spec.data) if dry_run else load_corpus(spec.data)
    spec = spec.replace(model=dataclasses.replace(spec.model, vocab_size=len(corpus.vocab)))
    trials, note = expand(spec), ""  # a search study's trials are made as it runs: none up front
    stored = stored_trials(location, spec.name) if for_resume else []
    if stored:
        trials, note = stored, "" if spec.search.is_search else expansion_note(stored, trials)
    checked = probe_trials(spec) if spec.search.is_search else trials  # one per arm and cell (and reachable size)
    for seq_len in sorted({t.run.seq_len for t in checked}):
        check_corpus_fits(corpus, seq_len, what="axes.seq_len")
    if not stored:  # a started study's trials were accepted when it started
        check_max_epochs(checked, len(corpus.train), spec.max_epochs)
    check_shared_device(spec)
    if not dry_run:
        from study.tune.trackers import check_tracker_packages

        check_search_package(spec)
        check_tracker_packages(spec, location)
    return Plan(spec=spec, trials=trials, location=location, corpus=corpus, note=note)


def stored_trials(location: Location, name: str) -> list:
    """A started study's trial list, from its trial rows (`config_json`, written before any trial ran), with the
    ids it was started with. Each config is read strictly by this version's dataclasses, so fields added since
    take their defaults. Tuning seeds' trials first, as `expand` orders them."""
    from study.config.space import Trial
    from study.results.sink import ParquetSink

    sink = ParquetSink(location, name)
    sink.load_existing()
    rows = sorted(sink.trial_rows(), key=lambda r: (r.get("seed_role") != "tune", r["trial_id"]))
    trials = []
    for row in rows:
        try:
            trials.append(Trial.from_dict(json.loads(row["config_json"])))
        except (TypeError, ValueError, KeyError) as exc:  # StudyError is a ValueError
            raise StudyError(
                f"trial {row['trial_id']} of {location.uri} has a stored config this version cannot read: {exc}"
            ) from None
    return trials


def expansion_note(stored: list, expanded: list) -> str:
    """One sentence when this version would expand the spec into other trials than the study started with
    (compared by what they compute, `math_key`, not by id), else ""."""
    from study.config.space import math_key

    def keys(trials) -> set:
        return {json.dumps(math_key(t.arch, t.run), sort_keys=True, default=str) for t in trials}

    before, now = keys(stored), keys(expanded)
    if before == now:
        return ""
    return (
        f"this version expands {SPEC_FILE} to {len(now)} trials ({len(now - before)} not among the study's, "
        f"{len(before - now)} of the study's not among them); resuming the {len(stored)} trials the study started "
        "with, unchanged."
    )


def check_search_package(spec: StudySpec) -> None:
    """search.algorithm tpe runs Optuna's TPE: without Optuna, one sentence naming the extra that installs it."""
    import importlib.util

    if spec.search.algorithm == "tpe" and importlib.util.find_spec("optuna") is None:
        raise StudyError(
            "search.algorithm=tpe needs Optuna, which is not installed: pip install 'wt-study[search]' "
            "(or pip install 'optuna>=3')."
        )


def check_shared_device(spec: StudySpec) -> None:
    """A seconds budget measures training time, so trials must not share a device: with a fraction of a GPU (or
    of a core: a trial runs at least one thread) the clock would measure contention. Ray packs trials by their
    reserved resources, so whole GPUs and cores per trial never oversubscribe a node. Steps, tokens and FLOPs
    budgets may pack many small trials per device; `allow_shared_device: true` permits it for seconds too (the
    trial rows record it and the report says so)."""
    if not BUDGET_KINDS[spec.budget.kind].measured or spec.allow_shared_device:
        return
    gpus, cpus = spec.resources.gpus or 0, spec.resources.cpus
    if gpus % 1:
        raise StudyError(
            f"resources.gpus={gpus:g} shares a GPU between trials of a seconds budget, so the clock would measure "
            "contention: use whole GPUs, a steps, tokens or flops budget, or allow_shared_device: true."
        )
    if cpus < 1:
        raise StudyError(
            f"resources.cpus={cpus:g} shares a core between trials of a seconds budget, so the clock would measure "
            "contention: use cpus >= 1, a steps, tokens or flops budget, or allow_shared_device: true."
        )


def with_overrides(spec: StudySpec, *, storage=None, data=None, name=None) -> StudySpec:
    """Apply CLI overrides, re-validating the result."""
    doc = spec.to_dict()
    if storage is not None:
        check_location(storage, "--storage")
        doc["storage"] = storage
    if data is not None:
        doc["data"] = dataclasses.asdict(DataConfig(**{**doc["data"], "corpus": _data_path(data)}))
    if name is not None:
        doc["name"] = name
    return parse_spec(doc)


def _data_path(data: str) -> str:
    """A local file becomes an absolute path (the driver reads it; trials get the tokens from Ray)."""
    return os.path.abspath(os.path.expanduser(data)) if os.path.sep in data or os.path.exists(data) else data


def load_saved_spec(path: str) -> tuple[StudySpec, Location]:
    from wt_base.yamlio import parse_yaml

    location = resolve(path, "PATH")
    text = read_text(location, SPEC_FILE)
    if text is None:
        raise StudyError(f"{path!r} is not a study directory: it has no {SPEC_FILE} (made by `wt-study run`).")
    try:
        spec = parse_spec(parse_yaml(text, f"{path!r}/{SPEC_FILE}"))
    except StudyError as exc:
        raise StudyError(f"{path!r} has a damaged {SPEC_FILE}: {exc}") from None
    # The study may have moved (e.g. copied to a bucket): its storage is where it is now.
    return spec.replace(storage=location.parent.uri), location
