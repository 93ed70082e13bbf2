"""Before generation: route the question, rewrite it, retrieve, gate — the :class:`Plan` a strategy answers from.

* A ``router`` (:mod:`rag.plugins.routers`) picks the collection, or a direct answer without
  retrieval (small talk).
* A ``rewriter`` (:mod:`rag.plugins.rewriters`) turns the question and the chat history into one
  or more queries; :class:`~rag.retrieval.multi_query.MultiQuerySearcher` runs them through the
  collection's :class:`~rag.retrieval.retriever.Retriever` and merges them with RRF.
* Hits whose chunks were flagged at ingest as instruction-like or credential-seeking
  (:attr:`~rag.types.Chunk.suspicious`) are withheld: never gated, never evidence, never in a
  prompt; the relevant ones among the first ``k`` are kept in :attr:`Plan.withheld` (and the
  answer's ``diagnostics.withheld``) for the front ends to show as "suspicious, not used".
* The :class:`~rag.answer.gate.RelevanceGate` keeps the hits relevant enough to answer from.
* An :class:`~rag.answer.evidence.EvidenceSelector` ranks the sentences of a wider pool of hits
  and keeps the best few within a token budget: the :class:`~rag.answer.evidence.Evidence` an
  answer is made from (none when the planner has no selector: answers then read whole chunks).

Every step is recorded in a :class:`~rag.answer.trace.Trace`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Collection, Mapping, Sequence

from rag.answer.evidence import DEFAULT_POOL, Evidence, EvidenceSelector
from rag.answer.gate import RelevanceGate
from rag.answer.trace import Trace
from rag.generation.llm import Message
from rag.index.store import IndexError_
from rag.plugins.base import QueryRewriter, Rewrite, RewriteMethod, Route, RouteAction, Router, plugin_name
from rag.plugins.rewriters import CondenseRewriter
from rag.retrieval.multi_query import MultiQuerySearcher, trace_hits
from rag.retrieval.retriever import Retriever
from rag.retrieval.scope import resolve_documents
from rag.types import Diagnostics, Hit

logger = logging.getLogger(__name__)

History = Sequence[Message]


@dataclass(frozen=True)
class Plan:
    """What the planner found for one question: the rewrite, all hits, the relevant ones, the trace,
    and the relevant hits withheld because their chunks are flagged suspicious."""

    question: str
    rewrite: Rewrite
    hits: tuple[Hit, ...]
    relevant: tuple[Hit, ...]
    retrieve_s: float
    trace: Trace
    direct: bool = False
    evidence: Evidence | None = None
    withheld: tuple[Hit, ...] = ()

    @property
    def query(self) -> str:
        """The standalone question (shown as "searched for", used for quotes and the gate)."""
        return self.rewrite.standalone

    def diagnostics(self, timings: Mapping[str, float] | None = None, **fields: Any) -> Diagnostics:
        """:class:`~rag.types.Diagnostics` with this plan's counts and retrieval time, plus ``fields``."""
        top = max((float(h.scores["dense"]) for h in self.hits if "dense" in h.scores), default=None)
        return Diagnostics(retrieved=len(self.hits), relevant=len(self.relevant), top_dense=top,
                           rewrite_method=str(self.rewrite.method), withheld=self.withheld,
                           timings={"retrieve_s": round(self.retrieve_s, 3), **(timings or {})}, **fields)


