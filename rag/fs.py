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

The locks that serialise writers and protect readers are in :mod:`rag.locks`.
:func:`write_file_atomic` replaces one file (temp file, fsync, ``os.replace``).
:func:`is_disk_full` recognises a full disk however the writing library reported it, and
:func:`disk_full_error` says so in one line (where, how much is needed, how much is free).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import shutil
import uuid
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterable, Iterator

logger = logging.getLogger(__name__)

TMP_PREFIX = ".tmp-"
OLD_PREFIX = ".old-"
_SUFFIX_RE = re.compile(r"-[0-9a-f]{8}$")
# numpy's tofile (np.save) reports a short write without an errno: "468480 requested and 128992 written"
_SHORT_WRITE_RE = re.compile(r"^\d+ requested and \d+ written$")
_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


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


def write_file_atomic(path: Path, text: str | bytes) -> None:
    """Replace file ``path`` with ``text`` (UTF-8 ``str``, or ``bytes`` as they are) atomically: a
    reader opens the old or the new file, never a mix.

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
        with (open(tmp, "xb") if isinstance(text, bytes) else open(tmp, "x", encoding="utf-8")) as fh:
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


def tree_bytes(path: Path) -> int:
    """The bytes in the files under directory ``path`` (0 if it cannot be read)."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


def file_sha256(path: Path) -> str:
    """The sha256 hex digest of the file at ``path``, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc``, or an exception it was raised from, says the disk is full.

    That is an :class:`OSError` with ``ENOSPC`` (or ``EDQUOT``, a full quota), or numpy's short
    write (``"468480 requested and 128992 written"``, an :class:`OSError` without an errno).

    Example:
        >>> is_disk_full(OSError(errno.ENOSPC, "No space left on device")), is_disk_full(OSError("468 requested and 12 written"))
        (True, True)
        >>> is_disk_full(OSError(errno.EACCES, "Permission denied")), is_disk_full(ValueError("full"))
        (False, False)
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError):
            if exc.errno in _DISK_FULL_ERRNOS:
                return True
            if exc.errno is None and len(exc.args) == 1 and _SHORT_WRITE_RE.match(str(exc.args[0])):
                return True
        exc = exc.__cause__ or exc.__context__
    return False


def mount_point(path: Path) -> Path:
    """The mount point of the file system holding ``path`` (or of its nearest existing parent).

    Example:
        >>> mount_point(Path("/no/such/dir")) == Path("/")
        True
    """
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    while not os.path.ismount(p) and p != p.parent:
        p = p.parent
    return p


def free_bytes(path: Path) -> int | None:
    """Bytes free for this user on the file system holding ``path`` (None if that cannot be read)."""
    try:
        return shutil.disk_usage(mount_point(path)).free
    except OSError:
        return None


def human_bytes(n: float) -> str:
    """``n`` bytes for people: ``512 B``, ``96 KiB``, ``1.2 MiB``, ``3.4 GiB``.

    Example:
        >>> human_bytes(512), human_bytes(98304), human_bytes(1258291), human_bytes(3.4 * 2**30)
        ('512 B', '96 KiB', '1.2 MiB', '3.4 GiB')
    """
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            break
        n /= 1024
    return f"{n:.0f} {unit}" if unit in ("B", "KiB") or n >= 100 else f"{n:.1f} {unit}"


def disk_full_error(path: Path, needed: int | None = None, what: str = "this write", freed: int = 0) -> OSError:
    """A one-line ``OSError`` (errno ``ENOSPC``, ``filename`` ``path``) saying the disk is full, where, and
    roughly how much ``what`` needs against how much is free; raise it ``from`` the original error.
    ``freed``: bytes of the failed write that the caller is about to remove, counted as free.

    Example:
        >>> import tempfile
        >>> exc = disk_full_error(Path(tempfile.mkdtemp()), needed=3 * 2**20, what="the index")
        >>> exc.errno == errno.ENOSPC, exc.strerror.startswith("disk full (ENOSPC) on /"), "needs about 3.0 MiB" in exc.strerror
        (True, True, True)
    """
    free = free_bytes(path)
    free = None if free is None else free + freed
    text = f"disk full (ENOSPC) on {mount_point(path)}"
    if needed is not None:
        text += f": {what} needs about {human_bytes(needed)}"
        if free is not None:
            text += f", {human_bytes(free)} free"
    elif free is not None:
        text += f" ({human_bytes(free)} free)"
    return OSError(errno.ENOSPC, text, str(path))


def with_disk_full_note(exc: BaseException, text: str) -> str:
    """``text`` (a one-line description of ``exc``), plus where and that the disk is full if ``exc`` came from a
    full disk and ``text`` does not say so already (a library's own wording, e.g. "No space left on device").

    Example:
        >>> exc = OSError(errno.ENOSPC, "No space left on device", "/")
        >>> with_disk_full_note(exc, "could not save (No space left on device)").startswith("could not save (No space left on device); disk full (ENOSPC) on /")
        True
        >>> with_disk_full_note(ValueError("bad"), "bad")
        'bad'
    """
    if not is_disk_full(exc) or "ENOSPC" in text:
        return text
    return f"{text}; {disk_full_error(_filename_in(exc)).strerror}"


def error_line(exc: BaseException) -> str:
    """``exc`` in one line for a person: ``FILE: reason`` for an OS error that names its file, its message
    otherwise, and a full disk named as such however it was reported (the CLI's errors, the watcher's log).

    Example:
        >>> error_line(OSError(errno.EACCES, "Permission denied", "/srv/idx"))
        '/srv/idx: Permission denied'
        >>> error_line(ValueError("bad  value\\n  here"))
        'bad value here'
    """
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}"
    return " ".join(with_disk_full_note(exc, text).split())


def _filename_in(exc: BaseException | None) -> Path:
    """The first file name along ``exc``'s chain of causes (the current directory if none names one)."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.filename:
            return Path(os.fsdecode(exc.filename))
        exc = exc.__cause__ or exc.__context__
    return Path.cwd()
