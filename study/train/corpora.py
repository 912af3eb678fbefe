"""Corpora prepared once into the cache as token files, and memory-mapped by every trial that uses them.

`load_corpus(DataConfig)` returns a `MappedCorpus`: read-only numpy memmaps of the train / val / test splits,
the vocabulary, the content's SHA-256 and `encode` / `decode`, like `data.Corpus`. All trials on a machine share
one page-cache copy of the tokens, so a trial needs only its DataConfig; a MappedCorpus that is pickled anyway
(through Ray's object store) travels as its folder path and is mapped again on arrival.

`data.corpus` is a name in NAMED_CORPORA (downloaded, checksum-verified; tinyshakespeare ships with the package, so
it needs no network), a local UTF-8 text file, or a folder of
them: its regular, non-hidden files in name order, joined with FOLDER_SEPARATOR between consecutive files. A named
corpus's URL can be replaced (a mirror, a test server) by the environment variable WT_CORPUS_URL_<NAME>
(WT_CORPUS_URL_ENWIK8) or by load_corpus(url=...); the SHA-256 it must match stays the pinned one.

Cache (`data.cache_dir`, else $WT_CACHE_DIR, else $XDG_CACHE_HOME/wt_study or ~/.cache/wt_study):
    <cache>/<download>   the download as published (tinyshakespeare.txt, enwik8.zip, text8.zip), kept so the
                         corpus can be prepared again offline; a copy placed there by hand is used, once verified
    <cache>/<key>/       the prepared folder: train.bin, val.bin, test.bin and meta.json (see prepared.py)
`<key>` is the name for a fixed split (enwik8, text8), `<name>-val<fraction>` for a split that follows
data.val_fraction (tinyshakespeare-val0.1), and `local-<first 16 hex of the content's SHA-256>-val<fraction>` for
local text, so an edited file prepares anew. A folder is prepared whole (temp sibling, fsync, rename); one that
is incomplete (no meta.json, a file whose size disagrees with it, another format or source) is prepared again,
never read, and what an interrupted run left is removed. Preparing holds an exclusive lock on the cache folder:
trials that start together on one machine prepare once; the others wait, then map.

Splits (prepared.split_sizes): enwik8 and text8 take the standard first 90% / next 5% / last 5% (exactly 90M / 5M
/ 5M of their 10^8 tokens, the same proportions for a shorter input); tinyshakespeare and local text keep
data.py's rule, first int(n * (1 - data.val_fraction)) train and the rest val, with an empty test split.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from study.config.run import DataConfig
from study.train.download import CACHE_ENV, download_verified, sha256_of_file
from study.train.prepared import (
    FIXED_SPLIT,
    SPLITS,
    UNITS,
    VAL_FRACTION_SPLIT,
    build,
    locked,
    map_split,
    read_meta,
    remove_leftovers,
    split_sizes,
    write_folder,
)
from wt_base.errors import StudyError
from wt_base.storage import write_local_atomic

URL_ENV_PREFIX = "WT_CORPUS_URL_"  # WT_CORPUS_URL_ENWIK8=<mirror> replaces enwik8's URL (same pinned SHA-256)
FOLDER_SEPARATOR = "\n"  # written between consecutive files of a folder corpus
DEFAULT_VAL_FRACTION = DataConfig().val_fraction
SHIPPED_DIR = "corpora_data"  # package data of study.train: corpora small enough to ship (NamedCorpus.shipped)


@dataclass(frozen=True)
class NamedCorpus:
    """A corpus the study downloads by name."""

    url: str  # where it is published (replaceable: WT_CORPUS_URL_<NAME>, or load_corpus(url=...))
    filename: str  # the download's name in the cache
    sha256: str  # pinned SHA-256 of the download's bytes
    member: str  # the file inside the zip archive that holds the text; "" when the download is the text
    tokens: str  # "chars": sorted unique characters; "text8": TEXT8_SYMBOLS; "bytes": token = byte value (256)
    split: str  # FIXED_SPLIT or VAL_FRACTION_SPLIT
    n_tokens: int  # tokens of the whole text (what a dry run plans with before anything is downloaded)
    vocab_size: int  # its vocabulary
    shipped: str = ""  # an xz copy of the download in the package (study/train/corpora_data), used before any download


NAMED_CORPORA = {
    # 1,115,394 bytes. SHA-256 as pinned by HuggingFace datasets for this URL: datasets/tiny_shakespeare/
    # dataset_infos.json (huggingface/datasets@040102f1), and by study/train/data.py.
    "tinyshakespeare": NamedCorpus(
        url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        filename="tinyshakespeare.txt",
        sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        member="",
        tokens="chars",
        split=VAL_FRACTION_SPLIT,
        n_tokens=1_115_394,
        vocab_size=65,
        shipped="tinyshakespeare.txt.xz",  # 364 KB: the smoke study and `wt-study train` run offline
    ),
    # enwik8.zip: 36,445,475 bytes holding `enwik8` (10^8 bytes). mattmahoney.net publishes no checksum; this is
    # the SHA-256 HuggingFace datasets pins for the URL: datasets/enwik8/dataset_infos.json (huggingface/
    # datasets@040102f1), the same value as in JuliaText CorpusLoaders.jl's DataDeps registration.
    # Byte-level with all 256 byte values as the vocabulary (token id == byte; the file uses ~205 of them).
    "enwik8": NamedCorpus(
        url="http://mattmahoney.net/dc/enwik8.zip",
        filename="enwik8.zip",
        sha256="547994d9980ebed1288380d652999f38a14fe291a6247c157c3d33d4932534bc",
        member="enwik8",
        tokens="bytes",
        split=FIXED_SPLIT,
        n_tokens=100_000_000,
        vocab_size=256,
    ),
    # text8.zip: 31,344,016 bytes holding `text8` (10^8 characters, a-z and space). SHA-256 as pinned by
    # TensorFlow's word2vec tutorial: tensorflow/examples/tutorials/word2vec/word2vec_basic.py
    # (tensorflow/tensorflow@05712d46), maybe_download('text8.zip', 31344016, sha256=...).
    "text8": NamedCorpus(
        url="http://mattmahoney.net/dc/text8.zip",
        filename="text8.zip",
        sha256="a6640522afe85d1963ad56c05b0ede0a0c000dddc9671758a6cc09b7a38e5232",
        member="text8",
        tokens="text8",
        split=FIXED_SPLIT,
        n_tokens=100_000_000,
        vocab_size=27,
    ),
}


class MappedCorpus:
    """A prepared corpus, memory-mapped read-only. What `data.Corpus` offers (name, vocab, sha256, train, val,
    encode, decode) plus `test`, `unit` ("char" or "byte": the loss in bits per token is bpc or bpb), `folder`
    and `meta` (meta.json). vocab[i] is token i's character; for a byte corpus chr(i), and encode / decode go
    through UTF-8. Pickles as (folder, name, sha256) and maps the files again when unpickled."""

    def __init__(self, folder: Path, name: str, data: DataConfig | None = None):
        meta = read_meta(folder)
        if meta is None:
            raise StudyError(
                f"data.corpus={name!r}: no complete prepared corpus at {folder} on this machine; open it with "
                "load_corpus(DataConfig) here, which prepares it."
            )
        self.folder, self.name, self.meta = folder, name, meta
        self.data = data or DataConfig(corpus=name)  # how to prepare it again, on a machine that lacks it
        self.vocab = "".join(map(chr, meta["vocab"]))
        self.sha256 = meta["content_sha256"]  # of the text (or bytes) the tokens were made from
        self.unit = UNITS[meta["tokens"]]
        self.train, self.val, self.test = (map_split(folder, split, meta) for split in SPLITS)
        self._index: dict[str, int] | None = None

    @property
    def bits_label(self) -> str:
        return {"char": "bpc", "byte": "bpb"}[self.unit]

    def encode(self, text: str) -> list[int]:
        if self.unit == "byte":
            return list(text.encode("utf-8"))
        if self._index is None:
            self._index = {ch: i for i, ch in enumerate(self.vocab)}
        try:
            return [self._index[ch] for ch in text]
        except KeyError as exc:
            raise StudyError(f"character {exc.args[0]!r} is not in the vocabulary of corpus {self.name}.") from None

    def decode(self, ids) -> str:
        if self.unit == "byte":
            return bytes(int(i) for i in ids).decode("utf-8", errors="replace")
        return "".join(self.vocab[int(i)] for i in ids)

    def __reduce__(self):
        return _reopen, (str(self.folder), self.name, self.sha256, dataclasses.asdict(self.data))

    def __repr__(self) -> str:
        sizes = ", ".join(f"{split}={len(getattr(self, split))}" for split in SPLITS)
        return f"MappedCorpus({self.name!r}, {self.unit}, vocab={len(self.vocab)}, {sizes}, folder={self.folder})"


@dataclass(frozen=True)
class Outline:
    """What planning needs of a corpus and no more: its vocabulary and split lengths (a dry run of a named corpus
    that is not downloaded yet plans with its published size)."""

    name: str
    vocab: str  # placeholder characters when only the size is known
    train: range  # len() is what planning reads
    val: range
    test: range


def corpus_outline(cfg: DataConfig) -> Outline | MappedCorpus:
    """The prepared corpus when this machine has it (or it is a local file), else a named corpus's outline from
    its published size, so that `wt-study run --dry-run` downloads nothing."""
    if cfg.corpus in NAMED_CORPORA:
        known = NAMED_CORPORA[cfg.corpus]
        plan = _plan_named(cfg, cache_dir(cfg), None)
        if not _is_prepared(cache_dir(cfg) / plan.key, plan):
            sizes = split_sizes(known.n_tokens, known.split, cfg.val_fraction)
            return Outline(cfg.corpus, "?" * known.vocab_size, *(range(n) for n in sizes))
    return load_corpus(cfg)


def load_corpus(cfg: DataConfig, *, url: str | None = None) -> MappedCorpus:
    """Map the corpus `cfg.corpus` names, preparing it first if the cache has no complete copy (see the module
    docstring). `url` replaces a named corpus's URL (as WT_CORPUS_URL_<NAME> does); its SHA-256 stays pinned."""
    return MappedCorpus(prepare_corpus(cfg, url=url), cfg.corpus, cfg)


