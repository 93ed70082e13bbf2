"""Named indexes on disk: a directory with ``manifest.json`` plus its parts, in immutable versions.

Layout of ``indexes/NAME/``::

    manifest.json        the current version: format version, embedder id/dim, chunker and BM25
                         params, counts, library versions, and ``parts_dir`` naming the version below
    v-YYYYmmdd-HHMMSS-XXXXXXXX/   one complete version, never modified once written:
        manifest.json    the same manifest (written last: a version without one is incomplete)
        documents.json   one record per ingested file (path, content hash, chunk count)
        chunks.jsonl     one chunk per line, with provenance
        embeddings.npy   float32 (n_chunks, dim), row i = chunks.jsonl line i
        dense.faiss      FAISS index over the embeddings
        bm25.json        analyzed tokens per chunk (read only by writers, to rebuild BM25 after a change)
        bm25.*.npy, bm25.vocab.json   the BM25 score matrix (CSC arrays + terms; ``bm25.matrix`` in
                         the manifest), memory-mapped on load instead of rebuilt
    reranker/            a trained reranker (rag.retrieval.rerank_training.store); not part of a version, kept
    .lock                the writers' lock file

With ``backend`` in the manifest (``rag ingest --backend milvus``), a version holds only
``manifest.json`` and ``documents.json``: the chunks live on the server (:mod:`rag.index.milvus`).

Consistency:

* **Writers** (:meth:`IndexStore.writer`, used by :meth:`IndexStore.save`, the ingestor,
  ``rag remove`` and the app) hold an exclusive OS lock on ``NAME/.lock`` (:class:`rag.locks.WriteLock`)
  for their whole read-modify-write; a second writer waits up to ``lock_timeout`` seconds,
  then fails with :class:`IndexLockedError`.  A new version is written to a temporary
  directory, renamed to ``v-...``, and published by replacing ``manifest.json`` with one
  ``os.replace``.
* **Readers** (:meth:`IndexStore.load`) read ``manifest.json`` once, then read the version it
  names while holding a shared lock on that version's directory.  They always get one
  complete version: the one current when they started, or, if it was replaced and removed
  before they could lock it, the newer one (they retry).
* **Old versions** are removed by the writer, under its lock, only when no reader holds them
  (an exclusive lock that does not wait); one a reader holds is removed by a later write.
  Crash leftovers (temporary versions, half-removed ones, files of the flat layout below)
  are removed by the next writer, under its lock.
* Indexes written by older versions of rag (format version 1: the parts directly in
  ``NAME/``) are read as they are and upgraded to this layout by the next write.  A version
  without the BM25 matrix parts (rag before they existed: no ``bm25.matrix`` in the manifest)
  has its BM25 rebuilt in memory from ``bm25.json`` on load; the next write stores the parts.

Integrity: the writer records each part's sha256 in the manifest (``sha256``); a load checks them
(:func:`rag.index.manifest.verify_digests`; ``bm25.json`` and ``dense.faiss`` when first used) and,
where the manifest says the embedder gives unit vectors (``faiss.normalized``), their length, so an
edited, damaged or swapped part fails in one line naming the part and the fix.  A version written
before the digests is loaded unchecked (a debug log says so); the next write records them.

Loading is cheap at any size: the embeddings, the FAISS vectors and the BM25 arrays are memory-mapped,
``chunks.jsonl`` is memory-mapped and each line parsed when first used, and ``bm25.json``
is parsed only when a writer needs the tokens (:mod:`rag.index.lazy`).

This module owns the versions and the locks; the rest of the index stage is split by job:
:mod:`rag.index.base` (the :class:`~rag.index.base.SearchIndex` interface both backends offer),
:mod:`rag.index.manifest` (manifest checks, settings, file records), :mod:`rag.index.memory`
(the in-process :class:`Index`), :mod:`rag.index.parts` (its files), :mod:`rag.index.milvus`
(the server backend), :mod:`rag.index.backends` (which backend opens a version),
:mod:`rag.index.cleanup` (stale versions) and :mod:`rag.index.errors`.  Their public names are
re-exported here, where callers have always imported them.

Example:
    >>> import tempfile
    >>> store = IndexStore(tempfile.mkdtemp())
    >>> store.names()
    []
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Mapping

from rag.fs import TMP_PREFIX, atomic_directory, fsync_path, recover, recover_all, remove_tree, write_file_atomic
from rag.locks import LockTimeout, WriteLock, describe_holder, shared_lock
from rag.index.backends import open_version
from rag.index.base import SearchIndex
from rag.index.cleanup import TRASH_PREFIX, remove_stale
from rag.index.errors import (IndexCorruptError, IndexError_, IndexLockedError, IndexMismatchError,
                              IndexNotFoundError, IndexWriteError)
from rag.index.manifest import (DEFAULT_INDEX_ROOT, DIGESTS, FLAT_FORMAT_VERSION, FORMAT_VERSION, LIBRARIES, MANIFEST,
                                NAME_RE, PARTS, READABLE_FORMAT_VERSIONS, VERSION_PREFIX, DocRecord, IndexSettings,
                                default_index_root, indexed_text, part_digests, rebuild_hint, validate_manifest,
                                validate_name)
from rag.index.memory import Index, iter_chunk_texts

__all__ = [
    "DEFAULT_INDEX_ROOT", "DEFAULT_LOCK_TIMEOUT", "FLAT_FORMAT_VERSION", "FORMAT_VERSION", "KEPT_SUBDIR",
    "LIBRARIES", "LOCK_FILE", "MANIFEST", "PARTS", "READABLE_FORMAT_VERSIONS", "TRASH_PREFIX", "VERSION_PREFIX",
    "DocRecord", "Index", "IndexCorruptError", "IndexError_", "IndexLockedError", "IndexMismatchError",
    "IndexNotFoundError", "IndexSettings", "IndexStore", "IndexWriteError", "IndexWriter", "SearchIndex",
    "default_index_root", "indexed_text", "iter_chunk_texts", "validate_manifest", "validate_name",
]

logger = logging.getLogger(__name__)

LOCK_FILE = ".lock"
#: how long a writer waits for another writer of the same index (seconds)
DEFAULT_LOCK_TIMEOUT = 600.0
# a reader retries when the version it picked was replaced and removed before it could lock it
_LOAD_ATTEMPTS = 20
# a sub-directory owned by another stage (rag.retrieval.rerank_training.store): outside the versions, so it survives re-ingests
KEPT_SUBDIR = "reranker"


def _new_version_id() -> str:
    return f"{VERSION_PREFIX}{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"


class IndexStore:
    """Reads and writes named indexes under a root directory (see the module docstring for the guarantees).

    Args:
        root: the directory holding one sub-directory per index (default ``$RAG_INDEX_DIR`` or ``./indexes``).
        lock_timeout: seconds a writer waits for another writer of the same index before failing.

    Example:
        >>> IndexStore("indexes").path("bad/name")
        Traceback (most recent call last):
        ...
        ValueError: index name must be 1-64 characters of letters, digits, '_', '-', '.' and not start with '.' or '-', got 'bad/name'
    """

    def __init__(self, root: str | Path | None = None, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> None:
        if not lock_timeout >= 0:
            raise ValueError(f"lock_timeout must be >= 0 seconds, got {lock_timeout!r}")
        self.root = Path(root) if root is not None else default_index_root()
        self.lock_timeout = float(lock_timeout)

    def path(self, name: str) -> Path:
        """The index's directory (its ``manifest.json`` and ``reranker/`` are directly in it)."""
        return self.root / validate_name(name)

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        self._recover_all()
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST).exists())

    def exists(self, name: str) -> bool:
        self._recover(name)
        return (self.path(name) / MANIFEST).exists()

    def read_manifest(self, name: str) -> dict[str, Any]:
        """The current version's manifest, checked (:func:`validate_manifest`)."""
        self._recover(name)
        path = self.path(name) / MANIFEST
        if not path.exists():
            avail = ", ".join(self.names()) or "none"
            raise IndexNotFoundError(f"no index named {name!r} under {self.root}/ (available: {avail}); "
                                     f"create it with `rag ingest DIR --index {name}`")
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:  # ValueError: bad JSON or bad UTF-8
            raise IndexCorruptError(f"index {name!r}: unreadable manifest.json ({' '.join(str(exc).split())}); "
                                    f"{rebuild_hint(name)}") from None
        return validate_manifest(name, manifest)

    def version_path(self, name: str) -> Path:
        """The directory holding the current version's parts (the index directory itself for the flat layout)."""
        return self._parts_dir(name, self.read_manifest(name))

    def load(self, name: str, expect_embedder: str | None = None) -> SearchIndex:
        """Load the current version of an index, checking its manifest (format, embedder) and parts.

        Always one complete version, even while a writer replaces it (see the module docstring).
        An index whose manifest names a server backend is a :class:`rag.index.milvus.MilvusIndex`,
        any other an in-process :class:`Index`; both are a :class:`~rag.index.base.SearchIndex`.
        """
        parts = self.path(name)
        for attempt in range(_LOAD_ATTEMPTS):
            manifest = self.read_manifest(name)
            settings = IndexSettings.from_manifest(manifest)
            if expect_embedder is not None and settings.embedder_id != expect_embedder:
                raise IndexMismatchError(
                    f"index {name!r} was built with embedder {settings.embedder_id!r} but "
                    f"{expect_embedder!r} was requested; use that embedder, or rebuild the index with "
                    f"`rag ingest DIR --index {name} --rebuild`")
            parts = self._parts_dir(name, manifest)
            with ExitStack() as stack:
                try:
                    stack.enter_context(shared_lock(parts))
                except (FileNotFoundError, NotADirectoryError):
                    continue  # replaced and removed after we read the manifest: read the new one
                if self._intact(manifest, parts):
                    return open_version(name, manifest, settings, parts)
            logger.debug("index %r: version %s was replaced while loading (attempt %d)", name, parts.name,
                         attempt + 1)
        raise IndexCorruptError(f"index {name!r}: the version named by manifest.json ({parts}) is missing or "
                                f"incomplete; {rebuild_hint(name)}")

    def writer(self, name: str, timeout: float | None = None, create: bool = True) -> "IndexWriter":
        """Exclusive write access to index ``name`` for a ``with`` block (see :class:`IndexWriter`)."""
        return IndexWriter(self, name, self.lock_timeout if timeout is None else timeout, create=create)

    def save(self, index: SearchIndex) -> Path:
        """Write ``index`` as a new version under the index's write lock; return the index directory.

        For a read-modify-write (load, change, save) hold :meth:`writer` around all of it instead.
        """
        with self.writer(index.name) as w:
            return w.save(index)

    def delete(self, name: str) -> None:
        """Remove an index (waits for a writer of it to finish; readers loading it at that moment fail)."""
        with self.writer(name, create=False):
            remove_tree(self.path(name), TRASH_PREFIX)

    # -- reading one version -------------------------------------------------------------

    def _parts_dir(self, name: str, manifest: Mapping[str, Any]) -> Path:
        if manifest["format_version"] == FLAT_FORMAT_VERSION:
            return self.path(name)
        return self.path(name) / manifest["parts_dir"]

    @staticmethod
    def _intact(manifest: Mapping[str, Any], parts: Path) -> bool:
        """Whether version ``parts`` still exists (checked while holding its shared lock)."""
        if manifest["format_version"] == FLAT_FORMAT_VERSION:
            return all((parts / f).is_file() for f in PARTS.values())
        return (parts / MANIFEST).is_file()

    # -- crash recovery of the flat layout's two-rename swap (see rag.fs) ------------------

    def _recover(self, name: str) -> None:
        """Undo a crash between the two renames of an older rag's atomic write of index ``name``."""
        recover(self.path(name), MANIFEST)

    def _recover_all(self) -> None:
        recover_all(self.root, MANIFEST, accept=lambda name: bool(NAME_RE.match(name)))


