"""Answer strategies: turn a :class:`~rag.answer.planner.Plan` into a streamed :class:`~rag.types.Answer`.

All share one contract, ``stream(plan, history) -> AnswerStream``:

* :class:`GenerativeStrategy`: the relevant chunks numbered ``[1]..[n]`` in a prompt under the
  model's token budget, generation, citation markers fixed (numbers that name no source are
  removed and listed in ``diagnostics.invalid_citations``), and every sentence mapped to its
  best-supporting chunk (:class:`~rag.answer.citecheck.SupportChecker`).  ``Answer.citations``
  holds the chunks the model cited plus those that support a sentence
  (``diagnostics.inferred_citations``), because a small model often forgets to cite.
* :class:`ExtractiveStrategy`: quotes the retrieved sentences most similar to the question; no LLM.
* :class:`DirectStrategy`: a short small-talk reply without retrieval (a fixed one without an LLM).

:func:`not_found` is the fixed reply when no hit passed the gate.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, replace
from typing import Iterator, Mapping, Protocol, Sequence

import numpy as np

from rag.answer.citecheck import DEFAULT_SUPPORT_THRESHOLD, SupportChecker, fix_citations, strip_citations
from rag.answer.gate import DEFAULT_MIN_DENSE, AnswerCheck
from rag.answer.planner import History, Plan
from rag.answer.safety import ECHO_STOPS, foreign_urls, is_suspicious, strip_scaffolding
from rag.answer.stream import AnswerStream, single
from rag.embedding import Embedder
from rag.generation.llm import ChatModel
from rag.generation.prompting import NOT_FOUND, PromptBuilder, looks_like_follow_up
from rag.text import CITE_RE, content_terms, split_sentences
from rag.types import Answer, AnswerMode, Chunk, Citation, Hit, SentenceSupport

logger = logging.getLogger(__name__)

DIRECT_PROMPT = ("You are the friendly assistant of a document question-answering app. The user is making "
                 "small talk. Reply in one short sentence and offer to answer questions about their documents.")
DIRECT_REPLY = "Hello! Ask me a question about your documents."
DIRECT_MAX_TOKENS = 48
_DECLINE_MARKERS = ("could not find this in your documents", "could not find this in the documents",
                    "not in your documents", "sources do not contain")
#: Above this share of unsupported sentences a generated answer is replaced by quoted sentences.
DEFAULT_FALLBACK_SHARE = 0.5
CHECK_NOTE = "These passages were found, but the model judged that they do not answer the question."
CHECK_REASON = "answer check: the model judged that the sources do not answer the question"
FALLBACK_NOTE = ("Most of the generated answer was not supported by your documents, so the passages that "
                 "best match the question are quoted instead.")
UNSUPPORTED_REASON = "unsupported: the generated answer was not in the sources and no source sentence is close"
UNSUPPORTED_NOTE = ("These passages were found, but the generated answer was not supported by them and none of "
                    "their sentences is close to the question.")
#: what the CLI and the app say under a decline that still lists the passages it was given
DECLINE_NOTES: dict[str, str] = {CHECK_REASON: CHECK_NOTE, UNSUPPORTED_REASON: UNSUPPORTED_NOTE}
#: the quoted fallback's best sentence needs this cosine to the question, else the answer is declined
DEFAULT_FALLBACK_MIN_SIMILARITY = 0.6


class AnswerStrategy(Protocol):
    """Answer from a plan whose relevant hits are not empty."""

    mode: AnswerMode

    def stream(self, plan: Plan, history: History = ()) -> AnswerStream: ...


def untrusted_marks(text: str, citations: Sequence[Citation], sources: Sequence[Citation] = ()) -> dict[str, tuple]:
    """``foreign_urls`` (not in a cited source) and ``suspicious_sources`` (of all the sources given)."""
    return {"foreign_urls": foreign_urls(text, [c.chunk.text for c in citations]),
            "suspicious_sources": tuple(c.number for c in (sources or citations) if is_suspicious(c.chunk.text))}


def not_found(plan: Plan, mode: AnswerMode = AnswerMode.GENERATIVE, reason: str = "no relevant hit",
              sources: tuple[Citation, ...] = (), timings: Mapping[str, float] | None = None,
              **fields: object) -> Answer:
    """The fixed "I could not find this in your documents" answer, listing ``sources`` (the
    passages it was given, if any) and recording ``reason``, ``timings`` and diagnostics ``fields``."""
    return Answer(question=plan.question, text=NOT_FOUND, standalone_query=plan.query, grounded=False, mode=mode,
                  sources=sources, trace=plan.trace, diagnostics=plan.diagnostics(timings, reason=reason, **fields))


@dataclass(frozen=True)
class Sampling:
    """Generation settings passed to the chat model.

    Example:
        >>> Sampling(max_tokens=0)
        Traceback (most recent call last):
        ...
        ValueError: max_tokens must be a positive integer, got 0
    """

    max_tokens: int = 256
    temperature: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.max_tokens, int) or self.max_tokens <= 0:
            raise ValueError(f"max_tokens must be a positive integer, got {self.max_tokens!r}")
        if not 0.0 <= self.temperature <= 2.0:
            raise ValueError(f"temperature must be in [0, 2], got {self.temperature!r}")
        if not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")


@dataclass
class _Run:
    """What one generative answer's stream learned while running (read by its ``finish``)."""

    odds: float | None = None
    check_s: float = 0.0
    t0: float = 0.0
    declined: bool = False


