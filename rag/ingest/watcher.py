"""Keep a collection in step with a folder: re-index files as they change (``rag watch DIR --index NAME``).

:class:`FolderWatcher` syncs the folder once (an ordinary incremental ingest), then listens for
file-system events (watchdog) and, once the folder has been quiet for ``debounce`` seconds and
a changed file's size and modification time have not changed for ``settle`` seconds (so a file
still being copied or downloaded is not indexed half-written), re-indexes what changed through
the same :class:`~rag.ingest.ingestor.Ingestor` and therefore
the same index writer lock as ``rag ingest`` and the app: changed and new files are ingested by
path (unchanged content is skipped by its hash); a deletion or a move out triggers an ingest of
the whole folder, whose pruning drops the documents whose files are gone. Hidden files, files
of unsupported types and anything under the index store are ignored.  A batch that fails (a
full disk, another writer holding the index too long) stays pending and is retried after a
delay that doubles from :data:`RETRY_SECONDS` up to :data:`MAX_RETRY_SECONDS`, with one log
line per failure.

While it runs, the watcher announces itself in the collection's directory
(``.watch-<pid>.json``: folder, process id and its start time, start time, last sync) and removes
the file when it stops (also on SIGTERM, which ``rag watch`` handles like Ctrl-C).
:func:`active_watches` lists the live ones (the app shows "watching DIR") and removes the files
a process that died (``kill -9``, a crash) left behind.

Example:
    >>> FolderWatcher(None, "/tmp", debounce=-1)
    Traceback (most recent call last):
    ...
    ValueError: debounce must be a number of seconds >= 0, got -1
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rag.fs import error_line
from rag.index.errors import IndexError_
from rag.ingest.ingestor import Ingestor, IngestReport
from rag.ingest.loaders import SUPPORTED_EXTENSIONS

logger = logging.getLogger(__name__)

DEFAULT_DEBOUNCE = 1.0
#: seconds a changed file's size and mtime must stay the same before it is indexed (a copy or download in progress)
DEFAULT_SETTLE = 2.0
#: first delay after a failed batch (a busy writer, a full disk): the changes stay pending; it doubles up to the cap
RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 60.0
WATCH_PREFIX = ".watch-"
_STATUS_RE = re.compile(rf"^{re.escape(WATCH_PREFIX)}(.+)\.(json|tmp)$")


@dataclass(frozen=True)
class WatchStatus:
    """One running watcher of a collection, as announced in its ``.watch-<pid>.json``."""

    folder: str
    pid: int
    started_at: float
    last_sync: float | None = None


def _alive(pid: int, proc_start: str | None = None) -> bool:
    """Whether process ``pid`` runs, and is the one that started at ``proc_start`` if that is known
    (a pid is reused once its process has died)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        pass
    return proc_start is None or _proc_start(pid) in (None, proc_start)


