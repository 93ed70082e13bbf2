"""The in-process index: chunks, embeddings, BM25 and FAISS held (or memory-mapped) in this process.

It implements :class:`~rag.index.base.SearchIndex`: BM25 and dense searches and their fusion
run here, writes return a new :class:`Index` with the chunks of the replaced files dropped and
the new ones appended, and :meth:`Index.save_parts` / :meth:`Index.open` move it to and from a
version directory (:mod:`rag.index.parts`; the versions and locks are :mod:`rag.index.store`'s).

Example:
    >>> import numpy as np
    >>> from rag.index.manifest import DocRecord, IndexSettings
    >>> from rag.types import Chunk
    >>> settings = IndexSettings(embedder_id="e", dim=2, chunker={})
    >>> chunks = [Chunk("c0", "priming the pump", "d", "/a.md", None, 0, 16, 0),
    ...           Chunk("c1", "greasing the valve", "d", "/a.md", None, 17, 35, 1)]
    >>> docs = {"/a.md": DocRecord("d", "/a.md", "h", "a", 2, None, 0.0)}
    >>> index = Index.empty("notes", settings).write(docs, [], chunks, np.eye(2, dtype=np.float32))
    >>> found = index.search_sparse("pumps", 5)
    >>> [index.chunks[i].id for i in found.fused], len(index.delete(["/a.md"]))
    (['c0'], 0)
"""

from __future__ import annotations

import logging
import operator
import time
from pathlib import Path
from typing import Any, Collection, Iterable, Iterator, Mapping, Sequence

import numpy as np

from rag.fs import disk_full_error, is_disk_full, library_versions, tree_bytes
from rag.index.base import LOCAL_FILES, SearchResult, without_sources
from rag.index.dense import FaissIndex
from rag.index.errors import IndexCorruptError
from rag.index.lazy import JsonlRows, LazyJsonList
from rag.index.manifest import (FORMAT_VERSION, LIBRARIES, PARTS, DocRecord, IndexSettings, indexed_text,
                                rebuild_hint, validate_name)
from rag.index.parts import read_parts, write_parts
from rag.index.sparse import BM25_PARTS, BM25Index, lucene_idf
from rag.retrieval.fusion import convex_combination, reciprocal_rank_fusion
from rag.types import Chunk, Fusion

logger = logging.getLogger(__name__)


class _Rows(Mapping[int, Chunk]):
    """The chunks by row position, as a mapping: no row is read until a hit asks for it."""

    def __init__(self, chunks: Sequence[Chunk]) -> None:
        self._chunks = chunks

    def __getitem__(self, key: int) -> Chunk:
        try:
            position = operator.index(key)
        except TypeError:
            raise KeyError(key) from None
        if not 0 <= position < len(self._chunks):
            raise KeyError(key)
        return self._chunks[position]

    def __len__(self) -> int:
        return len(self._chunks)

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self._chunks)))


