"""Why the spec reader and the corpus download stay ours (issue 19's list of hand-written pieces), measured.

1. Mapping -> dataclass (study.config.run.from_mapping, about 50 lines) against dacite (strict) and cattrs
   (forbid_extra_keys): the same spec fragments, good and bad, through each. Reported per case: accepted or not,
   and the first line of the error. What we need: every bad case refused in one sentence that names the dotted
   field, the value and what is allowed; an integer accepted where a number is expected (`lr: 1`).
2. Download + checksum + cache (study.train.download, about 95 lines) against pooch.retrieve, served from a
   loopback HTTP server: a good file, a wrong checksum, a body cut short of its Content-Length, and no server.
   Reported: was the file left in the cache, and the error's first line.

    PYTHONPATH=. python benchmarks/compare_config_libraries.py
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import io
import logging
import sys
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from study.config.run import RunConfig  # noqa: E402
from study.train.download import download_verified  # noqa: E402
from wt_base.errors import StudyError  # noqa: E402

CASES = {
    "good (lr: 1 for a float)": {"train": {"lr": 1, "batch_size": 8}},
    "string for a number": {"train": {"lr": "fast"}},
    "float for an int": {"train": {"batch_size": 16.5}},
    "bool for an int": {"train": {"batch_size": True}},
    "unknown key": {"train": {"batch_sizes": 16}},
    "unknown nested key": {"model": {"n_embed": 64}},
    "not a mapping": {"train": [1, 2]},
}


def _first_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    for sub in getattr(exc, "exceptions", ()):  # cattrs raises exception groups: the first leaf says the most
        text += " | " + _first_line(sub)
    return f"{type(exc).__name__}: {text.splitlines()[0][:110]}"


def _outcome(build, mapping) -> str:
    try:
        build(mapping)
    except Exception as exc:  # noqa: BLE001 - the point is to show whatever each library raises
        return "refused  " + _first_line(exc)
    return "accepted"


def compare_config() -> None:
    readers = {"ours": RunConfig.from_dict}
    try:
        import dacite

        readers["dacite"] = lambda m: dacite.from_dict(RunConfig, m, config=dacite.Config(strict=True))
    except ImportError:
        print("dacite is not installed: pip install dacite")
    try:
        import cattrs

        converter = cattrs.Converter(forbid_extra_keys=True)
        readers["cattrs"] = lambda m: converter.structure(m, RunConfig)
    except ImportError:
        print("cattrs is not installed: pip install cattrs")
    print("1. spec fragment -> RunConfig")
    for case, mapping in CASES.items():
        print(f"  {case}: {mapping}")
        for name, build in readers.items():
            print(f"    {name:7s} {_outcome(build, mapping)}")


class _Handler(http.server.BaseHTTPRequestHandler):
    body = b"First Citizen:\nBefore we proceed any further, hear me speak.\n" * 200

    def do_GET(self):  # noqa: N802 - the stdlib's name
        short = self.path.endswith("short")
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body[: len(self.body) // 2] if short else self.body)
        if short:
            self.close_connection = True

    def log_message(self, *args):
        pass


def compare_download() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    good = hashlib.sha256(_Handler.body).hexdigest()
    cases = {
        "good file": (f"{base}/corpus.txt", good),
        "wrong checksum": (f"{base}/corpus.txt", "0" * 64),
        "cut short": (f"{base}/short", good),
        "no server": ("http://127.0.0.1:9/corpus.txt", good),
    }

    def ours(url, sha, folder):
        download_verified(url, folder / "corpus.txt", sha, "tinyshakespeare")

    getters = {"ours": ours}
    try:
        import pooch

        pooch.get_logger().setLevel(logging.ERROR)
        getters["pooch"] = lambda url, sha, folder: pooch.retrieve(
            url, known_hash=f"sha256:{sha}", fname="corpus.txt", path=folder, progressbar=False
        )
    except ImportError:
        print("pooch is not installed: pip install pooch")
    print("2. download into an empty cache")
    for case, (url, sha) in cases.items():
        print(f"  {case}")
        for name, get in getters.items():
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp)
                with contextlib.redirect_stderr(io.StringIO()):
                    try:
                        get(url, sha, folder)
                        outcome = "ok"
                    except (StudyError, Exception) as exc:  # noqa: BLE001 - showing what each raises
                        outcome = "refused  " + _first_line(exc)
                left = sorted(p.name for p in folder.iterdir())
                print(f"    {name:7s} {outcome}  [cache holds: {', '.join(left) or 'nothing'}]")
    server.shutdown()


if __name__ == "__main__":
    compare_config()
    compare_download()
