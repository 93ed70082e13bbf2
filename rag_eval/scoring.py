"""Answer quality scores: Ragas single-turn metrics per (question, generated answer), never raising.

Scores generated answers (see :mod:`rag_eval.answers`) with Ragas' metrics, through
:mod:`rag_eval.ragas_adapter` (the only module that imports ragas, lazily):

========================  ==========================================  ===============================
metric                    Ragas class                                 needs
========================  ==========================================  ===============================
faithfulness              Faithfulness                                judge, contexts
answer_relevancy          ResponseRelevancy                           judge, embedder
context_precision         LLMContextPrecisionWith(out)Reference       judge, contexts
context_recall            LLMContextRecall                            judge, reference answer
id_context_precision      IDBasedContextPrecision                     reference ids (qrels)
id_context_recall         IDBasedContextRecall                        reference ids (qrels)
nonllm_context_recall     NonLLMContextRecall (rapidfuzz)             reference contexts
semantic_similarity       SemanticSimilarity (packaged embedder)      reference answer
========================  ==========================================  ===============================

A metric that cannot be computed for a sample is *missing* with a reason (no judge, no
reference answer, judge output unparseable, timed out, ...); the report counts scored samples.
Every (sample, metric) runs under a deadline (:func:`rag_eval.judges.judge_deadline`): the
judge stops at the deadline and ``asyncio.wait_for`` bounds the rest, so nothing hangs.
Reports are written by :mod:`rag_eval.answer_report`.

Example (non-LLM metrics only, no judge):
    >>> from rag_eval.answers import GeneratedAnswer, QuestionSample
    >>> scorer = AnswerScorer(judge=None, metrics=("id_context_precision", "faithfulness"))
    >>> s = QuestionSample("q1", "what is lift?", reference_ids=("d1", "d2"))
    >>> scores = scorer.score(s, GeneratedAnswer("Lift is ...", ("ctx a", "ctx b"), ("d1", "d9")))
    >>> scores["id_context_precision"].value, scores["faithfulness"].reason
    (0.5, 'no judge LLM (--judge none)')
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from rag.validate import positive_int

from .answers import GeneratedAnswer, QuestionSample
from .judges import JudgeBackend, JudgeTimeout, judge_deadline
from .ragas_adapter import (JudgeOutputUnparseable, make_metric, ragas_embeddings, ragas_llm, run_metric,
                            single_turn_sample)

logger = logging.getLogger(__name__)

LLM_METRICS: tuple[str, ...] = ("faithfulness", "answer_relevancy", "context_precision", "context_recall")
NON_LLM_METRICS: tuple[str, ...] = ("id_context_precision", "id_context_recall", "nonllm_context_recall",
                                    "semantic_similarity")
ALL_METRICS: tuple[str, ...] = LLM_METRICS + NON_LLM_METRICS
DEFAULT_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class MetricScore:
    """A metric's value for one sample, or None with the reason it is missing.

    ``failed`` separates a computation that was attempted and failed (timeout, unparseable
    judge output, NaN, crash) from a metric that does not apply (no judge, no reference).

    Example:
        >>> MetricScore(None, "no judge LLM (--judge none)").scored
        False
    """

    value: float | None
    reason: str = ""
    seconds: float = 0.0
    failed: bool = False

    @property
    def scored(self) -> bool:
        return self.value is not None


def parse_answer_metrics(text: str) -> tuple[str, ...]:
    """``auto`` (the four headline metrics plus every non-LLM metric), ``all``, or a comma list.

    Example:
        >>> parse_answer_metrics("faithfulness, id_context_recall")
        ('faithfulness', 'id_context_recall')
        >>> parse_answer_metrics("bleu")
        Traceback (most recent call last):
        ...
        ValueError: unknown answer metric(s) ['bleu']; choose from auto, all, faithfulness, answer_relevancy, context_precision, context_recall, id_context_precision, id_context_recall, nonllm_context_recall, semantic_similarity
    """
    if text.strip() in ("auto", "all"):
        return ALL_METRICS
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in ALL_METRICS]
    if unknown or not names:
        raise ValueError(f"unknown answer metric(s) {unknown or text!r}; choose from auto, all, "
                         f"{', '.join(ALL_METRICS)}")
    return names


class AnswerScorer:
    """Score one (question, generated answer) pair with Ragas metrics, never raising.

    Args:
        judge: a :class:`rag_eval.judges.JudgeBackend`, or None for the non-LLM metrics only.
        embedder: a :class:`rag.embedding.Embedder` for answer relevancy and semantic similarity
            (default: the packaged MiniLM, loaded on first use).
        metrics: metric names (default: all; :func:`parse_answer_metrics`).
        timeout_s: deadline for each (sample, metric).
        strictness: questions the judge generates per answer for answer relevancy (Ragas'
            default is 3; 1 keeps a local judge affordable).

    Example:
        >>> from rag_eval.answers import GeneratedAnswer, QuestionSample
        >>> scorer = AnswerScorer(judge=None, metrics=("id_context_recall",))
        >>> sample = QuestionSample("q1", "what is lift?", reference_ids=("d1", "d2", "d3", "d4"))
        >>> scorer.score(sample, GeneratedAnswer("Lift is ...", ("ctx a",), ("d1",)))["id_context_recall"].value
        0.25
    """

    def __init__(self, judge: JudgeBackend | None = None, embedder: Any | None = None,
                 metrics: Sequence[str] = ALL_METRICS, timeout_s: float = DEFAULT_TIMEOUT_S,
                 strictness: int = 1) -> None:
        unknown = [m for m in metrics if m not in ALL_METRICS]
        if unknown or not metrics:
            raise ValueError(f"unknown answer metric(s) {unknown or list(metrics)!r}; choose from "
                             f"{', '.join(ALL_METRICS)}")
        if not isinstance(timeout_s, (int, float)) or not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
        positive_int("strictness", strictness)
        self.judge = judge
        self.metrics = tuple(metrics)
        self.timeout_s = float(timeout_s)
        self.strictness = strictness
        self._embedder = embedder
        self._llm: Any | None = None   # the ragas adapter over ``judge``, built on first use
        self._emb: Any | None = None

    def _judge_llm(self) -> Any:
        if self._llm is None and self.judge is not None:
            self._llm = ragas_llm(self.judge)
        return self._llm

    def _embeddings(self) -> Any:
        if self._emb is None:
            if self._embedder is None:
                from rag.embedding import Embedder

                self._embedder = Embedder()
            self._emb = ragas_embeddings(self._embedder)
        return self._emb

    def _metric(self, name: str, sample: QuestionSample, answer: GeneratedAnswer) -> tuple[Any | None, str]:
        """The ragas metric object for ``name``, or (None, reason it cannot be computed)."""
        no_judge = "no judge LLM (--judge none)"
        if name in LLM_METRICS and self.judge is None:
            return None, no_judge
        if name in ("faithfulness", "context_precision", "context_recall") and not answer.contexts:
            return None, "no contexts (the generator answered without sources)"
        if name == "faithfulness":
            if not answer.text.strip():
                return None, "empty answer"
        elif name == "context_recall":
            if not sample.reference:
                return None, "needs a reference answer (the dataset has none; see id_context_recall)"
        elif name in ("id_context_precision", "id_context_recall"):
            if not sample.reference_ids:
                return None, "needs reference ids (qrels)"
            if name == "id_context_precision" and not answer.context_ids:
                return None, "no contexts (precision undefined)"
        elif name == "nonllm_context_recall":
            if not sample.reference_contexts:
                return None, "needs reference contexts"
            if not answer.contexts:
                return None, "no contexts"
        elif name == "semantic_similarity":
            if not sample.reference:
                return None, "needs a reference answer"
        llm = self._judge_llm() if name in LLM_METRICS else None
        return make_metric(name, llm=llm, embeddings=self._embeddings, strictness=self.strictness,
                           with_reference=bool(sample.reference)), ""

    def score(self, sample: QuestionSample, answer: GeneratedAnswer) -> dict[str, MetricScore]:
        """``{metric: MetricScore}`` for every configured metric (missing ones carry a reason)."""
        out: dict[str, MetricScore] = {}
        rs: Any = None
        for name in self.metrics:
            try:
                metric, reason = self._metric(name, sample, answer)
                if metric is not None and rs is None:
                    rs = single_turn_sample(sample, answer)
            except Exception as exc:  # a metric that cannot even be built is reported, not raised
                out[name] = MetricScore(None, f"could not set up metric: {type(exc).__name__}: {exc}", failed=True)
                continue
            out[name] = self._run(metric, rs) if metric is not None else MetricScore(None, reason)
            if out[name].value is None:
                logger.info("sample %s: %s missing (%s)", sample.qid, name, out[name].reason)
        return out

    def _run(self, metric: Any, sample: Any) -> MetricScore:
        t0 = time.monotonic()
        if self._llm is not None:
            self._llm.last_output = ""
        try:
            with judge_deadline(self.timeout_s):
                value = run_metric(metric, sample, self.timeout_s)
        except (asyncio.TimeoutError, JudgeTimeout):
            return MetricScore(None, f"timed out after {self.timeout_s:g}s", time.monotonic() - t0, True)
        except JudgeOutputUnparseable:
            return MetricScore(None, "judge output could not be parsed", time.monotonic() - t0, True)
        except Exception as exc:  # judge crash, context overflow, ragas bug: recorded, never raised
            msg = " ".join(str(exc).split())[:200]
            return MetricScore(None, f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__,
                               time.monotonic() - t0, True)
        seconds = time.monotonic() - t0
        try:
            value = float(value)
        except (TypeError, ValueError):
            return MetricScore(None, f"non-numeric score {value!r}", seconds, True)
        if math.isnan(value):
            last = " ".join(self._llm.last_output.split())[:120] if self._llm is not None else ""
            return MetricScore(None, "ragas returned NaN (nothing to judge or unusable judge output"
                                     + (f"; last judge output: {last!r})" if last else ")"), seconds, True)
        return MetricScore(value, "", seconds)


@dataclass(frozen=True)
class SampleResult:
    """One question's generated answer (None if generation failed) and its scores."""

    sample: QuestionSample
    answer: GeneratedAnswer | None
    scores: Mapping[str, MetricScore]
    error: str = ""