class GenerativeStrategy:
    """Prompt the LLM with the numbered relevant chunks, stream its answer, then check citations and support.

    Args:
        llm: the chat model (e.g. :class:`~rag.generation.llm.LlamaCppLLM`).
        embedder: for the support check (the index's embedder).
        max_tokens: answer budget in tokens (reserved in the context window).
        temperature, seed: sampling settings passed to the model.
        support_threshold: cosine threshold of the sentence support check.
        fallback_share: when more than this share of the answer's sentences is unsupported, the
            answer is replaced by the extractive one (quoted sentences, ``diagnostics.fallback``
            says so); ``None`` keeps the generated text (unsupported sentences are still marked).
        fallback_min_similarity: the fallback quotes only when its best sentence has at least this
            cosine to the question; otherwise the answer is declined (``UNSUPPORTED_REASON``) with
            the passages listed, because an unsupported answer over passages that are not close to
            the question is how an unanswerable question looks.
        check: the :class:`~rag.answer.gate.AnswerCheck` asked before answering (the model's
            "do the sources answer it?" log-odds); ``None`` answers whenever a hit is relevant.

    The chat history goes into the prompt only for a follow-up
    (:func:`~rag.generation.prompting.looks_like_follow_up`): earlier turns next to a new,
    self-contained question made the 1.5B model decline questions it answers when asked alone.

    Echoed prompt text (``Question:``, headings, role tags) is stopped during generation and cut
    from the final text (``diagnostics.scaffolding_removed``).

    Example:
        >>> GenerativeStrategy(None, None)
        Traceback (most recent call last):
        ...
        ValueError: generative answers need an llm; pass llm=... or use extractive answers
    """

    mode = AnswerMode.GENERATIVE

    def __init__(self, llm: ChatModel, embedder: Embedder, max_tokens: int = 256, temperature: float = 0.0,
                 seed: int = 0, support_threshold: float = DEFAULT_SUPPORT_THRESHOLD,
                 fallback_share: float | None = DEFAULT_FALLBACK_SHARE, max_quotes: int = 3,
                 check: AnswerCheck | None = None,
                 fallback_min_similarity: float = DEFAULT_FALLBACK_MIN_SIMILARITY) -> None:
        if llm is None:
            raise ValueError("generative answers need an llm; pass llm=... or use extractive answers")
        if fallback_share is not None and not 0.0 <= fallback_share < 1.0:
            raise ValueError(f"fallback_share must be in [0, 1) or None (off), got {fallback_share!r}")
        if not -1.0 <= fallback_min_similarity <= 1.0:
            raise ValueError(f"fallback_min_similarity must be a cosine in [-1, 1], got {fallback_min_similarity!r}")
        self.fallback_min_similarity = fallback_min_similarity
        self.llm = llm
        self.sampling = Sampling(max_tokens, temperature, seed)
        self.checker = SupportChecker(embedder, threshold=support_threshold)
        self.prompts = PromptBuilder(llm, max_tokens=max_tokens)
        self.fallback_share = fallback_share
        self.quotes = ExtractiveStrategy(embedder, max_quotes=max_quotes)
        self.check = check

    def stream(self, plan: Plan, history: History = ()) -> AnswerStream:
        prompt_q = plan.query if plan.rewrite.condensed else plan.question
        history = history if looks_like_follow_up(plan.question) else ()
        prompt = self.prompts.build(prompt_q, [h.chunk for h in plan.relevant], history)
        hits_by_chunk = {h.chunk.id: h for h in plan.relevant}
        run = _Run()
        check = self.check

        def pieces() -> Iterator[str]:
            # the check runs when the caller starts reading: its time counts as writing, like the prompt's
            t0 = time.perf_counter()
            run.odds = check.log_odds(self.llm, prompt.messages) if check is not None else None
            run.check_s, run.t0 = time.perf_counter() - t0, time.perf_counter()
            if check is not None and not check.passes(run.odds):
                logger.info("answer check: log-odds %.2f < %.2f; declining", run.odds, check.min_log_odds)
                run.declined = True
                yield NOT_FOUND
                return
            yield from self.llm.stream(list(prompt.messages), max_tokens=prompt.max_tokens,
                                       temperature=self.sampling.temperature, seed=self.sampling.seed,
                                       stop=ECHO_STOPS)

        def finish(raw: str) -> Answer:
            timings = {"answer_check_s": round(run.check_s, 3)} if run.odds is not None else {}
            scored = {"answer_check": round(run.odds, 3)} if run.odds is not None else {}
            if run.declined:
                return not_found(plan, reason=CHECK_REASON, sources=numbered(prompt.chunks, hits_by_chunk),
                                 timings=timings, prompt_tokens=prompt.prompt_tokens,
                                 sources_in_prompt=prompt.n_sources, **scored)
            generate_s = time.perf_counter() - run.t0
            trace = replace(plan.trace, timings={**plan.trace.timings, "generate_s": generate_s})
            fields = dict(prompt_tokens=prompt.prompt_tokens, sources_in_prompt=prompt.n_sources,
                          chunks_dropped=prompt.dropped, truncated=prompt.truncated, raw=raw, **scored)
            return self._finish(replace(plan, trace=trace), raw, prompt.chunks, hits_by_chunk,
                                {"generate_s": round(generate_s, 3), **timings}, fields)

        return AnswerStream(pieces(), finish, plan.query)

    def _finish(self, plan: Plan, raw: str, chunks: Sequence[Chunk], hits_by_chunk: Mapping[str, Hit],
                timings: Mapping[str, float], fields: dict[str, object]) -> Answer:
        text, removed = strip_scaffolding(raw.strip())
        if removed:
            logger.info("cut %d characters of echoed prompt text from the answer", removed)
            fields = {**fields, "scaffolding_removed": removed}
        sources = numbered(chunks, hits_by_chunk)
        if not text or any(m in text.lower() for m in _DECLINE_MARKERS):
            return not_found(plan, reason="model declined" if text else "empty", sources=sources, timings=timings,
                             **fields)
        fixed, valid, invalid = fix_citations(text, len(chunks))
        if invalid:
            logger.warning("removed citations to missing sources: %s", invalid)
        if not any(ch.isalnum() for ch in strip_citations(fixed)):
            # nothing but citation markers ("[23]"): no answer to show, so quote the sources or decline
            fields = {**fields, "invalid_citations": invalid}
            if self.fallback_share is None:
                return not_found(plan, reason="empty", sources=sources, timings=timings, **fields)
            return self._quoted(plan, timings, fields, None) or self._unsupported(plan, sources, timings, fields)
        support = self.checker.check(fixed, chunks)
        fixed, support, repointed = repoint_citations(fixed, support)
        if repointed:
            fixed, valid, _ = fix_citations(fixed, len(chunks))
            fields = {**fields, "repointed_citations": repointed}
        inferred = tuple(dict.fromkeys(s.citation for s in support
                                       if s.supported and s.citation is not None and s.citation not in valid))
        numbers = sorted(set(valid) | set(inferred))
        citations = tuple(sources[n - 1] for n in numbers)
        checked = [s for s in support if any(ch.isalnum() for ch in s.sentence)]
        share = (sum(1 for s in checked if not s.supported) / len(checked)) if checked else None
        if self.fallback_share is not None and share is not None and share > self.fallback_share:
            logger.info("%.0f%% of the generated answer unsupported: quoting the sources or declining", 100 * share)
            return (self._quoted(plan, timings, fields, share)
                    or self._unsupported(plan, sources, timings, {**fields, "unsupported_share": share}))
        diagnostics = plan.diagnostics(timings, explicit_citations=valid, inferred_citations=inferred,
                                       invalid_citations=invalid, unsupported_share=share, **fields,
                                       **untrusted_marks(fixed, citations, sources))
        return Answer(question=plan.question, text=fixed, citations=citations, support=support,
                      standalone_query=plan.query, grounded=any(s.supported for s in support),
                      mode=AnswerMode.GENERATIVE, sources=sources, trace=plan.trace, diagnostics=diagnostics)

    def _quoted(self, plan: Plan, timings: Mapping[str, float], fields: Mapping[str, object],
                share: float | None) -> Answer | None:
        """The extractive answer in place of a generated one (``diagnostics.fallback``), or None
        when no source sentence is close enough to the question to quote."""
        quoted = self.quotes.answer(plan)
        best = max(quoted.diagnostics.quote_similarity, default=None)
        if quoted.declined or best is None or best < self.fallback_min_similarity:
            return None
        return replace(quoted, diagnostics=replace(
            quoted.diagnostics, timings={**quoted.diagnostics.timings, **timings}, unsupported_share=share,
            fallback=FALLBACK_NOTE, raw=str(fields.get("raw", "")), prompt_tokens=int(fields.get("prompt_tokens", 0)),
            scaffolding_removed=int(fields.get("scaffolding_removed", 0)), answer_check=fields.get("answer_check")))

    def _unsupported(self, plan: Plan, sources: tuple[Citation, ...], timings: Mapping[str, float],
                     fields: Mapping[str, object]) -> Answer:
        """Decline an answer the sources do not support when nothing in them is close enough to quote."""
        logger.info("generated answer unsupported and no source sentence close to the question; declining")
        return not_found(plan, reason=UNSUPPORTED_REASON, sources=sources, timings=timings, **fields)


