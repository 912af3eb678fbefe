"""Run and resume studies on Ray Tune.

`plan()` does every check that needs no cluster (spec, trials, storage, data) and writes nothing; `run_study`
and `resume_study` then start or join Ray, check the cluster, record the study (study.yaml + pending trial rows)
and hand the trials to a Tuner whose driver-side callbacks stream results to Parquet.

Layout of a study directory `<storage>/<name>/`:
  study.yaml    the resolved spec (resume reads it; a different spec is refused)
  results/      the Parquet results (study.schema)
  tune/         Ray Tune's experiment state and trial checkpoints
"""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from dataclasses import dataclass

from study.config import DataConfig
from study.errors import StudyError
from study.spec import StudySpec, dump_spec, parse_spec
from study.storage import Location, check_writable, read_text, resolve, write_text_atomic

SPEC_FILE = "study.yaml"
TUNE_DIR = "tune"
TERMINAL_OK = ("completed", "diverged")
# Set to 1 only when every node of the cluster shares this path (e.g. ray.cluster_utils.Cluster in tests, whose
# nodes all run on one machine, or an NFS mount at the same path everywhere): the local-storage check is skipped.
ALLOW_LOCAL_MULTINODE = "WT_ALLOW_LOCAL_STORAGE_MULTINODE"


@dataclass(frozen=True)
class Plan:
    """A validated study, ready to start: its corpus is loaded, nothing has been written yet."""

    spec: StudySpec
    trials: list  # list[study.space.Trial]
    location: Location  # the study directory
    corpus: object  # study.data.Corpus

    @property
    def tune_location(self) -> Location:
        return self.location.join(TUNE_DIR)


def plan(spec: StudySpec, *, for_resume: bool = False) -> Plan:
    """Validate a spec, load its corpus and expand its trials, without touching the cluster or writing anything.

    The vocabulary size comes from the corpus, so the spec's model.vocab_size is set from it.
    """
    from study.data import check_corpus_fits, load_corpus
    from study.space import expand

    location = resolve(spec.storage, "storage").join(spec.name)
    check_writable(location, "storage")
    if not for_resume and read_text(location, SPEC_FILE) is not None:
        raise StudyError(
            f"a study named {spec.name!r} already exists at {location.uri}: finish it with "
            f"`wt-study resume {location.uri}` or choose another --name."
        )
    corpus = load_corpus(spec.data)
    spec = spec.replace(model=dataclasses.replace(spec.model, vocab_size=len(corpus.vocab)))
    trials = expand(spec)
    for seq_len in sorted({t.run.seq_len for t in trials}):
        check_corpus_fits(corpus, seq_len, what="axes.seq_len")
    if spec.budget.kind == "seconds" and 0 < (spec.resources.gpus or 0) < 1:
        warnings.warn(
            f"resources.gpus={spec.resources.gpus} shares GPUs between trials in a wall-clock study: contention "
            "skews every trial's clock; use gpus: 1 for timed comparisons.",
            stacklevel=2,
        )
    return Plan(spec=spec, trials=trials, location=location, corpus=corpus)


def with_overrides(spec: StudySpec, *, storage=None, data=None, name=None) -> StudySpec:
    """Apply CLI overrides, re-validating the result."""
    doc = spec.to_dict()
    if storage is not None:
        doc["storage"] = storage
    if data is not None:
        doc["data"] = dataclasses.asdict(DataConfig(**{**doc["data"], "corpus": _data_path(data)}))
    if name is not None:
        doc["name"] = name
    return parse_spec(doc)


def _data_path(data: str) -> str:
    """A local file becomes an absolute path (the driver reads it; trials get the tokens from Ray)."""
    return os.path.abspath(os.path.expanduser(data)) if os.path.sep in data or os.path.exists(data) else data


# ---------------------------------------------------------------- Ray


def start_ray(address: str | None, temp_dir: str | None) -> bool:
    """Start Ray in-process (address None) or join a cluster. Returns True when this process started Ray."""
    import ray

    if ray.is_initialized():
        return False
    kwargs = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    temp_dir = temp_dir or os.environ.get("WT_RAY_TMPDIR")
    if address is None:
        if temp_dir:
            kwargs["_temp_dir"] = os.path.abspath(temp_dir)
        ray.init(**kwargs)
        return True
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise StudyError(f"--address {address!r}: cannot join a Ray cluster there: {exc}") from None
    return False


def training_bytes(trial) -> int:
    """A lower bound on a trial's training memory: fp32 weights, gradients and AdamW moments, plus activations."""
    from wt_model.flops import count_params

    m, batch = trial.run.model, trial.run.train.batch_size
    activations = 4 * batch * m.block_size * (m.n_layer * (6 * m.n_embd + m.ffn_hidden) + m.vocab_size)
    return 16 * count_params(m).total + activations


