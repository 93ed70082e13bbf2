"""The one interface every index backend offers, so callers never ask which backend they hold.

The :class:`~rag.retrieval.retriever.Retriever`, the :class:`~rag.ingest.ingestor.Ingestor`, the
answer stage and the front ends use an index only through :class:`SearchIndex`.  Two classes
implement it: :class:`rag.index.memory.Index` (chunks, FAISS and BM25 in this process) and
:class:`rag.index.milvus.MilvusIndex` (the same on a Milvus server).  Each runs a search in its
own way and reports it in the same shape, a :class:`SearchResult`; the keys of a result are the
backend's own (row positions in process, chunk ids on the server), and callers only pass them
back into the same result.

Example:
    >>> result = SearchResult({"bm25": {3: 2.5, 1: 0.7}}, {3: 2.5, 1: 0.7}, {})
    >>> list(result.fused)
    [3, 1]
    >>> SearchResult.empty("bm25").per
    {'bm25': {}}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection, Hashable, Mapping, Protocol, Sequence

import numpy as np

from rag.types import Chunk, Fusion

if TYPE_CHECKING:  # pragma: no cover
    from rag.index.manifest import DocRecord, IndexSettings
    from rag.index.sparse import Analyzer

#: where :attr:`SearchIndex.where` says an in-process index keeps its chunks
LOCAL_FILES = "local files"


@dataclass(frozen=True)
class SearchResult:
    """What one search returned: per-retriever scores, fused scores, and each key's chunk.

    ``per`` maps a retriever (``bm25``, ``dense``) to its scores by key, best first; ``fused``
    is the ranking the caller shows (the one retriever's scores, or the fusion of both), best
    first; ``chunks[key]`` is the chunk of any key in ``fused``.
    """

    per: Mapping[str, Mapping[Hashable, float]]
    fused: Mapping[Hashable, float]
    chunks: Mapping[Hashable, Chunk]

    @classmethod
    def empty(cls, retriever: str) -> "SearchResult":
        """No hits from ``retriever`` (a query with no term left after analysis)."""
        return cls({retriever: {}}, {}, {})


class SearchIndex(Protocol):
    """A loaded index, whichever backend holds it: what the rest of rag reads and calls.

    Searches return the top ``n`` (``n`` > 0); given ``doc_ids``, the top ``n`` among the chunks of
    those documents (:attr:`DocRecord.doc_id <rag.index.manifest.DocRecord>`), filtered before
    ranking (never a filtered top ``n`` of all, which would come back short).  ``search_hybrid`` fuses with ``rrf`` or
    ``weighted``; ``zscore`` and ``adaptive`` fusion need both scored lists whole, so the retriever
    asks for :meth:`search_sparse` and :meth:`search_dense` and fuses them itself.  Writes never
    change the index they are called on: they return the index after the write, which the
    caller publishes with :meth:`rag.index.store.IndexWriter.save`.
    """

    name: str
    settings: IndexSettings
    documents: dict[str, DocRecord]
    analyzer: Analyzer
    created_at: float

    def __len__(self) -> int:
        """Chunks in the index."""
        ...

    @property
    def where(self) -> str:
        """Where the chunks live, for messages: :data:`LOCAL_FILES` or the server's collection."""
        ...

    def search_sparse(self, query: str, n: int, doc_ids: Collection[str] | None = None) -> SearchResult:
        """BM25 over the analysed ``query``: ``per`` and ``fused`` are the ``bm25`` scores."""
        ...

    def search_dense(self, vector: np.ndarray, n: int, doc_ids: Collection[str] | None = None) -> SearchResult:
        """Nearest chunks to the unit query ``vector``: ``per`` and ``fused`` are the ``dense`` cosines."""
        ...

    def search_hybrid(self, query: str, vector: np.ndarray, fusion: Fusion, rrf_k: int, alpha: float,
                      n: int, doc_ids: Collection[str] | None = None) -> SearchResult:
        """BM25 and dense fused by ``fusion`` (``rrf`` with constant ``rrf_k``, or ``weighted`` with
        dense weight ``alpha``); ``per`` holds the retrievers' scores the backend reports."""
        ...

    def term_idf(self, terms: Sequence[str]) -> dict[str, float] | None:
        """BM25's IDF of each analysed term in this index, or None when the backend cannot say."""
        ...

    def write(self, documents: Mapping[str, DocRecord], delete_doc_ids: Sequence[str], chunks: Sequence[Chunk],
              vectors: np.ndarray, show_progress: bool = False) -> "SearchIndex":
        """The index holding ``documents``: the chunks of ``delete_doc_ids`` removed, ``chunks``
        (with their unit ``vectors``, row for row) added after the ones kept."""
        ...

    def delete(self, sources: Sequence[str]) -> "SearchIndex":
        """The index without the files ``sources`` (their records and chunks)."""
        ...

    def manifest(self) -> dict[str, Any]:
        """The ``manifest.json`` describing this index (settings, counts, library versions, backend)."""
        ...

    def save_parts(self, directory: Path) -> None:
        """Write the parts this backend keeps on local disk into a version being built (not the manifest)."""
        ...


def without_sources(index: SearchIndex, sources: Sequence[str]) -> SearchIndex:
    """``index.write`` that removes the files ``sources``: the shared body of both backends' ``delete``."""
    gone = set(sources)
    documents = {s: r for s, r in index.documents.items() if s not in gone}
    doc_ids = [index.documents[s].doc_id for s in sources if s in index.documents]
    return index.write(documents, doc_ids, [], np.zeros((0, index.settings.dim), np.float32))
