"""One driver per study: the lease a live `wt-study run` or `resume` holds in the study folder (`driver.lease`).

The lease is a small JSON file: the holder's host, pid, command, a random token, when it started and when it
last renewed. A driver takes it before it starts anything and renews it every RENEW_S seconds from a thread;
a second driver finds a live lease and refuses in one sentence naming the holder. A lease is *stale*, and is
taken over, when its holder is known to be gone: on the same host its pid no longer runs (a driver killed with
kill -9 blocks nothing), and on any host it was not renewed for TTL_S seconds (a lost head node blocks a resume
from elsewhere for at most that long after its last renewal).

Taking it: on local disk the lease appears by a hard link of a complete temp file, which fails when a lease is
already there, so two drivers cannot both create it. Object stores (S3, GCS through pyarrow) offer no
conditional write here: the driver writes its lease, waits VERIFY_S and reads it back, and the one whose token
is there holds it. Two drivers that write within that window both see the later one's token; the earlier
refuses. Each renewal first reads the lease back: a driver that finds another's token there has lost it and
stops (the heartbeat's `on_lost`), so even a race the window missed ends with one driver.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass

from wt_base.errors import StudyError
from wt_base.storage import Location, read_text, write_text_atomic

LEASE_FILE = "driver.lease"
TTL_S = 90.0  # a lease not renewed for this long is stale, whoever held it
RENEW_S = 15.0  # the holder renews it this often
VERIFY_S = 2.0  # object stores: how long a new lease is left before it is read back


@dataclass(frozen=True)
class Holder:
    """Who holds a study's lease."""

    host: str
    pid: int
    command: str  # "run" or "resume"
    token: str  # random: tells two leases of one host and pid apart
    started_at: float  # epoch seconds
    renewed_at: float  # epoch seconds

    def stale(self, now: float) -> bool:
        """Gone for certain: not renewed for TTL_S, or on this host a pid that no longer runs."""
        if now - self.renewed_at > TTL_S:
            return True
        return self.host == socket.gethostname() and not _pid_runs(self.pid)

    def describe(self, now: float) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.started_at))
        return (
            f"wt-study {self.command} on host {self.host}, pid {self.pid} (since {since}, renewed "
            f"{max(0.0, now - self.renewed_at):.0f} s ago)"
        )


def read_holder(location: Location) -> Holder | None:
    """The lease in the study folder `location`, or None (none there, or unreadable: a lease being written)."""
    text = read_text(location, LEASE_FILE)
    if not text:
        return None
    try:
        return Holder(**json.loads(text))
    except (TypeError, ValueError):
        return None


def live_holder(location: Location) -> Holder | None:
    """The lease's holder while it is live (for `wt-study status`); None when there is none or it is stale."""
    holder = read_holder(location)
    return holder if holder is not None and not holder.stale(time.time()) else None


class Lease:
    """The lease of the study at `location`, taken by `acquire` and given back by `release` (a context manager
    does both and renews it in between)."""

    def __init__(self, location: Location, command: str, on_lost=None):
        now = time.time()
        self.location = location
        self.holder = Holder(socket.gethostname(), os.getpid(), command, uuid.uuid4().hex, now, now)
        self._on_lost = on_lost  # called (from the renewing thread) when another driver took the lease
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._made: list[str] = []  # local folders the lease created (deepest first)

    def acquire(self) -> None:
        """Take the lease, or raise StudyError naming the live holder. A stale lease is replaced."""
        current = read_holder(self.location)
        if current is not None and not current.stale(time.time()):
            raise self._refusal(current)
        if self.location.is_local:
            self._create_local(replacing=current)
        else:
            write_text_atomic(self.location, LEASE_FILE, self._text())
            time.sleep(VERIFY_S)
            after = read_holder(self.location)
            if after is None or after.token != self.holder.token:
                raise self._refusal(after) if after else StudyError(f"the lease of {self.location.uri} vanished.")

    def _create_local(self, replacing: Holder | None) -> None:
        final = posixpath.join(self.location.path, LEASE_FILE)
        folder = self.location.path
        while not os.path.exists(folder):  # the folders the lease makes, removed with it if left empty
            self._made.append(folder)
            folder = os.path.dirname(folder)
        os.makedirs(self.location.path, exist_ok=True)
        temp = f"{final}.{self.holder.token}"
        with open(temp, "w", encoding="utf-8") as f:
            f.write(self._text())
            f.flush()
            os.fsync(f.fileno())
        try:
            if replacing is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(final)
            os.link(temp, final)  # fails if a lease is there: only one driver creates it
        except FileExistsError:
            raise self._refusal(read_holder(self.location)) from None
        finally:
            os.remove(temp)

    def renew(self) -> bool:
        """Renew the lease; False (nothing written) when another driver's lease is there instead."""
        current = read_holder(self.location)
        if current is not None and current.token != self.holder.token:
            return False
        self.holder = Holder(**{**asdict(self.holder), "renewed_at": time.time()})
        write_text_atomic(self.location, LEASE_FILE, self._text())
        return True

    def release(self) -> None:
        """Give the lease back (only our own: a lease another driver took is left to it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        current = read_holder(self.location)
        if current is not None and current.token == self.holder.token:
            self.location.fs.delete_file(posixpath.join(self.location.path, LEASE_FILE))
        for folder in self._made:  # deepest first: a driver refused before it wrote anything leaves nothing
            try:
                os.rmdir(folder)
            except OSError:
                break

    def _renewing(self) -> None:
        while not self._stop.wait(RENEW_S):
            try:
                kept = self.renew()
            except (OSError, StudyError):
                continue  # a store that failed once: the lease stays live until TTL_S; try again
            if not kept:
                if self._on_lost is not None:
                    self._on_lost(read_holder(self.location))
                return

    def __enter__(self) -> Lease:
        self.acquire()
        self._thread = threading.Thread(target=self._renewing, name="wt-lease", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def _refusal(self, holder: Holder | None) -> StudyError:
        who = holder.describe(time.time()) if holder else "another driver"
        return StudyError(
            f"the study at {self.location.uri} is being run by {who}: wait for it to end or stop it first (a "
            f"driver that crashed frees it at once on the same host, else {TTL_S:.0f} s after its last renewal)."
        )

    def _text(self) -> str:
        return json.dumps(asdict(self.holder), sort_keys=True)


def _pid_runs(pid: int) -> bool:
    """The process exists and is not a zombie (a killed driver its parent has not reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, as another user
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True  # no /proc (macOS): the signal check is all there is