class QueryPlanner:
    """Route, rewrite, retrieve and gate one question.

    Args:
        retriever: the default collection's :class:`~rag.retrieval.retriever.Retriever`.
        k: hits kept per question.
        gate: the :class:`~rag.answer.gate.RelevanceGate` (default ``min_dense=0.3``).
        rewriter: a :class:`~rag.plugins.QueryRewriter`; default
            :class:`~rag.plugins.rewriters.CondenseRewriter` without an LLM (key-term follow-ups).
        router: a :class:`~rag.plugins.Router`; default none (always ``retriever``'s collection).
        retrievers: ``name -> Retriever`` for the collections a router may pick (raise KeyError
            or an index error for unknown names: the plan then uses ``retriever`` and notes it).
        evidence: the :class:`~rag.answer.evidence.EvidenceSelector` that picks the sentences to
            answer from, out of the first ``pool`` hits; None: answers read the relevant chunks.
        pool: hits whose sentences the evidence selector ranks (the gate still reads the first ``k``).
        withhold_suspicious: keep chunks flagged at ingest (:attr:`~rag.types.Chunk.suspicious`) out
            of the answer (the default); False answers from them like from any other.
    """

    def __init__(self, retriever: Retriever, k: int = 5, gate: RelevanceGate | None = None,
                 rewriter: QueryRewriter | None = None, router: Router | None = None,
                 retrievers: Callable[[str], Retriever] | None = None, evidence: EvidenceSelector | None = None,
                 pool: int = DEFAULT_POOL, withhold_suspicious: bool = True) -> None:
        if not isinstance(k, int) or k <= 0:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if not isinstance(pool, int) or pool <= 0:
            raise ValueError(f"pool must be a positive integer, got {pool!r}")
        if rewriter is not None and not isinstance(rewriter, QueryRewriter):
            raise ValueError(f"rewriter must have a rewrite(query, history) method, got {rewriter!r}")
        if router is not None and not isinstance(router, Router):
            raise ValueError(f"router must have a route(query, history) method, got {router!r}")
        self.retriever = retriever
        self.k = k
        self.gate = gate or RelevanceGate()
        self.rewriter: QueryRewriter = rewriter or CondenseRewriter(None)
        self.router = router
        self.retrievers = retrievers
        self.evidence = evidence
        self.pool = pool
        self.withhold_suspicious = bool(withhold_suspicious)

    def plan(self, question: str, history: History = (), *, documents: Collection[str] | None = None) -> Plan:
        """Route, rewrite, retrieve and gate ``question``.

        ``documents`` scopes retrieval to those documents of the default collection (source paths as
        :func:`~rag.retrieval.scope.resolve_documents` accepts them; None: all of it); a router's
        choice of another collection is then ignored, with a note.  An unknown document is a ValueError.
        """
        if not isinstance(question, str) or not question.strip():
            raise ValueError("question must be a non-empty string")
        if documents is not None:
            documents = resolve_documents(self.retriever.index.documents, documents, index=self.retriever.index.name)
        history = [{"role": str(m["role"]), "content": str(m["content"])} for m in history]
        timings: dict[str, float] = {}
        notes: list[str] = []
        route: Route | None = None
        t0 = time.perf_counter()
        if self.router is not None:
            route = self.router.route(question, history)
            timings["route_s"] = time.perf_counter() - t0
            logger.info("route: %s", route)
        router_name = plugin_name(self.router) if self.router is not None else None
        rewriter_name = plugin_name(self.rewriter)
        if route is not None and route.action is RouteAction.DIRECT:
            rewrite = Rewrite.single(question, RewriteMethod.NONE)
            trace = Trace(question, rewriter_name, "skipped (direct answer)", rewrite.queries, router_name, route,
                          timings=timings)
            return Plan(question, rewrite, (), (), 0.0, trace, direct=True)
        if documents is not None:
            if route is not None and route.collection not in (None, self.retriever.index.name):
                notes.append(f"router chose {route.collection!r}, but the question is scoped to documents of "
                             f"{self.retriever.index.name!r}")
            retriever, collection = self.retriever, self.retriever.index.name
            notes.append(f"scoped to {len(documents)} document(s)")
        else:
            retriever, collection = self._collection(route, notes)
        t1 = time.perf_counter()
        rewrite = self.rewriter.rewrite(question, history)
        timings["rewrite_s"] = time.perf_counter() - t1
        if rewrite.fallback:
            notes.append(f"rewriter fell back: {rewrite.fallback}")
        if rewrite.method != RewriteMethod.NONE:
            logger.info("rewrite (%s): %s", rewrite.method, [q.text for q in rewrite.queries])
        depth = max(self.k, self.pool) if self.evidence is not None else self.k
        found = MultiQuerySearcher(retriever).search(rewrite, depth, collection, documents)
        timings["retrieve_s"] = found.retrieve_s
        timings["fuse_s"] = found.fuse_s
        hits, withheld = list(found.hits), []
        if self.withhold_suspicious:
            withheld = [h for h in hits[:self.k] if h.chunk.suspicious]
            hits = [h for h in hits if not h.chunk.suspicious]
        top = hits[:self.k]
        relevant = self.gate.filter(top, rewrite.standalone, retriever.index.analyzer, retriever.embedder)
        if withheld:
            withheld = self.gate.filter(withheld, rewrite.standalone, retriever.index.analyzer, retriever.embedder)
            logger.info("withheld %d suspicious chunk(s): %s", len(withheld), [h.chunk.location for h in withheld])
            if withheld:
                notes.append(f"withheld {len(withheld)} suspicious passage(s) (instruction-like or "
                             "credential-seeking text): " + ", ".join(h.chunk.location for h in withheld))
        evidence = None
        if self.evidence is not None and relevant:
            selected = self.evidence.select(rewrite.standalone, hits, retriever.index, retriever.index.analyzer)
            timings["evidence_s"] = selected.seconds
            if selected:
                evidence = selected
            else:  # relevant chunks without a sentence that can answer (lists, tables): answer from them whole
                notes.append("no sentence could serve as evidence; answering from the relevant chunks")
        trace = Trace(question, rewriter_name, str(rewrite.method), rewrite.queries, router_name, route, collection,
                      found.retrievals, trace_hits(found.hits, self.k), timings, tuple(notes), rewrite.raw)
        return Plan(question, rewrite, tuple(top), tuple(relevant), found.retrieve_s + found.fuse_s, trace,
                    evidence=evidence, withheld=tuple(withheld))

    def _collection(self, route: Route | None, notes: list[str]) -> tuple[Retriever, str]:
        """The retriever for the routed collection; the default one (with a note) when unavailable."""
        default = self.retriever.index.name
        if route is None or route.collection is None or route.collection == default:
            return self.retriever, default
        if self.retrievers is None:
            notes.append(f"router chose {route.collection!r} but only {default!r} is available")
            return self.retriever, default
        try:
            return self.retrievers(route.collection), route.collection
        except (KeyError, ValueError, OSError, IndexError_) as exc:
            logger.warning("routed collection %r unavailable (%s); using %r", route.collection, exc, default)
            notes.append(f"router chose unknown collection {route.collection!r}; used {default!r}")
            return self.retriever, default
