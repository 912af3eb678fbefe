"""Test-wide setup: text data that needs no network, and Ray started once per module.

Most tests train on `EXCERPT` (the first 40 KB of TinyShakespeare, committed with the tests) as a local-file
corpus, so a fresh clone needs neither the network nor a copy of the real corpus. Tests that check the real
corpus (its checksum, its split sizes, the `tinyshakespeare` name through the download cache) request the
`tinyshakespeare` fixture, which finds a verified copy or skips the test with the reason.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXCERPT = Path(__file__).resolve().parent / "data" / "tinyshakespeare-excerpt.txt"
SHARED_ENV = "WT_SHARED_DATA"
USER_CACHE_ENV = os.environ.get("WT_CACHE_DIR")  # the user's download cache, before the tests replace it


def _offline(url, *args, **kwargs):
    raise urllib.error.URLError(f"the tests run offline (no download of {url})")


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """An empty download cache (WT_CACHE_DIR) for the session, and no network for urllib: nothing a test does
    reads the user's cache or downloads."""
    cache = tmp_path_factory.mktemp("wt_cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WT_CACHE_DIR", str(cache))
        patch.setattr(urllib.request, "urlopen", _offline)
        yield cache


def _real_corpus_candidates() -> list[Path]:
    """Where a copy of TinyShakespeare may be: WT_SHARED_DATA, the team's ../shared copy, the user's own
    download cache (as `load_corpus` finds it outside the tests)."""
    from study.config.run import DataConfig
    from study.train.corpora import NAMED_CORPORA, cache_dir
    from study.train.download import CACHE_ENV

    found = [Path(os.environ[SHARED_ENV])] if os.environ.get(SHARED_ENV) else []
    found.append(REPO.parent / "shared" / "data" / "tinyshakespeare.txt")
    with pytest.MonkeyPatch.context() as patch:  # the session's private cache replaced the user's
        if USER_CACHE_ENV is None:
            patch.delenv(CACHE_ENV, raising=False)
        else:
            patch.setenv(CACHE_ENV, USER_CACHE_ENV)
        found.append(cache_dir(DataConfig()) / NAMED_CORPORA["tinyshakespeare"].filename)
    return found


@pytest.fixture(scope="session")
def tinyshakespeare(private_cache) -> Path:
    """The real TinyShakespeare, checksum-verified, placed in the session's download cache (so the corpus name
    `tinyshakespeare` loads it). Skips the test when no verified copy is reachable."""
    from study.train.corpora import NAMED_CORPORA

    expected = NAMED_CORPORA["tinyshakespeare"].sha256
    tried = []
    for path in _real_corpus_candidates():
        if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == expected:
            target = private_cache / NAMED_CORPORA["tinyshakespeare"].filename
            shutil.copyfile(path, target)
            return target
        tried.append(str(path))
    pytest.skip(f"needs the real TinyShakespeare: no verified copy at {', '.join(tried)} (set {SHARED_ENV})")


@pytest.fixture(scope="session")
def excerpt() -> str:
    """Path of the committed corpus excerpt, as a `data.corpus` value."""
    return str(EXCERPT)


def short_temp_dir(prefix: str = "wtr") -> str:
    """A fresh folder directly under /tmp: Ray's socket paths must stay under ~100 characters."""
    return tempfile.mkdtemp(prefix=prefix, dir="/tmp")


@pytest.fixture
def ray_tmp():
    """A short temp dir for a Ray started by the test (a deep pytest tmp_path can exceed the socket limit).

    Tests may derive siblings from it (e.g. ray_tmp + "b" for a resume); those are removed too.
    """
    path = short_temp_dir()
    yield path
    for folder in glob.glob(path + "*"):
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_session():
    """One in-process Ray for a whole module: `run_study` and `resume_study` join it (and leave it running)
    instead of starting and stopping their own. Its workers find the tests package (a test's own trainable,
    e.g. tests/faults.py) through PYTHONPATH, wherever pytest was started. Stopped at the end of the module."""
    import logging

    import ray

    if ray.is_initialized():
        pytest.fail("Ray was already initialised when this module started (a test left it running)")
    path = short_temp_dir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        ray.init(_temp_dir=path, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        try:
            yield ray
        finally:
            ray.shutdown()
            shutil.rmtree(path, ignore_errors=True)
