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
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from .citecheck import DEFAULT_SUPPORT_THRESHOLD, SupportChecker, fix_citations, split_sentences
from .embedding import DEFAULT_EMBEDDER, Embedder
from .llm import ChatModel, Message
from .prompting import (NOT_FOUND, Condensed, PromptBuilder, QueryCondenser, content_terms, fallback_query,
                        looks_like_follow_up)
from .retrieval import Retriever
from .sparse import Analyzer
from .types import Answer, Chunk, Citation, Hit, SentenceSupport

logger = logging.getLogger(__name__)

History = Sequence[Message]
DEFAULT_MIN_DENSE = 0.3
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
    condensed: Condensed
    hits: tuple[Hit, ...]
    relevant: tuple[Hit, ...]
    retrieve_s: float


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
        condense: rewrite follow-ups into standalone queries with the LLM before retrieval.
        max_quotes: sentences quoted in extractive mode.
        embedder: for the support check and extractive mode; default ``retriever.embedder``
            (the index's), or the packaged MiniLM in BM25 mode.

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
                 condense: bool = True, max_quotes: int = 3, embedder: Embedder | None = None) -> None:
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
        self.condenser = QueryCondenser(llm) if (llm is not None and condense) else None

    # -- public ------------------------------------------------------------------------------
    def answer(self, question: str, history: History = ()) -> Answer:
        """The complete answer (generation not streamed)."""
        return self.stream(question, history).answer

    def stream(self, question: str, history: History = ()) -> AnswerStream:
        """Retrieve now, then stream the answer text; ``.answer`` holds the final :class:`Answer`."""
        plan = self._plan(question, history)
        query = plan.condensed.query
        if not plan.relevant:
            return _single(self._not_found(plan), query)
        if self.extractive:
            return _single(self._extractive(plan), query)
        if self.llm is None or self.prompts is None:
            raise RuntimeError("generative answers need an llm")  # unreachable: checked in __init__
        prompt_q = query if plan.condensed.method == "llm" else question
        prompt = self.prompts.build(prompt_q, [h.chunk for h in plan.relevant], history)
        t0 = time.perf_counter()
        pieces = self.llm.stream(list(prompt.messages), max_tokens=prompt.max_tokens,
                                 temperature=self.temperature, seed=self.seed)
        hits_by_chunk = {h.chunk.id: h for h in plan.relevant}

        def finish(raw: str) -> Answer:
            meta = {"prompt_tokens": prompt.prompt_tokens, "sources_in_prompt": prompt.n_sources,
                    "chunks_dropped": prompt.dropped, "truncated": prompt.truncated,
                    "generate_s": round(time.perf_counter() - t0, 3), "raw": raw}
            return self._finish(plan, raw, prompt.chunks, hits_by_chunk, meta)

        return AnswerStream(iter(pieces), finish, query)

    # -- steps -------------------------------------------------------------------------------
    def _plan(self, question: str, history: History) -> _Plan:
        if not isinstance(question, str) or not question.strip():
            raise ValueError("question must be a non-empty string")
        history = [{"role": str(m["role"]), "content": str(m["content"])} for m in history]
        if history and self.condenser is not None:
            condensed = self.condenser.condense(question, history)
        elif history and self.condense and looks_like_follow_up(question):  # no LLM: key-term fallback
            condensed = Condensed(fallback_query(question, history), "fallback")
        else:
            condensed = Condensed(question, "none")
        if condensed.method != "none":
            logger.info("standalone query (%s): %s", condensed.method, condensed.query)
        t0 = time.perf_counter()
        hits = self.retriever.retrieve(condensed.query, k=self.k)
        relevant = self.gate.filter(hits, condensed.query, self.retriever.index.analyzer)
        return _Plan(question, condensed, tuple(hits), tuple(relevant), time.perf_counter() - t0)

    def _base_meta(self, plan: _Plan) -> dict[str, Any]:
        return {"retrieved": len(plan.hits), "relevant": len(plan.relevant),
                "condense_method": plan.condensed.method, "retrieve_s": round(plan.retrieve_s, 3),
                "top_dense": max((float(h.scores["dense"]) for h in plan.hits if "dense" in h.scores),
                                 default=None)}

    def _not_found(self, plan: _Plan) -> Answer:
        return Answer(question=plan.question, text=NOT_FOUND, standalone_query=plan.condensed.query,
                      grounded=False, mode="extractive" if self.extractive else "generative",
                      metadata={**self._base_meta(plan), "reason": "no relevant hit"})

    def _finish(self, plan: _Plan, raw: str, chunks: Sequence[Chunk], hits_by_chunk: Mapping[str, Hit],
                meta: dict[str, Any]) -> Answer:
        meta = {**self._base_meta(plan), **meta}
        text = raw.strip()
        if not text or any(m in text.lower() for m in _DECLINE_MARKERS):
            return Answer(question=plan.question, text=NOT_FOUND, standalone_query=plan.condensed.query,
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
                      standalone_query=plan.condensed.query, grounded=any(s.supported for s in support),
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
        vecs = self.embedder.encode([plan.condensed.query, *(s for s, _ in candidates)])
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
                      standalone_query=plan.condensed.query, grounded=True, mode="extractive",
                      metadata={**self._base_meta(plan),
                                "quote_similarity": tuple(round(float(sims[i]), 3) for i in picked)})


def _single(answer: Answer, query: str) -> AnswerStream:
    return AnswerStream(iter([answer.text]), lambda _text: answer, query)