class IndexWriter:
    """Exclusive write access to one index, across processes and threads; a context manager.

    Entering takes the index's OS lock (waiting up to ``timeout`` seconds for another writer,
    then :class:`IndexLockedError`), checks that a version can be written there
    (:class:`IndexWriteError`, before any expensive work) and removes stale leftovers of
    crashed writers.  Inside, :meth:`load` sees every earlier writer's changes and
    :meth:`save` publishes a new version.  ``create=False`` refuses an index that does not exist.

    Example:
        >>> import tempfile
        >>> store = IndexStore(tempfile.mkdtemp())
        >>> settings = IndexSettings(embedder_id="e", dim=4, chunker={})
        >>> with store.writer("notes") as w:
        ...     before = w.exists()
        ...     _ = w.save(Index.empty("notes", settings))
        >>> before, store.exists("notes"), len(store.load("notes"))
        (False, True, 0)
    """

    def __init__(self, store: IndexStore, name: str, timeout: float, create: bool = True) -> None:
        if not timeout >= 0:
            raise ValueError(f"timeout must be >= 0 seconds, got {timeout!r}")
        self.store = store
        self.name = validate_name(name)
        self.dir = store.path(name)
        self.timeout = float(timeout)
        self.create = create
        self._lock: WriteLock | None = None

    # -- the lock -------------------------------------------------------------------------

    def __enter__(self) -> "IndexWriter":
        self._lock = self._acquire()
        try:
            self._probe()
            self._clean()
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._drop_if_empty()
        finally:
            self._release()

    def _acquire(self) -> WriteLock:
        for _ in range(5):  # the directory can vanish while we wait (the index was deleted): start over
            if self.create:
                self.store._recover(self.name)  # before mkdir, which would hide a version to recover
                try:
                    self.dir.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise IndexWriteError(self._cannot(exc)) from None
            elif not (self.dir / MANIFEST).is_file():
                self.store.read_manifest(self.name)  # raises IndexNotFoundError naming the available ones
            lock = WriteLock(self.dir / LOCK_FILE, timeout=self.timeout)
            try:
                lock.acquire()
            except (FileNotFoundError, NotADirectoryError):
                continue
            except LockTimeout as exc:
                if exc.own:
                    raise IndexLockedError(
                        f"index {self.name!r} is already being written by this thread; save through the "
                        f"IndexWriter it holds") from None
                raise IndexLockedError(
                    f"index {self.name!r} is being written by {describe_holder(exc.holder)}, which did not finish "
                    f"within {exc.waited:g} s; try again when it is done (or wait longer: --wait SECONDS)") from None
            except OSError as exc:
                raise IndexWriteError(self._cannot(exc)) from None
            if self.create or (self.dir / MANIFEST).is_file():
                return lock
            lock.release()
            self.store.read_manifest(self.name)  # deleted while we waited: IndexNotFoundError
        raise IndexWriteError(f"cannot lock index {self.name!r} in {self.dir}: its directory keeps disappearing")

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _require_lock(self) -> None:
        if self._lock is None:
            raise RuntimeError(f"use IndexWriter for index {self.name!r} in a `with` block")

    def _cannot(self, exc: OSError) -> str:
        where = self.dir
        while not where.exists() and where != where.parent:
            where = where.parent
        if where.exists() and not where.is_dir():
            reason = f"{where} is a file, not a directory"
        elif isinstance(exc, PermissionError):
            reason = f"permission denied on {exc.filename or where}"
        else:
            reason = " ".join((exc.strerror or str(exc)).split())
            if exc.filename:
                reason = f"{exc.filename}: {reason}"
        return (f"cannot write index {self.name!r} under {self.store.root}: {reason}; "
                f"choose a writable --index-dir (or $RAG_INDEX_DIR)")

    def _probe(self) -> None:
        """Fail now, not after the embedding, if a version cannot be created in the index directory."""
        try:
            os.rmdir(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{VERSION_PREFIX}probe-", dir=self.dir))
        except OSError as exc:
            raise IndexWriteError(self._cannot(exc)) from None

    # -- reading and writing under the lock ---------------------------------------------

    def exists(self) -> bool:
        return (self.dir / MANIFEST).is_file()

    def load(self, expect_embedder: str | None = None) -> SearchIndex:
        """The current version, including everything earlier writers saved."""
        self._require_lock()
        return self.store.load(self.name, expect_embedder=expect_embedder)

    def save(self, index: SearchIndex) -> Path:
        """Publish ``index`` as the new current version; return the index directory.

        The version (the parts the backend keeps locally, then the manifest) is written to
        ``.tmp-v-...``, renamed to ``v-...`` and made current by replacing ``manifest.json``
        (one ``os.replace``); then versions no reader holds are removed.  On an error the
        current version is unchanged.
        """
        self._require_lock()
        if index.name != self.name:
            raise ValueError(f"this writer holds index {self.name!r}, not {index.name!r}")
        version = _new_version_id()
        manifest = {**index.manifest(), "parts_dir": version}
        try:
            with atomic_directory(self.dir / version) as tmp:
                index.save_parts(tmp)
                # each part's sha256, checked on load (rag.index.manifest.verify_digests)
                text = json.dumps({**manifest, DIGESTS: part_digests(tmp)}, indent=2)
                # the manifest goes last: a version directory without one is incomplete
                (tmp / MANIFEST).write_text(text, encoding="utf-8")
            fsync_path(self.dir)
            write_file_atomic(self.dir / MANIFEST, text)  # the switch: readers now get this version
        except OSError as exc:
            reason = " ".join((exc.strerror or str(exc) or type(exc).__name__).split())
            raise IndexWriteError(f"could not write index {self.name!r} to {self.dir} ({reason}); "
                                  f"the previous version is unchanged") from exc
        logger.info("saved index %s (%d chunks in %s) as %s", index.name, len(index), index.where,
                    self.dir / version)
        self._clean()
        return self.dir

    # -- cleaning up ----------------------------------------------------------------------

    def _current_version(self) -> tuple[bool, str | None]:
        """(readable, parts_dir): the pointer's version, None for the flat layout or no index yet."""
        if not (self.dir / MANIFEST).exists():
            return True, None
        try:
            manifest = self.store.read_manifest(self.name)
        except IndexError_:
            return False, None  # a damaged pointer: keep every version until a save replaces it
        return True, manifest.get("parts_dir") if manifest["format_version"] != FLAT_FORMAT_VERSION else None

    def _clean(self) -> None:
        """Remove what crashed writers left and versions no reader holds (call with the lock held)."""
        readable, current = self._current_version()
        removed = remove_stale(self.dir, self.store.root, self.name, readable, current)
        if removed:
            logger.info("index %r: removed %d stale entries (%s)", self.name, len(removed), ", ".join(removed[:5]))

    def _drop_if_empty(self) -> None:
        """Remove the directory made for the lock if nothing was saved into it."""
        if self._lock is None or not self.dir.is_dir() or (self.dir / MANIFEST).exists():
            return
        try:
            if [p.name for p in self.dir.iterdir()] == [LOCK_FILE]:
                (self.dir / LOCK_FILE).unlink()
                self.dir.rmdir()
        except OSError:
            pass
