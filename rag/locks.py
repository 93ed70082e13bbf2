"""Locks between processes and threads (POSIX ``fcntl.flock``, released by the kernel when the
holder dies, so a ``kill -9`` never leaves a stale lock).

:class:`WriteLock` is the exclusive lock one writer holds on a lock file, with a timeout;
:func:`shared_lock` is what a reader holds on a directory while it reads it, and
:func:`exclusive_now` is how a writer checks, without waiting, that no reader holds a directory
before removing it.  Not fasteners' ``InterProcessReaderWriterLock``: its ``lockf`` locks belong
to the process, so the app's sessions (threads of one process) would not exclude each other, and
it cannot lock a directory (``bench/locks.py`` compares their cost).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

logger = logging.getLogger(__name__)

class LockTimeout(TimeoutError):
    """A :class:`WriteLock` was not acquired in time; ``holder`` describes who holds it (may be empty)."""

    def __init__(self, path: Path, holder: dict[str, Any], waited: float, own: bool = False) -> None:
        self.path = Path(path)
        self.holder = holder
        self.waited = waited
        self.own = own
        who = describe_holder(holder)
        if own:
            message = f"{path} is already locked by this thread ({who}); it would wait for itself"
        else:
            message = f"{path} is locked by {who}; not released within {waited:g} s"
        super().__init__(message)


def describe_holder(holder: dict[str, Any]) -> str:
    """One-line description of a lock holder record (see :meth:`WriteLock.holder`).

    Example:
        >>> describe_holder({"pid": 12, "host": "box", "command": "rag ingest docs"})
        'pid 12 on box (rag ingest docs)'
        >>> describe_holder({})
        'another process'
    """
    if not holder.get("pid"):
        return "another process"
    text = f"pid {holder['pid']}"
    if holder.get("host"):
        text += f" on {holder['host']}"
    if holder.get("command"):
        text += f" ({' '.join(str(holder['command']).split())[:80]})"
    return text


class WriteLock:
    """An exclusive lock on file ``path`` shared by all processes (``fcntl.flock``), with a timeout.

    ``acquire`` polls every ``poll`` seconds for at most ``timeout`` seconds, logging one
    warning naming the holder when it has to wait, then raises :class:`LockTimeout`.  The
    holder's pid, thread, host and command are written into the lock file for that message.
    The kernel drops the lock when the holder's process dies, so a crash never leaves a
    stale lock.  A thread that asks again for a lock it holds (through another
    :class:`WriteLock`) fails at once instead of waiting for itself.  POSIX only.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / ".lock"
        >>> with WriteLock(path, timeout=0) as lock:
        ...     lock.held, WriteLock(path, timeout=0).try_acquire()
        (True, False)
        >>> WriteLock(path, timeout=-1)
        Traceback (most recent call last):
        ...
        ValueError: timeout must be >= 0 seconds, got -1
    """

    def __init__(self, path: str | Path, timeout: float = 600.0, poll: float = 0.05) -> None:
        if not timeout >= 0:
            raise ValueError(f"timeout must be >= 0 seconds, got {timeout!r}")
        if not poll > 0:
            raise ValueError(f"poll must be > 0 seconds, got {poll!r}")
        self.path = Path(path)
        self.timeout = float(timeout)
        self.poll = float(poll)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if it is free now; True if taken.  Raises OSError if the file cannot be opened."""
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this WriteLock")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        try:  # the file may have been removed (or replaced) between open() and flock()
            same = os.path.samestat(os.fstat(fd), os.stat(self.path))
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            return False
        self._fd = fd
        record = {"pid": os.getpid(), "thread": threading.get_ident(), "host": socket.gethostname(),
                  "command": " ".join(sys.argv)[:200], "since": time.time()}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record).encode("utf-8"), 0)
        except OSError:  # the record is only for messages
            pass
        return True

    def acquire(self) -> "WriteLock":
        start = time.monotonic()
        warned = False
        while not self.try_acquire():
            holder = self.holder()
            if holder.get("pid") == os.getpid() and holder.get("thread") == threading.get_ident():
                raise LockTimeout(self.path, holder, 0.0, own=True)
            waited = time.monotonic() - start
            if waited >= self.timeout:
                raise LockTimeout(self.path, holder, self.timeout)
            if not warned:
                logger.warning("%s is locked by %s; waiting up to %g s", self.path, describe_holder(holder),
                               self.timeout)
                warned = True
            time.sleep(min(self.poll, max(0.0, self.timeout - waited)))
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        finally:
            os.close(fd)  # closing the last descriptor releases the flock

    def holder(self) -> dict[str, Any]:
        """The record the current holder wrote into the lock file (``{}`` if unknown)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def __enter__(self) -> "WriteLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextmanager
def shared_lock(directory: Path) -> Iterator[None]:
    """Hold a shared lock on ``directory`` while reading it; many readers at once, writers see it.

    Raises FileNotFoundError if the directory is gone.  Waits only while a writer holds
    the directory exclusively to remove it (see :func:`exclusive_now`); afterwards the
    directory's name no longer exists, which the reader must check.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> with shared_lock(d):
        ...     with exclusive_now(d) as free:
        ...         free
        False
    """
    fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
        except OSError as exc:  # a filesystem without flock: read unlocked
            logger.debug("no shared lock on %s (%s)", directory, exc)
        yield
    finally:
        os.close(fd)


@contextmanager
def exclusive_now(directory: Path) -> Iterator[bool]:
    """Try to hold ``directory`` exclusively without waiting: yields True if no reader holds it.

    While True is yielded, readers arriving in :func:`shared_lock` wait.

    Example:
        >>> import tempfile
        >>> with exclusive_now(Path(tempfile.mkdtemp())) as free:
        ...     free
        True
    """
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            free = True
        except BlockingIOError:
            free = False
        yield free
    finally:
        os.close(fd)


