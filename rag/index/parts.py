"""The in-process index's parts on disk: reading one version's files back, checked, and writing them.

A version directory of the in-process backend holds ``documents.json``, ``chunks.jsonl``,
``embeddings.npy``, ``dense.faiss``, ``bm25.json`` and the BM25 matrix parts (layout in
:mod:`rag.index.store`).  :func:`read_parts` maps them (chunks parsed on use, vectors and
matrix memory-mapped; :mod:`rag.index.lazy`) and checks that they agree with each other and
with the manifest (each part's sha256, the vectors' unit length), so a damaged or edited index
fails on load with one line naming the part and the fix, not later inside a search.  This module knows files, not the :class:`~rag.index.memory.Index`
built from them, so the index can import it without a cycle.

Example:
    >>> import tempfile, pathlib
    >>> read_parts("notes", {"counts": {"chunks": 0}}, None, pathlib.Path(tempfile.mkdtemp()))
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    rag.index.errors.IndexCorruptError: index 'notes' at ...: missing or unreadable part (...); rebuild it with `rag ingest DIR --index notes --rebuild`
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from rag.index.dense import FaissIndex
from rag.index.errors import IndexCorruptError
from rag.index.lazy import JsonlRows, LazyJsonList, as_list, map_file
from rag.index.manifest import (FLAT_FORMAT_VERSION, PARTS, DocRecord, IndexSettings, digest_check, indexed_text,
                                parse_documents, rebuild_hint, verify_digests, write_documents)
from rag.index.sparse import BM25Index
from rag.types import Chunk

logger = logging.getLogger(__name__)

#: how far a stored vector's length may be from 1 when the manifest promises unit vectors (float32 and
#: int8-quantised encoders land within 1e-3; a zero vector, an empty text's, is allowed)
UNIT_NORM_TOLERANCE = 1e-2


@dataclass
class LocalParts:
    """One version's parts as read: what :class:`~rag.index.memory.Index` is built from.

    ``bm25`` is None when the matrix must be rebuilt from ``tokens`` (an index written by an
    older rag, or one whose analyzer changed); ``settings`` then carry the current analyzer.
    """

    settings: IndexSettings
    documents: dict[str, DocRecord]
    chunks: Sequence[Chunk]
    embeddings: np.ndarray
    tokens: Sequence[Sequence[str]]
    dense: FaissIndex
    bm25: BM25Index | None


def faiss_kind(raw: Any) -> str:
    """``flat``, ``hnsw`` or ``ivf`` for a FAISS index object (its class name when none fits)."""
    import faiss

    for kind, cls in (("hnsw", faiss.IndexHNSW), ("ivf", faiss.IndexIVF), ("flat", faiss.IndexFlat)):
        if isinstance(raw, cls):
            return kind
    return type(raw).__name__


def read_parts(name: str, manifest: Mapping[str, Any], settings: IndexSettings, d: Path) -> LocalParts:
    """The parts of the version in ``d``, checked against each other and ``manifest``."""
    import faiss

    expected = manifest["counts"]["chunks"]
    # every part's bytes against the sha256 recorded at write time; two parts a load does not read are
    # checked when first used instead: the tokens (only writers read them) and the FAISS index (the
    # first dense search), which keeps a 100k-chunk load within a second of the unchecked one
    verify_digests(name, manifest, d, skip=(PARTS["bm25"], PARTS["dense"]))
    try:
        documents = parse_documents(d / PARTS["documents"])
        chunks = JsonlRows(d / PARTS["chunks"], Chunk.from_dict, label=f"index {name!r}: {PARTS['chunks']}")
        embeddings = np.load(d / PARTS["embeddings"], mmap_mode="r", allow_pickle=False)
        tokens: Sequence[Sequence[str]] = LazyJsonList(d / PARTS["bm25"], "tokens", expected,
                                                       label=f"index {name!r}: {PARTS['bm25']}",
                                                       check=digest_check(name, manifest, PARTS["bm25"]))
        # the vectors memory-mapped, not copied (faiss >= 1.10; the graph of an HNSW index is read)
        raw = faiss.read_index(str(d / PARTS["dense"]), getattr(faiss, "IO_FLAG_MMAP_IFC", 0))
        verify_dense = _deferred_check(name, manifest, d / PARTS["dense"])
    except (OSError, KeyError, ValueError, TypeError, AttributeError, RuntimeError) as exc:  # faiss: RuntimeError
        raise IndexCorruptError(f"index {name!r} at {d}: missing or unreadable part "
                                f"({' '.join(str(exc).split())[:300]}); {rebuild_hint(name)}") from None
    embeddings = _checked_vectors(name, settings, raw, embeddings)
    if not (len(chunks) == embeddings.shape[0] == raw.ntotal == len(tokens) == expected):
        raise IndexCorruptError(
            f"index {name!r}: part sizes disagree (manifest {expected}, chunks {len(chunks)}, "
            f"embeddings {embeddings.shape[0]}, faiss {raw.ntotal}); {rebuild_hint(name)}")
    if embeddings.shape[0] and embeddings.shape[1] != settings.dim:
        raise IndexCorruptError(f"index {name!r}: embeddings have dim {embeddings.shape[1]}, "
                                f"manifest says {settings.dim}; {rebuild_hint(name)}")
    bad = int(embeddings.size - np.count_nonzero(np.isfinite(embeddings)))
    if bad:
        raise IndexCorruptError(f"index {name!r}: {PARTS['embeddings']} contains {bad} NaN or infinite "
                                f"values; {rebuild_hint(name)}")
    if manifest.get("faiss", {}).get("normalized"):
        check_unit_norm(name, settings, embeddings)
    settings, tokens, bm25 = _bm25(name, manifest, settings, d, chunks, tokens)
    dense = (FaissIndex(raw, faiss_kind(raw), int(raw.d)) if verify_dense is None
             else CheckedFaissIndex(raw, faiss_kind(raw), int(raw.d), verify_dense))
    return LocalParts(settings, documents, chunks, embeddings, tokens, dense, bm25)


def _deferred_check(name: str, manifest: Mapping[str, Any], path: Path) -> Callable[[], None] | None:
    """The sha256 check of part ``path``, to run on first use (None: the manifest records no digest).

    The file is mapped now, under the reader's lock, so the check reads this version's bytes even
    after a writer has removed it.
    """
    check = digest_check(name, manifest, path.name)
    if check is None:
        return None
    buffer = map_file(path)
    return lambda: check(buffer)


class CheckedFaissIndex(FaissIndex):
    """A :class:`FaissIndex` read from disk whose file is checked against its sha256 before the first search
    or save (hashing it on load would make a 100k-chunk load ~0.4 s slower; a dense search reads it all anyway).
    A mismatch raises on that and every later use."""

    def __init__(self, index: Any, kind: str, dim: int, verify: Callable[[], None]) -> None:
        super().__init__(index, kind, dim)
        self._verify: Callable[[], None] | None = verify
        self._verify_lock = threading.Lock()

    def _verified(self) -> None:
        with self._verify_lock:
            if self._verify is not None:
                self._verify()
                self._verify = None  # checked: the mapping is released

    def search(self, query: np.ndarray, n: int, rows: np.ndarray | None = None) -> list[tuple[int, float]]:
        if self._verify is not None:
            self._verified()
        return super().search(query, n, rows)

    def save(self, path: Path) -> None:
        if self._verify is not None:
            self._verified()
        super().save(path)


def check_unit_norm(name: str, settings: IndexSettings, embeddings: np.ndarray) -> None:
    """Raise a one-line :class:`IndexCorruptError` unless every row of ``embeddings`` has length 1 (or 0).

    The manifest's ``faiss.normalized`` records that the embedder gives unit vectors, which the
    inner product search relies on (it is the cosine only for those).  Rows are checked in blocks,
    so a memory-mapped array is not copied whole.

    Example:
        >>> s = IndexSettings(embedder_id="e", dim=2, chunker={})
        >>> check_unit_norm("notes", s, np.array([[0.6, 0.8], [0.0, 0.0]], np.float32))
        >>> check_unit_norm("notes", s, np.array([[0.6, 0.8], [600.0, 800.0]], np.float32))
        Traceback (most recent call last):
        ...
        rag.index.errors.IndexCorruptError: index 'notes': part embeddings.npy holds 1 vectors whose length is not 1 (row 1: 1000), but embedder 'e' gives unit vectors; rebuild it with `rag ingest DIR --index notes --rebuild`
    """
    bad, first, first_norm = 0, -1, 0.0
    for start in range(0, embeddings.shape[0], 65536):
        block = np.asarray(embeddings[start:start + 65536], dtype=np.float32)
        norms = np.sqrt(np.einsum("ij,ij->i", block, block))
        wrong = np.flatnonzero((np.abs(norms - 1.0) > UNIT_NORM_TOLERANCE) & (norms != 0.0))
        if wrong.size:
            if first < 0:
                first, first_norm = start + int(wrong[0]), float(norms[wrong[0]])
            bad += int(wrong.size)
    if bad:
        raise IndexCorruptError(f"index {name!r}: part {PARTS['embeddings']} holds {bad} vectors whose length is "
                                f"not 1 (row {first}: {first_norm:.4g}), but embedder {settings.embedder_id!r} gives "
                                f"unit vectors; {rebuild_hint(name)}")


def _checked_vectors(name: str, settings: IndexSettings, raw: Any, embeddings: np.ndarray) -> np.ndarray:
    """``embeddings`` as float32, after checking it and the FAISS index against the settings."""
    import faiss

    kind = faiss_kind(raw)
    if kind != settings.faiss_kind or raw.metric_type != faiss.METRIC_INNER_PRODUCT or raw.d != settings.dim:
        raise IndexCorruptError(
            f"index {name!r}: {PARTS['dense']} is a {kind} index of dim {raw.d}, but manifest.json says "
            f"{settings.faiss_kind} (inner product) of dim {settings.dim}; {rebuild_hint(name)}")
    if embeddings.ndim != 2 or embeddings.dtype.kind != "f":
        raise IndexCorruptError(f"index {name!r}: {PARTS['embeddings']} holds a {embeddings.dtype} array of "
                                f"shape {embeddings.shape}, expected float (n, {settings.dim}); {rebuild_hint(name)}")
    if embeddings.dtype != np.float32:
        embeddings = np.asarray(embeddings, dtype=np.float32)
    return embeddings


def _bm25(name: str, manifest: Mapping[str, Any], settings: IndexSettings, d: Path, chunks: Sequence[Chunk],
          tokens: Sequence[Sequence[str]]) -> tuple[IndexSettings, Sequence[Sequence[str]], BM25Index | None]:
    """The stored BM25 matrix, or None with what to rebuild it from (older rag, or another analyzer)."""
    current = settings.make_analyzer()
    if dict(settings.analyzer) != current.params:
        # built by an older rag (another stop list): re-analyse the stored chunk texts, so queries and
        # documents are tokenized alike; the next write persists it. No re-embedding is needed.
        logger.info("index %r: re-analysing %d chunks for BM25 (analyzer %s -> %s)", name, len(chunks),
                    dict(settings.analyzer), current.params)
        tokens = [current.tokenize(indexed_text(c, settings.title_prefix)) for c in chunks]
        return replace(settings, analyzer=current.params), tokens, None
    if "matrix" not in manifest["bm25"] or manifest["format_version"] == FLAT_FORMAT_VERSION:
        logger.info("index %r: no stored BM25 matrix (written by an older rag); building it from %s, "
                    "the next write stores it", name, PARTS["bm25"])
        return settings, tokens, None
    try:
        bm25 = BM25Index.load(d, manifest["bm25"]["matrix"], k1=settings.bm25_k1, b=settings.bm25_b,
                              n_docs=manifest["counts"]["chunks"])
    except ValueError as exc:
        raise IndexCorruptError(f"index {name!r} at {d}: BM25 matrix: {exc}; {rebuild_hint(name)}") from None
    return settings, tokens, bm25


def write_parts(directory: Path, documents: Mapping[str, DocRecord], chunks: Sequence[Chunk],
                embeddings: np.ndarray, tokens: Sequence[Sequence[str]], bm25: BM25Index,
                dense: FaissIndex) -> None:
    """Write every part of a version into ``directory`` (the manifest is the caller's, written last)."""
    write_documents(directory, documents)
    with open(directory / PARTS["chunks"], "w", encoding="utf-8") as fh:
        for c in chunks:
            fh.write(json.dumps(c.to_dict(), ensure_ascii=False) + "\n")
    np.save(directory / PARTS["embeddings"], embeddings, allow_pickle=False)
    (directory / PARTS["bm25"]).write_text(json.dumps({"tokens": as_list(tokens)}), encoding="utf-8")
    bm25.save(directory)
    dense.save(directory / PARTS["dense"])