def numbered(chunks: Sequence[Chunk], hits_by_chunk: Mapping[str, Hit]) -> tuple[Citation, ...]:
    """The prompt's chunks as sources ``[1]..[n]`` with their retrieval scores."""
    return tuple(Citation(i, c, hits_by_chunk[c.id].score) for i, c in enumerate(chunks, 1))


def repoint_citations(text: str, support: Sequence[SentenceSupport]
                      ) -> tuple[str, tuple[SentenceSupport, ...], tuple[tuple[int, int], ...]]:
    """Point each supported sentence's markers at the chunk that supports it.

    A small model often cites ``[1]`` for a fact that sits in ``[3]``; when the support check
    found the sentence supported by chunk ``m`` and the sentence cites only other chunks, its
    markers become ``[m]``.  Returns the new text, the updated support and ``(old, new)`` pairs.

    Example:
        >>> s = (SentenceSupport("Prime it first [1].", 2, 0.9, True),)
        >>> repoint_citations("Prime it first [1].", s)[0::2]
        ('Prime it first [2].', ((1, 2),))
    """
    out, moved = [], []
    for s in support:
        cited = [int(n) for m in CITE_RE.finditer(s.sentence) for n in re.findall(r"\d+", m.group(1))]
        if s.supported and s.citation is not None and cited and s.citation not in cited:
            sentence = strip_citations(s.sentence)
            end = sentence[-1] if sentence and sentence[-1] in ".!?" else ""
            new = f"{sentence[:-1] if end else sentence} [{s.citation}]{end}"
            text = text.replace(s.sentence, new, 1)
            moved += [(n, s.citation) for n in dict.fromkeys(cited)]
            s = SentenceSupport(new, s.citation, s.similarity, True)
        out.append(s)
    return text, tuple(out), tuple(moved)


