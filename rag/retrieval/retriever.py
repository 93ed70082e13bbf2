"""Retrieval stage: BM25, dense, or hybrid (fused), then an optional cross-encoder rerank.

Example (runs the real embedder)::

    from rag import IndexStore, Retriever
    index = IndexStore().load("docs")
    for hit in Retriever(index, mode="hybrid").retrieve("how do I prime the pump?", k=5):
        print(hit.rank, round(hit.score, 3), hit.chunk.location)
"""

from __future__ import annotations

import logging
from collections import ChainMap
from dataclasses import replace
from typing import TYPE_CHECKING, Collection, Hashable, Mapping, TypeVar

from rag.embedding import DEFAULT_EMBEDDER, Embedder
from rag.retrieval.fusion import adaptive_rank_fusion, ranked, zscore_fusion
from rag.index.base import SearchIndex, SearchResult
from rag.index.errors import IndexMismatchError
from rag.retrieval.rerank import LLMReranker, Reranker
from rag.retrieval.scope import resolve_documents
from rag.types import Chunk, Fusion, Hit, RetrievalMode
from rag.validate import in_range, non_negative_int, positive_int

if TYPE_CHECKING:  # pragma: no cover
    from rag.pipeline import RetrievalConfig

logger = logging.getLogger(__name__)

Key = TypeVar("Key", bound=Hashable)  # a chunk's position (embedded index) or id (server index)
MODES: tuple[str, ...] = tuple(m.value for m in RetrievalMode)
FUSIONS: tuple[str, ...] = tuple(f.value for f in Fusion)
#: fusions that need both scored lists, so the retriever fuses them rather than the index
RETRIEVER_FUSIONS = frozenset({Fusion.ZSCORE, Fusion.ADAPTIVE})


def _defaults() -> "RetrievalConfig":
    """:class:`~rag.pipeline.RetrievalConfig`'s defaults (imported late: the pipeline builds on this module)."""
    from rag.pipeline import RetrievalConfig  # noqa: PLC0415

    return RetrievalConfig()


