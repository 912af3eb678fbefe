"""Corpus loading (cache, checksum, local files), the split, batch sampling, the validation windows."""

from __future__ import annotations

import hashlib
import io
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from study.config.run import DataConfig
from study.train.corpora import NAMED_CORPORA, load_corpus
from study.train.data import (
    BatchSampler,
    check_corpus_fits,
    gather_windows,
    seed_window_starts,
    stream_window_starts,
)
from wt_base.errors import StudyError

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def shakespeare(excerpt):
    """The committed excerpt (the first 39,908 characters of TinyShakespeare) as a local-file corpus."""
    return load_corpus(DataConfig(corpus=excerpt))


def test_tinyshakespeare_split_and_vocab_match_the_seed(tinyshakespeare):
    real = load_corpus(DataConfig())  # by name, from the download cache
    assert len(real.vocab) == 65
    assert list(real.vocab) == sorted(real.vocab)
    assert (len(real.train), len(real.val)) == (1_003_854, 111_540)
    assert real.sha256 == NAMED_CORPORA["tinyshakespeare"].sha256
    assert real.decode(real.train[:14]) == "First Citizen:"
    text = "To be, or not to be"
    assert real.decode(real.encode(text)) == text


def test_local_file_corpus_splits_90_10_with_its_own_vocab(shakespeare, excerpt):
    text = Path(excerpt).read_text(encoding="utf-8")
    assert (len(shakespeare.train), len(shakespeare.val)) == (35_917, 3_991)  # int(0.9 * 39,908) and the rest
    assert shakespeare.vocab == "".join(sorted(set(text))) and len(shakespeare.vocab) < 65  # not the real one
    assert shakespeare.decode(shakespeare.val[-9:]) == "is true.\n" and shakespeare.name == excerpt


def test_local_file_round_trips_non_ascii(tmp_path):
    path = tmp_path / "poem.txt"
    text = "héllo wörld → ünïcode " * 20
    path.write_text(text, encoding="utf-8")
    corpus = load_corpus(DataConfig(corpus=str(path)))
    assert corpus.vocab == "".join(sorted(set(text)))
    assert corpus.decode(np.concatenate([corpus.train, corpus.val])) == text
    assert corpus.sha256 == hashlib.sha256(text.encode()).hexdigest()


def test_download_is_verified_and_written_atomically(tmp_path, monkeypatch, tinyshakespeare):
    good = tinyshakespeare.read_bytes()
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: _Response(good))
    cache = tmp_path / "fresh" / "cache"
    corpus = load_corpus(DataConfig(cache_dir=str(cache)))
    assert len(corpus.val) == 111_540
    # the verified download, kept so the corpus can be prepared again offline, and the prepared token files
    assert sorted(p.name for p in cache.iterdir()) == ["tinyshakespeare-val0.1", "tinyshakespeare.txt"]


class _Response(io.BytesIO):
    """What urlopen returns, as far as the download reads it: the body and its Content-Length."""

    def __init__(self, body: bytes):
        super().__init__(body)
        self.headers = {"Content-Length": str(len(body))}


def _one_error(cfg: DataConfig) -> str:
    with pytest.raises(StudyError) as info:
        load_corpus(cfg)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.fixture
def unshipped(monkeypatch):
    """TinyShakespeare as a corpus the package does not ship, so that it is downloaded (the download's faults)."""
    import dataclasses

    from study.train import corpora

    known = corpora.NAMED_CORPORA["tinyshakespeare"]
    monkeypatch.setitem(corpora.NAMED_CORPORA, "tinyshakespeare", dataclasses.replace(known, shipped=""))


def test_checksum_mismatch_on_download_writes_nothing(tmp_path, monkeypatch, unshipped):
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: _Response(b"not shakespeare"))
    cache = tmp_path / "cache"
    message = _one_error(DataConfig(cache_dir=str(cache)))
    assert "SHA-256" in message and "nothing was written" in message
    assert not cache.exists() or list(cache.iterdir()) == []