def check_memory(plan_: Plan, available_bytes: float, where: str) -> None:
    """Refuse trials that cannot fit before anything is allocated (e.g. n_embd 10^6)."""
    biggest = max(plan_.trials, key=training_bytes)
    need = training_bytes(biggest)
    if need > available_bytes:
        m = biggest.run.model
        raise StudyError(
            f"trial {biggest.trial_id} (n_embd={m.n_embd}, n_layer={m.n_layer}, seq_len={m.block_size}, "
            f"batch_size={biggest.run.train.batch_size}) needs at least {need / 2**30:.1f} GiB to train, more than "
            f"{where} has ({available_bytes / 2**30:.1f} GiB): make the model or batch smaller."
        )


def with_resolved_gpus(plan_: Plan, available_gpus: float) -> Plan:
    """The plan with `resources.gpus: null` (auto) resolved for the GPUs at hand; study.yaml records the result."""
    resources = plan_.spec.resources.with_gpus_for(available_gpus)
    return dataclasses.replace(plan_, spec=plan_.spec.replace(resources=resources))


def check_local_resources(plan_: Plan) -> None:
    """Before starting Ray on this machine: one trial must fit in its cores, GPUs and memory."""
    import torch

    spec = plan_.spec
    cpus, gpus = os.cpu_count() or 1, torch.cuda.device_count()
    if spec.resources.cpus > cpus or spec.resources.gpus > gpus:
        raise StudyError(
            f"resources (cpus={spec.resources.cpus:g}, gpus={spec.resources.gpus:g}) per trial exceed this machine "
            f"({cpus} CPUs, {gpus} GPUs): lower them, or join a cluster with --address."
        )
    if spec.resources.gpus > 0:
        memory = torch.cuda.get_device_properties(0).total_memory
        check_memory(plan_, memory, "this machine's GPU")
    else:
        check_memory(plan_, os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "this machine")


def check_cluster(plan_: Plan) -> None:
    """Refuse trials no node can hold, and local storage on a multi-node cluster, before anything starts."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    res = plan_.spec.resources
    fits = [n for n in nodes if n["Resources"].get("CPU", 0) >= res.cpus and n["Resources"].get("GPU", 0) >= res.gpus]
    if not fits:
        most_cpu = max((n["Resources"].get("CPU", 0) for n in nodes), default=0)
        most_gpu = max((n["Resources"].get("GPU", 0) for n in nodes), default=0)
        raise StudyError(
            f"resources (cpus={res.cpus:g}, gpus={res.gpus:g}) per trial do not fit any node of this cluster "
            f"(largest: {most_cpu:g} CPUs, {most_gpu:g} GPUs): lower resources or add nodes."
        )
    check_memory(plan_, max(n["Resources"].get("memory", 0) for n in fits), "the largest node")
    if len(nodes) > 1 and plan_.location.is_local and os.environ.get(ALLOW_LOCAL_MULTINODE) != "1":
        raise StudyError(
            f"storage={plan_.spec.storage!r} is a local path but the cluster has {len(nodes)} nodes: trials on "
            "other nodes could not write their checkpoints there; use shared storage such as s3://bucket/prefix."
        )


# ---------------------------------------------------------------- Tune


def _tuner(plan_: Plan, *, restore: bool, print_fn):
    from ray import tune

    from study.callbacks import ProgressCallback, ResultsCallback
    from study.trial import trainable

    spec = plan_.spec
    fn = tune.with_resources(
        tune.with_parameters(trainable, corpus=plan_.corpus, cpus=spec.resources.cpus, gpus=spec.resources.gpus),
        {"cpu": spec.resources.cpus, "gpu": spec.resources.gpus},
    )
    tune_loc = plan_.tune_location
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "5")  # keep Tune's own experiment state fresh
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")  # checkpoint-only reports have no loss
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: Tune prints nothing, our callback reports
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if restore:
        return tune.Tuner.restore(
            tune_loc.path,
            trainable=fn,
            resume_unfinished=True,
            resume_errored=True,
            storage_filesystem=tune_loc.fs,
        )
    run_config = tune.RunConfig(
        name=TUNE_DIR,
        storage_path=plan_.location.path,
        storage_filesystem=plan_.location.fs,
        callbacks=[
            ResultsCallback(plan_.location.uri, spec.name),
            ProgressCallback(total=len(plan_.trials), print_fn=print_fn),
        ],
        failure_config=tune.FailureConfig(max_failures=spec.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=3),
        verbose=0,
    )
    tune_config = tune.TuneConfig(
        max_concurrent_trials=spec.max_concurrent or None,
        scheduler=_scheduler(spec),
        trial_name_creator=_trial_name,
        trial_dirname_creator=_trial_name,
    )
    return tune.Tuner(
        fn,
        param_space={"trial": tune.grid_search([t.to_dict() for t in plan_.trials])},
        tune_config=tune_config,
        run_config=run_config,
    )


def _trial_name(trial) -> str:
    return trial.config["trial"]["trial_id"]


def _scheduler(spec: StudySpec):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if spec.scheduler.kind == "fifo":
        return FIFOScheduler()
    time_attr = {"seconds": "train_time_s", "steps": "step", "tokens": "tokens", "flops": "flops"}[spec.budget.kind]
    return ASHAScheduler(
        time_attr=time_attr,
        metric=spec.scheduler.metric,
        mode="min",
        max_t=spec.budget.value,
        grace_period=spec.scheduler.grace_period_s,
        reduction_factor=spec.scheduler.reduction_factor,
    )


def _record_study(plan_: Plan) -> None:
    """study.yaml and a pending row per trial, written once the study is certain to start."""
    from study.results import ParquetSink
    from study.trial_rows import pending_row

    write_text_atomic(plan_.location, SPEC_FILE, dump_spec(plan_.spec))
    sink = ParquetSink(plan_.location, plan_.spec.name)
    sink.load_existing()
    for trial in plan_.trials:
        if sink.trial_row(trial.trial_id) is None:
            sink.update_trial(trial.trial_id, **pending_row(trial))
    sink.flush()


def _execute(plan_: Plan, *, restore: bool, print_fn) -> int:
    tuner = _tuner(plan_, restore=restore, print_fn=print_fn)
    try:
        tuner.fit()
    except KeyboardInterrupt:
        print_fn(f"Interrupted. Finish the study with: wt-study resume {plan_.location.uri}")
        return 130
    return _summarise(plan_, print_fn)


def trial_statuses(plan_: Plan) -> list[str]:
    """Each trial's status as the results say now ("pending" for a trial with no row yet)."""
    from study.results import ParquetSink

    sink = ParquetSink(plan_.location, plan_.spec.name)
    sink.load_existing()
    return [(sink.trial_row(t.trial_id) or {}).get("status", "pending") for t in plan_.trials]


