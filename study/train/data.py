"""Text data for the study: the corpus (download + cache + checksum, or a local file), the character
vocabulary, the train/val split, batch sampling (gathered on the host, copied to the device a chunk at a time)
and the fixed validation windows.

Every user mistake (unknown corpus, missing or empty file, bad checksum, offline without a cached copy, a
sequence length that does not fit) raises `StudyError` with one sentence, and nothing is left half-written:
downloads are verified in memory and then written to the cache atomically (temp file + `os.replace`).
"""

from __future__ import annotations

import hashlib
import math
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from study.config.run import DataConfig
from wt_base.errors import StudyError
from wt_base.storage import write_local_atomic

CACHE_ENV = "WT_CACHE_DIR"


@dataclass(frozen=True)
class KnownCorpus:
    """A corpus the study can download by name."""

    filename: str  # name of the file in the cache directory
    url: str  # where it is downloaded from
    sha256: str  # expected SHA-256 of the file's bytes


KNOWN_CORPORA = {
    "tinyshakespeare": KnownCorpus(
        filename="tinyshakespeare.txt",
        url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
    ),
}


@dataclass(frozen=True, eq=False)
class Corpus:
    """A character-level corpus split into train and val token arrays (numpy: cheap to pickle to workers)."""

    name: str  # corpus name or the file path it was read from
    vocab: str  # sorted unique characters of the whole text; token id i is vocab[i]
    sha256: str  # SHA-256 of the text's UTF-8 bytes
    train: np.ndarray  # token ids of the first (1 - val_fraction) of the text
    val: np.ndarray  # token ids of the rest

    def encode(self, text: str) -> list[int]:
        index = {ch: i for i, ch in enumerate(self.vocab)}
        try:
            return [index[ch] for ch in text]
        except KeyError as exc:
            raise StudyError(f"character {exc.args[0]!r} is not in the vocabulary of corpus {self.name}.") from None

    def decode(self, ids) -> str:
        return "".join(self.vocab[int(i)] for i in ids)


def load_corpus(cfg: DataConfig) -> Corpus:
    """Read the corpus `cfg.corpus` names (a known name, downloaded and cached, or a UTF-8 text file)."""
    raw = _cached_or_downloaded(cfg.corpus, _cache_dir(cfg)) if cfg.corpus in KNOWN_CORPORA else _read_local(cfg.corpus)
    digest = hashlib.sha256(raw).hexdigest()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StudyError(
            f"data.corpus={cfg.corpus!r} is not UTF-8 text (bad byte at offset {exc.start}): convert it to UTF-8."
        ) from None
    if not text:
        raise StudyError(f"data.corpus={cfg.corpus!r} is empty: give a file with text in it.")
    vocab, ids = _tokenize(text)
    n_train = int(len(ids) * (1 - cfg.val_fraction))
    return Corpus(name=cfg.corpus, vocab=vocab, sha256=digest, train=ids[:n_train], val=ids[n_train:])


def check_corpus_fits(corpus: Corpus, seq_len: int, what: str = "seq_len") -> None:
    """Raise StudyError unless one window of `seq_len + 1` tokens fits in both the train and the val split."""
    need = seq_len + 1
    for split, ids in (("validation", corpus.val), ("training", corpus.train)):
        if len(ids) < need:
            raise StudyError(
                f"{what}={seq_len} is too long for corpus {corpus.name}: one window needs {need} characters "
                f"but its {split} split has {len(ids)}; use a shorter {what} or a longer text."
            )