class ExtractiveStrategy:
    """Quote the retrieved sentences most similar to the question (each read under its Markdown
    section heading, when the chunk has one), with citations, in the order the documents read; no LLM.

    Args:
        embedder: embeds the question and the candidate sentences.
        max_quotes: sentences quoted at most.
        min_similarity: a quote after the first needs at least this cosine to the question.

    Example:
        >>> ExtractiveStrategy(None, max_quotes=0)
        Traceback (most recent call last):
        ...
        ValueError: max_quotes must be a positive integer, got 0
    """

    mode = AnswerMode.EXTRACTIVE

    def __init__(self, embedder: Embedder, max_quotes: int = 3, min_similarity: float = DEFAULT_MIN_DENSE) -> None:
        if not isinstance(max_quotes, int) or max_quotes <= 0:
            raise ValueError(f"max_quotes must be a positive integer, got {max_quotes!r}")
        if not -1.0 <= min_similarity <= 1.0:
            raise ValueError(f"min_similarity must be a cosine in [-1, 1], got {min_similarity!r}")
        self.embedder = embedder
        self.max_quotes = max_quotes
        self.min_similarity = min_similarity

    def stream(self, plan: Plan, history: History = ()) -> AnswerStream:
        return single(self.answer(plan), plan.query)

    def answer(self, plan: Plan) -> Answer:
        candidates: list[tuple[str, Hit]] = []
        scored: list[str] = []  # what is embedded: the sentence under its section heading
        for hit in plan.relevant:
            heading = ""
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


