"""Test-wide setup: TinyShakespeare comes from the shared copy, never from the network."""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_TEXT = Path(os.environ.get("WT_SHARED_DATA", REPO.parent / "shared" / "data" / "tinyshakespeare.txt"))


@pytest.fixture(scope="session", autouse=True)
def tinyshakespeare_cache(tmp_path_factory) -> Path:
    """Seed a private download cache with the shared copy and point WT_CACHE_DIR at it."""
    if not SHARED_TEXT.is_file():
        pytest.exit(f"TinyShakespeare not found at {SHARED_TEXT}; set WT_SHARED_DATA to its path.", returncode=2)
    cache = tmp_path_factory.mktemp("wt_cache")
    shutil.copyfile(SHARED_TEXT, cache / "tinyshakespeare.txt")
    old = os.environ.get("WT_CACHE_DIR")
    os.environ["WT_CACHE_DIR"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("WT_CACHE_DIR", None)
    else:
        os.environ["WT_CACHE_DIR"] = old


@pytest.fixture
def ray_tmp():
    """A short temp dir for Ray's sockets (a deep pytest tmp_path can exceed the ~100 character limit).

    Tests may derive siblings from it (e.g. ray_tmp + "b" for a resume); those are removed too.
    """
    path = tempfile.mkdtemp(prefix="wtr", dir="/tmp")
    yield path
    for folder in glob.glob(path + "*"):
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def fault_env():
    """Restore WT_FAULTS after a test sets it (trials inherit the driver's environment)."""
    old = os.environ.get("WT_FAULTS")
    yield
    if old is None:
        os.environ.pop("WT_FAULTS", None)
    else:
        os.environ["WT_FAULTS"] = old
