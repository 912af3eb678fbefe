"""What a study would run on, for the dry run's estimate: how many trials at a time, and why.

The capacity is this machine (its CPUs and CUDA GPUs), a running Ray cluster (`--address`, its live nodes as Ray
sees them now: workers an autoscaler would add are not counted) or a stated machine (`--gpus N`: none unless
stated; `--cpus N`: not a limit unless stated). Trials at a time: per node, how many trials' resources
(`resources.cpus`, `resources.gpus`) it holds, summed over nodes, then capped by `max_concurrent` and the number
of trials.
`trials_at_once` is pure; only the three `*_capacity` functions look at a machine.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from wt_base.errors import StudyError


@dataclass(frozen=True)
class Capacity:
    """The nodes a study would run on, and where the figures come from."""

    nodes: tuple  # (cpus, gpus) per node; math.inf for a resource a stated machine leaves open
    where: str  # "this machine", "the cluster at auto", "a stated machine"

    @property
    def cpus(self) -> float:
        return sum(n[0] for n in self.nodes)

    @property
    def gpus(self) -> float:
        return sum(n[1] for n in self.nodes)

    def describe(self) -> str:
        """'2 CPUs, no GPU' (a stated machine: only what was stated)."""
        parts = []
        for count, one, many in ((self.cpus, "CPU", "CPUs"), (self.gpus, "GPU", "GPUs")):
            if math.isinf(count):
                continue
            parts.append(f"no {one}" if count == 0 else f"{count:g} {one if count == 1 else many}")
        nodes = f" on {len(self.nodes)} nodes" if len(self.nodes) > 1 else ""
        return ", ".join(parts) + nodes


@dataclass(frozen=True)
class Slots:
    """Trials at a time, and the sentence that says why."""

    count: int  # 0: no trial fits the capacity
    why: str


def trials_at_once(capacity: Capacity, cpus: float, gpus: float | None, max_concurrent: int, trials: int) -> Slots:
    """How many trials (each `cpus` CPUs and `gpus` GPUs; gpus None: auto, one where there are GPUs) run at once."""
    gpus = (1.0 if capacity.gpus >= 1 else 0.0) if gpus is None else gpus
    each = f"each takes {cpus:g} CPU{'s' if cpus != 1 else ''}" + (f" and {gpus:g} GPU" if gpus else "")
    per_node = [_fit(node_cpus, cpus) if not gpus else min(_fit(node_cpus, cpus), _fit(node_gpus, gpus))
                for node_cpus, node_gpus in capacity.nodes]  # fmt: skip
    held = sum(per_node)
    if held == 0:
        if gpus and capacity.gpus < gpus:
            has = "there is none" if capacity.gpus == 0 else f"there are {capacity.gpus:g}"
            return Slots(0, f"each trial wants resources.gpus={gpus:g} and {has}")
        return Slots(0, f"{each} (resources), more than any node has")
    count = min(held, trials, max_concurrent or trials)
    limits = [each]
    if max_concurrent and max_concurrent < min(held, trials):
        limits.append(f"max_concurrent {max_concurrent}")
    elif trials < held:
        limits.append(f"only {trials} trials")
    return Slots(count, "; ".join(limits))


def _fit(available: float, each: float) -> int:
    if math.isinf(available):
        return 1 << 30  # not a limit
    return int(available / each + 1e-9)


def local_capacity() -> Capacity:
    import torch

    return Capacity(((float(os.cpu_count() or 1), float(torch.cuda.device_count())),), "this machine")


def stated_capacity(cpus: int | None, gpus: int | None) -> Capacity:
    """A machine with `gpus` GPUs (none unless stated) and `cpus` CPUs (not a limit unless stated)."""
    for flag, value, low in (("--cpus", cpus, 1), ("--gpus", gpus, 0)):
        if value is not None and value < low:
            raise StudyError(f"{flag} {value} is invalid: expected an integer >= {low}.")
    node = (math.inf if cpus is None else float(cpus), float(gpus or 0))
    return Capacity((node,), "a stated machine")


def cluster_capacity(address: str) -> Capacity:
    """The live nodes of the Ray cluster at `address` (joined for the look, then left)."""
    import ray

    from study.tune.runner import start_ray

    was_connected = ray.is_initialized()
    start_ray(address, None)
    try:
        nodes = tuple(
            (float(n["Resources"].get("CPU", 0)), float(n["Resources"].get("GPU", 0)))
            for n in ray.nodes()
            if n.get("Alive")
        )
    finally:
        if not was_connected:
            ray.shutdown()  # leave the cluster: a dry run runs nothing there
    return Capacity(nodes, f"the cluster at {address}")