def _summarise(plan_: Plan, print_fn) -> int:
    statuses = trial_statuses(plan_)
    counts = {s: statuses.count(s) for s in sorted(set(statuses))}
    print_fn("Trials: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    unfinished = [s for s in statuses if s not in TERMINAL_OK]
    if unfinished:
        print_fn(f"Not finished. Resume with: wt-study resume {plan_.location.uri}")
    print_fn(f"Results: {plan_.location.uri}   Analyze with: wt-study analyze {plan_.location.uri}")
    return 0 if not [s for s in statuses if s in ("pending", "running")] else 1


def _start(plan_: Plan, address, ray_temp_dir) -> tuple[Plan, bool]:
    """Resolve auto GPUs, check the machine (local) or cluster, start or join Ray. Nothing is written."""
    if address is None:
        import torch

        plan_ = with_resolved_gpus(plan_, torch.cuda.device_count())
        check_local_resources(plan_)
    started = start_ray(address, ray_temp_dir)
    try:
        import ray

        plan_ = with_resolved_gpus(plan_, ray.cluster_resources().get("GPU", 0))
        check_cluster(plan_)
    except BaseException:
        _stop_ray(started)
        raise
    return plan_, started


def run_study(plan_: Plan, *, address=None, ray_temp_dir=None, print_fn=print) -> int:
    plan_, started = _start(plan_, address, ray_temp_dir)
    try:
        _record_study(plan_)
        print_fn(f"Study {plan_.spec.name}: {len(plan_.trials)} trials -> {plan_.location.uri}")
        return _execute(plan_, restore=False, print_fn=print_fn)
    finally:
        _stop_ray(started)


def load_saved_spec(path: str) -> tuple[StudySpec, Location]:
    from study.spec import parse_yaml

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


def resume_study(path: str, *, spec_file=None, address=None, ray_temp_dir=None, print_fn=print) -> int:
    from study.spec import load_spec

    spec, location = load_saved_spec(path)
    if spec_file is not None:
        given = load_spec(spec_file)
        given = given.replace(
            storage=spec.storage,
            model=dataclasses.replace(given.model, vocab_size=spec.model.vocab_size),  # set from the corpus
            resources=given.resources.with_gpus_for(spec.resources.gpus or 0),  # auto, resolved as it was
        )
        if dump_spec(given) != dump_spec(spec):
            raise StudyError(
                f"--spec {spec_file!r} differs from the spec this study was started with ({location.uri}/"
                f"{SPEC_FILE}): resume without --spec, or run the new spec as a new study."
            )
    plan_ = plan(spec, for_resume=True)
    statuses = trial_statuses(plan_)
    if all(s in TERMINAL_OK for s in statuses):
        print_fn(f"Study {spec.name} is already finished ({len(statuses)} trials): nothing to resume.")
        return 0
    plan_, started = _start(plan_, address, ray_temp_dir)
    try:
        from ray import tune

        restore = tune.Tuner.can_restore(plan_.tune_location.path, storage_filesystem=plan_.tune_location.fs)
        _record_study(plan_)
        done = sum(s in TERMINAL_OK for s in statuses)
        print_fn(f"Resuming study {spec.name}: {done}/{len(statuses)} trials finished -> {location.uri}")
        return _execute(plan_, restore=restore, print_fn=print_fn)
    finally:
        _stop_ray(started)


def _stop_ray(started: bool) -> None:
    if started:
        import ray

        ray.shutdown()
