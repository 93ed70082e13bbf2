"""Extractive answers: the best evidence sentences quoted with their citations; no language model.

With evidence (:mod:`rag.answer.evidence`), the quotes are the best-scored passages (those within
``quote_margin`` of the best), shown in the order the documents read, and the same answer
decision as generated answers (its evidence-only model) declines when they do not answer.
Without evidence, the relevant chunks' sentences closest to the question are quoted.
"""

from __future__ import annotations

import logging

import numpy as np

from rag.answer.decision import Decider
from rag.answer.evidence import Evidence
from rag.answer.gate import DEFAULT_MIN_DENSE
from rag.answer.planner import History, Plan
from rag.answer.stream import AnswerStream, single
from rag.answer.strategies import CHECK_REASON, decision_fields, not_found, numbered, untrusted_marks
from rag.embedding import Embedder
from rag.text import content_terms, split_sentences
from rag.types import Answer, AnswerMode, Citation, Hit, SentenceSupport

logger = logging.getLogger(__name__)

#: quote the passages scored within this much (log-odds) of the best one
DEFAULT_QUOTE_MARGIN = 2.0


class ExtractiveStrategy:
    """Quote the best evidence sentences (or, without evidence, the retrieved sentences most similar
    to the question, each read under its Markdown section heading), with citations, in the order the
    documents read; no LLM.

    Args:
        embedder: embeds the question and the candidate sentences (without evidence).
        max_quotes: sentences quoted at most.
        min_similarity: without evidence, a quote after the first needs at least this cosine.
        decider: the answer decision over the evidence (None: quote whenever there is evidence).
        quote_margin: with evidence, quote the passages scored within this of the best one.

    Example:
        >>> ExtractiveStrategy(None, max_quotes=0)
        Traceback (most recent call last):
        ...
        ValueError: max_quotes must be a positive integer, got 0
    """

    mode = AnswerMode.EXTRACTIVE

    def __init__(self, embedder: Embedder, max_quotes: int = 3, min_similarity: float = DEFAULT_MIN_DENSE,
                 decider: Decider | None = None, quote_margin: float = DEFAULT_QUOTE_MARGIN) -> None:
        if not isinstance(max_quotes, int) or max_quotes <= 0:
            raise ValueError(f"max_quotes must be a positive integer, got {max_quotes!r}")
        if not -1.0 <= min_similarity <= 1.0:
            raise ValueError(f"min_similarity must be a cosine in [-1, 1], got {min_similarity!r}")
        if not quote_margin >= 0:
            raise ValueError(f"quote_margin must be >= 0, got {quote_margin!r}")
        self.embedder = embedder
        self.max_quotes = max_quotes
        self.min_similarity = min_similarity
        self.decider = decider
        self.quote_margin = quote_margin

    def stream(self, plan: Plan, history: History = ()) -> AnswerStream:
        return single(self.answer(plan), plan.query)

    def answer(self, plan: Plan) -> Answer:
        return self._from_evidence(plan, plan.evidence) if plan.evidence is not None else self._from_chunks(plan)

    def _from_evidence(self, plan: Plan, evidence: Evidence) -> Answer:
        sources = numbered(evidence.passages)
        decision = self.decider.decide(evidence, plan.query) if self.decider is not None else None
        fields = decision_fields(decision)
        if not evidence or (decision is not None and not decision.answers):
            return not_found(plan, self.mode, reason=CHECK_REASON if evidence else "no evidence", sources=sources,
                             **fields)
        best = evidence.passages[0].score
        quoted = [p for p in evidence.passages if p.score >= best - self.quote_margin][:self.max_quotes]
        # shown as the documents read: by document, then position
        quoted.sort(key=lambda p: (p.chunk.source, p.span[0]))
        # a table row is quoted with its columns' names ("Plot: P-57; Size (m2): 107."), not as bare cells
        lines = [f'"{p.full_text}" [{p.number}]' for p in quoted]
        support = tuple(SentenceSupport(line, p.number, 1.0, True) for line, p in zip(lines, quoted))
        citations = tuple(sources[p.number - 1] for p in quoted)
        text = "\n".join(lines)
        return Answer(question=plan.question, text=text, citations=citations, support=support,
                      standalone_query=plan.query, grounded=True, mode=self.mode, sources=sources, trace=plan.trace,
                      diagnostics=plan.diagnostics(quote_similarity=tuple(round(p.cos, 3) for p in quoted),
                                                   **fields, **untrusted_marks(text, citations, sources)))

    def _from_chunks(self, plan: Plan) -> Answer:
        """Quotes from the relevant chunks (no evidence stage): the sentences closest to the question."""
        candidates: list[tuple[str, Hit]] = []
        scored: list[str] = []  # what is embedded: the sentence under its section heading
        for hit in plan.relevant:
            heading = hit.chunk.context.split("\n", 1)[0]  # rows cut from their table: its header line
            for sentence in split_sentences(hit.chunk.text):
                if sentence.startswith("#"):
                    heading = sentence.lstrip("# ").strip()
                sentence = sentence.lstrip("#*->• ").strip()
                if sentence.endswith("?"):  # a question (often an FAQ heading) echoes, it doesn't answer
                    continue
                if (len(content_terms(sentence)) >= 2 and len(sentence.split()) >= 4
                        and (sentence, hit) not in candidates):
                    candidates.append((sentence, hit))
                    scored.append(f"{heading}\n{sentence}" if heading and heading != sentence else sentence)
        if not candidates:
            return not_found(plan, self.mode)
        # A sentence is scored with its section heading: in an FAQ the answer "A new version is written to a
        # temporary folder ..." never says "ingestion is interrupted"; its heading does.
        vecs = self.embedder.encode([plan.query, *scored])
        sims = vecs[1:] @ vecs[0]
        order = [int(i) for i in np.argsort(-sims, kind="stable")]
        picked: list[int] = []
        for i in order:
            if len(picked) >= self.max_quotes:
                break
            if picked and sims[i] < self.min_similarity:
                break
            if candidates[i][0] not in {candidates[j][0] for j in picked}:
                picked.append(i)
        # shown as the documents read: the chunks in the order of their best quote, each chunk's quotes in
        # text order ("By default files over 100 MB are skipped." before "Change the limit with ...")
        chunk_rank: dict[str, int] = {}
        for i in picked:
            chunk_rank.setdefault(candidates[i][1].chunk.id, len(chunk_rank))
        picked.sort(key=lambda i: (chunk_rank[candidates[i][1].chunk.id], i))
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
        text = "\n".join(lines)
        return Answer(question=plan.question, text=text, citations=citations, support=tuple(support),
                      standalone_query=plan.query, grounded=True, mode=AnswerMode.EXTRACTIVE, sources=citations,
                      trace=plan.trace,
                      diagnostics=plan.diagnostics(quote_similarity=tuple(round(float(sims[i]), 3) for i in picked),
                                                   **untrusted_marks(text, citations)))


