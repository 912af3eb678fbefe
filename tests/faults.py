"""Fault injection for the reliability tests: a wrapper around the product's trainable (study/ has no fault hooks).

    run_study(plan, trainable=with_faults({"worker_k4": Fault("raise", at_report=2)}))

`with_faults` maps a substring of a trial id to a `Fault` and returns a trainable with the product's signature.
In a trial that matches, it counts the trial's `ray.tune.report` calls (evaluation points, checkpoints and the
final status report, in this process) and fires the fault at the `at_report`-th, before that report reaches Tune.
Kinds: "raise" (RuntimeError), "oom" (torch.cuda.OutOfMemoryError, as a GPU running out of memory raises),
"memory" (MemoryError), "exit" (the trial's process dies at once, as with SIGKILL, the OOM killer or a lost node).

The wrapper is pickled to Ray's worker processes, which import this module: they find it through the driver's
working directory or PYTHONPATH (the `ray_session` fixture puts the repository on it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

KINDS = ("raise", "oom", "memory", "exit")


@dataclass(frozen=True)
class Fault:
    """A fault one trial suffers."""

    kind: str  # one of KINDS
    at_report: int = 1  # fires at this tune.report call of an attempt (1-based)
    first_attempt_only: bool = False  # a trial retried from a checkpoint runs clean, so it can finish

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Fault.kind={self.kind!r} is invalid: expected one of {', '.join(KINDS)}.")
        if self.at_report < 1:
            raise ValueError(f"Fault.at_report={self.at_report!r} is invalid: expected a report number >= 1.")


def fire(kind: str) -> None:
    if kind == "exit":
        os._exit(137)
    if kind == "memory":
        raise MemoryError("injected fault: out of host memory")
    if kind == "oom":
        import torch

        raise torch.cuda.OutOfMemoryError("injected fault: CUDA out of memory. Tried to allocate 2.00 GiB")
    raise RuntimeError("injected fault: the trial raised")


def with_faults(faults: dict[str, Fault]):
    """The product's trainable, with `faults[pattern]` fired in every trial whose id contains `pattern`."""

    def trainable(config: dict, corpus, cpus: float = 1.0, gpus: float = 0.0) -> None:
        from ray import tune

        from study.tune.trainable import trainable as product_trainable

        trial_id = config["trial"]["trial_id"]
        fault = next((f for pattern, f in faults.items() if pattern in trial_id), None)
        if fault is None or (fault.first_attempt_only and tune.get_checkpoint() is not None):
            return product_trainable(config, corpus, cpus=cpus, gpus=gpus)
        real_report, reports = tune.report, []

        def report(*args, **kwargs):
            reports.append(None)
            if len(reports) == fault.at_report:
                fire(fault.kind)
            return real_report(*args, **kwargs)

        tune.report = report  # the product calls `tune.report` through the module, so it meets this one
        try:
            return product_trainable(config, corpus, cpus=cpus, gpus=gpus)
        finally:
            tune.report = real_report

    return trainable
