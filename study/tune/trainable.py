"""The Ray Tune trainable: a thin wrapper around `study.train.loop.train`.

It turns Tune's config into a `Trial` on its first line, resumes from `ray.tune.get_checkpoint()` with the
budget already used, reports every evaluation record (and checkpoints when due) through `ray.tune.report`, and
ends with a status report (completed or diverged). Only an evaluation's report carries its metrics (`is_eval`):
checkpoint-only and status reports carry the counters (`PROGRESS_FIELDS`), so each evaluation is one result.
The corpus arrives from Ray's object store through `tune.with_parameters`, so worker nodes need no copy of the
text file.

`trainable` is what the runner hands to Tune unless it is given another one: tests wrap it to inject faults
(tests/faults.py), so the product holds no fault hooks.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from study.tune.rebuild import REBUILT_KEY  # Ray-free: pyarrow only
from wt_base.layout import STATE_FILE

META_FILE = "trial.json"


def trainable(config: dict, corpus, cpus: float = 1.0, gpus: float = 0.0) -> None:
    import dataclasses

    from study.config.space import Trial

    trial = Trial.from_dict(config["trial"])
    if gpus == 0 and trial.run.train.device == "auto":
        # A trial that reserved no GPU must not use one it can see: it would share it with timed trials.
        train_cfg = dataclasses.replace(trial.run.train, device="cpu")
        trial = dataclasses.replace(trial, run=dataclasses.replace(trial.run, train=train_cfg))
    if trial.run.train.threads == 0:
        import torch

        from study.config.spec import cpu_threads

        torch.set_num_threads(cpu_threads(cpus))
    run_trial(trial, corpus, rebuilt_from=config.get(REBUILT_KEY))


def _environment(device) -> dict:
    """Where the trial runs: node, accelerators, the device it trains on, versions (recorded in the trial's row)."""
    import ray
    import torch

    from study.train.device import device_name

    context = ray.get_runtime_context()
    gpu_ids = [str(g) for g in ray.get_gpu_ids()]
    return {
        "node_id": context.get_node_id(),
        "gpu_ids": ",".join(gpu_ids),
        "device_name": device_name(device),  # as `wt-study bench` names it in a machine profile
        "torch_version": torch.__version__,
        "ray_version": ray.__version__,
    }


def _resumed(checkpoint) -> tuple[dict, int]:
    """(training state, restarts) from a Tune checkpoint."""
    from study.train.loop import load_state

    with checkpoint.as_directory() as folder:
        state = load_state(Path(folder) / STATE_FILE)
        restarts = json.loads((Path(folder) / META_FILE).read_text())["restarts"] + 1
    return state, restarts


def _from_study(study_uri: str, trial_id: str) -> tuple[dict | None, int]:
    """A rebuilt study's trial (study.tune.rebuild): the newest of its own checkpoints that loads."""
    from ray import tune

    from study.tune.rebuild import checkpoints
    from wt_base.storage import resolve

    study = resolve(study_uri)
    for path in checkpoints(study, trial_id, META_FILE):
        try:
            return _resumed(tune.Checkpoint(path, filesystem=study.fs))
        except (OSError, RuntimeError, ValueError, KeyError, EOFError):
            continue  # cut short by the fault that damaged the study: the one before it
    return None, 0


def run_trial(trial, corpus, rebuilt_from: str | None = None) -> None:
    from ray import tune

    from study.train.compiled import compile_mode
    from study.train.device import execution_settings, resolve_device
    from study.train.loop import save_state, train

    attempt = time.time_ns() // 1000  # identifies this process lifetime of the trial (see study.results.sink)
    checkpoint = tune.get_checkpoint()
    state, restarts = None, 0
    if checkpoint is not None:
        state, restarts = _resumed(checkpoint)
    elif rebuilt_from:
        state, restarts = _from_study(rebuilt_from, trial.trial_id)
    resumed_from_step = int(state["step"]) if state is not None else 0
    device = resolve_device(trial.run.train.device)
    base = {
        "attempt": attempt,
        "resumed_from_step": resumed_from_step,
        "restarts": restarts,
        **_environment(device),
        **execution_settings(trial.run, device, compile_mode(trial.run.train.compile, device)),
    }

    def on_report(record, checkpoint_state) -> None:
        metrics = report_metrics(record, checkpoint_state, base)
        if checkpoint_state is None:
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory(prefix="wt-ckpt-") as folder:
            save_state(checkpoint_state, Path(folder) / STATE_FILE)
            meta = {"restarts": restarts, "trial_id": trial.trial_id, "step": int(checkpoint_state["step"])}
            (Path(folder) / META_FILE).write_text(json.dumps(meta))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))

    result = train(trial.run, corpus, on_report=on_report, state=state)
    done = {"step": result.steps, "tokens": result.tokens, "train_time_s": result.train_time_s}
    done["wall_time_s"] = result.wall_time_s
    tune.report({**done, **base, "is_eval": False, "done_status": result.status, "error": result.error})


PROGRESS_FIELDS = ("step", "tokens", "train_time_s", "wall_time_s")  # what a report without an evaluation carries


def report_metrics(record, checkpoint_state: dict | None, base: dict) -> dict:
    """What one report carries: an evaluation's record (`is_eval`), or for a checkpoint-only report the run's
    counters and no evaluation metric, so that every evaluation reaches Tune, its scheduler and the trackers
    exactly once (a report that repeated the last evaluation would be a second point of it)."""
    if record is not None:
        return {**record.to_dict(), **base, "is_eval": True}
    counters = checkpoint_state["counters"]
    return {**{name: counters[name] for name in PROGRESS_FIELDS}, **base, "is_eval": False}