def prepare_corpus(cfg: DataConfig, *, url: str | None = None) -> Path:
    """The folder of the prepared corpus, preparing it (once per cache, under a lock) if needed."""
    cache = cache_dir(cfg)
    plan = _plan_named(cfg, cache, url) if cfg.corpus in NAMED_CORPORA else _plan_local(cfg)
    folder = cache / plan.key
    if _is_prepared(folder, plan):
        return folder
    cache.mkdir(parents=True, exist_ok=True)
    with locked(cache):
        if not _is_prepared(folder, plan):  # else another process prepared it while this one waited
            remove_leftovers(cache, plan.key, plan.download)
            write_folder(folder, *_build(plan, cfg))
    return folder


def _build(plan: _Plan, cfg: DataConfig) -> tuple[dict, dict]:
    content = plan.read()
    if not content:
        raise StudyError(f"data.corpus={cfg.corpus!r} is empty: give a file with text in it.")
    about = {"corpus": cfg.corpus, "source": plan.source, "source_sha256": plan.source_sha256}
    return build(content, tokens=plan.tokens, split=plan.split, val_fraction=cfg.val_fraction, about=about)


def _is_prepared(folder: Path, plan: _Plan) -> bool:
    meta = read_meta(folder)
    return meta is not None and meta["source_sha256"] == plan.source_sha256


