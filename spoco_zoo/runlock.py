"""One run per output folder: a lock file with the owner's pid and host.

:class:`RunLock` creates ``FOLDER/.spoco-zoo.lock`` holding ``{"pid", "host", "started", "command"}``
and keeps an exclusive ``flock`` on it while the run lasts. A second run on the same folder fails
at once with :class:`~spoco_zoo.errors.LockError` naming the owner. The operating system drops the
``flock`` when its process dies (``kill -9`` included), so a lock file left by a killed run is
recognised as stale and taken over (:attr:`RunLock.took_over` says whose it was). A lock whose file
names another host, or a live process on this host, is never taken over: the message says to delete
the file if no run uses the folder. Releasing removes the file.

Without ``fcntl`` (Windows) the file is created exclusively and an existing one is never taken over.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from spoco_zoo.errors import LockError

__all__ = ["LOCK_NAME", "LockOwner", "RunLock", "read_owner"]

LOCK_NAME = ".spoco-zoo.lock"
_ATTEMPTS = 5


@dataclass(frozen=True)
class LockOwner:
    """Who holds (or held) a lock.

    Attributes
    ----------
    pid, host:
        Process id and host name of the owner.
    started:
        When the lock was taken (local time, ISO 8601).
    command:
        What the owner runs, e.g. ``spoco-zoo train``.
    """

    pid: int
    host: str
    started: str = ""
    command: str = ""

    def describe(self) -> str:
        """``"spoco-zoo train, pid 123 on host node1 since 2026-01-01T10:00:00"``."""
        what = f"{self.command}, " if self.command else ""
        since = f" since {self.started}" if self.started else ""
        return f"{what}pid {self.pid} on host {self.host}{since}"

    def is_alive_here(self) -> bool:
        """Whether the owner is a live process on this host (``False`` for another host)."""
        if self.host != socket.gethostname() or self.pid <= 0:
            return False
        if sys.platform == "win32":  # os.kill would terminate it; assume alive
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # exists, owned by another user
            return True
        return True


def read_owner(text: str) -> LockOwner | None:
    """Parse a lock file's content; ``None`` for an empty or unreadable one.

    Examples
    --------
    >>> read_owner('{"pid": 12, "host": "n1", "started": "", "command": "x"}').describe()
    'x, pid 12 on host n1'
    >>> read_owner("garbage") is None
    True
    """
    try:
        raw = json.loads(text)
        return LockOwner(int(raw["pid"]), str(raw["host"]), str(raw.get("started", "")), str(raw.get("command", "")))
    except (ValueError, TypeError, KeyError):
        return None


def _read_fd(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 65536).decode("utf-8", errors="replace")


class RunLock:
    """Exclusive use of ``folder`` by this process (a context manager; see the module docstring).

    Parameters
    ----------
    folder:
        The output folder; created when missing.
    command:
        Written into the lock file for the messages of other runs.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> with RunLock(folder) as lock:
    ...     (folder / LOCK_NAME).is_file()
    True
    >>> (folder / LOCK_NAME).exists()
    False
    """

    def __init__(self, folder: str | Path, command: str = "spoco-zoo train") -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.command = command
        self.took_over: LockOwner | None = None
        self._fd: int | None = None

    # ------------------------------------------------------------------ public
    def acquire(self) -> RunLock:
        """Take the lock or raise :class:`~spoco_zoo.errors.LockError` (``OSError`` when the folder is unusable)."""
        if self._fd is not None:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(_ATTEMPTS):
            fd = self._open_locked()
            if fd is None:
                continue  # the file was replaced while we waited for it: try again
            try:
                self._claim(fd)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            return self
        raise LockError(f"{self.path}: could not take the lock (it changed {_ATTEMPTS} times); try again")

    def release(self) -> None:
        """Remove the lock file and drop the lock (no-op when not held)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            with contextlib.suppress(OSError):
                if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    os.unlink(self.path)
        finally:
            os.close(fd)  # closing drops the flock

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    # ----------------------------------------------------------------- helpers
    def _held_by_other(self, owner: LockOwner | None) -> LockError:
        who = owner.describe() if owner is not None else "an unknown process"
        return LockError(
            f"{self.folder}: another run uses this output folder ({who}); wait for it to finish or choose "
            f"another output folder (if no run uses it, delete {self.path})"
        )

    def _open_locked(self) -> int | None:
        """An fd of the lock file with the exclusive lock, or ``None`` when the file changed meanwhile."""
        if sys.platform == "win32":
            try:
                return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                raise self._held_by_other(read_owner(self.path.read_text(errors="replace"))) from None
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            text = _read_fd(fd)
            os.close(fd)
            if err.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                raise self._held_by_other(read_owner(text)) from None
            raise
        try:
            same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the previous owner removed it after we opened it
            os.close(fd)
            return None
        return fd

    def _claim(self, fd: int) -> None:
        """Check a left-over owner (stale or not), then write ours into the locked file."""
        text = _read_fd(fd)
        previous = read_owner(text)
        if previous is not None:
            if previous.host != socket.gethostname():
                raise LockError(
                    f"{self.path}: left by {previous.describe()}; spoco-zoo cannot check a process on another "
                    "host. Delete the file if no run uses this output folder"
                )
            if previous.pid != os.getpid() and previous.is_alive_here():
                raise self._held_by_other(previous)
            self.took_over = previous
        elif text.strip():
            self.took_over = LockOwner(pid=-1, host="?", command="unreadable lock file")
        owner = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "command": self.command,
        }
        data = (json.dumps(owner) + "\n").encode("utf-8")
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)