def test_checksum_mismatch_of_cached_file_is_reported_and_kept(tmp_path):
    (tmp_path / "tinyshakespeare.txt").write_text("corrupted")
    message = _one_error(DataConfig(cache_dir=str(tmp_path)))
    assert "SHA-256" in message and "delete" in message
    assert (tmp_path / "tinyshakespeare.txt").read_text() == "corrupted"
    assert [p.name for p in tmp_path.iterdir()] == ["tinyshakespeare.txt"]


def test_offline_without_cache_says_where_to_put_the_file(tmp_path, monkeypatch, unshipped):
    def offline(url, timeout=None):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    cache = tmp_path / "cache"
    message = _one_error(DataConfig(cache_dir=str(cache)))
    assert str(cache / "tinyshakespeare.txt") in message and "WT_CACHE_DIR" in message
    assert not cache.exists() or not any(cache.iterdir())  # nothing written


def test_missing_empty_unknown_and_non_utf8_inputs(tmp_path):
    assert "no such file" in _one_error(DataConfig(corpus=str(tmp_path / "nope.txt")))
    assert "not a known corpus" in _one_error(DataConfig(corpus="wikitext-9000"))
    (tmp_path / "empty.txt").write_text("")
    assert "empty" in _one_error(DataConfig(corpus=str(tmp_path / "empty.txt")))
    (tmp_path / "latin1.txt").write_bytes("café".encode("latin-1"))
    assert "UTF-8" in _one_error(DataConfig(corpus=str(tmp_path / "latin1.txt")))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.txt", "latin1.txt"]


def test_sequence_must_fit_both_splits(tmp_path, shakespeare):
    check_corpus_fits(shakespeare, 3_990)  # exactly one val window
    with pytest.raises(StudyError, match="validation split has 3991"):
        check_corpus_fits(shakespeare, 3_991)
    (tmp_path / "short.txt").write_text("abcdefghij" * 3)  # 27 train chars, 3 val chars
    short = load_corpus(DataConfig(corpus=str(tmp_path / "short.txt")))
    with pytest.raises(StudyError, match="seq_len=8 is too long"):
        check_corpus_fits(short, 8)


def test_sampler_is_reproducible_and_windows_are_shifted(shakespeare):
    a = BatchSampler(shakespeare.train, batch_size=4, seq_len=16, seed=3, device=CPU)
    b = BatchSampler(shakespeare.train, batch_size=4, seq_len=16, seed=3, device=CPU)
    c = BatchSampler(shakespeare.train, batch_size=4, seq_len=16, seed=4, device=CPU)
    x, y = a.next()
    assert x.shape == y.shape == (4, 16) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert torch.equal(x, b.next()[0])
    assert not torch.equal(x, c.next()[0])
    torch.manual_seed(123)  # the global RNG does not affect the sampler
    saved = a.get_state()
    x2, _ = a.next()
    a.set_state(saved)
    assert torch.equal(a.next()[0], x2)
    # each row is a real window of the training text
    text_windows = torch.as_tensor(shakespeare.train.astype(np.int64)).unfold(0, 16, 1)  # (N - 15, 16)
    for row in x2:
        assert bool((text_windows == row).all(dim=1).any())


def test_sampler_state_survives_chunk_boundaries(shakespeare):
    a = BatchSampler(shakespeare.train, batch_size=2, seq_len=8, seed=0, device=CPU)
    assert a.get_state()["used"] == -1
    for _ in range(BatchSampler.CHUNK_STEPS - 1):
        a.next()
    saved = a.get_state()
    expected = [a.next()[0] for _ in range(3)]  # crosses into the next chunk
    b = BatchSampler(shakespeare.train, batch_size=2, seq_len=8, seed=0, device=CPU)
    b.set_state(saved)
    assert all(torch.equal(b.next()[0], x) for x in expected)