def cache_dir(cfg: DataConfig) -> Path:
    """data.cache_dir, else $WT_CACHE_DIR, else $XDG_CACHE_HOME/wt_study or ~/.cache/wt_study (as data.py)."""
    if cfg.cache_dir:
        return Path(cfg.cache_dir).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "wt_study"


def url_env(name: str) -> str:
    """The environment variable that replaces a named corpus's URL: WT_CORPUS_URL_ENWIK8 for enwik8."""
    return URL_ENV_PREFIX + "".join(ch if ch.isalnum() else "_" for ch in name.upper())


@dataclass(frozen=True)
class _Plan:
    """What one DataConfig prepares, and under which folder name."""

    key: str  # the prepared folder's name in the cache
    source: str  # the URL or local path, for meta.json
    source_sha256: str  # the download's pinned digest, or the local content's digest
    tokens: str  # as NamedCorpus.tokens
    split: str  # FIXED_SPLIT or VAL_FRACTION_SPLIT
    download: str  # the download's file name in the cache ("" for local text)
    read: Callable[[], bytes]  # the content to tokenize (downloads a named corpus if the cache lacks it)


def _plan_named(cfg: DataConfig, cache: Path, url: str | None) -> _Plan:
    known = NAMED_CORPORA[cfg.corpus]
    url = url or os.environ.get(url_env(cfg.corpus)) or known.url
    if known.split == FIXED_SPLIT and cfg.val_fraction != DEFAULT_VAL_FRACTION:
        raise StudyError(
            f"data.val_fraction={cfg.val_fraction!r} does not apply to {cfg.corpus}, whose split is the standard "
            f"{FIXED_SPLIT} (train / val / test): leave data.val_fraction at {DEFAULT_VAL_FRACTION}."
        )
    key = cfg.corpus if known.split == FIXED_SPLIT else f"{cfg.corpus}-val{cfg.val_fraction!r}"
    read = lambda: _named_content(cfg.corpus, known, cache / known.filename, url)
    return _Plan(key, url, known.sha256, known.tokens, known.split, known.filename, read)


