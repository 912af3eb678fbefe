"""The on-disk form of a prepared corpus: a folder of split token files and meta.json, written whole, checked
before every read, and memory-mapped. Which corpora there are and where their text comes from is corpora.py.

A prepared folder holds train.bin, val.bin and test.bin (the token ids, raw little-endian in meta's dtype, the
splits one after the other in the text's order) and meta.json:
    format_version   FORMAT_VERSION; a folder of another version is prepared again
    corpus           data.corpus as given
    source           the URL it was downloaded from, or the local path
    source_sha256    SHA-256 of the download (the pinned value) or of the local content
    content_sha256   SHA-256 of the text the tokens were made from (the extracted file, or the joined files)
    tokens, unit     "chars" / "text8" -> "char", "bytes" -> "byte" (bits per token are then bpc or bpb)
    vocab            token i is code point (or byte value) vocab[i]
    dtype            "uint8", or "int32" for a character vocabulary over 256
    split_rule       the rule in words; split_sizes: {train, val, test} token counts
    split_sha256     SHA-256 of each split file (recorded for audits; not re-checked on every open)
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from study.train.download import TEMP_PREFIX
from wt_base.errors import StudyError

FORMAT_VERSION = 1
META_FILE = "meta.json"
SPLITS = ("train", "val", "test")
FIXED_SPLIT = "90/5/5"  # train / val / test percent of the length (enwik8, text8)
VAL_FRACTION_SPLIT = "val_fraction"  # first 1 - data.val_fraction train, the rest val, no test
TEXT8_SYMBOLS = " abcdefghijklmnopqrstuvwxyz"  # text8's whole alphabet, in code-point order
UNITS = {"chars": "char", "text8": "char", "bytes": "byte"}  # tokens -> what a bit per token is a bit per
FIELDS = ("corpus", "source", "source_sha256", "content_sha256", "tokens", "unit", "vocab", "dtype", "split_sizes")


def split_sizes(n_tokens: int, rule: str, val_fraction: float) -> tuple[int, int, int]:
    """(train, val, test) token counts of a text of `n_tokens`.

    FIXED_SPLIT: n * 90 // 100 train, n * 5 // 100 val, the rest test: exactly 90M / 5M / 5M for the 10^8-token
    enwik8 and text8, and the same proportions (to within a token) for a shorter input. VAL_FRACTION_SPLIT:
    data.py's rule, int(n * (1 - val_fraction)) train (float arithmetic included), the rest val, no test.
    """
    if rule == FIXED_SPLIT:
        n_train, n_val = n_tokens * 90 // 100, n_tokens * 5 // 100
        return n_train, n_val, n_tokens - n_train - n_val
    n_train = int(n_tokens * (1 - val_fraction))
    return n_train, n_tokens - n_train, 0


def tokenize(content: bytes, tokens: str, corpus: str) -> tuple[list[int], np.ndarray]:
    """The vocabulary (code points, or byte values) and the content's token ids, vectorised.

    "bytes": token = byte value, all 256 in the vocabulary. "text8": TEXT8_SYMBOLS, any other byte is an error.
    "chars": the sorted unique characters of the UTF-8 text (uint8 ids, or int32 past 256 characters).
    """
    raw = np.frombuffer(content, dtype=np.uint8)
    if tokens == "bytes":
        return list(range(256)), raw
    if tokens == "text8":
        table = np.full(256, 255, dtype=np.uint8)  # byte -> token id; 255 marks a byte text8 cannot hold
        table[np.frombuffer(TEXT8_SYMBOLS.encode("ascii"), dtype=np.uint8)] = np.arange(len(TEXT8_SYMBOLS))
        ids = table[raw]
        bad = np.flatnonzero(ids == 255)
        if bad.size:
            raise StudyError(
                f"data.corpus={corpus!r} holds byte {content[bad[0] : bad[0] + 1]!r} at offset {bad[0]}, but text8's "
                "tokens are a-z and space only: delete the cached text8.zip (not the published one) to fetch it again."
            )
        return [ord(ch) for ch in TEXT8_SYMBOLS], ids
    codes = np.frombuffer(content.decode("utf-8").encode("utf-32-le"), dtype=np.uint32)
    present = np.zeros(0x110000, dtype=bool)
    present[codes] = True
    unique = np.flatnonzero(present)  # sorted code points == sorted characters, without sorting the text
    lookup = np.zeros(0x110000, dtype=np.uint8 if len(unique) <= 256 else np.int32)
    lookup[unique] = np.arange(len(unique))
    return unique.tolist(), lookup[codes]


def build(content: bytes, *, tokens: str, split: str, val_fraction: float, about: dict) -> tuple[dict, dict]:
    """The split token arrays of `content` and the meta.json that describes them; `about` holds the fields
    that say where the content came from (corpus, source, source_sha256)."""
    vocab, ids = tokenize(content, tokens, about["corpus"])
    bounds = np.cumsum((0, *split_sizes(len(ids), split, val_fraction)))
    splits = {name: ids[a:b] for name, a, b in zip(SPLITS, bounds[:-1], bounds[1:], strict=True)}
    if split == FIXED_SPLIT:
        rule = "first n*90//100 tokens train, next n*5//100 val, the rest test"
    else:
        rule = f"first int(n*(1-{val_fraction!r})) tokens train, the rest val, no test"
    meta = {
        "format_version": FORMAT_VERSION,
        **about,
        "content_sha256": hashlib.sha256(content).hexdigest(),
        "tokens": tokens,
        "unit": UNITS[tokens],
        "vocab": vocab,
        "dtype": ids.dtype.name,
        "split_rule": rule,
        "split_sizes": {name: len(part) for name, part in splits.items()},
        "split_sha256": {name: hashlib.sha256(_little_endian(part)).hexdigest() for name, part in splits.items()},
    }
    return splits, meta


def write_folder(folder: Path, splits: dict[str, np.ndarray], meta: dict) -> None:
    """Write the prepared folder whole: a temp sibling, every file fsynced, meta.json last, then a rename. An
    incomplete folder already there is moved aside and removed (a folder cannot be renamed over)."""
    temp = folder.with_name(f"{TEMP_PREFIX}{folder.name}-{uuid.uuid4().hex}")
    temp.mkdir()
    try:
        for name, part in splits.items():
            _write_fsynced(temp / f"{name}.bin", _little_endian(part))
        _write_fsynced(temp / META_FILE, _meta_json(meta).encode("utf-8"))
        _fsync_dir(temp)
        if folder.exists():
            stale = folder.with_name(f"{TEMP_PREFIX}{folder.name}-stale-{uuid.uuid4().hex}")
            os.rename(folder, stale)
            shutil.rmtree(stale)
        os.rename(temp, folder)
        _fsync_dir(folder.parent)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def read_meta(folder: Path) -> dict | None:
    """meta.json of a complete prepared folder (this format, every split file of the size it records); else
    None: the folder is missing, was left by an interrupted run, or was damaged since."""
    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        itemsize = np.dtype(meta["dtype"]).itemsize
        complete = meta["format_version"] == FORMAT_VERSION and all(field in meta for field in FIELDS)
        complete = complete and all(
            (folder / f"{name}.bin").stat().st_size == meta["split_sizes"][name] * itemsize for name in SPLITS
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return meta if complete else None


def map_split(folder: Path, name: str, meta: dict) -> np.ndarray:
    """A read-only memmap of one split (an empty read-only array for an empty split: nothing to map)."""
    dtype = np.dtype(meta["dtype"]).newbyteorder("<")
    if meta["split_sizes"][name] == 0:
        empty = np.empty(0, dtype=dtype)
        empty.flags.writeable = False
        return empty
    return np.memmap(folder / f"{name}.bin", dtype=dtype, mode="r")


@contextlib.contextmanager
def locked(cache: Path):
    """An exclusive flock on the cache folder itself (no lock file to leave behind), released on close: one
    process prepares at a time, and one that waited finds the corpus prepared."""
    fd = os.open(cache, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def remove_leftovers(cache: Path, key: str, download: str = "") -> None:
    """Remove what an interrupted run left in the cache (call under `locked`: no live run owns any of it): the
    temp siblings of the prepared folder `key` and, with `download` (a file name), temp files of its download."""
    for leftover in cache.glob(f"{TEMP_PREFIX}{key}-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    for leftover in cache.glob(f"{TEMP_PREFIX}*-{download}") if download else ():
        with contextlib.suppress(OSError):
            leftover.unlink()


def _meta_json(meta: dict) -> str:
    """JSON with one field a line (the vocabulary's list on its own line rather than a number a line)."""
    return "{\n" + ",\n".join(f" {json.dumps(key)}: {json.dumps(value)}" for key, value in meta.items()) + "\n}\n"


def _little_endian(ids: np.ndarray) -> bytes:
    return ids.astype(ids.dtype.newbyteorder("<"), copy=False).tobytes()


def _write_fsynced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
