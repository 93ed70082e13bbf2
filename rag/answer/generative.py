"""Generated answers: the evidence in a short numbered prompt, the decision, the model's text, its checks.

:class:`GenerativeStrategy` answers from the plan's :class:`~rag.answer.evidence.Evidence` (a few
sentences; the relevant chunks when the planner selects no evidence):

1. the sources numbered ``[1]..[n]`` in a prompt under the model's token budget;
2. the :class:`~rag.answer.decision.Decider` (the model's Y/N check and the evidence's own
   scores): answer, answer "No" to a premise the sources contradict, or decline listing them;
3. the model's answer, streamed; echoed prompt text stopped and cut.  A yes/no question gets the
   model's own verdict (Yes / No / Unknown, read from its first-token log-probabilities) and the
   evidence sentence it rests on: "No: Hidden files are skipped [1]." (a 1.5B model writing freely
   said Yes to most claims its evidence contradicted);
4. citation markers fixed (numbers that name no source are removed and listed in
   ``diagnostics.invalid_citations``) and every sentence mapped to its best-supporting source
   (:class:`~rag.answer.citecheck.SupportChecker`).  ``Answer.citations`` holds the sources the
   model cited plus those that support a sentence, because a small model often forgets to cite, and
   a supported sentence without a marker gets ``[n]`` of its source in the text
   (:func:`~rag.answer.strategies.mark_supported`): a client that reads only the text keeps the sources;
5. a mostly unsupported answer is replaced by quoted evidence (``diagnostics.fallback``).

With evidence, the decision alone declines: a model that writes "I could not find this" after the
decision said the evidence answers gets its evidence quoted instead, so that one calibrated rule,
measured on the dev split, sets how often answerable questions are declined.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, replace
from typing import Iterator, Mapping, Sequence

from rag.answer.citecheck import DEFAULT_SUPPORT_THRESHOLD, SupportChecker, fix_citations, strip_citations
from rag.answer.decision import UNSURE, Decider, Decision, is_yes_no
from rag.answer.evidence import Passage
from rag.answer.extractive import ExtractiveStrategy
from rag.answer.gate import AnswerCheck
from rag.answer.planner import History, Plan
from rag.answer.safety import ECHO_STOPS, strip_scaffolding
from rag.answer.stream import AnswerStream
from rag.answer.strategies import (_DECLINE_MARKERS, DEFAULT_FALLBACK_MIN_SIMILARITY, DEFAULT_FALLBACK_SHARE,
                                   FALLBACK_NOTE, REPEAT_REASON, UNSUPPORTED_REASON, Sampling, decision_fields,
                                   decline_reason, mark_supported, not_found, numbered, repoint_citations,
                                   untrusted_marks)
from rag.embedding import Embedder
from rag.generation.llm import ChatModel
from rag.generation.prompting import EVIDENCE_SYSTEM_PROMPT, NOT_FOUND, PromptBuilder, looks_like_follow_up
from rag.text import content_stems
from rag.types import Answer, AnswerMode, Citation

logger = logging.getLogger(__name__)

_POLARITY_START = re.compile(r"\s*(?:yes|no)[.,:;!]\s*", re.I)  # "No one ..." is not a polarity
DECLINED_NOTE = ("The model did not answer from these passages, although they match the question, so the "
                 "passages that best match it are quoted instead.")


def verdict_text(polarity: str, passage: Passage) -> str:
    """A yes/no answer: the verdict, then the evidence sentence it rests on, cited; a verdict too close
    to call (:data:`~rag.answer.decision.UNSURE`) quotes the sentence alone (pure).

    Example:
        >>> from rag.types import Chunk
        >>> c = Chunk("c", "Hidden files are skipped.", "d", "guide.md", None, 0, 25, 0)
        >>> verdict_text("No", Passage(1, c, 0, 25, 2.0))
        'No: Hidden files are skipped [1].'
        >>> verdict_text(UNSURE, Passage(1, c, 0, 25, 2.0))
        'Hidden files are skipped [1].'
    """
    sentence = passage.text.rstrip()
    end = sentence[-1] if sentence and sentence[-1] in ".!" else "."
    said = f"{sentence.rstrip('.!')} [{passage.number}]{end}"
    return said if polarity == UNSURE else f"{polarity}: {said}"


def drop_stray_polarity(text: str, question: str) -> str:
    """The answer without a leading "Yes"/"No" when the question does not ask yes or no (a small
    model told to begin yes/no answers with Yes or No begins others so too) (pure).

    Example:
        >>> drop_stray_polarity("Yes. Plots are given out in March [1].", "When are plots given out?")
        'Plots are given out in March [1].'
        >>> drop_stray_polarity("Yes, in March [1].", "Are plots given out in March?")
        'Yes, in March [1].'
        >>> drop_stray_polarity("No one may run a sprinkler after 8 [1].", "Who may run a sprinkler?")
        'No one may run a sprinkler after 8 [1].'
    """
    if is_yes_no(question):
        return text
    m = _POLARITY_START.match(text)
    if m is None or m.end() >= len(text):
        return text
    rest = text[m.end():]
    return rest[0].upper() + rest[1:]


def repeats(text: str, previous: str, share: float = 0.8) -> bool:
    """Whether ``text`` says nothing beyond ``previous``: at least ``share`` of its content words
    (stemmed, at least four) are in it (pure).

    Example:
        >>> repeats("Nothing is lost [1]: the old version stays usable.", "Nothing is lost. The old version stays usable [1].")
        True
        >>> repeats("Indexing 1,000 pages takes about a minute [2].", "Nothing is lost. The old version stays usable [1].")
        False
    """
    words = set(content_stems(strip_citations(text)))
    return len(words) >= 4 and len(words & set(content_stems(strip_citations(previous)))) >= share * len(words)


@dataclass
class _Run:
    """What one generative answer's stream learned while running (read by its ``finish``)."""

    decision: Decision | None = None
    decide_s: float = 0.0
    t0: float = 0.0


