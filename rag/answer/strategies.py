"""What every answer strategy shares: the streaming contract, the fixed replies, numbered sources.

Strategies turn a :class:`~rag.answer.planner.Plan` into a streamed :class:`~rag.types.Answer`
with one contract, ``stream(plan, history) -> AnswerStream``:

* :class:`~rag.answer.generative.GenerativeStrategy`: the evidence (or the relevant chunks)
  numbered ``[1]..[n]`` in a prompt, the answer decision, generation, citations fixed and every
  sentence checked against the sources;
* :class:`~rag.answer.extractive.ExtractiveStrategy`: quotes the best evidence sentences; no LLM;
* :class:`DirectStrategy`: a short small-talk reply without retrieval (a fixed one without an LLM).

:func:`not_found` is the fixed reply when no hit passed the gate or the decision declined.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Protocol, Sequence

from rag.answer.citecheck import strip_citations
from rag.answer.planner import History, Plan
from rag.answer.safety import foreign_urls, is_suspicious
from rag.answer.stream import AnswerStream, single
from rag.generation.llm import ChatModel
from rag.generation.prompting import NOT_FOUND
from rag.text import CITE_RE, cited_numbers, flatten, sentence_spans
from rag.types import Answer, AnswerMode, Chunk, Citation, Hit, SentenceSupport

if TYPE_CHECKING:  # pragma: no cover
    from rag.answer.decision import Decision
    from rag.answer.evidence import Passage

logger = logging.getLogger(__name__)

DIRECT_PROMPT = ("You are the friendly assistant of a document question-answering app. The user is making "
                 "small talk. Reply in one short sentence and offer to answer questions about their documents.")
DIRECT_REPLY = "Hello! Ask me a question about your documents."
DIRECT_MAX_TOKENS = 48
_DECLINE_MARKERS = ("could not find this in your documents", "could not find this in the documents",
                    "not in your documents", "sources do not contain")
#: Above this share of unsupported sentences a generated answer is replaced by quoted sentences.
DEFAULT_FALLBACK_SHARE = 0.5
CHECK_NOTE = "These passages were found, but they were judged not to answer the question."
CHECK_REASON = "answer check: the sources were judged not to answer the question"
VERDICT_NOTE = "These passages were found, but they do not say whether the answer is yes or no."
VERDICT_REASON = "yes/no verdict: the sources do not settle it"
FALLBACK_NOTE = ("Most of the generated answer was not supported by your documents, so the passages that "
                 "best match the question are quoted instead.")
UNSUPPORTED_REASON = "unsupported: the generated answer was not in the sources and no source sentence is close"
UNSUPPORTED_NOTE = ("These passages were found, but the generated answer was not supported by them and none of "
                    "their sentences is close to the question.")
#: what the CLI and the app say under a decline that still lists the passages it was given
REPEAT_REASON = "repeat: the answer only repeated the previous one"
REPEAT_NOTE = "These passages were found, but the answer written from them only repeated the previous one."
DECLINE_NOTES: dict[str, str] = {CHECK_REASON: CHECK_NOTE, VERDICT_REASON: VERDICT_NOTE,
                                 UNSUPPORTED_REASON: UNSUPPORTED_NOTE, REPEAT_REASON: REPEAT_NOTE}
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


def decline_reason(decision: "Decision") -> str:
    """Why a declining decision declined: its score, or a yes/no verdict that overruled a passing score."""
    passed = decision.score is not None and decision.threshold is not None and decision.score >= decision.threshold
    return VERDICT_REASON if passed else CHECK_REASON


def decision_fields(decision: "Decision | None") -> dict[str, object]:
    """The :class:`~rag.types.Diagnostics` fields that record an answer decision (none without one)."""
    if decision is None:
        return {}
    out: dict[str, object] = {"decision": str(decision.outcome), "decision_score": decision.score,
                              "decision_threshold": decision.threshold, "decision_rule": decision.rule,
                              "decision_signals": {k: round(float(v), 4) for k, v in decision.signals.items()}}
    if "check" in decision.signals:
        out["answer_check"] = round(float(decision.signals["check"]), 3)
    return out


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


def numbered(sources: Sequence["Chunk | Passage"], hits_by_chunk: Mapping[str, Hit] | None = None
             ) -> tuple[Citation, ...]:
    """The prompt's sources as citations ``[1]..[n]``: a chunk with its retrieval score, or an
    evidence passage pointing at its sentence(s) in the document."""
    out = []
    for i, src in enumerate(sources, 1):
        if isinstance(src, Chunk):
            out.append(Citation(i, src, hits_by_chunk[src.id].score if hits_by_chunk else 0.0))
        else:
            out.append(Citation(i, src.chunk, src.hit_score, *src.span))
    return tuple(out)


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
        cited = cited_numbers(s.sentence)
        if s.supported and s.citation is not None and cited and s.citation not in cited:
            sentence = strip_citations(s.sentence)
            end = sentence[-1] if sentence and sentence[-1] in ".!?" else ""
            new = f"{sentence[:-1] if end else sentence} [{s.citation}]{end}"
            text = text.replace(s.sentence, new, 1)
            moved += [(n, s.citation) for n in dict.fromkeys(cited)]
            s = SentenceSupport(new, s.citation, s.similarity, True)
        out.append(s)
    return text, tuple(out), tuple(moved)


_SENTENCE_END = re.compile(r"[.!?:;]+$")


def mark_supported(text: str, support: Sequence[SentenceSupport]
                   ) -> tuple[str, tuple[SentenceSupport, ...], tuple[int, ...]]:
    """Give each supported sentence without a marker the ``[n]`` of the source that supports it.

    A small model often writes no marker at all; the support check still knows which source each
    sentence rests on, and a client that shows only the text (LangChain, Open WebUI) would otherwise
    lose every source.  The marker goes before the sentence's closing punctuation, as the model
    writes them.  ``support`` must be the check of ``text`` (one entry per
    :func:`~rag.text.split_sentences` sentence); when it is not, nothing is changed.  Returns the new
    text, the updated support and the numbers added, one per marked sentence.

    Example:
        >>> s = (SentenceSupport("Open the valve.", 2, 0.9, True), SentenceSupport("Fill it [1].", 1, 0.9, True),
        ...      SentenceSupport("It is blue.", 1, 0.2, False))
        >>> mark_supported("Open the valve. Fill it [1]. It is blue.", s)[0::2]
        ('Open the valve [2]. Fill it [1]. It is blue.', (2,))
    """
    spans = sentence_spans(text)
    if len(spans) != len(support) or any(flatten(text[a:b]) != s.sentence for (a, b), s in zip(spans, support)):
        logger.warning("the support check does not match the answer's sentences; no markers added")
        return text, tuple(support), ()
    parts, out, added, pos = [], [], [], 0
    for (a, b), s in zip(spans, support):
        if s.supported and s.citation is not None and not CITE_RE.search(s.sentence):
            body = text[a:b]
            end = _SENTENCE_END.search(body)
            cut = end.start() if end else len(body)
            parts += [text[pos:a], body[:cut], f" [{s.citation}]", body[cut:]]
            pos = b
            s = SentenceSupport(flatten(f"{body[:cut]} [{s.citation}]{body[cut:]}"), s.citation, s.similarity, True)
            added.append(s.citation)
        out.append(s)
    return "".join(parts) + text[pos:], tuple(out), tuple(added)


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
