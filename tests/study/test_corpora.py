"""Named corpora downloaded from a loopback server, local files and folders, the prepared cache (written whole,
re-prepared when incomplete, reused otherwise), the splits, and the memory-mapped corpus (pickles small)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import pickle
import threading
import types
import urllib.request
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from study.config.run import DataConfig
from study.train.corpora import NAMED_CORPORA, MappedCorpus, load_corpus, url_env
from study.train.prepared import FIXED_SPLIT, VAL_FRACTION_SPLIT, split_sizes
from wt_base.errors import StudyError

RNG = np.random.default_rng(0)
FAKE_ENWIK8 = RNG.integers(0, 256, 4_000, dtype=np.uint8).tobytes()  # every byte value, 4 KB
FAKE_TEXT8 = (" the quick brown fox jumps over the lazy dog" * 46)[:2_000].encode("ascii")


def _zip(member: str, content: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, content)
    return buffer.getvalue()


@dataclasses.dataclass
class Served:
    """What the loopback server serves (path -> body), which bodies it cuts short, and the requests it saw."""

    base: str = ""
    files: dict = dataclasses.field(default_factory=dict)
    truncated: set = dataclasses.field(default_factory=set)
    requests: list = dataclasses.field(default_factory=list)

    def serve(self, path: str, body: bytes) -> str:
        self.files[path] = body
        return self.base + path


@pytest.fixture
def server(monkeypatch):
    """An HTTP server on 127.0.0.1 in a thread. tests/conftest.py replaces urllib.request.urlopen with one that
    always fails (the tests run offline); for this test only it is replaced again, explicitly, by one that
    opens loopback URLs of this server (no proxies) and fails the test on any other URL."""
    served = Served()

    class Handler(BaseHTTPRequestHandler):  # HTTP/1.0: the connection closes after each response
        def do_GET(self):
            served.requests.append(self.path)
            body = served.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2] if self.path in served.truncated else body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    served.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def loopback_only(url, timeout=None):
        assert url.startswith(served.base + "/"), f"a test tried to reach {url}"
        return opener.open(url, timeout=timeout)

    monkeypatch.setattr(urllib.request, "urlopen", loopback_only)
    yield served
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def fake_enwik8(server, monkeypatch):
    """A 4 KB enwik8.zip served at WT_CORPUS_URL_ENWIK8, with its SHA-256 pinned in place of the real one."""
    archive = _zip("enwik8", FAKE_ENWIK8)
    monkeypatch.setenv(url_env("enwik8"), server.serve("/enwik8.zip", archive))
    _pin("enwik8", archive, monkeypatch)
    return archive


def _pin(name: str, archive: bytes, monkeypatch) -> None:
    digest = hashlib.sha256(archive).hexdigest()
    monkeypatch.setitem(NAMED_CORPORA, name, dataclasses.replace(NAMED_CORPORA[name], sha256=digest))


def _one_error(cfg: DataConfig, **kwargs) -> str:
    with pytest.raises(StudyError) as info:
        load_corpus(cfg, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def _listing(folder: Path) -> list[str]:
    """Every path under `folder` (hidden ones included), relative, sorted."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


PREPARED = ["meta.json", "test.bin", "train.bin", "val.bin"]
ENWIK8_CACHE = sorted(["enwik8.zip", "enwik8", *(f"enwik8/{name}" for name in PREPARED)])  # the whole cache


def test_download_prepares_maps_and_is_reused(tmp_path, server, fake_enwik8):
    cfg = DataConfig(corpus="enwik8", cache_dir=str(tmp_path))
    corpus = load_corpus(cfg)
    assert server.requests == ["/enwik8.zip"]
    assert _listing(tmp_path) == ENWIK8_CACHE
    assert (len(corpus.train), len(corpus.val), len(corpus.test)) == (3_600, 200, 200)
    assert np.concatenate([corpus.train, corpus.val, corpus.test]).tobytes() == FAKE_ENWIK8  # token id == byte
    assert isinstance(corpus.train, np.memmap) and not corpus.train.flags.writeable
    assert corpus.unit == "byte" and corpus.bits_label == "bpb" and len(corpus.vocab) == 256
    assert corpus.decode(corpus.encode("héllo <page>")) == "héllo <page>"
    meta = json.loads((tmp_path / "enwik8" / "meta.json").read_text())
    assert meta["source_sha256"] == NAMED_CORPORA["enwik8"].sha256 and meta["vocab"] == list(range(256))
    assert meta["split_sizes"] == {"train": 3_600, "val": 200, "test": 200} and meta["dtype"] == "uint8"
    stamp = os.stat(tmp_path / "enwik8" / "meta.json").st_ino
    again = load_corpus(cfg)  # no request, no preparation: the same files mapped again
    assert server.requests == ["/enwik8.zip"] and os.stat(tmp_path / "enwik8" / "meta.json").st_ino == stamp
    assert np.array_equal(again.val, corpus.val)