def test_validation_stream_is_fixed_non_overlapping_and_spread():
    n_val, seq_len = 111_540, 64
    starts = stream_window_starts(n_val, seq_len, val_tokens=4096)
    assert len(starts) == 64 and np.all(np.diff(starts) >= seq_len + 1)
    assert starts[0] == 0 and starts[-1] > n_val * 0.9  # covers the whole split, not just its head
    assert np.array_equal(starts, stream_window_starts(n_val, seq_len, val_tokens=4096))
    full = stream_window_starts(n_val, seq_len, val_tokens=None)
    assert len(full) == n_val // (seq_len + 1) and np.array_equal(np.diff(full), np.full(len(full) - 1, 65))
    assert set(starts) <= set(full)
    capped = stream_window_starts(n_val, seq_len, val_tokens=10**9)
    assert np.array_equal(capped, full)


def test_seed_protocol_windows_are_stride_one(shakespeare):
    starts = seed_window_starts(len(shakespeare.val), 32, val_tokens=320)
    assert np.array_equal(starts, np.arange(10))
    windows = gather_windows(shakespeare.val, starts, 32, CPU)
    assert windows.shape == (10, 33)
    assert torch.equal(windows[1, :-1], windows[0, 1:])


def _old_sampler_batches(ids: np.ndarray, batch_size: int, seq_len: int, seed: int, steps: int, skip: int = 0):
    """The sampler as it was before it kept the ids in their stored dtype: the whole split as int64, windows
    by index_select, offsets drawn CHUNK_STEPS steps at a time from a private generator."""
    windows = torch.from_numpy(ids.astype(np.int64)).unfold(0, seq_len + 1, 1)  # (N - T, T+1)
    generator = torch.Generator().manual_seed(seed)
    batches = []
    while len(batches) < skip + steps:
        chunk = torch.randint(windows.shape[0], (BatchSampler.CHUNK_STEPS, batch_size), generator=generator)
        batches += [windows.index_select(0, starts)[:, :-1] for starts in chunk]
    return batches[skip : skip + steps]


def test_sampler_batches_are_bit_identical_to_the_int64_samplers(shakespeare):
    """Same offsets from the same generator, same windows, across a chunk boundary; a state saved by the old
    sampler (the same {"generator", "used"} format) resumes in the new one."""
    expected = _old_sampler_batches(shakespeare.train, 3, 8, seed=7, steps=BatchSampler.CHUNK_STEPS + 4)
    sampler = BatchSampler(shakespeare.train, batch_size=3, seq_len=8, seed=7, device=CPU)
    got = [sampler.next()[0] for _ in expected]
    assert all(x.dtype == torch.int64 and torch.equal(x, want) for x, want in zip(got, expected, strict=True))
    old_state = {"generator": torch.Generator().manual_seed(7).get_state(), "used": 5}  # mid first chunk
    resumed = BatchSampler(shakespeare.train, batch_size=3, seq_len=8, seed=0, device=CPU)
    resumed.set_state(old_state)
    assert all(torch.equal(resumed.next()[0], want) for want in expected[5:9])


def test_sampler_reads_a_uint8_memmap_without_copying_the_split(tmp_path):
    """A large corpus may be a read-only memmap of uint8 tokens: the sampler keeps it as it is (no int64 copy of
    the split anywhere), gathers only the windows it hands out, and casts those to int64."""
    rng = np.random.default_rng(0)
    path = tmp_path / "tokens.u8"
    rng.integers(0, 256, 5_000, dtype=np.uint8).tofile(path)
    ids = np.memmap(path, dtype=np.uint8, mode="r")
    sampler = BatchSampler(ids, batch_size=4, seq_len=16, seed=1, device=CPU)
    x, y = sampler.next()
    assert sampler.ids is ids and x.dtype == y.dtype == torch.int64 and x.shape == (4, 16)
    big = [v for v in vars(sampler).values() if isinstance(v, torch.Tensor) and v.numel() >= len(ids)]
    assert all(v.dtype == torch.uint8 for v in big)  # only the chunk's windows, in the stored dtype
    expected = _old_sampler_batches(np.asarray(ids), 4, 16, seed=1, steps=2)
    assert torch.equal(x, expected[0]) and torch.equal(sampler.next()[0], expected[1])
    starts = torch.tensor([0, 4_983])  # the first and the last window
    windows = sampler.windows_at(starts)
    assert windows.dtype == torch.int64 and torch.equal(windows[1], torch.from_numpy(ids[-17:].astype(np.int64)))