class Retriever:
    """Ranked chunks for a query: the one place that chooses the searches for a mode, fuses and reranks.

    The index runs the searches (and the ``rrf``/``weighted`` fusion of both); the retriever never
    asks which backend it holds.  Adaptive fusion needs both rankings, so it is done here.

    Every setting left as None takes :class:`~rag.pipeline.RetrievalConfig`'s default (the one
    place the defaults live); what is given is checked here too, since the retriever is also used
    directly.

    Args:
        index: a loaded :class:`~rag.index.base.SearchIndex`: the in-process
            :class:`~rag.index.memory.Index` or a :class:`~rag.index.milvus.MilvusIndex` (the
            server runs the searches and the ``rrf``/``weighted`` fusion; same hits and scores out).
        mode: ``bm25``, ``dense`` or ``hybrid`` (a :class:`~rag.types.RetrievalMode` or its value).
        embedder: must match the index's embedder (checked); default: the packaged MiniLM.
        fusion: for hybrid mode, ``zscore`` (each list's scores as robust z-scores, summed:
            :func:`~rag.retrieval.fusion.zscore_fusion`), ``adaptive`` (RRF whose dense weight
            drops from 1 to 0.3 as the two rankings' top 10 disagree,
            :func:`~rag.retrieval.fusion.agreement_weight`), ``rrf`` (Reciprocal Rank Fusion,
            equal weights) or ``weighted`` (convex combination of normalised scores).
        rrf_k: the RRF constant of ``rrf`` and ``adaptive`` (Cormack et al. 2009).
        alpha: dense weight for ``weighted`` fusion (BM25 gets ``1 - alpha``).
        candidates: hits fetched from each retriever before fusion/reranking.
        reranker: optional :class:`~rag.retrieval.rerank.Reranker` (a cross-encoder) or
            :class:`~rag.retrieval.rerank.LLMReranker` (the chat model); skipped when None.
        rerank_candidates: how many fused hits the reranker rescores; deeper hits keep their
            fused order below the reranked ones.

    Example:
        >>> Retriever(None, mode="sparse")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: retrieval mode must be one of bm25, dense, hybrid; got 'sparse'
    """

    def __init__(self, index: SearchIndex, mode: RetrievalMode | str | None = None,
                 embedder: Embedder | None = None, fusion: Fusion | str | None = None, rrf_k: int | None = None,
                 alpha: float | None = None, candidates: int | None = None,
                 reranker: Reranker | LLMReranker | None = None,
                 rerank_candidates: int | None = None) -> None:
        d = _defaults()
        mode = RetrievalMode.parse(d.mode if mode is None else mode)
        self.fusion = Fusion.parse(d.fusion if fusion is None else fusion)
        self.rrf_k = non_negative_int("rrf_k", d.rrf_k if rrf_k is None else rrf_k)
        self.alpha = in_range("alpha", d.alpha if alpha is None else alpha, 0, 1)
        self.candidates = positive_int("candidates", d.candidates if candidates is None else candidates)
        self.rerank_candidates = positive_int("rerank_candidates",
                                              d.rerank_candidates if rerank_candidates is None else rerank_candidates)
        self.default_k = d.k
        self.index = index
        self.mode = mode
        self.reranker = reranker
        self.embedder = embedder
        if mode is not RetrievalMode.BM25:
            self.embedder = embedder or Embedder(DEFAULT_EMBEDDER)
            if self.embedder.model_id != index.settings.embedder_id:
                raise IndexMismatchError(
                    f"index {index.name!r} was built with embedder {index.settings.embedder_id!r}, "
                    f"but the retriever was given {self.embedder.model_id!r}; use the same embedder")

    @property
    def label(self) -> str:
        """``bm25``, ``dense``, ``hybrid-rrf`` or ``hybrid-weighted`` (+ ``-rerank``): for traces and tables."""
        name = f"hybrid-{self.fusion}" if self.mode is RetrievalMode.HYBRID else str(self.mode)
        return name + ("-rerank" if self.reranker is not None else "")

    def retrieve(self, query: str, k: int | None = None, *, dense_query: str | None = None,
                 documents: Collection[str] | None = None) -> list[Hit]:
        """Top-``k`` hits for ``query`` (default: the config's ``k``), best first; empty for an empty index or query.

        ``dense_query`` replaces the query on the dense side only (HyDE's hypothetical passage);
        BM25 and the reranker keep ``query``.  ``documents`` scopes the search to those documents
        (source paths, as :func:`~rag.retrieval.scope.resolve_documents` accepts them; None: all):
        each index search ranks only their chunks, so fusion and the reranker see only them and
        ``k`` hits come back whenever they hold ``k`` matching chunks.  An unknown document is a ValueError.
        """
        k = positive_int("k", self.default_k if k is None else k)
        doc_ids = None if documents is None else self.doc_ids(documents)
        if not query or not query.strip() or len(self.index) == 0:
            return []
        n = max(self.candidates, k)
        label = str(self.fusion) if self.mode is RetrievalMode.HYBRID else str(self.mode)
        found = self._search(query, dense_query or query, n, doc_ids)
        return self._finish(query, k, found.fused, found.per, label, found.chunks)

    def doc_ids(self, documents: Collection[str]) -> frozenset[str]:
        """The ``doc_id`` of each document named in ``documents``; ValueError naming one the index does not hold."""
        records = self.index.documents
        sources = resolve_documents(records, documents, index=self.index.name)
        return frozenset(records[s].doc_id for s in sources)

    def _search(self, query: str, dense_query: str, n: int, doc_ids: frozenset[str] | None = None) -> SearchResult:
        """The index's top ``n`` for this retriever's mode; zscore and adaptive fusion are done here, from both lists."""
        # only a scoped search passes doc_ids: an index written to the unscoped protocol keeps working unscoped
        scope: dict[str, frozenset[str]] = {} if doc_ids is None else {"doc_ids": doc_ids}
        if self.mode is RetrievalMode.BM25:
            return self.index.search_sparse(query, n, **scope)
        vector = self._encoder().encode([dense_query])[0]
        if self.mode is RetrievalMode.DENSE:
            return self.index.search_dense(vector, n, **scope)
        if self.fusion not in RETRIEVER_FUSIONS:
            return self.index.search_hybrid(query, vector, self.fusion, self.rrf_k, self.alpha, n, **scope)
        sparse, dense = self.index.search_sparse(query, n, **scope), self.index.search_dense(vector, n, **scope)
        per = {**sparse.per, **dense.per}
        chunks = ChainMap(dense.chunks, sparse.chunks)
        if self.fusion is Fusion.ZSCORE:
            return SearchResult(per, zscore_fusion(per["bm25"], per["dense"]), chunks)  # type: ignore[arg-type]
        fused, weight = adaptive_rank_fusion(list(per["bm25"]), list(per["dense"]), k=self.rrf_k)
        logger.debug("adaptive fusion: dense weight %.2f for %r", weight, query)
        return SearchResult(per, fused, chunks)  # type: ignore[arg-type]

    def _encoder(self) -> Embedder:
        if self.embedder is None:  # pragma: no cover - __init__ guarantees one outside bm25 mode
            raise RuntimeError("dense retrieval needs an embedder")
        return self.embedder

    def _finish(self, query: str, k: int, fused: Mapping[Key, float], per: Mapping[str, Mapping[Key, float]],
                label: str, chunks: Mapping[Key, Chunk]) -> list[Hit]:
        """Hits in fused order (``chunks[key]`` is a key's chunk), the head reranked when a reranker is set."""
        order = ranked(fused)
        limit = max(k, self.rerank_candidates) if self.reranker is not None else k
        hits = []
        for rank, key in enumerate(order[:limit], start=1):
            scores = {name: s[key] for name, s in per.items() if key in s}
            scores[label] = fused[key]
            hits.append(Hit(chunk=chunks[key], score=float(fused[key]), rank=rank, scores=scores))
        if self.reranker is not None:
            head = self.reranker.rerank(query, hits[:self.rerank_candidates])
            hits = head + [replace(h, rank=rank) for rank, h in
                           enumerate(hits[self.rerank_candidates:], start=len(head) + 1)]
        return hits[:k]