def _tokenize(text: str) -> tuple[str, np.ndarray]:
    """Character vocabulary (sorted) and the text's token ids, vectorised through UTF-32 code points."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    unique = np.unique(codes)  # sorted code points == sorted characters
    vocab = "".join(chr(c) for c in unique)
    dtype = np.uint8 if len(unique) <= 256 else np.int32
    ids = np.searchsorted(unique, codes).astype(dtype)
    return vocab, ids


def _cache_dir(cfg: DataConfig) -> Path:
    if cfg.cache_dir:
        return Path(cfg.cache_dir).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "wt_study"


def _read_local(corpus: str) -> bytes:
    path = Path(corpus).expanduser()
    looks_like_path = os.sep in corpus or "/" in corpus or path.suffix != ""
    if not path.exists():
        if looks_like_path:
            raise StudyError(f"data.corpus={corpus!r}: no such file; give the path of a UTF-8 text file.")
        raise StudyError(
            f"data.corpus={corpus!r} is not a known corpus or an existing file: use one of "
            f"{', '.join(KNOWN_CORPORA)} or the path of a UTF-8 text file."
        )
    if not path.is_file():
        raise StudyError(f"data.corpus={corpus!r} is not a regular file; give the path of a UTF-8 text file.")
    return path.read_bytes()


def _cached_or_downloaded(name: str, cache: Path) -> bytes:
    known = KNOWN_CORPORA[name]
    path = cache / known.filename
    if path.is_file():
        raw = path.read_bytes()
        digest = hashlib.sha256(raw).hexdigest()
        if digest != known.sha256:
            raise StudyError(
                f"the cached {name} at {path} has SHA-256 {digest[:12]}..., expected {known.sha256[:12]}...: "
                f"delete the file to download it again, or pass the path of your own text as data.corpus."
            )
        return raw
    try:
        with urllib.request.urlopen(known.url, timeout=60) as response:
            raw = response.read()
    except (urllib.error.URLError, OSError) as exc:
        raise StudyError(
            f"data.corpus={name!r} is not cached at {path} and downloading {known.url} failed ({exc}): put "
            f"the file there, set {CACHE_ENV} (or --cache-dir) to a folder holding {known.filename}, "
            "or pass its path."
        ) from None
    digest = hashlib.sha256(raw).hexdigest()
    if digest != known.sha256:
        raise StudyError(
            f"the download of {name} from {known.url} has SHA-256 {digest[:12]}..., expected "
            f"{known.sha256[:12]}...; nothing was written: retry, or put a verified copy at {path}."
        )
    write_local_atomic(path, lambda f: f.write(raw))
    return raw


class BatchSampler:
    """Random training windows, gathered on the host from the token ids as stored and handed to the device a
    chunk at a time (no DataLoader).

    Offsets come from a private CPU `torch.Generator`, so the batches depend only on the seed (not on the
    architecture, the device or anything else drawing random numbers). They are drawn `CHUNK_STEPS` steps at a
    time; the chunk's windows are gathered on the host in the ids' own dtype (uint8 for a character corpus: the
    split is never copied whole, so it may be a read-only numpy memmap), into pinned memory on CUDA, and copied
    to the device without blocking the host. A step then costs one cast to int64 on the device. The state
    (generator state at the start of the current chunk + position in it) goes into checkpoints.
    """

    CHUNK_STEPS = 256

    def __init__(self, ids: np.ndarray, batch_size: int, seq_len: int, seed: int, device: torch.device):
        self.ids = ids  # (N,) token ids as stored; never copied whole
        self.n_offsets = len(ids) - seq_len  # window i is ids[i : i + T + 1]
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.device = device
        self.generator = torch.Generator().manual_seed(seed)
        self._chunk_state: torch.Tensor | None = None  # generator state the current chunk was drawn from
        self._chunk: torch.Tensor | None = None  # (CHUNK_STEPS, B, T+1) windows on the device, ids' dtype
        self._used = 0  # rows of the chunk already handed out

    def windows_at(self, starts: torch.Tensor) -> torch.Tensor:
        """The windows starting at `starts` (any shape S, int64 on the CPU): (*S, T+1) int64 on the device."""
        return self._gather(starts).to(torch.int64)

    def _gather(self, starts: torch.Tensor) -> torch.Tensor:
        """The windows at `starts` (*S) in the ids' dtype on the device (*S, T+1), gathered on the host. On CUDA
        they go through a pinned buffer and one non-blocking copy; the caching host allocator keeps the buffer
        until the copy is done, so dropping it here is safe."""
        windows = torch.from_numpy(window_view(self.ids, self.seq_len)[starts.numpy()])  # (*S, T+1)
        if self.device.type != "cuda":
            return windows.to(self.device)
        pinned = torch.empty(windows.shape, dtype=windows.dtype, pin_memory=True)
        return pinned.copy_(windows).to(self.device, non_blocking=True)

    def _draw_chunk(self) -> None:
        self._chunk_state = self.generator.get_state()
        shape = (self.CHUNK_STEPS, self.batch_size)
        self._chunk = self._gather(torch.randint(self.n_offsets, shape, generator=self.generator))
        self._used = 0

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch: inputs x and next-token targets y, both (B, T) int64 on the device."""
        if self._chunk is None or self._used == self.CHUNK_STEPS:
            self._draw_chunk()
        windows = self._chunk[self._used].to(torch.int64)  # (B, T+1): the cast runs on the device
        self._used += 1
        return windows[:, :-1], windows[:, 1:]

    def get_state(self) -> dict:
        if self._chunk is None:
            return {"generator": self.generator.get_state(), "used": -1}
        return {"generator": self._chunk_state, "used": self._used}

    def set_state(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self._chunk, self._chunk_state, self._used = None, None, 0
        if state["used"] >= 0:
            self._draw_chunk()  # the same chunk again, then skip what was already used
            self._used = state["used"]


def window_view(ids: np.ndarray, seq_len: int) -> np.ndarray:
    """Every window of seq_len + 1 tokens of `ids`, (N - T, T+1): a strided view, no copy (a memmap stays one).
    Index it with an integer array (a copy of the rows asked for); `np.take` would first copy the whole view."""
    return np.lib.stride_tricks.sliding_window_view(ids, seq_len + 1)


def stream_window_starts(n_val: int, seq_len: int, val_tokens: int | None) -> np.ndarray:
    """Start offsets of the fixed validation stream: non-overlapping windows of seq_len + 1 tokens.

    The val split holds `n_val // (seq_len + 1)` such windows. `val_tokens=None` takes all of them (the final
    evaluation); otherwise ceil(val_tokens / seq_len) of them (capped at all), spread evenly over the whole
    split, so every trial that shares seq_len sees exactly the same windows.
    """
    total = n_val // (seq_len + 1)
    n = total if val_tokens is None else min(total, math.ceil(val_tokens / seq_len))
    picked = (np.arange(n, dtype=np.int64) * total) // max(n, 1)  # evenly spaced, strictly increasing
    return picked * (seq_len + 1)


def seed_window_starts(n_val: int, seq_len: int, val_tokens: int) -> np.ndarray:
    """Start offsets of the seed's evaluation: the first ceil(val_tokens / seq_len) stride-1 windows."""
    n = min(n_val - seq_len, math.ceil(val_tokens / seq_len))
    return np.arange(n, dtype=np.int64)


def gather_windows(ids: np.ndarray, starts: np.ndarray, seq_len: int, device: torch.device) -> torch.Tensor:
    """The windows starting at `starts`: an (N, T+1) tensor on the device, in the ids' small dtype."""
    return torch.from_numpy(window_view(ids, seq_len)[starts]).to(device)  # (N, T+1)
