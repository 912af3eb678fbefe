"""Cloud storage end to end against a real S3-protocol server (moto, see conftest.py).

A study runs with `--storage s3://...`, its driver is killed, and `wt-study resume`, `status` and `analyze` all
work from the bucket URI alone (an integration test: the default suite's one driver kill is in
tests/reliability/test_driver_kill.py, on local storage). Every process runs in an empty working directory with
an empty HOME, so anything written outside the bucket (other than Ray's temp dir and the report's --out dir)
shows up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analysis.load import load_study
from wt_base.errors import StudyError

REPO = Path(__file__).resolve().parents[2]
BUDGET_S = 4.0
MATPLOTLIB_CACHES = (".cache/matplotlib/", ".config/matplotlib/")


def wt_study(args: list[str], *, cwd: Path, env: dict, timeout_s: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "study.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.integration
def test_s3_study_killed_resumed_and_analysed_from_the_bucket(bucket, write_spec, tmp_path, ray_tmp):
    storage = bucket.uri("wt_results")
    study_uri = bucket.uri("wt_results/tiny")
    spec_path = write_spec(
        storage,
        budget={"kind": "seconds", "value": BUDGET_S},
        axes={"arch": ["standard", "worker"], "worker_interval": [4], "seq_len": [32]},
    )
    cwd, home, out = tmp_path / "cwd", tmp_path / "home", tmp_path / "report"
    cwd.mkdir()
    home.mkdir()
    # Tune snapshots its experiment state every second, so the kill lands after a snapshot with checkpoints.
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(home), "TUNE_GLOBAL_CHECKPOINT_S": "1"}
    driver = subprocess.Popen(
        [sys.executable, "-m", "study.cli", "run", str(spec_path), "--ray-temp-dir", f"{ray_tmp}/a"],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )

    def checkpointed_and_reported() -> bool:
        if not any(k.endswith("/state.pt") for k in bucket.object_keys("wt_results/tiny/tune/")):
            return False
        try:
            metrics = load_study(study_uri).metrics
        except StudyError:
            return False
        return metrics.train_time_s.max() >= 2.0

    try:
        wait_for(checkpointed_and_reported, 180, "a checkpoint and evaluation rows in the bucket")
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and every Ray process it started
        driver.wait(30)
    assert not load_study(study_uri).trials.status.eq("completed").all(), "the study finished before the kill"

    resumed = wt_study(["resume", study_uri, "--ray-temp-dir", f"{ray_tmp}/b"], cwd=cwd, env=env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "Resuming study tiny" in resumed.stdout

    study = load_study(study_uri)
    assert len(study.trials) == 2
    assert study.trials.status.eq("completed").all(), study.trials.set_index("trial_id").status.to_dict()
    assert not study.metrics.duplicated(["trial_id", "step"]).any()
    assert (study.metrics.resumed_from_step > 0).any(), "no trial continued from its checkpoint in the bucket"
    for trial in study.trials.itertuples():
        assert BUDGET_S <= trial.train_time_s < 2 * BUDGET_S, (trial.trial_id, trial.train_time_s)

    status = wt_study(["status", study_uri], cwd=cwd, env=env, timeout_s=120)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "2 trials | 2 completed, 0 stopped, 0 running, 0 pending" in status.stdout
    analyzed = wt_study(["analyze", study_uri, "--out", str(out)], cwd=cwd, env=env, timeout_s=180)
    assert analyzed.returncode == 0, analyzed.stdout + analyzed.stderr
    assert (out / "report.md").is_file()

    keys = [k for k in bucket.object_keys() if not k.endswith("/")]  # pyarrow also writes "folder/" marker objects
    rel = [k.removeprefix("wt_results/tiny/") for k in keys]
    assert [k for k in keys if not k.startswith("wt_results/tiny/")] == []
    assert "study.yaml" in rel
    assert any(k.startswith("results/metrics/") and k.endswith(".parquet") for k in rel)
    assert any(k.startswith("results/trials/") and k.endswith(".parquet") for k in rel)
    assert any(k.startswith("tune/experiment_state") for k in rel) and "tune/tuner.pkl" in rel
    checkpoints = {k.split("/")[1] for k in rel if k.startswith("tune/") and k.endswith("/state.pt")}
    assert checkpoints == set(study.trials.trial_id), "every trial checkpointed into the bucket"
    assert files_under(cwd) == [], "something was written to the working directory"
    # HOME holds only tools' own state: Ray's per-user auth token and matplotlib's font cache (analyze).
    tool_state = (".ray", ".cache", ".config", ".cache/matplotlib", ".config/matplotlib")
    unexpected = [p for p in files_under(home) if p not in tool_state and not p.startswith(MATPLOTLIB_CACHES)]
    assert unexpected in ([], [".ray/auth_token"]), f"written to HOME: {unexpected}"


def test_study_in_a_bucket_keeps_its_endpoint_when_reopened(bucket, write_spec):
    """`resume`/`status` find the storage from the study URI; its query (endpoint, scheme) must survive."""
    from study.config.specfile import dump_spec, load_spec
    from study.tune.plan import load_saved_spec
    from wt_base.layout import SPEC_FILE
    from wt_base.storage import resolve, write_text_atomic

    storage = bucket.uri("wt_results")
    spec = load_spec(write_spec(storage))
    study = resolve(storage).join(spec.name)
    write_text_atomic(study, SPEC_FILE, dump_spec(spec))

    for given in (study.uri, study.uri.replace("/tiny?", "/tiny/?")):
        loaded, location = load_saved_spec(given)
        assert loaded.storage == storage
        assert location.path == f"{bucket.name}/wt_results/tiny"
        assert resolve(loaded.storage).join(loaded.name).uri == study.uri