def _named_content(name: str, known: NamedCorpus, path: Path, url: str) -> bytes:
    """The text of a named corpus: from its verified download in the cache, downloading it first if absent."""
    if path.is_file():
        digest = sha256_of_file(path)
        if digest != known.sha256:
            raise StudyError(
                f"the cached {name} at {path} has SHA-256 {digest[:12]}..., expected {known.sha256[:12]}...: "
                "delete the file to download it again, or pass the path of your own text as data.corpus."
            )
    elif not (known.shipped and _unpack_shipped(name, known, path)):
        download_verified(url, path, known.sha256, name)
    if not known.member:
        return path.read_bytes()
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.read(known.member)
    except KeyError:
        raise StudyError(
            f"the archive {path} holds no file {known.member!r}: delete it to download it again."
        ) from None
    except zipfile.BadZipFile:
        raise StudyError(f"{path} is not a zip archive: delete it to download it again.") from None


def _unpack_shipped(name: str, known: NamedCorpus, path: Path) -> bool:
    """Put the package's copy of a named corpus at `path` (the cache's download), if it has the pinned SHA-256;
    False (nothing written) when the package lacks it or it does not verify, so that it is downloaded instead."""
    import lzma
    import sys
    from importlib import resources

    shipped = resources.files("study.train") / SHIPPED_DIR / known.shipped
    try:
        content = lzma.decompress(shipped.read_bytes())
    except (OSError, lzma.LZMAError):
        return False
    if hashlib.sha256(content).hexdigest() != known.sha256:
        return False
    write_local_atomic(path, lambda f: f.write(content))
    print(
        f"{name}: the copy shipped with wt-study ({len(content):,} bytes, SHA-256 verified) -> {path}", file=sys.stderr
    )
    return True


