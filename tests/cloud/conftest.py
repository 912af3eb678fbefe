"""Fixtures for the cloud tests: an S3-protocol server on 127.0.0.1 (moto) and a fresh bucket per test.

The server runs as a subprocess in its own session on a free port and is stopped by its process group at the
end of the session. The AWS variables point every process of a test (the driver, Ray's workers, subprocess
drivers) at dummy credentials and keep the AWS SDK away from real accounts, config files and EC2 metadata; the
endpoint itself travels in the storage URI (`?endpoint_override=...&scheme=http`), as a user would give it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.study.conftest import write_spec  # noqa: F401  (fixture re-exported)

SERVER = Path(__file__).with_name("moto_s3.py")
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/nonexistent/wt-test-aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/wt-test-aws-credentials",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the S3 server exited with code {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the S3 server did not listen on 127.0.0.1:{port} within {timeout_s:g} s")


@pytest.fixture(scope="session")
def s3_endpoint():
    """'127.0.0.1:PORT' of a moto S3 server, with dummy AWS credentials in os.environ for the session."""
    saved = {name: os.environ.get(name) for name in AWS_ENV}
    os.environ.update(AWS_ENV)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(SERVER), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(port, server)
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass(frozen=True)
class Bucket:
    """A bucket on the test server; `uri(key)` is a storage URI that names the endpoint in its query."""

    name: str
    endpoint: str
    client: object  # a boto3 S3 client for the test's own checks

    def uri(self, key: str = "") -> str:
        path = f"{self.name}/{key}".rstrip("/")
        return f"s3://{path}?endpoint_override={self.endpoint}&scheme=http"

    def object_keys(self, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


@pytest.fixture
def bucket(s3_endpoint) -> Bucket:
    import boto3

    client = boto3.client("s3", endpoint_url=f"http://{s3_endpoint}")
    name = f"wt-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return Bucket(name=name, endpoint=s3_endpoint, client=client)