@dataclass(frozen=True)
class AnswerReport:
    """Per-sample results and aggregates of one ``rag eval answers`` run.

    Example:
        >>> s = QuestionSample("q1", "what is lift?", reference_ids=("d1",))
        >>> r = AnswerReport((SampleResult(s, None, {"id_context_recall": MetricScore(0.5)}),),
        ...                  ("id_context_recall",), "none")
        >>> r.aggregate()["id_context_recall"]["mean"], r.n_fully_scored
        (0.5, 1)
    """

    results: tuple[SampleResult, ...]
    metrics: tuple[str, ...]
    judge: str
    settings: Mapping[str, Any] = field(default_factory=dict)

    def aggregate(self) -> dict[str, dict[str, Any]]:
        """``{metric: {"mean", "scored", "missing", "failed", "reasons": {reason: count}}}``."""
        out: dict[str, dict[str, Any]] = {}
        for m in self.metrics:
            scores = [r.scores[m] for r in self.results if m in r.scores]
            values = [s.value for s in scores if s.value is not None]
            reasons: dict[str, int] = {}
            for s in scores:
                if s.value is None:
                    reasons[s.reason] = reasons.get(s.reason, 0) + 1
            out[m] = {"mean": (sum(values) / len(values)) if values else None, "scored": len(values),
                      "missing": len(scores) - len(values), "failed": sum(1 for s in scores if s.failed),
                      "reasons": reasons}
        return out

    @property
    def n_fully_scored(self) -> int:
        """Samples where every metric that applied got a value (none timed out, failed to parse or crashed)."""
        return sum(1 for r in self.results if not r.error and not any(s.failed for s in r.scores.values()))