def test_text8_by_url_argument_has_the_fixed_alphabet_and_proportional_split(tmp_path, server, monkeypatch):
    archive = _zip("text8", FAKE_TEXT8)
    _pin("text8", archive, monkeypatch)
    corpus = load_corpus(DataConfig(corpus="text8", cache_dir=str(tmp_path)), url=server.serve("/t8.zip", archive))
    assert corpus.vocab == " abcdefghijklmnopqrstuvwxyz" and corpus.unit == "char" and corpus.bits_label == "bpc"
    assert (len(corpus.train), len(corpus.val), len(corpus.test)) == (1_800, 100, 100)
    assert corpus.decode(np.concatenate([corpus.train, corpus.val, corpus.test])) == FAKE_TEXT8.decode()
    assert corpus.train.dtype == np.uint8 and corpus.sha256 == hashlib.sha256(FAKE_TEXT8).hexdigest()


def test_split_rules():
    assert split_sizes(100_000_000, FIXED_SPLIT, 0.1) == (90_000_000, 5_000_000, 5_000_000)  # the standard split
    assert split_sizes(1_999, FIXED_SPLIT, 0.1) == (1_799, 99, 101)  # floors; test takes what rounding left
    assert split_sizes(1_115_394, VAL_FRACTION_SPLIT, 0.1) == (1_003_854, 111_540, 0)  # data.py's rule
    assert split_sizes(10, FIXED_SPLIT, 0.1) == (9, 0, 1)


def test_bad_checksum_writes_nothing(tmp_path, server, monkeypatch):
    monkeypatch.setenv(url_env("enwik8"), server.serve("/enwik8.zip", _zip("enwik8", FAKE_ENWIK8)))
    message = _one_error(DataConfig(corpus="enwik8", cache_dir=str(tmp_path)))  # the real pin: no match
    assert "SHA-256" in message and "nothing was written" in message and server.base in message
    assert _listing(tmp_path) == []


def test_truncated_download_writes_nothing(tmp_path, server, fake_enwik8):
    server.truncated.add("/enwik8.zip")
    message = _one_error(DataConfig(corpus="enwik8", cache_dir=str(tmp_path)))
    half, full = len(fake_enwik8) // 2, len(fake_enwik8)
    assert f"{server.base}/enwik8.zip" in message and f"{half} of the {full} bytes" in message, message
    assert _listing(tmp_path) == []


def test_offline_says_which_file_to_put_where(tmp_path):
    message = _one_error(DataConfig(corpus="text8", cache_dir=str(tmp_path / "cache")))  # conftest: no network
    archive = tmp_path / "cache" / "text8.zip"
    assert f"put text8.zip at {archive} (from http://mattmahoney.net/dc/text8.zip)" in message
    assert "WT_CACHE_DIR" in message and _listing(tmp_path / "cache") == []


@pytest.mark.parametrize("damage", ["temp folder and no meta.json", "a short split file", "a half-written meta.json"])
def test_an_interrupted_cache_is_prepared_again_from_the_kept_download(tmp_path, server, fake_enwik8, damage):
    cfg = DataConfig(corpus="enwik8", cache_dir=str(tmp_path))
    load_corpus(cfg)
    if damage == "a short split file":
        with open(tmp_path / "enwik8" / "val.bin", "r+b") as f:
            f.truncate(10)
    elif damage == "a half-written meta.json":
        meta = tmp_path / "enwik8" / "meta.json"
        meta.write_bytes(meta.read_bytes()[:100])
    else:
        (tmp_path / ".tmp-enwik8-0123abcd").mkdir()
        (tmp_path / ".tmp-enwik8-0123abcd" / "train.bin").write_bytes(b"half")
        (tmp_path / "enwik8" / "meta.json").unlink()
    corpus = load_corpus(cfg)
    assert np.concatenate([corpus.train, corpus.val, corpus.test]).tobytes() == FAKE_ENWIK8
    assert _listing(tmp_path) == ENWIK8_CACHE
    assert server.requests == ["/enwik8.zip"]  # prepared again from the verified download in the cache


def test_trials_starting_together_download_and_prepare_once(tmp_path, server, fake_enwik8):
    cfg = DataConfig(corpus="enwik8", cache_dir=str(tmp_path))
    corpora, errors = [], []

    def trial():
        try:
            corpora.append(load_corpus(cfg))
        except Exception as exc:  # reported below: a thread's exception would not fail the test
            errors.append(exc)

    threads = [threading.Thread(target=trial) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(corpora) == 4 and server.requests == ["/enwik8.zip"]
    assert _listing(tmp_path) == ENWIK8_CACHE


def _reference(text: str, val_fraction: float = 0.1):
    """The character corpus as the first in-memory loader made it: sorted unique characters, their ids, 90/10."""
    vocab = "".join(sorted(set(text)))
    ids = np.array([vocab.index(ch) for ch in text], dtype=np.uint8)
    n_train = int(len(ids) * (1 - val_fraction))
    return vocab, ids[:n_train], ids[n_train:]


def test_local_file_matches_the_first_loader_and_an_edit_prepares_anew(tmp_path, excerpt):
    cfg = DataConfig(corpus=excerpt, cache_dir=str(tmp_path / "cache"))
    mapped = load_corpus(cfg)
    text = Path(excerpt).read_text(encoding="utf-8")
    vocab, train, val = _reference(text)
    assert mapped.vocab == vocab and mapped.sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert np.array_equal(mapped.train, train) and np.array_equal(mapped.val, val)
    assert mapped.train.dtype == np.uint8 and len(mapped.test) == 0
    assert mapped.encode("First") == [vocab.index(ch) for ch in "First"]
    edited = tmp_path / "edited.txt"
    edited.write_text(Path(excerpt).read_text(encoding="utf-8") + "Zounds!\n", encoding="utf-8")
    again = load_corpus(DataConfig(corpus=str(edited), cache_dir=str(tmp_path / "cache")))
    assert again.folder != mapped.folder and again.decode(again.val[-8:]) == "Zounds!\n"
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_folder_of_files_joins_them_in_name_order(tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "b.txt").write_text("second → file", encoding="utf-8")
    (folder / "a.txt").write_text("first file", encoding="utf-8")
    (folder / ".hidden").write_text("not read", encoding="utf-8")
    corpus = load_corpus(DataConfig(corpus=str(folder), cache_dir=str(tmp_path / "cache"), val_fraction=0.5))
    text = "first file\nsecond → file"
    assert corpus.decode(np.concatenate([corpus.train, corpus.val])) == text
    assert corpus.vocab == "".join(sorted(set(text))) and len(corpus.train) == int(len(text) * 0.5)
    (folder / "c.txt").write_bytes("café".encode("latin-1"))
    message = _one_error(DataConfig(corpus=str(folder), cache_dir=str(tmp_path / "cache")))
    assert "(file c.txt) is not UTF-8" in message


def test_large_character_vocabulary_uses_int32(tmp_path):
    text = "".join(chr(0x4E00 + i) for i in range(300)) * 2
    (tmp_path / "han.txt").write_text(text, encoding="utf-8")
    corpus = load_corpus(DataConfig(corpus=str(tmp_path / "han.txt"), cache_dir=str(tmp_path / "cache")))
    assert corpus.train.dtype == np.int32 and len(corpus.vocab) == 300
    assert corpus.decode(np.concatenate([corpus.train, corpus.val])) == text


def test_pickle_is_small_and_maps_the_same_files(tmp_path, server, fake_enwik8):
    corpus = load_corpus(DataConfig(corpus="enwik8", cache_dir=str(tmp_path)))
    blob = pickle.dumps(corpus)
    assert len(blob) < 10_000
    back = pickle.loads(blob)  # noqa: S301 -- our own bytes, made one line above
    assert isinstance(back, MappedCorpus) and back.name == "enwik8" and back.unit == "byte"
    for split in ("train", "val", "test"):
        assert np.array_equal(getattr(back, split), getattr(corpus, split))
        assert isinstance(getattr(back, split), np.memmap)
    # a node whose cache lacks the prepared folder (another machine of a cluster) prepares it from the DataConfig
    # (here from the kept download: no second request), and one whose content differs is refused
    (tmp_path / "enwik8" / "meta.json").unlink()
    again = pickle.loads(blob)  # noqa: S301
    assert (tmp_path / "enwik8" / "meta.json").is_file() and np.array_equal(again.train, corpus.train)
    assert server.requests == ["/enwik8.zip"]
    other = pickle.dumps(load_corpus(DataConfig(corpus="enwik8", cache_dir=str(tmp_path))))
    with pytest.raises(StudyError, match="not the 000000000000"):
        pickle.loads(other.replace(corpus.sha256.encode(), b"0" * 64))  # noqa: S301


def test_tinyshakespeare_by_name_keeps_todays_corpus(tinyshakespeare):
    corpus = load_corpus(DataConfig())  # from the session cache, where the fixture put the verified copy
    vocab, train, val = _reference(tinyshakespeare.read_text(encoding="utf-8"))
    reference = types.SimpleNamespace(vocab=vocab, train=train, val=val)
    assert (len(corpus.train), len(corpus.val), len(corpus.test)) == (1_003_854, 111_540, 0)
    assert corpus.vocab == reference.vocab and len(corpus.vocab) == 65 and corpus.train.dtype == np.uint8
    assert np.array_equal(corpus.train, reference.train) and np.array_equal(corpus.val, reference.val)
    assert corpus.sha256 == NAMED_CORPORA["tinyshakespeare"].sha256 and corpus.decode(corpus.train[:14]) == (
        "First Citizen:"
    )
    assert corpus.folder.name == "tinyshakespeare-val0.1"


def test_user_mistakes_are_one_sentence(tmp_path, server, monkeypatch):
    cache = str(tmp_path / "cache")
    assert "not a known corpus" in _one_error(DataConfig(corpus="wikitext-9000", cache_dir=cache))
    assert "no such file" in _one_error(DataConfig(corpus=str(tmp_path / "nope.txt"), cache_dir=cache))
    message = _one_error(DataConfig(corpus="enwik8", cache_dir=cache, val_fraction=0.2))
    assert "data.val_fraction=0.2" in message and "90/5/5" in message
    (tmp_path / "empty").mkdir()
    assert "no (non-hidden) files" in _one_error(DataConfig(corpus=str(tmp_path / "empty"), cache_dir=cache))
    (tmp_path / "empty.txt").write_text("")
    assert "is empty" in _one_error(DataConfig(corpus=str(tmp_path / "empty.txt"), cache_dir=cache))
    wrong = _zip("text8", b"Not Lowercase")
    _pin("text8", wrong, monkeypatch)
    message = _one_error(DataConfig(corpus="text8", cache_dir=cache), url=server.serve("/t8.zip", wrong))
    assert "b'N' at offset 0" in message
    misnamed = _zip("enwik9", FAKE_ENWIK8)
    _pin("enwik8", misnamed, monkeypatch)
    message = _one_error(DataConfig(corpus="enwik8", cache_dir=cache), url=server.serve("/e8.zip", misnamed))
    assert "holds no file 'enwik8'" in message
    assert not any(p.is_dir() for p in (tmp_path / "cache").iterdir())  # no prepared folder, complete or not
    (tmp_path / "cache" / "enwik8.zip").write_bytes(b"not the archive")  # a wrong copy placed by hand: kept
    assert "delete the file" in _one_error(DataConfig(corpus="enwik8", cache_dir=cache))
    assert (tmp_path / "cache" / "enwik8.zip").read_bytes() == b"not the archive"


def test_tinyshakespeare_comes_from_the_package_with_no_network(tmp_path, monkeypatch, capsys):
    """A fresh machine without network: the smoke preset's corpus is the verified copy the package ships (the
    download URL points at a closed loopback port, so any download attempt would fail)."""
    from study.config.run import DataConfig
    from study.train.corpora import load_corpus

    monkeypatch.setenv("WT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("WT_CORPUS_URL_TINYSHAKESPEARE", "http://127.0.0.1:9/input.txt")
    corpus = load_corpus(DataConfig(corpus="tinyshakespeare"))
    assert len(corpus.train) + len(corpus.val) == 1_115_394 and len(corpus.vocab) == 65
    assert (
        "tinyshakespeare: the copy shipped with wt-study (1,115,394 bytes, SHA-256 verified)" in capsys.readouterr().err
    )
    assert (tmp_path / "cache" / "tinyshakespeare.txt").stat().st_size == 1_115_394