class Index:
    """An index loaded in memory: chunks, embeddings, BM25 and FAISS, plus file records.

    Start one with :meth:`empty` and add files with :meth:`write`; read and publish it with
    :class:`~rag.index.store.IndexStore`.  Hit keys are row positions (``chunks[i]``).
    """

    def __init__(self, name: str, settings: IndexSettings, chunks: Sequence[Chunk], embeddings: np.ndarray,
                 tokens: Sequence[Sequence[str]], documents: Mapping[str, DocRecord],
                 faiss_index: FaissIndex | None = None, created_at: float | None = None,
                 bm25: BM25Index | None = None) -> None:
        if len(chunks) != embeddings.shape[0] or len(chunks) != len(tokens):
            raise IndexCorruptError(f"index {name!r}: {len(chunks)} chunks, {embeddings.shape[0]} embeddings, "
                                    f"{len(tokens)} token lists; they must match")
        self.name = validate_name(name)
        self.settings = settings
        # the store passes lazy sequences (rag.index.lazy); anything else is copied into a list
        self.chunks: Sequence[Chunk] = chunks if isinstance(chunks, JsonlRows) else list(chunks)
        self.embeddings = np.ascontiguousarray(embeddings, dtype=np.float32).reshape(len(chunks), settings.dim)
        bad = int(np.size(self.embeddings) - np.count_nonzero(np.isfinite(self.embeddings)))
        if bad:
            raise IndexCorruptError(f"index {name!r}: {bad} embedding values are NaN or infinite")
        self.tokens: Sequence[list[str]] = (tokens if isinstance(tokens, LazyJsonList)  # type: ignore[assignment]
                                            else [list(t) for t in tokens])
        self.documents: dict[str, DocRecord] = dict(documents)
        self.created_at = created_at or time.time()
        if bm25 is not None and (bm25.n_docs != len(self.chunks) or bm25.k1 != settings.bm25_k1
                                 or bm25.b != settings.bm25_b):
            raise IndexCorruptError(f"index {name!r}: the BM25 matrix covers {bm25.n_docs} chunks with k1={bm25.k1}, "
                                    f"b={bm25.b}; the index has {len(self.chunks)} with k1={settings.bm25_k1}, "
                                    f"b={settings.bm25_b}")
        self.bm25 = bm25 if bm25 is not None else BM25Index.build(self.tokens, k1=settings.bm25_k1,
                                                                  b=settings.bm25_b)
        self.dense = faiss_index if faiss_index is not None else FaissIndex.build(self.embeddings, settings.faiss_kind)
        self.analyzer = settings.make_analyzer()
        self._doc_rows: dict[str, np.ndarray] | None = None  # doc_id -> rows, built by the first scoped search

    @classmethod
    def empty(cls, name: str, settings: IndexSettings) -> "Index":
        return cls(name, settings, [], np.zeros((0, settings.dim), np.float32), [], {})

    @classmethod
    def open(cls, name: str, manifest: Mapping[str, Any], settings: IndexSettings, directory: Path) -> "Index":
        """The version in ``directory`` (read under the store's shared lock on it)."""
        p = read_parts(name, manifest, settings, directory)
        try:
            return cls(name, p.settings, p.chunks, p.embeddings, p.tokens, p.documents, faiss_index=p.dense,
                       created_at=manifest.get("created_at"), bm25=p.bm25)
        except ValueError as exc:  # a token list unreadable while building BM25 (rag.index.lazy.LazyPartError)
            raise IndexCorruptError(f"{exc}; {rebuild_hint(name)}") from None

    def __len__(self) -> int:
        return len(self.chunks)

    @property
    def where(self) -> str:
        return LOCAL_FILES

    # -- searching ---------------------------------------------------------------------

    def rows_of(self, doc_ids: Collection[str]) -> np.ndarray:
        """The sorted row positions of the chunks of ``doc_ids`` (what a scoped search may return).

        The first call reads every chunk's ``doc_id`` once (an index never changes: writes make a new one).
        """
        by_doc = self._doc_rows
        if by_doc is None:
            groups: dict[str, list[int]] = {}
            for i, c in enumerate(self.chunks):
                groups.setdefault(c.doc_id, []).append(i)
            by_doc = self._doc_rows = {d: np.asarray(r, dtype=np.int64) for d, r in groups.items()}
        parts = [by_doc[d] for d in doc_ids if d in by_doc]
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)

    def search_sparse(self, query: str, n: int, doc_ids: Collection[str] | None = None) -> SearchResult:
        rows = None if doc_ids is None else self.rows_of(doc_ids)
        scores = dict(self.bm25.search(self.analyzer.tokenize(query), n, rows))
        return SearchResult({"bm25": scores}, scores, _Rows(self.chunks))

    def search_dense(self, vector: np.ndarray, n: int, doc_ids: Collection[str] | None = None) -> SearchResult:
        rows = None if doc_ids is None else self.rows_of(doc_ids)
        scores = dict(self.dense.search(vector, n, rows))
        return SearchResult({"dense": scores}, scores, _Rows(self.chunks))

    def search_hybrid(self, query: str, vector: np.ndarray, fusion: Fusion, rrf_k: int, alpha: float,
                      n: int, doc_ids: Collection[str] | None = None) -> SearchResult:
        if fusion in (Fusion.ADAPTIVE, Fusion.ZSCORE):
            raise ValueError(f"{fusion} fusion is the retriever's: search bm25 and dense here and fuse them")
        per = {"bm25": self.search_sparse(query, n, doc_ids).fused,
               "dense": self.search_dense(vector, n, doc_ids).fused}
        if fusion is Fusion.RRF:
            fused = reciprocal_rank_fusion([list(per["bm25"]), list(per["dense"])], k=rrf_k)
        else:
            fused = convex_combination(per["bm25"], per["dense"], alpha=alpha)
        return SearchResult(per, fused, _Rows(self.chunks))

    def term_idf(self, terms: Sequence[str]) -> dict[str, float]:
        """BM25's (Lucene) IDF of each analysed term in this index; a term no chunk holds gets the highest."""
        n = self.bm25.n_docs
        return {t: lucene_idf(n, self.bm25.document_frequency(t)) for t in terms}

    # -- writing -----------------------------------------------------------------------

    def write(self, documents: Mapping[str, DocRecord], delete_doc_ids: Sequence[str], chunks: Sequence[Chunk],
              vectors: np.ndarray, show_progress: bool = False) -> "Index":
        """A new index: the chunks of files still in ``documents`` and not in ``delete_doc_ids``, then ``chunks``.

        The new chunks are analysed for BM25 here, with the index's own analyzer, so they are
        tokenized exactly as queries are.  ``show_progress`` is accepted for the interface; the
        work here is in memory.
        """
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        deleted = set(delete_doc_ids)
        keep = [i for i, c in enumerate(self.chunks) if c.source in documents and c.doc_id not in deleted]
        tokens = [self.analyzer.tokenize(indexed_text(c, self.settings.title_prefix)) for c in chunks]
        return Index(
            self.name, self.settings,
            [self.chunks[i] for i in keep] + list(chunks),
            np.concatenate([self.embeddings[keep], vectors]) if keep else vectors,
            [self.tokens[i] for i in keep] + tokens,
            documents, created_at=self.created_at,
        )

    def delete(self, sources: Sequence[str]) -> "Index":
        return without_sources(self, sources)  # type: ignore[return-value]

    def manifest(self) -> dict[str, Any]:
        settings = self.settings.to_manifest()
        settings["bm25"]["matrix"] = self.bm25.manifest_entry()
        settings["faiss"]["params"] = self.dense.params
        return {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "created_at": self.created_at,
            "updated_at": time.time(),
            **settings,
            "counts": {"documents": len(self.documents), "chunks": len(self.chunks),
                       "pages": sum(d.pages or 1 for d in self.documents.values())},
            "versions": library_versions(LIBRARIES),
            "parts": {**PARTS, **{f"bm25_{k}": v for k, v in BM25_PARTS.items()}},
        }

    def save_parts(self, directory: Path) -> None:
        """Write the parts into ``directory``; a full disk raises one ``ENOSPC`` error saying roughly what is needed."""
        try:
            write_parts(directory, self.documents, self.chunks, self.embeddings, self.tokens, self.bm25, self.dense)
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            raise disk_full_error(directory.parent, self.bytes_needed(), what="the new version",
                                  freed=tree_bytes(directory)) from exc

    def bytes_needed(self) -> int:
        """Roughly the bytes :meth:`save_parts` writes (within a factor of 2): the vectors twice (``.npy`` and
        FAISS), the BM25 matrix, and the chunk texts twice (``chunks.jsonl`` and the tokens) with their records."""
        text = sum(len(c.text.encode("utf-8")) for c in self.chunks)
        return (2 * self.embeddings.nbytes + 12 * self.bm25.nnz + 16 * (len(self.bm25.vocab) + 1) + 2 * text
                + 300 * len(self.chunks) + 400 * len(self.documents))


def iter_chunk_texts(index: Index) -> Iterable[str]:
    """The text BM25 and the embedder saw for each chunk, in row order."""
    for c in index.chunks:
        yield indexed_text(c, index.settings.title_prefix)
