"""One driver per study (wt_base.lease): a second `run` or `resume` on a study whose driver is live refuses in
one sentence naming the holder, before anything starts; a crashed driver's lease is taken over (at once on the
same host, after TTL_S from elsewhere); `status` shows the holder; a driver that finds its lease taken stops.
The same on an S3 bucket: tests/cloud/test_lease_s3.py."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wt_base import lease as lease_mod
from wt_base.errors import StudyError
from wt_base.lease import LEASE_FILE, TTL_S, Lease, live_holder, read_holder
from wt_base.storage import resolve

REPO = Path(__file__).resolve().parents[2]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write_holder(folder: Path, **fields) -> None:
    now = time.time()
    holder = {"host": socket.gethostname(), "pid": os.getpid(), "command": "run", "token": "other"}
    holder |= {"started_at": now, "renewed_at": now, **fields}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LEASE_FILE).write_text(json.dumps(holder))


def test_a_second_driver_is_refused_naming_the_holder_and_the_lease_is_given_back(tmp_path):
    study = resolve(str(tmp_path / "study"))
    with Lease(study, "run"):
        with pytest.raises(StudyError) as info:
            Lease(study, "resume").acquire()
        message = str(info.value)
        assert f"is being run by wt-study run on host {socket.gethostname()}, pid {os.getpid()}" in message
        assert "\n" not in message and f"else {TTL_S:.0f} s after its last renewal" in message
        assert live_holder(study).command == "run"
    assert not (tmp_path / "study" / LEASE_FILE).exists() and live_holder(study) is None
    Lease(study, "resume").acquire()  # free again


def test_a_crashed_drivers_lease_is_taken_over_at_once_on_this_host(tmp_path):
    _write_holder(tmp_path, pid=_dead_pid())
    study = resolve(str(tmp_path))
    assert live_holder(study) is None  # status shows no driver
    lease = Lease(study, "resume")
    lease.acquire()
    assert read_holder(study).token == lease.holder.token


def test_a_lease_from_another_host_blocks_until_it_expires(tmp_path):
    study = resolve(str(tmp_path))
    _write_holder(tmp_path, host="head-node-1", pid=1)
    with pytest.raises(StudyError, match="on host head-node-1, pid 1"):
        Lease(study, "resume").acquire()
    _write_holder(tmp_path, host="head-node-1", pid=1, renewed_at=time.time() - TTL_S - 1)  # the node is lost
    Lease(study, "resume").acquire()


def test_a_live_pid_that_stopped_renewing_is_stale(tmp_path):
    """A pid reused by some other process after the driver died: not renewed for TTL_S, so not a driver."""
    _write_holder(tmp_path, renewed_at=time.time() - TTL_S - 1)
    Lease(resolve(str(tmp_path)), "run").acquire()


def test_a_driver_whose_lease_was_taken_stops(tmp_path, monkeypatch):
    monkeypatch.setattr(lease_mod, "RENEW_S", 0.05)
    lost = []
    study = resolve(str(tmp_path))
    with Lease(study, "run", on_lost=lost.append):
        _write_holder(tmp_path, host="elsewhere", token="thief")  # as a racing driver on an object store would
        deadline = time.monotonic() + 5
        while not lost and time.monotonic() < deadline:
            time.sleep(0.05)
    assert lost and lost[0].host == "elsewhere"
    assert read_holder(study).token == "thief"  # left to its holder: release removes only its own


def test_the_cli_refuses_a_second_driver_before_anything_starts(tmp_path, write_spec):
    """A live driver (here a process holding the lease) and `wt-study run` of the same new study: exit 2, one
    line naming the holder, and nothing of the study written but the other's lease."""
    spec = write_spec(str(tmp_path / "res"))
    study = tmp_path / "res" / "tiny"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(study)], cwd=REPO, stdout=subprocess.PIPE, text=True, env=_env()
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        done = subprocess.run(
            [sys.executable, "-m", "study.cli", "run", str(spec)], cwd=REPO, capture_output=True, text=True, env=_env()
        )
        assert done.returncode == 2, done.stderr
        assert f"pid {holder.pid}" in done.stderr and len(done.stderr.strip().splitlines()) == 1
        assert sorted(p.name for p in study.iterdir()) == [LEASE_FILE]
    finally:
        holder.terminate()
        holder.wait(10)


HOLD = """
import sys, time
from wt_base.lease import Lease
from wt_base.storage import resolve
with Lease(resolve(sys.argv[1]), "run"):
    print("held", flush=True)
    time.sleep(60)
"""


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def test_status_names_the_live_driver(tmp_path, write_spec, capsys):
    from study.cli.status import print_status
    from study.config.specfile import dump_spec, load_spec
    from wt_base.layout import SPEC_FILE

    spec = load_spec(write_spec(str(tmp_path)))
    folder = tmp_path / spec.name
    folder.mkdir()
    (folder / SPEC_FILE).write_text(dump_spec(spec))
    _write_holder(folder, host="head-node-1", pid=4242, command="resume")
    print_status(str(folder))
    printed = capsys.readouterr().out
    assert "Driver: wt-study resume on host head-node-1, pid 4242 (since " in printed


def test_status_in_a_runs_first_seconds_says_it_is_starting_then_shows_its_trials(tmp_path, write_spec, capsys):
    """Before study.yaml: the live driver is named; with trial rows and no evaluation point yet: the trials."""
    from study.cli.status import print_status
    from study.config.specfile import load_spec
    from study.tune.plan import plan
    from study.tune.runner import _record_study

    planned = plan(load_spec(write_spec(str(tmp_path))))
    with Lease(planned.location, "run"):
        print_status(str(tmp_path / "tiny"))
        assert "is starting: wt-study run on host" in capsys.readouterr().out
        _record_study(planned, new=True)  # the pending rows and study.yaml, as run_study writes them
        print_status(str(tmp_path / "tiny"))
    printed = capsys.readouterr().out
    assert "Study tiny: 2 trials | 0 completed, 0 stopped, 0 running, 2 pending" in printed
    assert all(t.trial_id in printed for t in planned.trials) and "Driver: wt-study run" in printed
