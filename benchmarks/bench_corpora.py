"""Corpora: a 10^8-byte enwik8-shaped corpus prepared once, then mapped by N "trials", each a fresh process.

    python benchmarks/bench_corpora.py                    # synthetic archive (text-like random bytes), 4 trials
    python benchmarks/bench_corpora.py --trials 8
    WT_BENCH_ENWIK8=/path/to/enwik8.zip python benchmarks/bench_corpora.py   # the real archive (checksum-verified)

Prints the preparation time (verify the archive placed in the cache, extract, tokenize, write the splits whole),
then for each trial: the time `load_corpus` takes in a fresh interpreter, the pickled size of the MappedCorpus,
and its memory growth (/proc/self/status) after opening, after gathering one random batch, and after reading the
whole 90 MB train split. VmRSS counts the mapped file pages too (RssFile: the page cache, shared by every process
that maps the same files; one batch already maps tens of MB of it, since the kernel maps the cache's large
folios around each touched page), while RssAnon, the process's private memory, grows only by the batch itself:
no trial holds its own copy. Last, the same bytes as a local text file: char-level preparation, and an open
(which hashes the file to find its prepared folder). The page cache is warm after preparation (this bench does
not drop it). Everything is written under /tmp and deleted at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from study.config.run import DataConfig  # noqa: E402
from study.train.corpora import NAMED_CORPORA, load_corpus, prepare_corpus  # noqa: E402
from study.train.download import sha256_of_file  # noqa: E402

N_BYTES = 100_000_000
REAL_ENV = "WT_BENCH_ENWIK8"
BATCH, SEQ_LEN = 64, 1024


def synthetic_archive(path: Path) -> None:
    """An enwik8.zip holding 10^8 text-like bytes: printable ASCII and newlines, Zipf-ish frequencies."""
    import numpy as np

    symbols = np.frombuffer(b" etaoinshrdlcumwfgypbvkjxqz\nETAOINSHRDLCUMWFGYPBVKJXQZ.,<>/=|[]{}0123456789", np.uint8)
    weights = 1.0 / np.arange(1, len(symbols) + 1)
    rng, chunk = np.random.default_rng(0), 10_000_000  # drawn in chunks: choice() holds 16 bytes per draw
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive,
        archive.open("enwik8", "w", force_zip64=True) as member,
    ):
        for _ in range(N_BYTES // chunk):
            member.write(rng.choice(symbols, chunk, p=weights / weights.sum()).tobytes())


def memory_kb() -> dict[str, int]:
    with open("/proc/self/status", encoding="ascii") as f:
        rows = dict(line.split(":", 1) for line in f if line.startswith(("VmRSS", "RssAnon", "RssFile")))
    return {key: int(value.split()[0]) for key, value in rows.items()}


def pin(sha256: str) -> None:
    """Pin the archive's checksum in place of the real enwik8's (the synthetic archive; a no-op for the real)."""
    NAMED_CORPORA["enwik8"] = dataclasses.replace(NAMED_CORPORA["enwik8"], sha256=sha256)


def trial(cache: str, sha256: str, seed: int) -> dict:
    """One trial in this fresh process: map the prepared corpus, gather a batch, then read the train split."""
    import pickle

    import numpy as np

    pin(sha256)
    before = memory_kb()
    start = time.perf_counter()
    corpus = load_corpus(DataConfig(corpus="enwik8", cache_dir=cache))
    map_s = time.perf_counter() - start
    mapped = memory_kb()
    starts = np.random.default_rng(seed).integers(0, len(corpus.train) - SEQ_LEN - 1, BATCH)
    batch = np.stack([corpus.train[s : s + SEQ_LEN + 1] for s in starts]).astype(np.int64)  # (B, T+1)
    after_batch = memory_kb()
    checksum = int(corpus.train.sum(dtype=np.int64))  # reads every page of the 90 MB split
    after_pass = memory_kb()
    return {
        "map_s": map_s,
        "pickle_bytes": len(pickle.dumps(corpus)),
        "open_rss_kb": mapped["VmRSS"] - before["VmRSS"],
        "batch_rss_kb": after_batch["VmRSS"] - mapped["VmRSS"],
        "batch_file_kb": after_batch["RssFile"] - mapped["RssFile"],
        "batch_anon_kb": after_batch["RssAnon"] - mapped["RssAnon"],
        "pass_file_kb": after_pass["RssFile"] - after_batch["RssFile"],
        "pass_anon_kb": after_pass["RssAnon"] - after_batch["RssAnon"],
        "batch_shape": list(batch.shape),
        "checksum": checksum,
    }


def run_trial(cache: Path, sha256: str, seed: int) -> dict:
    command = [sys.executable, __file__, "--trial", str(cache), sha256, str(seed)]
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)  # noqa: S603 - our own
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4, help="fresh processes that each map the corpus")
    parser.add_argument("--trial", nargs=3, metavar=("CACHE", "SHA256", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.trial:
        print(json.dumps(trial(args.trial[0], args.trial[1], int(args.trial[2]))))
        return
    work = Path(tempfile.mkdtemp(prefix="bench_corpora-", dir="/tmp"))
    try:
        bench(work / "cache", args.trials)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench(cache: Path, n_trials: int) -> None:
    cache.mkdir(parents=True)
    archive = cache / "enwik8.zip"  # placed by hand, as offline users do: verified, then extracted
    real = os.environ.get(REAL_ENV)
    start = time.perf_counter()
    if real:
        shutil.copyfile(real, archive)
    else:
        synthetic_archive(archive)
    made_s = time.perf_counter() - start
    sha256 = sha256_of_file(archive)
    pin(sha256)
    what = f"the real enwik8.zip from {real}" if real else "synthetic enwik8.zip"
    print(f"archive: {what}, {archive.stat().st_size:,} bytes (made in {made_s:.1f} s, not counted below)")
    start = time.perf_counter()
    folder = prepare_corpus(DataConfig(corpus="enwik8", cache_dir=str(cache)))
    print(f"prepare (verify + extract + tokenize + write splits): {time.perf_counter() - start:.2f} s")
    sizes = json.loads((folder / "meta.json").read_text())["split_sizes"]
    print(f"  splits: {sizes}")
    print(f"trials: memory growth in MB; a batch is {BATCH} windows of {SEQ_LEN + 1} tokens (as int64: 0.5 MB)")
    print("trial  map_s   pickle_B  open:VmRSS  batch:VmRSS  RssFile  RssAnon  train_pass:RssFile  RssAnon")
    mb = lambda kb: kb / 1024
    for i in range(n_trials):
        r = run_trial(cache, sha256, seed=i)
        print(
            f"{i:5d}  {r['map_s']:.4f}  {r['pickle_bytes']:8d}  {mb(r['open_rss_kb']):10.2f}  "
            f"{mb(r['batch_rss_kb']):11.2f}  {mb(r['batch_file_kb']):7.2f}  {mb(r['batch_anon_kb']):7.2f}  "
            f"{mb(r['pass_file_kb']):18.1f}  {mb(r['pass_anon_kb']):7.2f}"
        )
    local_file(cache, folder)


def local_file(cache: Path, folder: Path) -> None:
    """The same bytes as a local text file: char-level preparation, and an open, which hashes the file."""
    text = cache.parent / "corpus.txt"
    with open(text, "wb") as out:
        for split in ("train", "val", "test"):
            out.write((folder / f"{split}.bin").read_bytes())  # token id == byte: the text itself
    cfg = DataConfig(corpus=str(text), cache_dir=str(cache))
    start = time.perf_counter()
    prepare_corpus(cfg)
    prepared_s = time.perf_counter() - start
    start = time.perf_counter()
    load_corpus(cfg)
    print(
        f"local 10^8-byte text file: prepare {prepared_s:.2f} s; open {time.perf_counter() - start:.3f} s "
        "(hashes the file to find its prepared folder)"
    )


if __name__ == "__main__":
    main()
