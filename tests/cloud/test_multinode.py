"""Multi-node scheduling on one machine: a local Ray cluster of a CPU-less head and single-GPU worker nodes.

The GPUs are fake (Ray resources only: torch sees no CUDA and trials train on the CPU), which is all Ray's
scheduler needs to place one `gpus: 1` trial per node at a time. Results go to the moto S3 bucket, the shared
storage a real multi-node cluster needs; a plain path on such a cluster is refused before anything starts.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from analysis.load import load_study
from study.cli import main

pytestmark = pytest.mark.integration

GPU_NODES = 2


@pytest.fixture(scope="module")
def cluster(s3_endpoint):
    """Head with 0 CPUs (like cluster.yaml's) plus GPU_NODES nodes of 1 CPU and 1 (fake) GPU each.

    Depends on s3_endpoint so that the nodes' processes inherit its AWS variables.
    """
    import ray
    from ray.cluster_utils import Cluster

    temp_dir = tempfile.mkdtemp(prefix="wtm", dir="/tmp")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_TMPDIR", temp_dir)  # Cluster writes its address file to $RAY_TMPDIR/ray, not /tmp/ray
        os.mkdir(os.path.join(temp_dir, "ray"))
        nodes = Cluster(
            initialize_head=True,
            head_node_args={"num_cpus": 0, "num_gpus": 0, "temp_dir": temp_dir, "include_dashboard": False},
        )
        try:
            for _ in range(GPU_NODES):
                nodes.add_node(num_cpus=1, num_gpus=1, temp_dir=temp_dir)
            nodes.wait_for_nodes()
            yield nodes
        finally:
            ray.shutdown()  # the in-process driver joined the cluster through --address
            nodes.shutdown()
            shutil.rmtree(temp_dir, ignore_errors=True)


def test_local_storage_on_a_multinode_cluster_is_refused_before_anything_starts(
    cluster, write_spec, tmp_path, capsys, monkeypatch
):
    monkeypatch.delenv("WT_ALLOW_LOCAL_STORAGE_MULTINODE", raising=False)  # the escape hatch for shared paths
    storage = tmp_path / "results"
    spec = write_spec(str(storage), resources={"cpus": 1, "gpus": 1})

    code = main(["run", str(spec), "--address", cluster.address])

    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "local path" in lines[0] and f"{GPU_NODES + 1} nodes" in lines[0] and "s3://" in lines[0]
    assert not storage.exists(), "the refused study wrote to its storage"


def test_gpu_trials_spread_over_nodes_and_never_share_a_gpu(cluster, bucket, write_spec):
    import ray

    spec = write_spec(
        bucket.uri("wt_results"),
        budget={"kind": "seconds", "value": 3},
        axes={"arch": ["standard", "worker"], "worker_interval": [2, 4], "seq_len": [32]},
        resources={"cpus": 1, "gpus": 1},
        max_concurrent=3,  # more than the GPUs: the GPU resource alone keeps trials apart
    )

    code = main(["run", str(spec), "--address", cluster.address])

    assert code == 0
    trials = load_study(bucket.uri("wt_results/tiny")).trials
    assert len(trials) == 3
    assert trials.status.eq("completed").all(), trials.set_index("trial_id").status.to_dict()
    gpu_nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("GPU", 0) > 0}
    assert set(trials.node_id) <= gpu_nodes, "a trial ran on the CPU-less head"
    assert trials.node_id.nunique() > 1, "every trial ran on one node"
    assert (trials.gpu_ids != "").all(), "a trial recorded no GPU"
    assert trials.groupby(["node_id", "gpu_ids"]).size().max() > 1, "no GPU ran two trials: nothing to compare"
    for (node, gpu), group in trials.groupby(["node_id", "gpu_ids"]):
        spans = group.sort_values("started_at")
        for earlier, later in zip(spans.itertuples(), spans.iloc[1:].itertuples(), strict=False):
            assert later.started_at >= earlier.finished_at, f"trials shared GPU {gpu} of node {node}"