class GenerativeStrategy:
    """Prompt the LLM with the numbered evidence, decide, stream its answer, then check citations and support.

    Args:
        llm: the chat model (e.g. :class:`~rag.generation.llm.LlamaCppLLM`).
        embedder: for the support check (the index's embedder).
        max_tokens: answer budget in tokens (reserved in the context window).
        temperature, seed: sampling settings passed to the model.
        support_threshold: cosine threshold of the sentence support check.
        fallback_share: when more than this share of the answer's sentences is unsupported, the
            answer is replaced by the extractive one (quoted sentences, ``diagnostics.fallback``
            says so); ``None`` keeps the generated text (unsupported sentences are still marked).
        fallback_min_similarity: over whole chunks (no evidence), the fallback quotes only when its
            best sentence has at least this cosine to the question; otherwise the answer is
            declined (``UNSUPPORTED_REASON``) with the passages listed.
        check: the calibrated :class:`~rag.answer.gate.AnswerCheck`, the decision when no
            ``decider`` is given.
        decider: the :class:`~rag.answer.decision.Decider` asked before answering.

    The chat history goes into the prompt only for a follow-up
    (:func:`~rag.generation.prompting.looks_like_follow_up`): earlier turns next to a new,
    self-contained question made the 1.5B model decline questions it answers when asked alone.

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
                 fallback_min_similarity: float = DEFAULT_FALLBACK_MIN_SIMILARITY,
                 decider: Decider | None = None) -> None:
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
        self.evidence_prompts = PromptBuilder(llm, max_tokens=max_tokens, system_prompt=EVIDENCE_SYSTEM_PROMPT)
        self.fallback_share = fallback_share
        self.quotes = ExtractiveStrategy(embedder, max_quotes=max_quotes)
        self.decider = decider if decider is not None else Decider(None, check=check)

    @property
    def check(self) -> AnswerCheck | None:
        return self.decider.check

    def stream(self, plan: Plan, history: History = ()) -> AnswerStream:
        prompt_q = plan.query if plan.rewrite.condensed else plan.question
        previous = next((str(m["content"]) for m in reversed(list(history)) if m.get("role") == "assistant"), "")
        history = history if looks_like_follow_up(plan.question) else ()
        if plan.evidence is not None:
            prompt = self.evidence_prompts.build(prompt_q, plan.evidence.passages, history)
        else:
            prompt = self.prompts.build(prompt_q, [h.chunk for h in plan.relevant], history)
        hits_by_chunk = {h.chunk.id: h for h in plan.relevant}
        sources = numbered(prompt.chunks, hits_by_chunk)
        run = _Run()

        def pieces() -> Iterator[str]:
            # the decision runs when the caller starts reading: its time counts as writing, like the prompt's
            t0 = time.perf_counter()
            run.decision = self.decider.decide(plan.evidence, prompt_q, self.llm, prompt.messages)
            run.decide_s, run.t0 = time.perf_counter() - t0, time.perf_counter()
            stream.events.emit("decided", run.decision)
            if not run.decision.answers:
                logger.info("decision %s: %s; declining", run.decision.rule, run.decision.score)
                yield NOT_FOUND
                return
            if run.decision.polarity and plan.evidence is not None:
                yield verdict_text(run.decision.polarity, plan.evidence.passages[0])
                return
            yield from self.llm.stream(list(prompt.messages), max_tokens=prompt.max_tokens,
                                       temperature=self.sampling.temperature, seed=self.sampling.seed,
                                       stop=ECHO_STOPS)

        def finish(raw: str) -> Answer:
            decision = run.decision
            timings = {"answer_check_s": round(run.decide_s, 3)} if decision is not None and decision.score is not None \
                else {}
            fields: dict[str, object] = dict(prompt_tokens=prompt.prompt_tokens, sources_in_prompt=prompt.n_sources,
                                             **decision_fields(decision))
            if decision is not None and not decision.answers:
                return not_found(plan, reason=decline_reason(decision), sources=sources, timings=timings, **fields)
            generate_s = time.perf_counter() - run.t0
            trace = replace(plan.trace, timings={**plan.trace.timings, "generate_s": generate_s})
            fields.update(chunks_dropped=prompt.dropped, truncated=prompt.truncated, raw=raw)
            if previous and repeats(raw, previous):
                # a different question answered with the last answer word for word: its sources do not answer it
                logger.info("the answer repeats the previous one; declining")
                return not_found(plan, reason=REPEAT_REASON, sources=sources, timings=timings, **fields)
            return self._finish(replace(plan, trace=trace), raw, prompt.chunks, sources,
                                {"generate_s": round(generate_s, 3), **timings}, fields)

        stream = AnswerStream(pieces(), finish, plan.query)
        return stream

    def _finish(self, plan: Plan, raw: str, texts: Sequence[object], sources: tuple[Citation, ...],
                timings: Mapping[str, float], fields: dict[str, object]) -> Answer:
        text, removed = strip_scaffolding(raw.strip())
        text = drop_stray_polarity(text, plan.question)
        if removed:
            logger.info("cut %d characters of echoed prompt text from the answer", removed)
            fields = {**fields, "scaffolding_removed": removed}
        evidence = plan.evidence is not None
        if not text or any(m in text.lower() for m in _DECLINE_MARKERS):
            if evidence:  # the decision said the evidence answers: quote it rather than decline twice
                return self._quoted(plan, timings, fields, None, DECLINED_NOTE) or not_found(
                    plan, reason="model declined", sources=sources, timings=timings, **fields)
            return not_found(plan, reason="model declined" if text else "empty", sources=sources, timings=timings,
                             **fields)
        fixed, valid, invalid = fix_citations(text, len(texts))
        if invalid:
            logger.warning("removed citations to missing sources: %s", invalid)
        if not any(ch.isalnum() for ch in strip_citations(fixed)):
            # nothing but citation markers ("[23]"): no answer to show, so quote the sources or decline
            fields = {**fields, "invalid_citations": invalid}
            if self.fallback_share is None:
                return not_found(plan, reason="empty", sources=sources, timings=timings, **fields)
            return self._quoted(plan, timings, fields, None) or self._unsupported(plan, sources, timings, fields)
        support = self.checker.check(fixed, texts)  # type: ignore[arg-type]
        fixed, support, repointed = repoint_citations(fixed, support)
        if repointed:
            fixed, valid, _ = fix_citations(fixed, len(texts))
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
        fixed, support, _ = mark_supported(fixed, support)  # every supported sentence shows its source
        diagnostics = plan.diagnostics(timings, explicit_citations=valid, inferred_citations=inferred,
                                       invalid_citations=invalid, unsupported_share=share, **fields,
                                       **untrusted_marks(fixed, citations, sources))
        return Answer(question=plan.question, text=fixed, citations=citations, support=support,
                      standalone_query=plan.query, grounded=any(s.supported for s in support),
                      mode=AnswerMode.GENERATIVE, sources=sources, trace=plan.trace, diagnostics=diagnostics)

    def _quoted(self, plan: Plan, timings: Mapping[str, float], fields: Mapping[str, object],
                share: float | None, note: str = FALLBACK_NOTE) -> Answer | None:
        """The extractive answer in place of a generated one (``diagnostics.fallback``), or None
        when nothing is close enough to quote (over whole chunks: no sentence at
        ``fallback_min_similarity``; over evidence the decision has already said it answers)."""
        quoted = self.quotes.answer(plan)
        best = max(quoted.diagnostics.quote_similarity, default=None)
        if quoted.declined or best is None or (plan.evidence is None and best < self.fallback_min_similarity):
            return None
        kept = {k: fields[k] for k in ("prompt_tokens", "scaffolding_removed", "answer_check", "decision",
                                       "decision_score", "decision_threshold", "decision_rule", "decision_signals")
                if k in fields}
        return replace(quoted, diagnostics=replace(
            quoted.diagnostics, timings={**quoted.diagnostics.timings, **timings}, unsupported_share=share,
            fallback=note, raw=str(fields.get("raw", "")), **kept))  # type: ignore[arg-type]

    def _unsupported(self, plan: Plan, sources: tuple[Citation, ...], timings: Mapping[str, float],
                     fields: Mapping[str, object]) -> Answer:
        """Decline an answer the sources do not support when nothing in them is close enough to quote."""
        logger.info("generated answer unsupported and no source sentence close to the question; declining")
        return not_found(plan, reason=UNSUPPORTED_REASON, sources=sources, timings=timings, **fields)

