"""Storage locations as pyarrow filesystems: one code path for local directories and s3:// / gs:// URIs.

S3-compatible servers (MinIO, on-prem stores) are reached without code changes, either through pyarrow's URI
parameters (`s3://bucket/prefix?endpoint_override=host:9000&scheme=http`) or the standard AWS environment
variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...). Imports nothing heavier than pyarrow.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import posixpath
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from wt_base.errors import StudyError

URI_SCHEMES = ("s3", "gs", "gcs", "hdfs", "abfs", "abfss", "file")
STORE_TIMEOUT_S = 30.0  # an object store that has not answered its first request by then is refused


@dataclass(frozen=True)
class Location:
    """A directory on a filesystem. `uri` is what the user gave (normalised), `path` the filesystem's path."""

    fs: pafs.FileSystem
    path: str
    uri: str

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def join(self, *parts: str) -> Location:
        path = posixpath.join(self.path, *parts)
        if self.is_local:
            return Location(self.fs, path, path)
        base, sep, query = self.uri.partition("?")
        return Location(self.fs, path, posixpath.join(base, *parts) + (sep + query if sep else ""))

    @property
    def parent(self) -> Location:
        """The directory above this one on the same filesystem; a URI keeps its query (endpoint, scheme)."""
        path = posixpath.dirname(self.path)
        if self.is_local:
            return Location(self.fs, path, path)
        base, sep, query = self.uri.partition("?")
        return Location(self.fs, path, base.rstrip("/").rsplit("/", 1)[0] + sep + query)

    def is_dir(self) -> bool:
        return self.fs.get_file_info(self.path).type == pafs.FileType.Directory


def is_uri(text: str) -> bool:
    scheme = urlsplit(text).scheme
    return scheme in URI_SCHEMES and "://" in text


def check_location(location: str, what: str = "storage") -> None:
    """Refuse, without reaching any filesystem, a location that cannot be what was meant: empty, an unknown
    scheme, a URI without its bucket (`s3://`, which would become the bucket of the next path part), `file://`
    without a path, or a scheme with one slash (`s3:/bucket`, which would be a local folder named "s3:")."""
    if not location:
        raise StudyError(f"{what} is empty: expected a directory path or a URI such as s3://bucket/prefix.")
    scheme, sep, rest = location.partition("://")
    if sep and not is_uri(location):
        raise StudyError(
            f"{what}={location!r} uses an unsupported scheme {scheme!r}: expected a local path or one of "
            "s3://, gs://, file://."
        )
    if sep and scheme == "file" and not rest.partition("?")[0]:
        raise StudyError(f"{what}={location!r} has no path: expected file:///absolute/path or a directory path.")
    if sep and scheme != "file" and not urlsplit(location).netloc:
        raise StudyError(f"{what}={location!r} has no bucket: expected {scheme}://bucket/prefix.")
    one_slash = re.match(r"^([a-z0-9]+):/(?!/)", location)
    if not sep and one_slash and one_slash.group(1) in URI_SCHEMES:
        scheme = one_slash.group(1)
        raise StudyError(
            f"{what}={location!r} is a URI with one slash: expected {scheme}://{location[len(scheme) + 2 :]}, or a "
            "directory path."
        )


def resolve(location: str, what: str = "storage") -> Location:
    """A Location for a local path or a URI; a malformed URI or unknown scheme is a StudyError naming `what`."""
    check_location(location, what)
    if not is_uri(location) or location.startswith("file://"):
        path = os.path.abspath(os.path.expanduser(location.removeprefix("file://")))
        return Location(pafs.LocalFileSystem(), path, path)
    opened = location
    if urlsplit(location).scheme in ("gs", "gcs") and "retry_limit_seconds" not in location:
        # GCS retries a missing credential for minutes by default: give up in time to say so (the URI kept as given)
        opened += f"{'&' if '?' in location else '?'}retry_limit_seconds={store_timeout_s() / 2:g}"
    try:
        fs, path = pafs.FileSystem.from_uri(opened)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, ValueError) as exc:
        raise StudyError(f"{what}={location!r} cannot be opened: {exc}.") from None
    base, sep, query = location.partition("?")
    resolved = Location(fs, path.rstrip("/"), base.rstrip("/") + sep + query)
    _reach(resolved, what)
    return resolved


def _impatient(fs: pafs.FileSystem, limit_s: float) -> pafs.FileSystem:
    """An S3 filesystem like `fs` whose requests give up within `limit_s` (the probe's own: an abandoned request
    would hold the interpreter's exit, which waits for S3 requests in flight); other filesystems as they are."""
    if not isinstance(fs, pafs.S3FileSystem):
        return fs
    try:
        options = dict(fs.__reduce__()[1][0])  # the options it was made with (pyarrow pickles it so)
        each = min(10.0, max(1.0, limit_s / 10))  # two tries of this well within the limit; Ctrl-C waits for one
        options.update(connect_timeout=each, request_timeout=each)
        return pafs.S3FileSystem(**options, retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=2))
    except (TypeError, ValueError, IndexError, KeyError):  # another pyarrow's options: probe with fs itself
        return fs


FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)  # the store can take no more: retrying cannot help
FULL_WORDS = ("No space left on device", "Disk quota exceeded", "Read-only file system")  # as pyarrow words them


class StorageFull(StudyError):
    """The study's storage refused a write for good (full, over quota, read-only): the study stops, resumable."""


def caused_by(error: BaseException, kind: type, test=lambda e: True) -> BaseException | None:
    """The first exception of type `kind` (passing `test`) in `error`'s chain of causes, or None."""
    seen = error
    while seen is not None:
        if isinstance(seen, kind) and test(seen):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def storage_full(error: BaseException | str) -> str | None:
    """The reason when `error` (an exception, its chain, or a trial's error text) says the storage is full,
    over quota or read-only; else None. pyarrow wraps the errno in its message, so the words count too."""
    if isinstance(error, BaseException):
        found = caused_by(error, OSError, lambda e: e.errno in FULL_ERRNOS)
        if found is not None:
            return os.strerror(found.errno)
    text = str(error)
    return next((words for words in FULL_WORDS if words in text), None)


def store_timeout_s() -> float:
    """How long a store may take to answer its first request before it is refused: $WT_STORE_TIMEOUT_S, else
    STORE_TIMEOUT_S."""
    raw = os.environ.get("WT_STORE_TIMEOUT_S", "")
    try:
        return float(raw) if raw and float(raw) > 0 else STORE_TIMEOUT_S
    except ValueError:
        raise StudyError(f"WT_STORE_TIMEOUT_S={raw!r} is invalid: expected a number of seconds > 0.") from None


def _reach(location: Location, what: str) -> None:
    """Ask an object store for the location once, within store_timeout_s(), so that missing credentials or an
    endpoint that never answers end in one sentence instead of a hang (the AWS and GCS clients retry for minutes,
    deaf to Ctrl-C). The request runs in a thread; this one waits in short steps, so Ctrl-C stops the wait."""
    done: dict = {}
    limit = store_timeout_s()
    fs = _impatient(location.fs, limit)

    def probe() -> None:
        try:
            fs.get_file_info(location.path)
            done["ok"] = True
        except Exception as exc:  # reported below, in the caller's thread
            done["error"] = exc

    thread = threading.Thread(target=probe, name="wt-store-probe", daemon=True)
    thread.start()
    deadline = time.monotonic() + limit
    while thread.is_alive() and time.monotonic() < deadline:
        thread.join(0.1)
    if thread.is_alive():
        raise StudyError(
            f"{what}={location.uri!r} did not answer within {limit:g} s: check its credentials and endpoint (or set "
            "WT_STORE_TIMEOUT_S for a slower store)."
        )
    if "error" in done:
        reason = str(done["error"]).split(". ")[0][:300]
        raise StudyError(f"{what}={location.uri!r} cannot be reached: {reason}.")


def check_writable(location: Location, what: str = "storage") -> None:
    """Refuse, before anything is written, a location that cannot be written to.

    Local: the nearest existing ancestor must be a writable directory. Remote: the bucket must be reachable.
    Nothing is created.
    """
    if location.is_local:
        probe = location.path
        while not os.path.exists(probe):
            parent = os.path.dirname(probe)
            if parent == probe:
                break
            probe = parent
        if not os.path.isdir(probe):
            raise StudyError(f"{what}={location.uri!r} is not usable: {probe!r} exists and is not a directory.")
        if not os.access(probe, os.W_OK | os.X_OK):
            raise StudyError(f"{what}={location.uri!r} is not writable: no write permission on {probe!r}.")
        return
    try:
        location.fs.get_file_info(location.path)
    except OSError as exc:
        raise StudyError(f"{what}={location.uri!r} cannot be reached: {exc}.") from None


TEMP_PREFIX = ".tmp-"  # temp files of atomic writes; hidden from every reader (see is_data_file)


def write_atomic(location: Location, name: str, write: Callable[[BinaryIO], object]) -> str:
    """Write the file `<location>/<name>` so that readers see it complete or not at all; returns its path.

    `write(f)` fills a binary file object. Local: a hidden temp file in the same folder, fsynced, then renamed
    over the name. Object stores: the bytes are built in memory and sent as one upload, which becomes visible
    only once complete. On failure nothing is left behind (the temp file is removed) and the exception propagates.
    """
    final = posixpath.join(location.path, name)
    folder = posixpath.dirname(final)
    if not location.is_local:
        buffer = io.BytesIO()
        write(buffer)
        location.fs.create_dir(folder, recursive=True)
        with location.fs.open_output_stream(final) as out:
            out.write(buffer.getvalue())
        return final
    os.makedirs(folder, exist_ok=True)
    temp = posixpath.join(folder, f"{TEMP_PREFIX}{uuid.uuid4().hex}-{posixpath.basename(final)}")
    try:
        with open(temp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temp)
        raise
    return final


def write_parquet_atomic(table: pa.Table, location: Location, directory: str, stem: str) -> str:
    """Write `table` as `<directory>/<stem>.parquet` with `write_atomic`; returns the final path."""
    return write_atomic(location, posixpath.join(directory, f"{stem}.parquet"), lambda f: pq.write_table(table, f))


def write_text_atomic(location: Location, name: str, text: str) -> str:
    """Write UTF-8 `text` as `<location>/<name>` with `write_atomic`; returns the final path."""
    return write_atomic(location, name, lambda f: f.write(text.encode("utf-8")))


def write_local_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> str:
    """`write_atomic` for a local file path (checkpoints, the corpus cache)."""
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    return write_atomic(Location(pafs.LocalFileSystem(), folder, folder), name, write)


def is_data_file(name: str) -> bool:
    """A Parquet data file: not a temp file of an atomic write (".tmp-...") and no other hidden (".") or
    metadata ("_") name either, the rule Arrow datasets use."""
    return name.endswith(".parquet") and not name.startswith((".", "_"))


def list_parquet(location: Location, directory: str) -> list[str]:
    """The data files of a results directory (see `is_data_file`), sorted by name (= write order). A missing
    directory lists as empty; one that cannot be listed is a StudyError."""
    folder = posixpath.join(location.path, directory)
    try:
        infos = location.fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
    except OSError as exc:
        raise StudyError(f"cannot list {folder!r}: {exc}.") from None
    names = [info.path for info in infos if info.type == pafs.FileType.File and is_data_file(info.base_name)]
    return sorted(names, key=posixpath.basename)


def read_text(location: Location, name: str) -> str | None:
    path = posixpath.join(location.path, name)
    try:
        with location.fs.open_input_stream(path) as f:
            return f.read().decode("utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        if location.fs.get_file_info(path).type == pafs.FileType.NotFound:
            return None
        raise StudyError(f"cannot read {path!r}: {exc}.") from None