def evaluate_answers(samples: Sequence[QuestionSample], generator: Callable[[str], GeneratedAnswer],
                     scorer: AnswerScorer, show_progress: bool = False,
                     settings: Mapping[str, Any] | None = None) -> AnswerReport:
    """Generate an answer per question and score it; a failing generation is recorded, not raised.

    Example:
        >>> from rag_eval.answers import as_generator
        >>> def gen(question):
        ...     raise RuntimeError("model crashed")
        >>> report = evaluate_answers([QuestionSample("q1", "what?")], as_generator(gen),
        ...                           AnswerScorer(judge=None, metrics=("id_context_recall",)))
        >>> report.results[0].error
        'generation failed: RuntimeError: model crashed'
    """
    from tqdm.auto import tqdm

    results = []
    for s in tqdm(samples, desc="answers", unit="question", disable=not show_progress, file=sys.stderr):
        try:
            answer = generator(s.question)
        except Exception as exc:
            reason = f"generation failed: {type(exc).__name__}: {exc}"
            logger.warning("sample %s: %s", s.qid, reason)
            results.append(SampleResult(s, None, {m: MetricScore(None, reason, failed=True) for m in scorer.metrics},
                                        reason))
            continue
        results.append(SampleResult(s, answer, scorer.score(s, answer)))
    judge = scorer.judge.name if scorer.judge is not None else "none"
    return AnswerReport(tuple(results), scorer.metrics, judge, dict(settings or {}))


__all__ = ["ALL_METRICS", "DEFAULT_TIMEOUT_S", "LLM_METRICS", "NON_LLM_METRICS", "AnswerReport", "AnswerScorer",
           "MetricScore", "SampleResult", "evaluate_answers", "parse_answer_metrics"]
