"""One driver per study on an object store (wt_base.lease, the write-then-verify lease) against the moto S3
server: a second driver is refused naming the holder, a lost head node's lease is taken once it expires."""

from __future__ import annotations

import socket
import time

import pytest

from wt_base import lease as lease_mod
from wt_base.errors import StudyError
from wt_base.lease import TTL_S, Lease, live_holder, read_holder
from wt_base.storage import resolve


def test_on_a_bucket_a_second_driver_is_refused_and_a_lost_nodes_lease_expires(bucket, monkeypatch):
    monkeypatch.setattr(lease_mod, "VERIFY_S", 0.1)
    study = resolve(bucket.uri("wt_results")).join("tiny")
    refused = f"is being run by wt-study run on host {socket.gethostname()}"
    with Lease(study, "run"), pytest.raises(StudyError, match=refused):
        Lease(study, "resume").acquire()
    assert live_holder(study) is None and bucket.object_keys("wt_results/tiny/driver") == []
    lost = Lease(study, "run")
    lost.acquire()  # its node is then lost: never renewed, never given back
    with pytest.raises(StudyError):
        Lease(study, "resume").acquire()
    later = time.time() + TTL_S + 1
    monkeypatch.setattr(lease_mod.time, "time", lambda: later)
    resumed = Lease(study, "resume")
    resumed.acquire()
    assert read_holder(study).token == resumed.holder.token
