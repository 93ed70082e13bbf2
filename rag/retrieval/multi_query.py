"""Multi-query retrieval: run every query of a rewrite through the one :class:`Retriever`, merge with RRF.

A rewriter (:mod:`rag.plugins.rewriters`) turns a question into one or more
:class:`~rag.plugins.SearchQuery` objects; :class:`MultiQuerySearcher` runs each with
:meth:`Retriever.retrieve <rag.retrieval.retriever.Retriever.retrieve>` (its ``dense`` text as
``dense_query``) and nothing else, so single- and multi-query retrieval cannot drift apart.

Example:
    >>> from rag.types import Chunk, Hit
    >>> c = Chunk("c1", "text", "d", "a.txt", None, 0, 4, 0)
    >>> TraceHit.of(Hit(c, 0.5, 1, {"bm25": 1.25})).location
    'a.txt [0:4]'
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Collection, Mapping, Sequence

from rag.plugins.base import Rewrite, SearchQuery
from rag.retrieval.fusion import DEFAULT_RRF_K, ranked, reciprocal_rank_fusion
from rag.retrieval.retriever import Retriever
from rag.types import Hit
from rag.validate import non_negative_int, positive_int

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TraceHit:
    """One hit as recorded in a trace: rank, chunk id, location and every stage's score."""

    rank: int
    chunk_id: str
    location: str
    score: float
    scores: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, hit: Hit) -> "TraceHit":
        return cls(hit.rank, hit.chunk.id, hit.chunk.location, round(float(hit.score), 6),
                   {k: round(float(v), 6) for k, v in hit.scores.items()})


def trace_hits(hits: Sequence[Hit], limit: int) -> tuple[TraceHit, ...]:
    """The first ``limit`` hits as :class:`TraceHit` records."""
    return tuple(TraceHit.of(h) for h in hits[:limit])


@dataclass(frozen=True)
class QueryTrace:
    """One search query's retrieval: the query, which collection and retriever, its hits, its time."""

    query: SearchQuery
    collection: str
    retriever: str
    hits: tuple[TraceHit, ...]
    seconds: float


@dataclass(frozen=True)
class Retrieved:
    """Merged hits of a rewrite's queries, and each query's own retrieval for the trace."""

    hits: tuple[Hit, ...]
    retrievals: tuple[QueryTrace, ...]
    retrieve_s: float
    fuse_s: float


class MultiQuerySearcher:
    """Run every query of a :class:`~rag.plugins.Rewrite` and merge the hit lists with RRF.

    One query is exactly ``retriever.retrieve(q.text, k, dense_query=q.dense)``.  With several,
    each fetches ``depth`` hits (default the retriever's ``candidates``) and chunk ids are fused
    with weighted Reciprocal Rank Fusion (Cormack, Clarke & Büttcher, SIGIR 2009;
    :func:`rag.retrieval.fusion.reciprocal_rank_fusion`, ``k = 60``).  A fused hit keeps the stage
    scores from the first query that found it (so the relevance gate still sees a dense cosine)
    and adds ``scores["multi_rrf"]``.

    Args:
        retriever: the :class:`~rag.retrieval.retriever.Retriever` to search with.
        rrf_k: RRF constant for merging queries.
        depth: hits per query before merging (default ``retriever.candidates``).
        trace_hits: hits per query kept in the trace.
    """

    def __init__(self, retriever: Retriever, rrf_k: int = DEFAULT_RRF_K, depth: int | None = None,
                 trace_hits: int = 10) -> None:
        non_negative_int("rrf_k", rrf_k)
        positive_int("depth", depth, optional=True)
        non_negative_int("trace_hits", trace_hits)
        self.retriever = retriever
        self.rrf_k = rrf_k
        self.depth = depth
        self.trace_hits = trace_hits

    def search(self, rewrite: Rewrite, k: int, collection: str = "",
               documents: Collection[str] | None = None) -> Retrieved:
        """Top-``k`` merged hits for the rewrite's queries; ``documents`` scopes every query's retrieval."""
        positive_int("k", k)
        t0 = time.perf_counter()
        single = len(rewrite.queries) == 1
        n = k if single else max(k, self.depth or self.retriever.candidates)
        lists: list[list[Hit]] = []
        traces: list[QueryTrace] = []
        for q in rewrite.queries:
            tq = time.perf_counter()
            hits = self.retriever.retrieve(q.text, n, dense_query=q.dense, documents=documents)
            lists.append(hits)
            traces.append(QueryTrace(q, collection, self.retriever.label, trace_hits(hits, self.trace_hits),
                                     time.perf_counter() - tq))
        t1 = time.perf_counter()
        merged = lists[0][:k] if single else self._merge(rewrite.queries, lists, k)
        t2 = time.perf_counter()
        return Retrieved(tuple(merged), tuple(traces), t1 - t0, t2 - t1)

    def _merge(self, queries: Sequence[SearchQuery], lists: Sequence[Sequence[Hit]], k: int) -> list[Hit]:
        fused = reciprocal_rank_fusion([[h.chunk.id for h in hits] for hits in lists], k=self.rrf_k,
                                       weights=[q.weight for q in queries])
        first: dict[str, Hit] = {}
        for hits in lists:
            for h in hits:
                first.setdefault(h.chunk.id, h)
        out = []
        for rank, cid in enumerate(ranked(fused)[:k], start=1):
            h = first[cid]
            out.append(Hit(h.chunk, fused[cid], rank, {**h.scores, "multi_rrf": fused[cid]}))
        return out
