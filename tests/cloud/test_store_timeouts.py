"""Stores that fail fast (wt_base.storage.resolve's first request, bounded by WT_STORE_TIMEOUT_S): gs:// without
credentials and s3:// at an endpoint that accepts connections but never answers end in one sentence and exit 2
within the stated time, and Ctrl-C stops the wait. Everything stays on this machine: the GCS metadata server
and the S3 endpoint are closed or silent loopback ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LIMIT_S = 4


@pytest.fixture
def silent_port():
    """A loopback port that accepts TCP connections (the kernel's backlog) and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield s.getsockname()[1]


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "AWS_", "GCE_"))}
    env.update(PYTHONPATH=str(REPO), WT_STORE_TIMEOUT_S=str(LIMIT_S), CLOUDSDK_CONFIG="/nonexistent/wt-gcloud")
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_EC2_METADATA_DISABLED="true")
    return {**env, **extra}


def _wt_study(args: list[str], env: dict) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "study.cli", *args], capture_output=True, text=True, env=env, timeout=60
    )
    return done, time.monotonic() - start


def test_gcs_without_credentials_fails_in_one_sentence_within_the_limit(silent_port):
    env = _env(GCE_METADATA_HOST=f"127.0.0.1:{silent_port}", GCE_METADATA_ROOT=f"127.0.0.1:{silent_port}")
    done, took = _wt_study(["status", "gs://wt-test-no-bucket/study"], env)
    assert done.returncode == 2 and took < LIMIT_S + 10, (done.returncode, took, done.stderr)
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("wt-study status: error: PATH='gs://wt-test-no-bucket/study' ")
    assert "cannot be reached" in line or f"did not answer within {LIMIT_S} s" in line


def test_an_s3_endpoint_that_never_answers_fails_within_the_limit(silent_port):
    uri = f"s3://wt-bucket/results?endpoint_override=127.0.0.1:{silent_port}&scheme=http"
    done, took = _wt_study(["run", "--storage", uri, "--dry-run"], _env())
    assert done.returncode == 2 and took < LIMIT_S + 10, (done.returncode, took, done.stderr)
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"wt-study run: error: --storage={uri!r} ")
    assert "cannot be reached: " in line or f"did not answer within {LIMIT_S} s: check its credentials" in line


def test_ctrl_c_stops_the_wait_for_a_silent_store(silent_port):
    uri = f"s3://wt-bucket/study?endpoint_override=127.0.0.1:{silent_port}&scheme=http"
    proc = subprocess.Popen(
        [sys.executable, "-m", "study.cli", "status", uri],
        stderr=subprocess.PIPE,
        text=True,
        env=_env(WT_STORE_TIMEOUT_S="30"),
    )
    time.sleep(2.5)  # imports done, waiting on the store (each try of its request gives up after 3 s)
    start = time.monotonic()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(10) == 130 and time.monotonic() - start < 6
    assert "Traceback" not in proc.stderr.read()
