"""Grounded, cited answers: retrieve -> gate -> prompt under a token budget -> generate -> check.

* Retrieval uses :class:`~rag.retrieval.Retriever`; with chat history the question is first
  rewritten into a standalone query (:class:`~rag.prompting.QueryCondenser`).
* :class:`RelevanceGate` decides whether any hit is relevant at all; if none is, the answer is
  the fixed :data:`~rag.prompting.NOT_FOUND` text and the LLM is not called.
* The relevant chunks are numbered ``[1]..[n]`` in the prompt; citation markers that name no
  provided chunk are removed (and listed in ``metadata["invalid_citations"]``).
* Every answer sentence is mapped to its best-supporting chunk (:class:`~rag.citecheck.SupportChecker`);
  ``Answer.citations`` holds the chunks the model cited plus those that support a sentence
  (``metadata["inferred_citations"]``), because a small model often forgets to cite.
* Extractive mode quotes the retrieved sentences most similar to the question; no LLM needed.
* Pluggable steps (:mod:`rag.plugins`): a ``router`` picks the collection, or a direct answer
  without retrieval (chit-chat); a ``rewriter`` turns the question into one or more queries whose
  hits are merged with RRF (:class:`~rag.rewriting.FusionSearcher`).  Every step is recorded in a
  :class:`~rag.trace.Trace` on ``Answer.metadata["trace"]``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from .citecheck import DEFAULT_SUPPORT_THRESHOLD, SupportChecker, fix_citations, split_sentences
from .embedding import DEFAULT_EMBEDDER, Embedder
from .llm import ChatModel, Message
from .index import IndexError_
from .plugins import QueryRewriter, Rewrite, Route, Router, plugin_name
from .prompting import NOT_FOUND, PromptBuilder, content_terms
from .retrieval import Retriever
from .rewriting import CondenseRewriter, FusionSearcher
from .sparse import Analyzer
from .trace import Trace, trace_hits
from .types import Answer, Chunk, Citation, Hit, SentenceSupport

logger = logging.getLogger(__name__)

History = Sequence[Message]
DEFAULT_MIN_DENSE = 0.3
DIRECT_PROMPT = ("You are the friendly assistant of a document question-answering app. The user is making "
                 "small talk. Reply in one short sentence and offer to answer questions about their documents.")
DIRECT_REPLY = "Hello! Ask me a question about your documents."
DIRECT_MAX_TOKENS = 48
_DECLINE_MARKERS = ("could not find this in your documents", "could not find this in the documents",
                    "not in your documents", "sources do not contain")


@dataclass(frozen=True)
class RelevanceGate:
    """Is a hit relevant enough to answer from?

    The dense cosine (``hit.scores["dense"]``, present in dense and hybrid mode) is the
    signal used by default: embeddings are unit vectors, so the cosine means the same on every
    corpus.  With all-MiniLM-L6-v2, a passage that answers the question typically scores
    0.4-0.8 and an unrelated one below 0.2, so ``min_dense=0.3`` keeps borderline matches and
    drops clearly unrelated ones.  RRF and BM25 scores are not calibrated across corpora
    (RRF depends only on ranks; BM25 grows with term rarity and query length), so without a
    dense score (BM25 mode) the gate only requires ``score > min_score`` (default 0: at least
    one query term matched).

    A chunk that covers several questions (an FAQ, a long page) can hold the exact answer yet
    score a low cosine against one question (0.12 measured on the bundled FAQ for "What happens
    if ingestion is interrupted?").  So when the query and the index's analyzer are given, a
    hit below ``min_dense`` still passes if it contains at least ``min_term_coverage`` of the
    query's analysed content terms (stemmed, stop words removed); an off-topic question shares
    none of them.

    Example:
        >>> from rag.types import Chunk, Hit
        >>> c = Chunk("c", "text", "d", "a.txt", None, 0, 4, 0)
        >>> gate = RelevanceGate(min_dense=0.3)
        >>> gate.passes(Hit(c, 0.03, 1, {"dense": 0.12, "rrf": 0.03})), gate.passes(Hit(c, 2.1, 1, {"bm25": 2.1}))
        (False, True)
    """

    min_dense: float = DEFAULT_MIN_DENSE
    min_score: float = 0.0
    min_term_coverage: float = 0.75

    def __post_init__(self) -> None:
        if not -1.0 <= self.min_dense <= 1.0:
            raise ValueError(f"min_dense must be a cosine similarity in [-1, 1], got {self.min_dense!r}")
        if not 0.0 < self.min_term_coverage <= 1.0:
            raise ValueError(f"min_term_coverage must be in (0, 1], got {self.min_term_coverage!r}")

    def passes(self, hit: Hit, query_terms: frozenset[str] = frozenset(),
               analyzer: Analyzer | None = None) -> bool:
        dense = hit.scores.get("dense")
        if dense is None:
            return hit.score > self.min_score
        if float(dense) >= self.min_dense:
            return True
        if not query_terms or analyzer is None:
            return False
        covered = query_terms & set(analyzer.tokenize(f"{hit.chunk.title}\n{hit.chunk.text}"))
        return len(covered) / len(query_terms) >= self.min_term_coverage

    def filter(self, hits: Sequence[Hit], query: str = "", analyzer: Analyzer | None = None) -> list[Hit]:
        """Hits that pass; give ``query`` and the index's ``analyzer`` to enable term coverage."""
        terms = frozenset(analyzer.tokenize(query)) if (analyzer is not None and query) else frozenset()
        return [h for h in hits if self.passes(h, terms, analyzer)]


class AnswerStream:
    """Iterator of answer text pieces; :attr:`answer` is the final :class:`Answer` once it ends.

    Reading :attr:`answer` before the end consumes the rest of the stream.
    """

    def __init__(self, pieces: Iterator[str], finish: Callable[[str], Answer], standalone_query: str = "") -> None:
        self._pieces = pieces
        self._finish = finish
        self._parts: list[str] = []
        self._answer: Answer | None = None
        self.standalone_query = standalone_query

    def __iter__(self) -> "AnswerStream":
        return self

    def __next__(self) -> str:
        if self._answer is not None:
            raise StopIteration
        try:
            piece = next(self._pieces)
        except StopIteration:
            self._answer = self._finish("".join(self._parts))
            raise
        self._parts.append(piece)
        return piece

    @property
    def answer(self) -> Answer:
        for _ in self:
            pass
        if self._answer is None:  # pragma: no cover - __next__ always sets it at the end
            raise RuntimeError("stream ended without an answer")
        return self._answer

    def close(self) -> None:
        close = getattr(self._pieces, "close", None)
        if close is not None:
            close()


@dataclass(frozen=True)
class _Plan:
    question: str
    rewrite: Rewrite
    hits: tuple[Hit, ...]
    relevant: tuple[Hit, ...]
    retrieve_s: float
    trace: Trace
    direct: bool = False

    @property
    def query(self) -> str:
        """The standalone question (shown as "searched for", used for quotes and the gate)."""
        return self.rewrite.standalone


class Answerer:
    """Answer questions from an index with numbered, checked citations.

    Args:
        retriever: a :class:`~rag.retrieval.Retriever` over the index.
        llm: a chat model (e.g. :class:`~rag.llm.LlamaCppLLM`); None means extractive only.
        k: chunks retrieved per question.
        max_tokens: answer budget in tokens (reserved in the context window).
        temperature, seed: sampling settings passed to the model.
        gate: the :class:`RelevanceGate` (default ``min_dense=0.3``).
        support_threshold: cosine threshold of the sentence support check.
        extractive: quote retrieved sentences instead of generating (no LLM call).
        condense: rewrite follow-ups into standalone queries with the LLM before retrieval
            (the default rewriter; ignored when ``rewriter`` is given).
        max_quotes: sentences quoted in extractive mode.
        embedder: for the support check and extractive mode; default ``retriever.embedder``
            (the index's), or the packaged MiniLM in BM25 mode.
        rewriter: a :class:`~rag.plugins.QueryRewriter` (e.g. ``make_rewriter("hyde", ctx)``);
            default :class:`~rag.rewriting.CondenseRewriter` (follow-up condensation).
        router: a :class:`~rag.plugins.Router`; default none (always ``retriever``'s collection).
        retrievers: ``name -> Retriever`` for the collections a router may pick (raise KeyError
            or an index error for unknown names: the answer then uses ``retriever`` and notes it).

    Example (runs the real models)::

        from rag import IndexStore, Retriever
        from rag.answer import Answerer
        from rag.llm import LlamaCppLLM
        with LlamaCppLLM() as llm:
            answerer = Answerer(Retriever(IndexStore().load("docs")), llm, max_tokens=96)
            stream = answerer.stream("How do I prime the pump?")
            for piece in stream:
                print(piece, end="", flush=True)
            for c in stream.answer.citations:
                print(f"[{c.number}] {c.chunk.location}")
    """

    def __init__(self, retriever: Retriever, llm: ChatModel | None = None, k: int = 5, max_tokens: int = 256,
                 temperature: float = 0.0, seed: int = 0, gate: RelevanceGate | None = None,
                 support_threshold: float = DEFAULT_SUPPORT_THRESHOLD, extractive: bool = False,
                 condense: bool = True, max_quotes: int = 3, embedder: Embedder | None = None,
                 rewriter: QueryRewriter | None = None, router: Router | None = None,
                 retrievers: Callable[[str], Retriever] | None = None) -> None:
        if not isinstance(k, int) or k <= 0:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if not isinstance(max_tokens, int) or max_tokens <= 0:
            raise ValueError(f"max_tokens must be a positive integer, got {max_tokens!r}")
        if not 0.0 <= temperature <= 2.0:
            raise ValueError(f"temperature must be in [0, 2], got {temperature!r}")
        if not isinstance(max_quotes, int) or max_quotes <= 0:
            raise ValueError(f"max_quotes must be a positive integer, got {max_quotes!r}")
        if not extractive and llm is None:
            raise ValueError("generative answers need an llm; pass llm=... or extractive=True")
        if rewriter is not None and not isinstance(rewriter, QueryRewriter):
            raise ValueError(f"rewriter must have a rewrite(query, history) method, got {rewriter!r}")
        if router is not None and not isinstance(router, Router):
            raise ValueError(f"router must have a route(query, history) method, got {router!r}")
        self.retriever = retriever
        self.llm = llm
        self.k = k
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.seed = seed
        self.gate = gate or RelevanceGate()
        self.extractive = extractive
        self.condense = condense
        self.max_quotes = max_quotes
        self.embedder = embedder or retriever.embedder or Embedder(DEFAULT_EMBEDDER)
        self.checker = SupportChecker(self.embedder, threshold=support_threshold)
        self.prompts = PromptBuilder(llm, max_tokens=max_tokens) if llm is not None else None
        self.rewriter: QueryRewriter = rewriter or CondenseRewriter(llm, enabled=condense)
        self.condenser = getattr(self.rewriter, "condenser", None)
        self.router = router
        self.retrievers = retrievers

    # -- public ------------------------------------------------------------------------------
    def answer(self, question: str, history: History = ()) -> Answer:
        """The complete answer (generation not streamed)."""
        return self.stream(question, history).answer

    def stream(self, question: str, history: History = ()) -> AnswerStream:
        """Retrieve now, then stream the answer text; ``.answer`` holds the final :class:`Answer`."""
        plan = self._plan(question, history)
        query = plan.query
        if plan.direct:
            return self._direct(plan, history)
        if not plan.relevant:
            return _single(self._not_found(plan), query)
        if self.extractive:
            return _single(self._extractive(plan), query)
        if self.llm is None or self.prompts is None:
            raise RuntimeError("generative answers need an llm")  # unreachable: checked in __init__
        prompt_q = query if plan.rewrite.method == "llm" else question
        prompt = self.prompts.build(prompt_q, [h.chunk for h in plan.relevant], history)
        t0 = time.perf_counter()
        pieces = self.llm.stream(list(prompt.messages), max_tokens=prompt.max_tokens,
                                 temperature=self.temperature, seed=self.seed)
        hits_by_chunk = {h.chunk.id: h for h in plan.relevant}

        def finish(raw: str) -> Answer:
            generate_s = time.perf_counter() - t0
            meta = {"prompt_tokens": prompt.prompt_tokens, "sources_in_prompt": prompt.n_sources,
                    "chunks_dropped": prompt.dropped, "truncated": prompt.truncated,
                    "generate_s": round(generate_s, 3), "raw": raw,
                    "trace": replace(plan.trace, timings={**plan.trace.timings, "generate_s": generate_s})}
            return self._finish(plan, raw, prompt.chunks, hits_by_chunk, meta)

        return AnswerStream(iter(pieces), finish, query)

    # -- steps -------------------------------------------------------------------------------
    def _plan(self, question: str, history: History) -> _Plan:
        if not isinstance(question, str) or not question.strip():
            raise ValueError("question must be a non-empty string")
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
        if route is not None and route.action == "direct":
            rewrite = Rewrite.single(question, "none")
            trace = Trace(question, rewriter_name, "skipped (direct answer)", rewrite.queries, router_name, route,
                          timings=timings)
            return _Plan(question, rewrite, (), (), 0.0, trace, direct=True)
        retriever, collection = self._collection(route, notes)
        t1 = time.perf_counter()
        rewrite = self.rewriter.rewrite(question, history)
        timings["rewrite_s"] = time.perf_counter() - t1
        if rewrite.fallback:
            notes.append(f"rewriter fell back: {rewrite.fallback}")
        if rewrite.method != "none":
            logger.info("rewrite (%s): %s", rewrite.method, [q.text for q in rewrite.queries])
        found = FusionSearcher(retriever).search(rewrite, self.k, collection)
        timings["retrieve_s"] = found.retrieve_s
        timings["fuse_s"] = found.fuse_s
        relevant = self.gate.filter(found.hits, rewrite.standalone, retriever.index.analyzer)
        trace = Trace(question, rewriter_name, rewrite.method, rewrite.queries, router_name, route, collection,
                      found.retrievals, trace_hits(found.hits, self.k), timings, tuple(notes), rewrite.raw)
        return _Plan(question, rewrite, found.hits, tuple(relevant), found.retrieve_s + found.fuse_s, trace)

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

    def _base_meta(self, plan: _Plan) -> dict[str, Any]:
        return {"retrieved": len(plan.hits), "relevant": len(plan.relevant),
                "condense_method": plan.rewrite.method, "retrieve_s": round(plan.retrieve_s, 3),
                "top_dense": max((float(h.scores["dense"]) for h in plan.hits if "dense" in h.scores),
                                 default=None),
                "trace": plan.trace}

    def _direct(self, plan: _Plan, history: History) -> AnswerStream:
        """Small talk: a short reply without retrieval (a fixed one without an LLM)."""
        meta = {**self._base_meta(plan), "reason": "direct route: " + (plan.trace.route.reason
                                                                       if plan.trace.route else "")}

        def answer(text: str) -> Answer:
            return Answer(question=plan.question, text=text.strip() or DIRECT_REPLY, standalone_query=plan.query,
                          grounded=False, mode="direct", metadata=meta)

        if self.llm is None or self.extractive:
            return _single(answer(DIRECT_REPLY), plan.query)
        messages = [{"role": "system", "content": DIRECT_PROMPT},
                    *[{"role": str(m["role"]), "content": str(m["content"])} for m in list(history)[-2:]],
                    {"role": "user", "content": plan.question}]
        pieces = self.llm.stream(messages, max_tokens=min(self.max_tokens, DIRECT_MAX_TOKENS),
                                 temperature=self.temperature, seed=self.seed)
        return AnswerStream(iter(pieces), answer, plan.query)

    def _not_found(self, plan: _Plan) -> Answer:
        return Answer(question=plan.question, text=NOT_FOUND, standalone_query=plan.query,
                      grounded=False, mode="extractive" if self.extractive else "generative",
                      metadata={**self._base_meta(plan), "reason": "no relevant hit"})

    def _finish(self, plan: _Plan, raw: str, chunks: Sequence[Chunk], hits_by_chunk: Mapping[str, Hit],
                meta: dict[str, Any]) -> Answer:
        meta = {**self._base_meta(plan), **meta}
        text = raw.strip()
        if not text or any(m in text.lower() for m in _DECLINE_MARKERS):
            return Answer(question=plan.question, text=NOT_FOUND, standalone_query=plan.query,
                          grounded=False, metadata={**meta, "reason": "model declined" if text else "empty"})
        fixed, valid, invalid = fix_citations(text, len(chunks))
        if invalid:
            logger.warning("removed citations to missing sources: %s", invalid)
        support = self.checker.check(fixed, chunks)
        inferred = tuple(dict.fromkeys(s.citation for s in support
                                       if s.supported and s.citation is not None and s.citation not in valid))
        numbers = sorted(set(valid) | set(inferred))
        citations = tuple(Citation(n, chunks[n - 1], hits_by_chunk[chunks[n - 1].id].score) for n in numbers)
        meta.update(explicit_citations=valid, inferred_citations=inferred, invalid_citations=invalid,
                    sources=tuple(Citation(i, c, hits_by_chunk[c.id].score) for i, c in enumerate(chunks, 1)))
        return Answer(question=plan.question, text=fixed, citations=citations, support=support,
                      standalone_query=plan.query, grounded=any(s.supported for s in support),
                      mode="generative", metadata=meta)

    def _extractive(self, plan: _Plan) -> Answer:
        """Quote the retrieved sentences most similar to the question, with citations."""
        candidates: list[tuple[str, Hit]] = []
        for hit in plan.relevant:
            for sentence in split_sentences(hit.chunk.text):
                sentence = sentence.lstrip("#*->• ").strip()
                if sentence.endswith("?"):  # a question (often an FAQ heading) echoes, it doesn't answer
                    continue
                if len(content_terms(sentence)) >= 2 and (sentence, hit) not in candidates:
                    candidates.append((sentence, hit))
        if not candidates:
            return self._not_found(plan)
        vecs = self.embedder.encode([plan.query, *(s for s, _ in candidates)])
        sims = vecs[1:] @ vecs[0]
        order = [int(i) for i in np.argsort(-sims, kind="stable")]
        picked: list[int] = []
        for i in order:
            if len(picked) >= self.max_quotes:
                break
            if picked and sims[i] < self.gate.min_dense:
                break
            if candidates[i][0] not in {candidates[j][0] for j in picked}:
                picked.append(i)
        numbers: dict[str, int] = {}
        lines, support = [], []
        for i in picked:
            sentence, hit = candidates[i]
            n = numbers.setdefault(hit.chunk.id, len(numbers) + 1)
            line = f'"{sentence}" [{n}]'
            lines.append(line)
            support.append(SentenceSupport(line, n, 1.0, True))
        by_id = {h.chunk.id: h for h in plan.relevant}
        citations = tuple(Citation(n, by_id[cid].chunk, by_id[cid].score) for cid, n in numbers.items())
        return Answer(question=plan.question, text="\n".join(lines), citations=citations, support=tuple(support),
                      standalone_query=plan.query, grounded=True, mode="extractive",
                      metadata={**self._base_meta(plan),
                                "quote_similarity": tuple(round(float(sims[i]), 3) for i in picked)})


def _single(answer: Answer, query: str) -> AnswerStream:
    return AnswerStream(iter([answer.text]), lambda _text: answer, query)
