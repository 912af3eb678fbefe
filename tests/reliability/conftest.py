"""Fixtures for the reliability tests: the study tests' tiny specs, and a check that a test left no Ray running."""

from __future__ import annotations

import pytest

from tests.study.conftest import write_spec  # noqa: F401  (fixture re-exported for this folder)


@pytest.fixture
def no_ray_left():
    """Fail a test that leaves Ray initialised in the pytest process (the next test would join it)."""
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()
        pytest.fail("the test left Ray initialised")