def _proc_start(pid: int) -> str | None:
    """When process ``pid`` started, in clock ticks since boot (``/proc/PID/stat`` field 22); None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def active_watches(index_dir: str | Path) -> list[WatchStatus]:
    """The live watchers of the collection stored in ``index_dir`` (none if it does not exist).

    A status file whose process is gone (killed with ``kill -9``, crashed) is stale: it is removed.
    """
    out = []
    try:
        entries = sorted(Path(index_dir).glob(f"{WATCH_PREFIX}*"))
    except OSError:
        return []
    for path in entries:
        m = _STATUS_RE.match(path.name)
        if m is None:
            continue
        if m.group(2) == "tmp":  # an announcement being written, or left by a process that died writing it
            if m.group(1).isdigit() and not _alive(int(m.group(1))):
                path.unlink(missing_ok=True)
            continue
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            status = WatchStatus(str(d["folder"]), int(d["pid"]), float(d["started_at"]),
                                 None if d.get("last_sync") is None else float(d["last_sync"]))
            proc_start = None if d.get("proc_start") is None else str(d["proc_start"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):  # gone meanwhile, or not ours
            continue
        if _alive(status.pid, proc_start):
            out.append(status)
        else:
            logger.info("removing %s: its watcher (pid %d) is no longer running", path, status.pid)
            try:
                path.unlink(missing_ok=True)
            except OSError:  # a read-only collection: still not listed
                pass
    return out


class FolderWatcher:
    """Watch ``folder`` and re-index changes into ``ingestor``'s collection.

    Args:
        ingestor: the :class:`~rag.ingest.ingestor.Ingestor` of the collection (its settings and lock).
        folder: the folder to watch, recursively.
        debounce: seconds without a new event before a batch of changes is indexed.
        settle: seconds a changed file's size and modification time must stay the same before it is
            indexed (a file still being written waits, the other changes go ahead).
        on_report: called with each :class:`~rag.ingest.ingestor.IngestReport` (the CLI prints it).

    Example (runs the real embedder)::

        stop = threading.Event()
        FolderWatcher(Ingestor("notes"), "~/notes", on_report=lambda r: print(r.summary())).run(stop)
    """

    def __init__(self, ingestor: Ingestor, folder: str | Path, debounce: float = DEFAULT_DEBOUNCE,
                 on_report: Callable[[IngestReport], None] | None = None, settle: float = DEFAULT_SETTLE) -> None:
        for label, value in (("debounce", debounce), ("settle", settle)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"{label} must be a number of seconds >= 0, got {value!r}")
        self.folder = Path(folder).expanduser().resolve()
        if ingestor is not None and not self.folder.is_dir():
            raise ValueError(f"{folder} is not a folder; give the folder to watch")
        self.ingestor = ingestor
        self.debounce = float(debounce)
        self.settle = float(settle)
        self.on_report = on_report
        self._changed: set[Path] = set()
        # per changed file: its (size, mtime) when last looked at, and since when it has been so
        self._stamps: dict[Path, tuple[tuple[int, int] | None, float]] = {}
        self._gone = False
        self._last_event = 0.0
        self._lock = threading.Lock()
        self._wake = threading.Event()

    # -- events (watchdog's thread) -------------------------------------------------------------
    def _wanted(self, path: Path) -> bool:
        try:
            rel = path.relative_to(self.folder)
        except ValueError:
            return False
        if any(part.startswith(".") for part in rel.parts):
            return False
        store_root = self.ingestor.store.root.resolve()
        if path == store_root or store_root in path.parents:
            return False
        return True

    def notice(self, path: str | Path, deleted: bool = False, is_dir: bool = False) -> None:
        """Record one change (called for each file-system event; public for tests and other event sources)."""
        p = Path(os.fsdecode(path))
        p = p if p.is_absolute() else self.folder / p
        if not self._wanted(p):
            return
        if not is_dir and p.suffix.lower() not in SUPPORTED_EXTENSIONS:
            return
        signature = None if deleted else _signature(p)
        with self._lock:
            now = time.monotonic()
            if deleted:
                self._gone = True
            else:
                self._changed.add(p)
                self._stamps[p] = (signature, now)  # an event is a change: it settles from now
            self._last_event = now
        self._wake.set()

    def _handler(self) -> object:
        from watchdog.events import FileSystemEventHandler

        watcher = self

        class Handler(FileSystemEventHandler):  # type: ignore[misc]
            def on_any_event(self, event: object) -> None:
                kind = getattr(event, "event_type", "")
                is_dir = bool(getattr(event, "is_directory", False))
                if kind in ("opened", "closed_no_write"):
                    return
                src = getattr(event, "src_path", "")
                if kind in ("deleted", "moved"):
                    watcher.notice(src, deleted=True, is_dir=is_dir)
                    if kind == "moved":
                        watcher.notice(getattr(event, "dest_path", ""), is_dir=is_dir)
                elif kind in ("created", "modified", "closed"):
                    if not is_dir or kind == "created":
                        watcher.notice(src, is_dir=is_dir)

        return Handler()

    # -- indexing (the caller's thread) ---------------------------------------------------------
    def sync(self) -> IngestReport:
        """Index the whole folder now (incremental; removes documents whose files are gone)."""
        report = self.ingestor.ingest([self.folder], prune=True)
        self._announce(last_sync=time.time())
        self._report(report)
        return report

    def flush(self, only: set[Path] | None = None) -> IngestReport | None:
        """Index the changes noticed so far, settled or not (None if there are none), or of those only the
        files in ``only``; if indexing fails they stay pending."""
        with self._lock:
            take = self._changed if only is None else self._changed & only
            changed, gone = sorted(take), self._gone
            self._changed, self._gone = self._changed - take, False
            if not self._changed:
                self._wake.clear()
        try:
            if gone:
                report = self.ingestor.ingest([self.folder], prune=True)
            else:
                existing = [p for p in changed if p.exists()]
                if not existing:
                    return None
                report = self.ingestor.ingest(existing, prune=False)
        except BaseException:
            with self._lock:  # keep them for the next try
                self._changed.update(changed)
                self._gone = self._gone or gone
            raise
        with self._lock:  # indexed: forget how they looked, unless they changed again meanwhile
            for p in changed:
                if p not in self._changed:
                    self._stamps.pop(p, None)
        self._announce(last_sync=time.time())
        self._report(report)
        return report

    def _report(self, report: IngestReport) -> None:
        logger.info("%s", report.summary())
        if self.on_report is not None:
            self.on_report(report)

    def _pending(self) -> bool:
        with self._lock:
            return bool(self._changed) or self._gone

    def _settled(self) -> tuple[set[Path], float]:
        """The pending files whose size and mtime have not changed for ``settle`` seconds, and the seconds until
        the next of the others could be (0 if none is waiting)."""
        with self._lock:
            pending = {p: self._stamps.get(p, (None, 0.0)) for p in self._changed}
        looked = {p: _signature(p) for p in pending}  # outside the lock: a stat can be slow
        ready: set[Path] = set()
        wait = 0.0
        with self._lock:
            now = time.monotonic()
            for p, (before, since) in pending.items():
                now_sig = looked[p]
                if p not in self._changed:
                    continue
                if now_sig != before:  # written to since we last looked (or its events were merged)
                    since = now
                    self._stamps[p] = (now_sig, now)
                left = self.settle - (now - since)
                if now_sig is None or left <= 0:
                    ready.add(p)
                else:
                    wait = min(wait, left) if wait else left
        return ready, wait

    def run(self, stop: threading.Event | None = None, ready: Callable[[], None] | None = None) -> None:
        """Sync once, then index changes until ``stop`` is set (or KeyboardInterrupt); ``ready`` once watching."""
        from watchdog.observers import Observer

        stop = stop or threading.Event()
        self._started = time.time()
        active_watches(self._status_path().parent)  # removes what watchers killed earlier left behind
        observer = Observer()
        observer.schedule(self._handler(), str(self.folder), recursive=True)
        observer.start()  # before the first sync, so nothing changed during it is missed
        try:
            self.sync()
            if ready is not None:
                ready()
            delay = RETRY_SECONDS
            while not stop.is_set():
                self._wake.wait(timeout=0.5)
                if not self._pending():
                    self._wake.clear()
                    continue
                with self._lock:
                    quiet = time.monotonic() - self._last_event
                if quiet < self.debounce:
                    stop.wait(self.debounce - quiet)
                    continue
                settled, wait = self._settled()
                with self._lock:
                    gone = self._gone
                if wait and (gone or not settled):  # a folder-wide sync would read the files still being written
                    stop.wait(min(wait, 0.5))
                    continue
                try:
                    self.flush(only=settled)
                except Exception as exc:  # noqa: BLE001 - a busy writer or a full disk must not end the watch
                    self._failed(exc, delay)
                    stop.wait(delay)
                    delay = min(delay * 2, MAX_RETRY_SECONDS)
                else:
                    delay = RETRY_SECONDS
        finally:
            # the status file first: a second Ctrl-C or SIGTERM while the observer stops must not leave it behind
            self._status_path().unlink(missing_ok=True)
            observer.stop()
            observer.join(timeout=5)

    def _failed(self, exc: Exception, delay: float) -> None:
        """Log a failed batch: one line for the failures to expect (a full disk, a busy or broken index)."""
        if isinstance(exc, (OSError, IndexError_)):
            logger.warning("re-indexing %s failed: %s; retrying in %g s", self.folder, error_line(exc), delay)
        else:
            logger.exception("re-indexing %s failed; retrying in %g s", self.folder, delay)

    # -- announcing ----------------------------------------------------------------------------
    def _status_path(self) -> Path:
        return self.ingestor.store.path(self.ingestor.index_name) / f"{WATCH_PREFIX}{os.getpid()}.json"

    def _announce(self, last_sync: float | None) -> None:
        """Write the status file (best effort: on a full disk the watch goes on unannounced)."""
        path = self._status_path()
        if not path.parent.is_dir():
            return
        data = {"folder": str(self.folder), "pid": os.getpid(), "proc_start": _proc_start(os.getpid()),
                "started_at": getattr(self, "_started", time.time()), "last_sync": last_sync}
        tmp = path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(data), encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            logger.debug("could not write %s: %s", path, exc)


def _signature(path: Path) -> tuple[int, int] | None:
    """A file's (size, mtime in ns), None if it is gone."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns
