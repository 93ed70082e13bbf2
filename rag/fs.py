"""Filesystem utilities shared by the stores: atomic directory writes, crash recovery, library versions.

A stored thing (an index, a trained reranker) is a directory whose *marker* file (its
manifest) is written last.  :func:`atomic_directory` writes a new version into a temporary
sibling ``.tmp-NAME-XXXXXXXX`` and :func:`swap` renames it into place; if ``NAME`` already
exists it is first moved aside to ``.old-NAME-XXXXXXXX`` and removed after the second
rename.  A crash between those two renames leaves no ``NAME`` but an ``.old-NAME-*`` with
its marker, which :func:`recover` renames back, so a reader always finds the previous
complete version or the new one.

Example:
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> with atomic_directory(root / "col") as tmp:
    ...     _ = (tmp / "manifest.json").write_text("{}")
    >>> sorted(p.name for p in root.iterdir())
    ['col']
    >>> os.replace(root / "col", root / ".old-col-deadbeef")   # a crash between the two renames
    >>> recover(root / "col", "manifest.json")
    True
    >>> sorted(p.name for p in root.iterdir())
    ['col']

Locks (POSIX ``fcntl.flock``, released by the kernel when the holder dies, so a
``kill -9`` never leaves a stale lock): :class:`WriteLock` is the exclusive, inter-process
lock one writer holds on a lock file, with a timeout; :func:`shared_lock` is what a reader
holds on a directory while it reads it, and :func:`exclusive_now` is how a writer checks,
without waiting, that no reader holds a directory before removing it.  Not fasteners'
``InterProcessReaderWriterLock``: its ``lockf`` locks belong to the process, so the app's
sessions (threads of one process) would not exclude each other, and it cannot lock a directory
(``bench/locks.py`` compares their cost).
:func:`write_file_atomic` replaces one file (temp file, fsync, ``os.replace``).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import socket
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

logger = logging.getLogger(__name__)

TMP_PREFIX = ".tmp-"
OLD_PREFIX = ".old-"
_SUFFIX_RE = re.compile(r"-[0-9a-f]{8}$")


def _sibling(final: Path, prefix: str) -> Path:
    return final.parent / f"{prefix}{final.name}-{uuid.uuid4().hex[:8]}"


def fsync_dir(path: Path) -> None:
    """Flush ``path`` and the entries directly in it to disk (best effort: errors are ignored).

    Example:
        >>> import tempfile
        >>> fsync_dir(Path(tempfile.mkdtemp())) is None
        True
    """
    path = Path(path)
    for p in list(path.iterdir()) + [path]:
        fsync_path(p)


def swap(tmp: Path, final: Path) -> None:
    """Rename directory ``tmp`` to ``final``, replacing it; a crash midway is undone by :func:`recover`.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "new").mkdir(); (root / "cur").mkdir()
        >>> swap(root / "new", root / "cur")
        >>> [p.name for p in root.iterdir()]
        ['cur']
    """
    tmp, final = Path(tmp), Path(final)
    if final.exists():
        old = _sibling(final, OLD_PREFIX)
        os.replace(final, old)  # from here until the next line, recover() restores `old`
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


@contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Write a new version of directory ``final`` atomically.

    Yields a fresh, empty temporary sibling ``.tmp-NAME-XXXXXXXX`` (the parent is created if
    needed).  If the block completes, the temporary directory is flushed to disk and
    :func:`swap`-ped into place; if it raises (anything, ``KeyboardInterrupt`` included), the
    temporary directory is removed and ``final`` is left as it was.  Write the marker file
    (manifest) last.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> with atomic_directory(root / "a") as tmp:
        ...     tmp.name.startswith(".tmp-a-")
        True
        >>> try:
        ...     with atomic_directory(root / "a") as tmp:
        ...         raise OSError("disk full")
        ... except OSError:
        ...     pass
        >>> [p.name for p in root.iterdir()]
        ['a']
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(final, TMP_PREFIX)
    tmp.mkdir()
    try:
        yield tmp
        fsync_dir(tmp)
        swap(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _moved_aside_name(entry: str) -> str | None:
    """``NAME`` for an ``.old-NAME-XXXXXXXX`` entry, else None."""
    return moved_aside_name(entry, OLD_PREFIX)


def recover(final: Path, marker: str) -> bool:
    """Undo a crash between the two renames of :func:`swap`; True if ``final`` was restored.

    If ``final`` is missing, the newest ``.old-NAME-*`` sibling is renamed back to it,
    provided it contains ``marker`` (a complete version).

    Example:
        >>> import tempfile
        >>> recover(Path(tempfile.mkdtemp()) / "absent", "manifest.json")
        False
    """
    final = Path(final)
    parent = final.parent
    if final.exists() or not parent.is_dir():
        return False
    olds = sorted((p for p in parent.iterdir() if _moved_aside_name(p.name) == final.name),
                  key=_mtime, reverse=True)
    if olds and (olds[0] / marker).exists():
        logger.warning("recovering %s from an interrupted write", final)
        try:
            os.replace(olds[0], final)
        except OSError:  # another process recovered it (or wrote a new version) first
            return False
        return True
    return False


def recover_all(root: Path, marker: str, accept: Callable[[str], bool] = lambda name: True) -> list[str]:
    """:func:`recover` every ``NAME`` under ``root`` that has an ``.old-NAME-*`` and passes ``accept``.

    Returns the names restored.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / ".old-a-0123abcd").mkdir(); _ = (root / ".old-a-0123abcd" / "m.json").write_text("{}")
        >>> recover_all(root, "m.json"), [p.name for p in root.iterdir()]
        (['a'], ['a'])
    """
    root = Path(root)
    if not root.is_dir():
        return []
    names = sorted({n for p in root.iterdir() if (n := _moved_aside_name(p.name)) is not None})
    return [n for n in names if accept(n) and recover(root / n, marker)]


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def moved_aside_name(entry: str, prefix: str) -> str | None:
    """``NAME`` for an entry ``PREFIX + NAME + -XXXXXXXX`` (8 hex digits), else None.

    Example:
        >>> moved_aside_name(".tmp-a-b-0123abcd", TMP_PREFIX), moved_aside_name("a-b", TMP_PREFIX)
        ('a-b', None)
    """
    if not entry.startswith(prefix) or not _SUFFIX_RE.search(entry):
        return None
    return entry[len(prefix):-9] or None


def fsync_path(path: Path) -> None:
    """Flush one file or directory to disk (best effort: errors are ignored)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_file_atomic(path: Path, text: str) -> None:
    """Replace file ``path`` with ``text`` atomically: a reader opens the old or the new file, never a mix.

    The text goes to a temporary sibling ``.tmp-NAME-XXXXXXXX`` that is flushed to disk and
    ``os.replace``-d over ``path``; on any error the temporary file is removed.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> write_file_atomic(d / "CURRENT", "v-1"); write_file_atomic(d / "CURRENT", "v-2")
        >>> (d / "CURRENT").read_text(), [p.name for p in d.iterdir()]
        ('v-2', ['CURRENT'])
    """
    path = Path(path)
    tmp = _sibling(path, TMP_PREFIX)
    try:
        with open(tmp, "x", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


def remove_tree(path: Path, trash_prefix: str = ".trash-") -> None:
    """Remove directory ``path``: renamed first to ``.trash-NAME-XXXXXXXX``, so the name vanishes at once.

    A crash during the removal leaves only the trash directory (the caller cleans it later).
    """
    path = Path(path)
    trash = _sibling(path, trash_prefix)
    try:
        os.replace(path, trash)
    except FileNotFoundError:
        return
    shutil.rmtree(trash, ignore_errors=True)


# -- locks -----------------------------------------------------------------------------------


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


def library_versions(packages: Iterable[str]) -> dict[str, str]:
    """Installed version of each distribution in ``packages`` (``unknown`` if not installed).

    Example:
        >>> library_versions(["no-such-distribution-xyz"])
        {'no-such-distribution-xyz': 'unknown'}
    """
    out: dict[str, str] = {}
    for pkg in packages:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "unknown"
    return out
