"""A whole node lost mid-study on a local multi-node cluster: its trial resumes on another node from its checkpoint.

The cluster is ray.cluster_utils.Cluster on this machine: a head with no CPUs (so no trial runs there) and two
one-CPU worker nodes. Storage is a local path on purpose: every node of this cluster shares this machine's disk,
which is what shared storage provides on a real cluster, so the multi-node local-storage refusal is lifted with
WT_ALLOW_LOCAL_STORAGE_MULTINODE=1 (documented in docs/results.md; a real cluster uses s3:// or gs://). The node
running a trial is removed (its raylet and workers killed, no graceful drain) once that trial has two
checkpoints; Tune retries the trial (max_failures) on the surviving node from the last checkpoint it recorded.
"""

from __future__ import annotations

import os
import threading

import pytest

from study.cli import main
from tests.reliability.helpers import check_study_guarantees, final_trials, raw_rows, wait_for

BUDGET_S = 5.0


@pytest.mark.slow
def test_lost_node_trial_resumes_on_another_node_from_its_checkpoint(
    write_spec, tmp_path, ray_tmp, monkeypatch, capsys
):
    import ray
    from ray.cluster_utils import Cluster

    monkeypatch.setenv("WT_ALLOW_LOCAL_STORAGE_MULTINODE", "1")
    monkeypatch.setenv("TUNE_GLOBAL_CHECKPOINT_S", "1")
    monkeypatch.setenv("RAY_TMPDIR", ray_tmp)  # Cluster writes its address file to $RAY_TMPDIR/ray, not /tmp/ray
    os.mkdir(os.path.join(ray_tmp, "ray"))
    spec_path = write_spec(
        budget={"kind": "seconds", "value": BUDGET_S},
        axes={"arch": ["standard", "worker"], "worker_interval": [4], "seq_len": [32]},
        max_failures=2,
    )
    study_dir = tmp_path / "results" / "tiny"
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "temp_dir": ray_tmp})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    removed: dict = {}

    def checkpointed_trial_node():
        rows = final_trials(study_dir)
        for trial_id, row in rows[rows.status == "running"].iterrows():
            if row.node_id and len(list((study_dir / "tune" / trial_id).glob("checkpoint_*"))) >= 2:
                return trial_id, row.node_id
        return None

    def kill_a_node():
        try:
            wait_for(lambda: checkpointed_trial_node() is not None, 300, "a running trial with two checkpoints")
            trial_id, node_id = checkpointed_trial_node()
            node = next(n for n in workers if n.node_id == node_id)
            removed.update(trial_id=trial_id, node_id=node_id, before=raw_rows(study_dir, "metrics"))
            cluster.remove_node(node, allow_graceful=False)
        except Exception as exc:  # reported by the main thread
            removed["error"] = exc

    killer = threading.Thread(target=kill_a_node, daemon=True)
    killer.start()
    try:
        code = main(["run", str(spec_path), "--address", cluster.address])
        out = capsys.readouterr().out
    finally:
        killer.join(60)
        ray.shutdown()
        cluster.shutdown()
    assert "error" not in removed, removed.get("error")
    assert removed, "no node was removed"
    assert code == 0, out

    rows = check_study_guarantees(study_dir, BUDGET_S, removed["before"])
    victim = rows.loc[removed["trial_id"]]
    assert victim.restarts >= 1
    assert victim.node_id != removed["node_id"], "the trial finished on the node that was removed"
    raw = raw_rows(study_dir, "metrics")
    attempts = raw[raw.trial_id == removed["trial_id"]].groupby("attempt").resumed_from_step.min()
    assert len(attempts) >= 2 and attempts.iloc[-1] > 0, "the trial restarted from scratch, not its checkpoint"