def _plan_local(cfg: DataConfig) -> _Plan:
    path = Path(cfg.corpus).expanduser()
    if not path.exists():
        looks_like_path = os.sep in cfg.corpus or "/" in cfg.corpus or path.suffix != ""
        if looks_like_path:
            raise StudyError(f"data.corpus={cfg.corpus!r}: no such file; give the path of a UTF-8 text file.")
        raise StudyError(
            f"data.corpus={cfg.corpus!r} is not a known corpus or an existing file: use one of "
            f"{', '.join(NAMED_CORPORA)}, the path of a UTF-8 text file or of a folder of them."
        )
    files = _folder_files(cfg.corpus, path) if path.is_dir() else [_regular_file(cfg.corpus, path)]
    digest = _sha256_of_joined(files)
    read = lambda: _read_local(cfg.corpus, files, digest, in_folder=path.is_dir())
    key = f"local-{digest[:16]}-val{cfg.val_fraction!r}"
    return _Plan(key, str(path.resolve()), digest, "chars", VAL_FRACTION_SPLIT, "", read)


def _sha256_of_joined(files: list[Path]) -> str:
    """SHA-256 of the files joined with FOLDER_SEPARATOR (what a folder corpus is made of), read in chunks."""
    if len(files) == 1:
        return sha256_of_file(files[0])
    hasher = hashlib.sha256()
    for i, file in enumerate(files):
        hasher.update(FOLDER_SEPARATOR.encode() if i else b"")
        with open(file, "rb") as f:
            while chunk := f.read(1 << 20):
                hasher.update(chunk)
    return hasher.hexdigest()


def _folder_files(corpus: str, folder: Path) -> list[Path]:
    files = sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")), key=lambda p: p.name)
    if not files:
        raise StudyError(f"data.corpus={corpus!r} is a folder with no (non-hidden) files: put UTF-8 text files in it.")
    return files


def _regular_file(corpus: str, path: Path) -> Path:
    if not path.is_file():
        raise StudyError(f"data.corpus={corpus!r} is not a regular file; give the path of a UTF-8 text file.")
    return path


def _read_local(corpus: str, files: list[Path], digest: str, in_folder: bool) -> bytes:
    """The local text: the files joined with FOLDER_SEPARATOR, each checked to be UTF-8, and still the content
    whose SHA-256 named the prepared folder."""
    content = FOLDER_SEPARATOR.encode().join(_utf8(corpus, file, in_folder) for file in files)
    if hashlib.sha256(content).hexdigest() != digest:
        raise StudyError(f"data.corpus={corpus!r} changed while it was being prepared: run again once it is written.")
    return content


def _utf8(corpus: str, file: Path, in_folder: bool) -> bytes:
    raw = file.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = f" (file {file.name})" if in_folder else ""
        raise StudyError(
            f"data.corpus={corpus!r}{where} is not UTF-8 text (bad byte at offset {exc.start}): convert it to UTF-8."
        ) from None
    return raw


def _reopen(folder: str, name: str, sha256: str, data: dict | None = None) -> MappedCorpus:
    """Unpickle a MappedCorpus: map its folder again; on a machine whose cache lacks it (another node of a
    cluster), prepare it there from its DataConfig (a named corpus is downloaded; a local file must exist at the
    same path). Refuse one that now holds other content."""
    if read_meta(Path(folder)) is None and data is not None:
        corpus = load_corpus(DataConfig(**data))
    else:
        corpus = MappedCorpus(Path(folder), name, None if data is None else DataConfig(**data))
    if corpus.sha256 != sha256:
        raise StudyError(
            f"the prepared corpus {name} at {corpus.folder} holds content with SHA-256 {corpus.sha256[:12]}..., "
            f"not the {sha256[:12]}... it held when it was sent: the file differs on this machine; give every node "
            "the same."
        )
    return corpus