class DirectStrategy:
    """Small talk: a short reply without retrieval; the fixed :data:`DIRECT_REPLY` without an LLM.

    Example:
        >>> from rag.answer.planner import Plan
        >>> from rag.answer.trace import Trace
        >>> from rag.plugins import Rewrite
        >>> r = Rewrite.single("thanks!")
        >>> plan = Plan("thanks!", r, (), (), 0.0, Trace("thanks!", "none", "none", r.queries), direct=True)
        >>> DirectStrategy(None).stream(plan).answer.text == DIRECT_REPLY
        True
    """

    mode = AnswerMode.DIRECT

    def __init__(self, llm: ChatModel | None = None, max_tokens: int = DIRECT_MAX_TOKENS, temperature: float = 0.0,
                 seed: int = 0) -> None:
        self.llm = llm
        self.sampling = Sampling(max_tokens, temperature, seed)

    def stream(self, plan: Plan, history: History = ()) -> AnswerStream:
        reason = "direct route: " + (plan.trace.route.reason if plan.trace.route else "")

        def answer(text: str) -> Answer:
            return Answer(question=plan.question, text=text.strip() or DIRECT_REPLY, standalone_query=plan.query,
                          grounded=False, mode=AnswerMode.DIRECT, trace=plan.trace,
                          diagnostics=plan.diagnostics(reason=reason))

        if self.llm is None:
            return single(answer(DIRECT_REPLY), plan.query)
        messages = [{"role": "system", "content": DIRECT_PROMPT},
                    *[{"role": str(m["role"]), "content": str(m["content"])} for m in list(history)[-2:]],
                    {"role": "user", "content": plan.question}]
        sp = self.sampling
        pieces = self.llm.stream(messages, max_tokens=sp.max_tokens, temperature=sp.temperature, seed=sp.seed)
        return AnswerStream(iter(pieces), answer, plan.query)
