"""Fixtures for the reliability tests: the study tests' tiny specs and short Ray temp dirs, plus fault control."""

from __future__ import annotations

import os

import pytest

from tests.study.conftest import ray_tmp, write_spec  # noqa: F401  (fixtures re-exported for this folder)


@pytest.fixture
def fault_env():
    """Restore WT_FAULTS after a test sets it (the trials inherit the driver's environment)."""
    old = os.environ.get("WT_FAULTS")
    yield
    if old is None:
        os.environ.pop("WT_FAULTS", None)
    else:
        os.environ["WT_FAULTS"] = old


@pytest.fixture
def no_ray_left():
    """Fail a test that leaves Ray initialised in the pytest process (the next test would join it)."""
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()
        pytest.fail("the test left Ray initialised")
