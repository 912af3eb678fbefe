"""Resource checks before a study starts: one trial must fit this machine (local) or a node of the cluster,
in cores, GPUs and memory; a multi-node cluster needs shared storage. `gpus: null` (auto) is resolved here."""

from __future__ import annotations

import dataclasses
import os

from study.tune.plan import Plan
from wt_base.budgets import BUDGET_KINDS
from wt_base.errors import StudyError

# Set to 1 only when every node of the cluster shares this path (e.g. ray.cluster_utils.Cluster in tests, whose
# nodes all run on one machine, or an NFS mount at the same path everywhere): the local-storage check is skipped.
ALLOW_LOCAL_MULTINODE = "WT_ALLOW_LOCAL_STORAGE_MULTINODE"


def training_bytes(trial) -> int:
    """A lower bound on a trial's training memory: fp32 weights, gradients and AdamW moments, plus activations."""
    from wt_model.flops import count_params

    m, batch = trial.run.model, trial.run.train.batch_size
    activations = 4 * batch * m.block_size * (m.n_layer * (6 * m.n_embd + m.ffn_width) + m.vocab_size)
    return 16 * count_params(m).total + activations


def check_memory(plan_: Plan, available_bytes: float, where: str) -> None:
    """Refuse trials that cannot fit before anything is allocated (e.g. n_embd 10^6)."""
    biggest = max(plan_.shapes, key=training_bytes)
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
    check_cores(plan_, nodes, ray.util.get_node_ip_address())
    if len(nodes) > 1 and plan_.location.is_local and os.environ.get(ALLOW_LOCAL_MULTINODE) != "1":
        raise StudyError(
            f"storage={plan_.spec.storage!r} is a local path but the cluster has {len(nodes)} nodes: trials on "
            "other nodes could not write their checkpoints there; use shared storage such as s3://bucket/prefix."
        )


def check_cores(plan_: Plan, nodes: list, here: str) -> None:
    """A seconds budget of CPU trials needs a core per trial thread. Ray packs trials by the CPUs each node
    declares, so a node that declares more CPUs than it has cores (`ray start --num-cpus`) would share cores and
    the clock would measure contention. Only this machine's cores are visible from the driver, so only nodes on
    it (`here`, its IP address) are checked; `plan.check_shared_device` refuses fractional cpus everywhere."""
    spec = plan_.spec
    if not BUDGET_KINDS[spec.budget.kind].measured or spec.allow_shared_device or spec.resources.gpus:
        return
    cores = os.cpu_count() or 1
    for node in nodes:
        declared = node["Resources"].get("CPU", 0)
        if node.get("NodeManagerAddress") == here and declared > cores:
            raise StudyError(
                f"the Ray node on this machine declares {declared:g} CPUs but the machine has {cores} cores: "
                "trials of a seconds budget would share cores; start Ray with --num-cpus at most the cores, use a "
                "steps, tokens or flops budget, or allow_shared_device: true."
            )
