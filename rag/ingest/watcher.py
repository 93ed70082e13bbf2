"""Keep a collection in step with a folder: re-index files as they change (``rag watch DIR --index NAME``).

:class:`FolderWatcher` syncs the folder once (an ordinary incremental ingest), then listens for
file-system events (watchdog) and, once the folder has been quiet for ``debounce`` seconds,
re-indexes what changed through the same :class:`~rag.ingest.ingestor.Ingestor` and therefore
the same index writer lock as ``rag ingest`` and the app: changed and new files are ingested by
path (unchanged content is skipped by its hash); a deletion or a move out triggers an ingest of
the whole folder, whose pruning drops the documents whose files are gone. Hidden files, files
of unsupported types and anything under the index store are ignored.

While it runs, the watcher announces itself in the collection's directory
(``.watch-<pid>.json``: folder, process id, start time, last sync); :func:`active_watches` lists
the live ones (the app shows "watching DIR"), ignoring files left by a process that died.

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
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rag.ingest.ingestor import Ingestor, IngestReport
from rag.ingest.loaders import SUPPORTED_EXTENSIONS

logger = logging.getLogger(__name__)

DEFAULT_DEBOUNCE = 1.0
RETRY_SECONDS = 5.0  # after a failed batch (a busy writer, a full disk): the changes stay pending
WATCH_PREFIX = ".watch-"


@dataclass(frozen=True)
class WatchStatus:
    """One running watcher of a collection, as announced in its ``.watch-<pid>.json``."""

    folder: str
    pid: int
    started_at: float
    last_sync: float | None = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def active_watches(index_dir: str | Path) -> list[WatchStatus]:
    """The live watchers of the collection stored in ``index_dir`` (none if it does not exist)."""
    out = []
    try:
        entries = sorted(Path(index_dir).glob(f"{WATCH_PREFIX}*.json"))
    except OSError:
        return []
    for path in entries:
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            status = WatchStatus(str(d["folder"]), int(d["pid"]), float(d["started_at"]),
                                 None if d.get("last_sync") is None else float(d["last_sync"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if _alive(status.pid):
            out.append(status)
    return out


class FolderWatcher:
    """Watch ``folder`` and re-index changes into ``ingestor``'s collection.

    Args:
        ingestor: the :class:`~rag.ingest.ingestor.Ingestor` of the collection (its settings and lock).
        folder: the folder to watch, recursively.
        debounce: seconds without a new event before a batch of changes is indexed.
        on_report: called with each :class:`~rag.ingest.ingestor.IngestReport` (the CLI prints it).

    Example (runs the real embedder)::

        stop = threading.Event()
        FolderWatcher(Ingestor("notes"), "~/notes", on_report=lambda r: print(r.summary())).run(stop)
    """

    def __init__(self, ingestor: Ingestor, folder: str | Path, debounce: float = DEFAULT_DEBOUNCE,
                 on_report: Callable[[IngestReport], None] | None = None) -> None:
        if not isinstance(debounce, (int, float)) or not debounce >= 0:
            raise ValueError(f"debounce must be a number of seconds >= 0, got {debounce!r}")
        self.folder = Path(folder).expanduser().resolve()
        if ingestor is not None and not self.folder.is_dir():
            raise ValueError(f"{folder} is not a folder; give the folder to watch")
        self.ingestor = ingestor
        self.debounce = float(debounce)
        self.on_report = on_report
        self._changed: set[Path] = set()
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
        with self._lock:
            if deleted:
                self._gone = True
            else:
                self._changed.add(p)
            self._last_event = time.monotonic()
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

    def flush(self) -> IngestReport | None:
        """Index the changes noticed so far (None if there are none); if indexing fails they stay pending."""
        with self._lock:
            changed, gone = sorted(self._changed), self._gone
            self._changed, self._gone = set(), False
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

    def run(self, stop: threading.Event | None = None, ready: Callable[[], None] | None = None) -> None:
        """Sync once, then index changes until ``stop`` is set (or KeyboardInterrupt); ``ready`` once watching."""
        from watchdog.observers import Observer

        stop = stop or threading.Event()
        self._started = time.time()
        observer = Observer()
        observer.schedule(self._handler(), str(self.folder), recursive=True)
        observer.start()  # before the first sync, so nothing changed during it is missed
        try:
            self.sync()
            if ready is not None:
                ready()
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
                try:
                    self.flush()
                except Exception:  # noqa: BLE001 - a busy writer or a full disk must not end the watch
                    logger.exception("re-indexing %s failed; retrying in %.0f s", self.folder, RETRY_SECONDS)
                    stop.wait(RETRY_SECONDS)
        finally:
            observer.stop()
            observer.join(timeout=5)
            self._status_path().unlink(missing_ok=True)

    # -- announcing ----------------------------------------------------------------------------
    def _status_path(self) -> Path:
        return self.ingestor.store.path(self.ingestor.index_name) / f"{WATCH_PREFIX}{os.getpid()}.json"

    def _announce(self, last_sync: float | None) -> None:
        path = self._status_path()
        if not path.parent.is_dir():
            return
        data = {"folder": str(self.folder), "pid": os.getpid(), "started_at": getattr(self, "_started", time.time()),
                "last_sync": last_sync}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, path)
