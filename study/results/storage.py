"""Storage locations as pyarrow filesystems: one code path for local directories and s3:// / gs:// URIs.

S3-compatible servers (MinIO, on-prem stores) are reached without code changes, either through pyarrow's URI
parameters (`s3://bucket/prefix?endpoint_override=host:9000&scheme=http`) or the standard AWS environment
variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...). Imports nothing heavier than pyarrow.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from study.errors import StudyError

URI_SCHEMES = ("s3", "gs", "gcs", "hdfs", "abfs", "abfss", "file")


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

    def exists(self) -> bool:
        return self.fs.get_file_info(self.path).type != pafs.FileType.NotFound

    def is_dir(self) -> bool:
        return self.fs.get_file_info(self.path).type == pafs.FileType.Directory


def is_uri(text: str) -> bool:
    scheme = urlsplit(text).scheme
    return scheme in URI_SCHEMES and "://" in text


def resolve(location: str, what: str = "storage") -> Location:
    """A Location for a local path or a URI; a malformed URI or unknown scheme is a StudyError naming `what`."""
    if not location:
        raise StudyError(f"{what} is empty: expected a directory path or a URI such as s3://bucket/prefix.")
    if "://" in location and not is_uri(location):
        scheme = location.split("://", 1)[0]
        raise StudyError(
            f"{what}={location!r} uses an unsupported scheme {scheme!r}: expected a local path or one of "
            "s3://, gs://, file://."
        )
    if not is_uri(location) or location.startswith("file://"):
        path = os.path.abspath(os.path.expanduser(location.removeprefix("file://")))
        return Location(pafs.LocalFileSystem(), path, path)
    try:
        fs, path = pafs.FileSystem.from_uri(location)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, ValueError) as exc:
        raise StudyError(f"{what}={location!r} cannot be opened: {exc}.") from None
    base, sep, query = location.partition("?")
    return Location(fs, path.rstrip("/"), base.rstrip("/") + sep + query)


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


def write_parquet_atomic(table: pa.Table, location: Location, directory: str, stem: str) -> str:
    """Write `table` as `<directory>/<stem>.parquet` so that readers never see a partial file.

    Local: write a hidden temporary file in the same directory, then rename it. Object stores: a single object
    upload, which becomes visible only once complete. Returns the final path. On failure nothing is left behind
    (the temporary file is removed) and the exception propagates.
    """
    folder = posixpath.join(location.path, directory)
    final = posixpath.join(folder, f"{stem}.parquet")
    location.fs.create_dir(folder, recursive=True)
    if not location.is_local:
        with location.fs.open_output_stream(final) as out:
            pq.write_table(table, out)
        return final
    temp = posixpath.join(folder, f".tmp-{uuid.uuid4().hex}.parquet")
    try:
        with location.fs.open_output_stream(temp) as out:
            pq.write_table(table, out)
        location.fs.move(temp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            location.fs.delete_file(temp)
        raise
    return final


def list_parquet(location: Location, directory: str) -> list[str]:
    """Visible Parquet files of a results directory, sorted by name (= write order). Temp files are hidden."""
    folder = posixpath.join(location.path, directory)
    try:
        infos = location.fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
    except OSError as exc:
        raise StudyError(f"cannot list {folder!r}: {exc}.") from None
    names = [
        info.path
        for info in infos
        if info.type == pafs.FileType.File
        and info.base_name.endswith(".parquet")
        and not info.base_name.startswith(".")
    ]
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


def write_text_atomic(location: Location, name: str, text: str) -> None:
    path = posixpath.join(location.path, name)
    location.fs.create_dir(location.path, recursive=True)
    if not location.is_local:
        with location.fs.open_output_stream(path) as f:
            f.write(text.encode("utf-8"))
        return
    temp = posixpath.join(location.path, f".tmp-{uuid.uuid4().hex}")
    with location.fs.open_output_stream(temp) as f:
        f.write(text.encode("utf-8"))
    location.fs.move(temp, path)


def write_local_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Write a local file so that it is either complete or absent: `write(f)` fills a temp file in the same
    folder, which is fsynced and then renamed over `path`. On failure the temp file is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
