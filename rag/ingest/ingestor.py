"""Ingestion pipeline: files -> documents -> chunks -> embeddings -> saved index.

Incremental: a file whose content hash is unchanged is skipped; a changed file's chunks
are replaced; files that were ingested from a directory and have since been deleted from
it are removed.  A file that fails to load is listed in the report and never aborts the
batch; if an older version of it is indexed, that version is kept.

Example:
    >>> ing = Ingestor("docs", chunk_size=0)
    Traceback (most recent call last):
    ...
    ValueError: chunk_size must be a positive integer, got 0
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from rag.ingest.chunking import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE, Chunker
from rag.index.dense import validate_kind
from rag.embedding import DEFAULT_EMBEDDER, Embedder
from rag.index.backends import create_index, location
from rag.index.base import SearchIndex
from rag.index.store import (DocRecord, IndexMismatchError, IndexSettings, IndexStore, IndexWriter, indexed_text,
                             validate_name)
from rag.ingest.loaders import DEFAULT_MAX_FILE_MB, DocumentLoader, LoadedFile, LoadError, scan_files
from rag.ingest.ocr import OcrMode, OcrProgress, OcrProgressBar
from rag.index.milvus_config import BACKEND, MilvusConfig
from rag.index.sparse import Analyzer
from rag.types import Chunk

logger = logging.getLogger(__name__)

#: chunk texts embedded (and BM25-tokenized) together while an ingest streams through its files
EMBED_BLOCK = 256


@dataclass
class IngestReport:
    """What an ingest did. ``errors`` are ``(path, reason)`` pairs; ``ok`` is False if any.

    ``skipped`` (same pairs: unsupported types, symlinks leaving the folder) are not failures.
    """

    index: str
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    chunks_added: int = 0
    total_chunks: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        lines = [f"index {self.index!r}: {len(self.added)} added, {len(self.updated)} updated, "
                 f"{len(self.unchanged)} unchanged, {len(self.removed)} removed, {len(self.errors)} failed, "
                 f"{len(self.skipped)} skipped; "
                 f"{self.chunks_added} new chunks, {self.total_chunks} in total ({self.seconds:.1f}s)"]
        for path, msg in self.warnings:
            lines.append(f"  warning: {path}: {msg}")
        for path, msg in self.skipped:
            lines.append(f"  skipped: {path}: {msg}")
        for path, msg in self.errors:
            lines.append(f"  error: {path}: {msg}")
        return "\n".join(lines)


class Ingestor:
    """Ingest files into a named index (created on first use).

    Args:
        index: index name (a directory under the store root).
        store: where indexes live (default ``$RAG_INDEX_DIR`` or ``./indexes``).
        embedder: an :class:`Embedder` (default: the packaged MiniLM).
        chunk_size, chunk_overlap: window size and overlap in embedder tokens.
        title_prefix: prepend the document title to each chunk for BM25 and embedding.
        faiss_kind: ``flat`` (exact), ``hnsw`` or ``ivf`` for large corpora.
        stemmer: BM25 analyzer stemmer, ``english`` or ``none``.
        max_file_mb: refuse larger files with a clear error.
        pdf_password: the password of encrypted PDFs (memory only: never logged or put in the manifest).
        ocr: which PDF pages are OCRed: ``auto`` (scanned pages), ``always`` or ``never``
            (:class:`~rag.ingest.ocr.OcrMode`); with ``show_progress`` each OCRed file gets a page bar.
        on_ocr_page: called after each page OCRed with an :class:`~rag.ingest.ocr.OcrProgress` (file,
            page, how many of how many), e.g. to show progress in an app; used instead of the page bar.
        lock_timeout: seconds to wait for another writer of the same index (default: the store's).
        backend: where the chunks live: ``None`` (the index's recorded backend; embedded for a
            new index), ``"local"`` (embedded FAISS + BM25 files) or ``"milvus"`` (a Milvus server,
            :mod:`rag.index.milvus`; needs ``milvus``).
        milvus: the :class:`~rag.index.milvus.MilvusConfig` (URI, index type, token) for ``"milvus"``.

    Every write (:meth:`ingest`, :meth:`ingest_loaded`, :meth:`remove`) holds the index's
    write lock from before it reads the index until the new version is saved, so concurrent
    writers (other processes, the app's sessions) take turns and each sees the others'
    documents; the lock also checks that the index can be written before anything is embedded.

    Example (runs the real embedder)::

        report = Ingestor("manuals").ingest(["~/Documents/manuals"])
        print(report.summary())
    """

    def __init__(self, index: str, store: IndexStore | None = None, embedder: Embedder | None = None,
                 chunk_size: int = DEFAULT_CHUNK_SIZE, chunk_overlap: int = DEFAULT_CHUNK_OVERLAP,
                 title_prefix: bool = True, faiss_kind: str = "flat", stemmer: str = "english",
                 max_file_mb: float = DEFAULT_MAX_FILE_MB, show_progress: bool | None = None,
                 lock_timeout: float | None = None, backend: str | None = None,
                 milvus: MilvusConfig | None = None, pdf_password: str | None = None,
                 ocr: OcrMode | str = OcrMode.AUTO,
                 on_ocr_page: Callable[[OcrProgress], None] | None = None) -> None:
        self.index_name = validate_name(index)
        if on_ocr_page is not None and not callable(on_ocr_page):
            raise TypeError(f"on_ocr_page must be a callable taking an OcrProgress or None, got {on_ocr_page!r}")
        if backend not in (None, "local", BACKEND):
            raise ValueError(f"backend must be one of local, {BACKEND}; got {backend!r}")
        if backend == BACKEND and milvus is None:
            raise ValueError("the milvus backend needs a server URI (--uri http://HOST:19530)")
        if milvus is not None and backend != BACKEND:
            raise ValueError(f"a Milvus URI was given for backend {backend or 'as recorded'!r}; add --backend milvus")
        self.backend = backend
        self.milvus = milvus.for_index(index) if milvus is not None else None
        self.store = store or IndexStore()
        if lock_timeout is not None and not lock_timeout >= 0:
            raise ValueError(f"lock_timeout must be >= 0 seconds, got {lock_timeout!r}")
        self.lock_timeout = lock_timeout
        self.embedder = embedder or Embedder(DEFAULT_EMBEDDER)
        # validate chunker params now; the tokenizer is attached on first use
        Chunker(chunk_size, chunk_overlap, length_function=len)
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.title_prefix = title_prefix
        self.faiss_kind = validate_kind(faiss_kind)
        self.analyzer = Analyzer(stemmer=stemmer)
        self.show_progress = (logger.getEffectiveLevel() <= logging.INFO) if show_progress is None else show_progress
        if on_ocr_page is None and self.show_progress:
            on_ocr_page = OcrProgressBar()
        self.loader = DocumentLoader(max_file_mb=max_file_mb, pdf_password=pdf_password, ocr=ocr,
                                     on_ocr_page=on_ocr_page)
        self._chunker: Chunker | None = None

    def _settings(self) -> IndexSettings:
        chunker = self._get_chunker()
        return IndexSettings(embedder_id=self.embedder.model_id, dim=self.embedder.dim, chunker=chunker.params,
                             analyzer=self.analyzer.params, faiss_kind=self.faiss_kind,
                             title_prefix=self.title_prefix)

    def _get_chunker(self) -> Chunker:
        if self._chunker is None:
            self._chunker = Chunker(self.chunk_size, self.chunk_overlap, tokenizer=self.embedder.tokenizer)
        return self._chunker

    def _writer(self, create: bool = True) -> IndexWriter:
        return self.store.writer(self.index_name, timeout=self.lock_timeout, create=create)

    def _open(self, w: IndexWriter, rebuild: bool) -> SearchIndex:
        """The index as it is now, read under the write lock (so it includes every earlier writer's work)."""
        settings = self._settings()
        if rebuild or not w.exists():
            return create_index(self.index_name, settings, self._target(w), drop=rebuild)
        index = w.load()
        if self.backend is not None and index.where != location(self.milvus):
            raise IndexMismatchError(
                f"index {self.index_name!r} is stored in {index.where}, this ingest asks for "
                f"{location(self.milvus)}; drop --backend/--uri to use the recorded one, or add --rebuild to "
                f"re-create it there")
        self._check_settings(index.settings, settings)
        return index

    def _target(self, w: IndexWriter) -> MilvusConfig | None:
        """The server a new or rebuilt index goes to: the one asked for, else (``--rebuild``) the recorded one."""
        if self.backend is None and w.exists():
            recorded = self.store.read_manifest(self.index_name).get("backend")
            return MilvusConfig.from_manifest(recorded) if recorded else None
        return self.milvus

    def _check_settings(self, theirs: IndexSettings, ours: IndexSettings) -> None:
        for label, a, b in (("embedder", theirs.embedder_id, ours.embedder_id),
                            ("chunker", dict(theirs.chunker), dict(ours.chunker)),
                            ("BM25 analyzer", dict(theirs.analyzer), dict(ours.analyzer)),
                            ("title_prefix", theirs.title_prefix, ours.title_prefix),
                            ("FAISS kind", theirs.faiss_kind, ours.faiss_kind)):
            if a != b:
                raise IndexMismatchError(
                    f"index {self.index_name!r} was built with {label} {a!r}, this ingest asks for {b!r}; "
                    f"use the same settings, another --index name, or --rebuild to re-create it")

    def ingest(self, paths: Sequence[str | Path], rebuild: bool = False, prune: bool = True) -> IngestReport:
        """Ingest files and directories (recursively) and save the index atomically, under its write lock."""
        with self._writer() as w:
            return self._ingest(w, paths, rebuild, prune)

    def _ingest(self, w: IndexWriter, paths: Sequence[str | Path], rebuild: bool, prune: bool) -> IngestReport:
        t0 = time.perf_counter()
        report = IngestReport(index=self.index_name)
        old = self._open(w, rebuild)
        files: list[Path] = []
        roots: list[Path] = []
        for p in paths:
            path = Path(p).expanduser()
            if not path.exists():
                report.errors.append((str(path), "no such file or directory"))
                continue
            roots.append(path.resolve())
            scan = scan_files(path)
            files.extend(scan.files)
            report.skipped.extend(scan.skipped)
            report.errors.extend(scan.errors)
        unique: dict[str, Path] = {}
        for f in files:
            unique.setdefault(str(f.resolve()), f)
        removed: list[str] = []
        if prune:
            removed = [s for s in sorted(old.documents) if s not in unique
                       and any(_is_under(Path(s), r) for r in roots) and not Path(s).exists()]
        self._apply(w, old, self._load_each(list(unique.values()), report, old.documents), removed, report,
                    force_save=rebuild)
        report.seconds = time.perf_counter() - t0
        return report

    def _load_each(self, files: list[Path], report: IngestReport, known: Mapping[str, DocRecord] | None = None
                   ) -> Iterator[LoadedFile]:
        """Load one file at a time (its text is dropped once it is chunked); failures go to the report. A file
        whose bytes match its record in ``known`` is noted unchanged without being read (no OCR of a scan again)."""
        for f in self._progress(files, "ingesting"):
            prev = (known or {}).get(str(f.resolve()))
            try:
                loaded = self.loader.load(f, unless_hash=prev.file_hash if prev is not None else None)
            except LoadError as exc:
                report.errors.append((str(f), exc.reason))
                continue
            except Exception as exc:  # noqa: BLE001 - one bad file must not abort the batch
                logger.exception("unexpected error loading %s", f)
                report.errors.append((str(f), f"unexpected {type(exc).__name__}: {exc}"))
                continue
            if loaded is None:  # its bytes are those of its record: not parsed
                report.unchanged.append(prev.source)  # type: ignore[union-attr]
                continue
            yield loaded

    def ingest_loaded(self, files: Sequence[LoadedFile], rebuild: bool = False) -> IngestReport:
        """Ingest already-loaded files (e.g. a benchmark corpus that is not on disk as files)."""
        t0 = time.perf_counter()
        report = IngestReport(index=self.index_name)
        with self._writer() as w:
            self._apply(w, self._open(w, rebuild), files, [], report, force_save=rebuild)
        report.seconds = time.perf_counter() - t0
        return report

    def _apply(self, w: IndexWriter, old: SearchIndex, loaded_files: Iterable[LoadedFile],
               removed: Sequence[str], report: IngestReport, force_save: bool) -> None:
        """Chunk and embed new/changed files, drop replaced/removed ones, save atomically.

        ``loaded_files`` is consumed one file at a time: each file is chunked, its chunk texts
        embedded in blocks of :data:`EMBED_BLOCK`, and only its chunks and record are kept, so
        a large folder is never held in memory as whole texts.  Nothing is written when nothing
        changed (unless ``force_save``, or the index does not exist yet).
        """
        new_records, new_chunks, vectors = self._read_changes(old, loaded_files, report)
        report.removed.extend(removed)
        report.chunks_added = len(new_chunks)
        if not (new_records or removed or force_save or not w.exists()):
            report.total_chunks = len(old)
            return
        replaced = set(report.updated) | set(removed)
        records = {s: r for s, r in old.documents.items() if s not in replaced}
        records.update(new_records)
        doc_ids = [old.documents[s].doc_id for s in replaced] + [r.doc_id for r in new_records.values()]
        index = old.write(records, doc_ids, new_chunks, vectors, show_progress=self.show_progress)
        w.save(index)
        report.total_chunks = len(index)

    def _read_changes(self, old: SearchIndex, loaded_files: Iterable[LoadedFile], report: IngestReport
                      ) -> tuple[dict[str, DocRecord], list[Chunk], np.ndarray]:
        """The records, chunks and vectors of the new and changed files among ``loaded_files``."""
        now = time.time()
        records: dict[str, DocRecord] = {}
        chunks: list[Chunk] = []
        blocks = _BlockEncoder(self.embedder, self.show_progress)
        for loaded in loaded_files:
            found = self._chunk_file(loaded, old.documents.get(loaded.source), report, now)
            if found is None:
                continue
            records[loaded.source], file_chunks = found
            chunks.extend(file_chunks)
            blocks.add(indexed_text(c, self.title_prefix) for c in file_chunks)
        return records, chunks, blocks.finish(old.settings.dim)

    def _chunk_file(self, loaded: LoadedFile, prev: DocRecord | None, report: IngestReport, now: float
                    ) -> tuple[DocRecord, list[Chunk]] | None:
        """A new or changed file's record and chunks; None (noted in ``report``) for one to leave as it is."""
        report.warnings.extend((loaded.source, w) for w in loaded.warnings)
        if not loaded.documents:
            report.errors.append((loaded.source, "no text to index"))
            return None
        if prev is not None and prev.file_hash == loaded.file_hash:
            report.unchanged.append(loaded.source)
            return None
        try:
            chunks = self._get_chunker().split(loaded.documents, doc_id=loaded.doc_id)
        except Exception as exc:  # noqa: BLE001 - one bad file must not abort the batch
            report.errors.append((loaded.source, f"could not be chunked ({type(exc).__name__}: {exc})"))
            return None
        (report.updated if prev is not None else report.added).append(loaded.source)
        flagged = sum(c.suspicious for c in chunks)
        if flagged:
            report.warnings.append((loaded.source, f"{flagged} of {len(chunks)} chunks hold instruction-like or "
                                                   "credential-seeking text; answers will not use them"))
        pages = len(loaded.documents) if loaded.documents[0].page is not None else None
        record = DocRecord(doc_id=loaded.doc_id, source=loaded.source, file_hash=loaded.file_hash,
                           title=loaded.documents[0].title, n_chunks=len(chunks), pages=pages, ingested_at=now)
        return record, chunks

    def remove(self, path: str | Path) -> bool:
        """Remove one document (by path) from the index, under its write lock; False if it was not indexed."""
        source = str(Path(path).expanduser().resolve())
        with self._writer(create=False) as w:
            index = w.load()
            if source not in index.documents:
                return False
            w.save(index.delete([source]))
        return True

    def _progress(self, items: list[Path], desc: str) -> Sequence[Path]:
        if not self.show_progress or len(items) < 2:
            return items
        from tqdm.auto import tqdm

        return tqdm(items, desc=desc, unit="file")  # type: ignore[return-value]


class _BlockEncoder:
    """Chunk texts embedded in blocks of at least :data:`EMBED_BLOCK` while files stream in.

    The block boundaries depend only on the order of the files, so an ingest embeds the same
    batches (and gets the same vectors) every time; the progress bar counts chunks.
    """

    def __init__(self, embedder: Embedder, show_progress: bool) -> None:
        self._embedder = embedder
        self._show_progress = show_progress
        self._pending: list[str] = []
        self._blocks: list[np.ndarray] = []
        self._bar: Any = None

    def add(self, texts: Iterable[str]) -> None:
        self._pending.extend(texts)
        if len(self._pending) >= EMBED_BLOCK:
            self._flush()

    def finish(self, dim: int) -> np.ndarray:
        """Every vector, row for row with the texts added; ``(0, dim)`` when there were none."""
        self._flush()
        if self._bar is not None:
            self._bar.close()
        return np.concatenate(self._blocks) if self._blocks else np.zeros((0, dim), dtype=np.float32)

    def _flush(self) -> None:
        if not self._pending:
            return
        self._blocks.append(self._embedder.encode(self._pending))
        if self._show_progress:
            if self._bar is None:
                from tqdm.auto import tqdm

                self._bar = tqdm(desc="embedding", unit="chunk")
            self._bar.update(len(self._pending))
        self._pending.clear()


def _is_under(path: Path, root: Path) -> bool:
    if path == root:
        return True
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False
