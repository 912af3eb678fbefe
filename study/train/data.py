"""Batches and windows of a corpus (study.train.corpora prepares and maps it): whether a sequence length fits,
batch sampling (gathered on the host from the ids as stored, copied to the device a chunk at a time) and the
fixed validation windows. A sequence length that does not fit is one sentence.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from wt_base.errors import StudyError


def check_corpus_fits(corpus, seq_len: int, what: str = "seq_len") -> None:
    """Raise StudyError unless one window of `seq_len + 1` tokens fits in both the train and the val split."""
    need = seq_len + 1
    for split, ids in (("validation", corpus.val), ("training", corpus.train)):
        if len(ids) < need:
            raise StudyError(
                f"{what}={seq_len} is too long for corpus {corpus.name}: one window needs {need} characters "
                f"but its {split} split has {len(ids)}; use a shorter {what} or a longer text."
            )


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
