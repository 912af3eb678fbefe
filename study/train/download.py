"""Downloads into the corpus cache: streamed to a temp file beside the target, checked against the length the
server announced and a pinned SHA-256, and only then renamed into place.

Every failure (offline, an HTTP error, a download that broke off or arrived short, a checksum mismatch) raises
`StudyError` with one sentence naming the URL, what went wrong and where to put the file by hand, and leaves
nothing behind: the temp file is removed. Stdlib only; `urllib.request.urlopen` is looked up at call time, so a
test can swap it.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from wt_base.errors import StudyError

CACHE_ENV = "WT_CACHE_DIR"  # the download cache (see corpora.cache_dir)
TEMP_PREFIX = ".tmp-"  # temp files and folders in the cache; anything so named was left by an interrupted run
CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60.0  # per socket operation, not for the whole download


def sha256_of_file(path: Path) -> str:
    """SHA-256 of a file's bytes, read in chunks (a 100 MB corpus is not held in memory for this)."""
    hasher = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            hasher.update(chunk)
    return hasher.hexdigest()


def download_verified(url: str, dest: Path, sha256: str, corpus: str) -> None:
    """Download `url` to `dest` (in the cache) if its bytes have the SHA-256 `sha256`, else raise StudyError.

    `corpus` (the data.corpus value) is only used in messages. `dest` appears complete or not at all.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    temp = dest.with_name(f"{TEMP_PREFIX}{uuid.uuid4().hex}-{dest.name}")
    try:
        digest = _stream_to(url, temp, dest, corpus)
        if digest != sha256:
            raise StudyError(
                f"the download of {corpus} from {url} has SHA-256 {digest[:12]}..., expected {sha256[:12]}...; "
                f"nothing was written: retry, or put a verified copy of {dest.name} at {dest}."
            )
        os.replace(temp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temp)


def _stream_to(url: str, temp: Path, dest: Path, corpus: str) -> str:
    """Copy the response body to `temp` (fsynced); its SHA-256. Raises StudyError when the server cannot be
    reached or the body is shorter (or longer) than the Content-Length it announced."""
    by_hand = f"put {dest.name} at {dest} (from {url}), or set {CACHE_ENV} (or data.cache_dir) to a folder holding it"
    try:
        response = urllib.request.urlopen(url, timeout=TIMEOUT_S)
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        raise StudyError(
            f"data.corpus={corpus!r} is not prepared and downloading {url} failed ({exc}): {by_hand}."
        ) from None
    hasher, received = hashlib.sha256(), 0
    with response, open(temp, "wb") as out:
        header = response.headers.get("Content-Length", "")
        announced = int(header) if header.isdigit() else None
        try:
            while chunk := response.read(CHUNK_BYTES):
                hasher.update(chunk)
                out.write(chunk)
                received += len(chunk)
        except (OSError, http.client.HTTPException) as exc:
            raise StudyError(
                f"the download of {url} broke off after {_counts(received, announced)} ({exc}); nothing was "
                f"written: retry, or {by_hand}."
            ) from None
        out.flush()
        os.fsync(out.fileno())
    if announced is not None and received != announced:
        raise StudyError(
            f"the download of {url} is truncated: {_counts(received, announced)} arrived; nothing was written: "
            f"retry, or {by_hand}."
        )
    return hasher.hexdigest()


def _counts(received: int, announced: int | None) -> str:
    if announced is None:
        return f"{received} bytes"
    return f"{received} of the {announced} bytes the server announced"
