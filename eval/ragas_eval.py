"""Answer quality with Ragas: the only module that imports ``ragas``.

Scores generated answers (see :mod:`eval.answers`) with Ragas' single-turn metrics:

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

Robustness with a small local judge (see ``../shared/MODELS.md``): ragas is never handed a
LangChain chat model.  :class:`RagasJudge` adapts a :class:`JudgeBackend` (llama.cpp or an
OpenAI-compatible endpoint): every call holds one lock (ragas gathers generations
concurrently; one llama.cpp context must not run two), the finish reason is always accepted
(no ``LLMDidNotFinishException``), a llama.cpp judge's output is constrained by a GBNF grammar
built from the JSON schema ragas puts in its prompt, retries are off (``RunConfig(max_retries=1,
max_workers=1)``), and every (sample, metric) runs under a deadline: the llama.cpp stream stops
at the deadline and ``asyncio.wait_for`` bounds the rest, so nothing hangs.

Telemetry: ``RAGAS_DO_NOT_TRACK`` defaults to ``true`` before ragas is imported.

Example (non-LLM metrics only, no judge)::

    from eval.answers import GeneratedAnswer, QuestionSample
    scorer = AnswerScorer(judge=None)
    s = QuestionSample("q1", "what is lift?", reference_ids=("d1", "d2"))
    scores = scorer.score(s, GeneratedAnswer("Lift is ...", ("ctx a", "ctx b"), ("d1", "d9")))
    scores["id_context_precision"].value, scores["faithfulness"].reason
    # (0.5, 'no judge LLM (--judge none)')
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import csv
import json
import logging
import math
import os
import re
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from langchain_core.outputs import Generation, LLMResult
    from ragas.dataset_schema import SingleTurnSample
    from ragas.embeddings.base import BaseRagasEmbeddings
    from ragas.exceptions import RagasOutputParserException
    from ragas.llms.base import BaseRagasLLM
    from ragas.metrics._answer_relevance import ResponseRelevancy
    from ragas.metrics._answer_similarity import SemanticSimilarity
    from ragas.metrics._context_precision import (IDBasedContextPrecision, LLMContextPrecisionWithoutReference,
                                                  LLMContextPrecisionWithReference)
    from ragas.metrics._context_recall import IDBasedContextRecall, LLMContextRecall, NonLLMContextRecall
    from ragas.metrics._faithfulness import Faithfulness
    from ragas.run_config import RunConfig

from .answers import GeneratedAnswer, QuestionSample

logger = logging.getLogger(__name__)

LLM_METRICS: tuple[str, ...] = ("faithfulness", "answer_relevancy", "context_precision", "context_recall")
NON_LLM_METRICS: tuple[str, ...] = ("id_context_precision", "id_context_recall", "nonllm_context_recall",
                                    "semantic_similarity")
ALL_METRICS: tuple[str, ...] = LLM_METRICS + NON_LLM_METRICS
DEFAULT_TIMEOUT_S = 120.0
DEFAULT_JUDGE_MAX_TOKENS = 256
_SCHEMA_MARKER = "as specified in JSON Schema:\n"
_DEADLINE: contextvars.ContextVar[float] = contextvars.ContextVar("judge_deadline", default=math.inf)


class JudgeTimeout(TimeoutError):
    """The judge ran past the (sample, metric) deadline."""


def _remaining() -> float:
    return _DEADLINE.get() - time.monotonic()


# -- judges -------------------------------------------------------------------------------------

class JudgeBackend(Protocol):
    """Text in, text out; must give up (raise :class:`JudgeTimeout`) once the deadline has passed."""

    @property
    def name(self) -> str: ...

    def complete(self, prompt: str, temperature: float = 0.0) -> str: ...


def bound_schema(schema: Any, max_length: int = 200, max_items: int = 6) -> Any:
    """Copy of a JSON schema where every string has a ``maxLength`` and every array a ``maxItems``.

    A small judge at temperature 0 can repeat itself until the token budget runs out, leaving
    truncated JSON; with bounded strings and arrays the grammar forces it to close the object.

    Example:
        >>> bound_schema({"type": "array", "items": {"type": "string"}}, 50, 3)
        {'type': 'array', 'items': {'type': 'string', 'maxLength': 50}, 'maxItems': 3}
    """
    if isinstance(schema, list):
        return [bound_schema(s, max_length, max_items) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: bound_schema(v, max_length, max_items) for k, v in schema.items()}
    if out.get("type") == "string" and "enum" not in out and "const" not in out:
        out.setdefault("maxLength", max_length)
    if out.get("type") == "array":
        out.setdefault("maxItems", max_items)
    return out


def schema_grammar(prompt: str, max_length: int = 200, max_items: int = 6) -> str | None:
    """GBNF grammar for the JSON schema ragas embeds in a prompt (None if there is none);
    strings and arrays are bounded (:func:`bound_schema`).

    Example:
        >>> p = 'Do it. ' + _SCHEMA_MARKER + '{"type": "object", "properties": {"a": {"type": "integer"}}}Then.'
        >>> "root ::=" in schema_grammar(p)
        True
        >>> schema_grammar("no schema here") is None
        True
    """
    start = prompt.find(_SCHEMA_MARKER)
    if start < 0:
        return None
    try:
        schema, _ = json.JSONDecoder().raw_decode(prompt, start + len(_SCHEMA_MARKER))
        from llama_cpp.llama_grammar import json_schema_to_gbnf

        return json_schema_to_gbnf(json.dumps(bound_schema(schema, max_length, max_items)))
    except Exception as exc:  # an unusual schema: generate unconstrained rather than fail
        logger.debug("no grammar for the prompt's schema: %s", exc)
        return None


class LlamaCppJudge:
    """A judge on a local chat model (:class:`rag.llm.LlamaCppLLM` or any ``rag.llm.ChatModel``).

    Output is streamed so the deadline can stop it between tokens; with ``constrain_json`` the
    output is forced to match the JSON schema in the ragas prompt.

    Example:
        >>> from rag.llm import ScriptedLLM
        >>> LlamaCppJudge(ScriptedLLM(['{"a": 1}'])).complete("Answer in JSON.")
        '{"a": 1}'
    """

    def __init__(self, llm: Any, max_tokens: int = DEFAULT_JUDGE_MAX_TOKENS, constrain_json: bool = True,
                 seed: int = 0) -> None:
        if not isinstance(max_tokens, int) or max_tokens <= 0:
            raise ValueError(f"max_tokens must be a positive integer, got {max_tokens!r}")
        if not hasattr(llm, "stream"):
            raise ValueError(f"llm must be a rag.llm.ChatModel (with .stream), got {type(llm).__name__}")
        self.llm = llm
        self.max_tokens = max_tokens
        self.constrain_json = constrain_json
        self.seed = seed

    @property
    def name(self) -> str:
        return f"llama.cpp:{getattr(self.llm, 'model', type(self.llm).__name__)}"

    def complete(self, prompt: str, temperature: float = 0.0) -> str:
        if _remaining() <= 0:
            raise JudgeTimeout("judge deadline passed before the call")
        grammar = schema_grammar(prompt) if self.constrain_json else None
        pieces: list[str] = []
        stream = self.llm.stream([{"role": "user", "content": prompt}], max_tokens=self.max_tokens,
                                 temperature=min(max(float(temperature), 0.0), 2.0), seed=self.seed,
                                 grammar=grammar)
        try:
            for piece in stream:
                pieces.append(piece)
                if _remaining() <= 0:
                    raise JudgeTimeout(f"judge stopped at the deadline after {len(pieces)} pieces")
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        return "".join(pieces)


class OpenAICompatibleJudge:
    """A judge behind an OpenAI-compatible ``/v1/chat/completions`` endpoint (llama.cpp server,
    vLLM, Ollama, OpenAI).  No client retries; each request times out at the deadline.

    Example:
        >>> OpenAICompatibleJudge("ftp://host", model="m")
        Traceback (most recent call last):
        ...
        ValueError: judge endpoint must be an http(s) URL, got 'ftp://host'
    """

    def __init__(self, base_url: str, model: str = "default", api_key: str | None = None,
                 max_tokens: int = DEFAULT_JUDGE_MAX_TOKENS, client: Any | None = None) -> None:
        if not re.match(r"^https?://", base_url or ""):
            raise ValueError(f"judge endpoint must be an http(s) URL, got {base_url!r}")
        if not model:
            raise ValueError("judge model name must be non-empty")
        if not isinstance(max_tokens, int) or max_tokens <= 0:
            raise ValueError(f"max_tokens must be a positive integer, got {max_tokens!r}")
        self.base_url = base_url
        self.model = model
        self.api_key = api_key
        self.max_tokens = max_tokens
        self._client = client
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return f"{self.base_url} ({self.model})"

    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                from openai import OpenAI

                self._client = OpenAI(base_url=self.base_url, api_key=self.api_key or "not-needed", max_retries=0)
        return self._client

    def complete(self, prompt: str, temperature: float = 0.0) -> str:
        remaining = _remaining()
        if remaining <= 0:
            raise JudgeTimeout("judge deadline passed before the call")
        import openai

        try:
            out = self._get_client().chat.completions.create(
                model=self.model, messages=[{"role": "user", "content": prompt}], max_tokens=self.max_tokens,
                temperature=float(temperature), timeout=min(remaining, 600.0))
        except openai.APITimeoutError:
            raise JudgeTimeout("judge endpoint did not answer before the deadline") from None
        return str(out.choices[0].message.content or "")


class RagasJudge(BaseRagasLLM):
    """Ragas LLM adapter over a :class:`JudgeBackend`: serialised, always 'finished', deadline-bound."""

    def __init__(self, backend: JudgeBackend) -> None:
        super().__init__(run_config=RunConfig(max_retries=1, max_workers=1))
        self.backend = backend
        self._lock = threading.Lock()
        self.calls = 0
        self.last_output = ""

    def generate_text(self, prompt: Any, n: int = 1, temperature: float = 0.01, stop: Any = None,
                      callbacks: Any = None) -> LLMResult:
        text = prompt.to_string() if hasattr(prompt, "to_string") else str(prompt)
        outs = []
        for _ in range(max(1, n)):
            with self._lock:
                self.calls += 1
                outs.append(self.backend.complete(text, temperature=temperature or 0.0))
                self.last_output = outs[-1]
        return LLMResult(generations=[[Generation(text=o, generation_info={"finish_reason": "stop"})
                                       for o in outs]])

    async def agenerate_text(self, prompt: Any, n: int = 1, temperature: float | None = 0.01, stop: Any = None,
                             callbacks: Any = None) -> LLMResult:
        # a worker thread keeps the event loop free, so asyncio.wait_for can enforce the timeout
        return await asyncio.to_thread(self.generate_text, prompt, n, temperature or 0.0, stop, callbacks)

    def is_finished(self, response: LLMResult) -> bool:
        return True


class RagasEmbeddings(BaseRagasEmbeddings):
    """Ragas embeddings adapter over :class:`rag.embedding.Embedder` (the packaged MiniLM by default)."""

    def __init__(self, embedder: Any) -> None:
        super().__init__()
        self.embedder = embedder
        self.run_config = RunConfig(max_retries=1, max_workers=1)
        self._lock = threading.Lock()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        with self._lock:
            return [[float(x) for x in row] for row in self.embedder.encode(list(texts))]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        return self.embed_query(text)


def make_judge(spec: str, model: str | None = None, api_key: str | None = None,
               max_tokens: int = DEFAULT_JUDGE_MAX_TOKENS, shared_llm: Any | None = None) -> JudgeBackend | None:
    """Judge from a command-line spec: ``none``; an ``http(s)://`` endpoint (``model`` names the
    served model); or a llama.cpp registry name / ``.gguf`` path (``shared_llm`` is reused when it
    is that same model, so generator and judge share one loaded copy)."""
    if not spec or spec.lower() == "none":
        return None
    if re.match(r"^https?://", spec):
        return OpenAICompatibleJudge(spec, model=model or "default", api_key=api_key, max_tokens=max_tokens)
    from rag.llm import LlamaCppLLM
    from rag.models import resolve_model

    path = resolve_model(spec)
    if shared_llm is not None and Path(getattr(shared_llm, "path", "")) == path:
        return LlamaCppJudge(shared_llm, max_tokens=max_tokens)
    return LlamaCppJudge(LlamaCppLLM(spec), max_tokens=max_tokens)


# -- scoring ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MetricScore:
    """A metric's value for one sample, or None with the reason it is missing.

    ``failed`` separates a computation that was attempted and failed (timeout, unparseable
    judge output, NaN, crash) from a metric that does not apply (no judge, no reference).
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
        judge: a :class:`JudgeBackend`, or None for the non-LLM metrics only.
        embedder: a :class:`rag.embedding.Embedder` for answer relevancy and semantic similarity
            (default: the packaged MiniLM, loaded on first use).
        metrics: metric names (default: all; :func:`parse_answer_metrics`).
        timeout_s: deadline for each (sample, metric).
        strictness: questions the judge generates per answer for answer relevancy (Ragas'
            default is 3; 1 keeps a local judge affordable).

    Example::

        scorer = AnswerScorer(judge=None)
        scorer.score(sample, answer)["id_context_recall"]     # MetricScore(value=0.25, ...)
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
        if not isinstance(strictness, int) or strictness <= 0:
            raise ValueError(f"strictness must be a positive integer, got {strictness!r}")
        self.judge = judge
        self.metrics = tuple(metrics)
        self.timeout_s = float(timeout_s)
        self.strictness = strictness
        self._embedder = embedder
        self._llm = RagasJudge(judge) if judge is not None else None
        self._emb: RagasEmbeddings | None = None

    @property
    def judge_calls(self) -> int:
        return self._llm.calls if self._llm is not None else 0

    def _embeddings(self) -> RagasEmbeddings:
        if self._emb is None:
            if self._embedder is None:
                from rag.embedding import Embedder

                self._embedder = Embedder()
            self._emb = RagasEmbeddings(self._embedder)
        return self._emb

    def _metric(self, name: str, sample: QuestionSample, answer: GeneratedAnswer) -> tuple[Any | None, str]:
        """The ragas metric object for ``name``, or (None, reason it cannot be computed)."""
        no_judge = "no judge LLM (--judge none)"
        if name in LLM_METRICS and self._llm is None:
            return None, no_judge
        if name in ("faithfulness", "context_precision", "context_recall") and not answer.contexts:
            return None, "no contexts (the generator answered without sources)"
        if name == "faithfulness":
            if not answer.text.strip():
                return None, "empty answer"
            return Faithfulness(llm=self._llm), ""
        if name == "answer_relevancy":
            return ResponseRelevancy(llm=self._llm, embeddings=self._embeddings(), strictness=self.strictness), ""
        if name == "context_precision":
            if sample.reference:
                return LLMContextPrecisionWithReference(llm=self._llm), ""
            return LLMContextPrecisionWithoutReference(llm=self._llm), ""
        if name == "context_recall":
            if not sample.reference:
                return None, "needs a reference answer (the dataset has none; see id_context_recall)"
            return LLMContextRecall(llm=self._llm), ""
        if name in ("id_context_precision", "id_context_recall"):
            if not sample.reference_ids:
                return None, "needs reference ids (qrels)"
            if name == "id_context_precision":
                if not answer.context_ids:
                    return None, "no contexts (precision undefined)"
                return IDBasedContextPrecision(), ""
            return IDBasedContextRecall(), ""
        if name == "nonllm_context_recall":
            if not sample.reference_contexts:
                return None, "needs reference contexts"
            if not answer.contexts:
                return None, "no contexts"
            return NonLLMContextRecall(), ""
        if name == "semantic_similarity":
            if not sample.reference:
                return None, "needs a reference answer"
            return SemanticSimilarity(embeddings=self._embeddings()), ""
        raise ValueError(f"unknown answer metric {name!r}")  # unreachable: checked in __init__

    def score(self, sample: QuestionSample, answer: GeneratedAnswer) -> dict[str, MetricScore]:
        """``{metric: MetricScore}`` for every configured metric (missing ones carry a reason)."""
        rs = SingleTurnSample(
            user_input=sample.question, response=answer.text, retrieved_contexts=list(answer.contexts),
            retrieved_context_ids=list(answer.context_ids), reference=sample.reference,
            reference_contexts=list(sample.reference_contexts) or None,
            reference_context_ids=list(sample.reference_ids) or None)
        out: dict[str, MetricScore] = {}
        for name in self.metrics:
            try:
                metric, reason = self._metric(name, sample, answer)
            except Exception as exc:  # a metric that cannot even be built is reported, not raised
                out[name] = MetricScore(None, f"could not set up metric: {type(exc).__name__}: {exc}", failed=True)
                continue
            out[name] = self._run(metric, rs) if metric is not None else MetricScore(None, reason)
            if out[name].value is None:
                logger.info("sample %s: %s missing (%s)", sample.qid, name, out[name].reason)
        return out

    def _run(self, metric: Any, sample: SingleTurnSample) -> MetricScore:
        t0 = time.monotonic()
        if self._llm is not None:
            self._llm.last_output = ""
        token = _DEADLINE.set(t0 + self.timeout_s)
        try:
            metric.init(RunConfig(max_retries=1, max_workers=1, timeout=int(math.ceil(self.timeout_s)), max_wait=1))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                value = asyncio.run(metric.single_turn_ascore(sample, timeout=self.timeout_s))
        except (asyncio.TimeoutError, JudgeTimeout):
            return MetricScore(None, f"timed out after {self.timeout_s:g}s", time.monotonic() - t0, True)
        except RagasOutputParserException:
            return MetricScore(None, "judge output could not be parsed", time.monotonic() - t0, True)
        except Exception as exc:  # judge crash, context overflow, ragas bug: recorded, never raised
            msg = " ".join(str(exc).split())[:200]
            return MetricScore(None, f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__,
                               time.monotonic() - t0, True)
        finally:
            _DEADLINE.reset(token)
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


# -- running and reporting ----------------------------------------------------------------------

@dataclass(frozen=True)
class SampleResult:
    sample: QuestionSample
    answer: GeneratedAnswer | None
    scores: Mapping[str, MetricScore]
    error: str = ""


@dataclass(frozen=True)
class AnswerReport:
    """Per-sample results and aggregates of one ``rag eval answers`` run."""

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
    """Generate an answer per question and score it; a failing generation is recorded, not raised."""
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


def summary_markdown(report: AnswerReport) -> str:
    agg = report.aggregate()
    n = len(report.results)
    lines = ["| metric | mean | scored | failed | missing (top reason) |", "|---|---:|---:|---:|---|"]
    for m, a in agg.items():
        mean = f"{a['mean']:.3f}" if a["mean"] is not None else "-"
        top = max(a["reasons"].items(), key=lambda kv: kv[1])[0] if a["reasons"] else ""
        miss = f"{a['missing']}" + (f" ({top[:80]})" if top else "")
        lines.append(f"| {m} | {mean} | {a['scored']}/{n} | {a['failed']} | {miss} |")
    lat = [r.answer.latency_ms for r in report.results if r.answer is not None]
    caption = (f"{n} samples, {report.n_fully_scored} with every applicable metric scored "
               f"(failed = attempted but timed out, unparseable or NaN); judge: {report.judge}"
               + (f"; mean generation latency {sum(lat) / len(lat):.0f} ms." if lat else "."))
    return "\n".join(lines) + "\n\n" + caption + "\n"


def _sample_row(r: SampleResult, metrics: Sequence[str]) -> dict[str, Any]:
    a = r.answer
    row: dict[str, Any] = {
        "qid": r.sample.qid, "question": r.sample.question,
        "answer": a.text if a else "", "context_ids": list(a.context_ids) if a else [],
        "reference_ids": list(r.sample.reference_ids[:20]), "latency_ms": round(a.latency_ms, 1) if a else None,
        "error": r.error,
    }
    for m in metrics:
        s = r.scores.get(m, MetricScore(None, "not computed"))
        row[m] = s.value
        row[f"{m}_reason"] = s.reason
    return row


def score_chart(report: AnswerReport, path: str | Path) -> Path:
    """Bar chart of each metric's mean, labelled with how many samples were scored."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    agg = report.aggregate()
    names = list(agg)
    fig = Figure(figsize=(max(6.0, 1.1 * len(names)), 4.0), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    values = [agg[m]["mean"] or 0.0 for m in names]
    bars = ax.bar(range(len(names)), values, color=["C0" if agg[m]["scored"] else "0.8" for m in names])
    for bar, m in zip(bars, names):
        ax.annotate(f"{agg[m]['scored']}/{len(report.results)}", (bar.get_x() + bar.get_width() / 2,
                    bar.get_height()), ha="center", va="bottom", fontsize="small")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize="small")
    ax.set_ylim(0.0, 1.1)
    ax.set_ylabel("mean score (label: samples scored)")
    ax.set_title(f"answer quality; judge: {report.judge}", fontsize="small")
    fig.tight_layout()
    fig.savefig(Path(path))
    return Path(path)


def write_answer_report(report: AnswerReport, out_dir: str | Path) -> dict[str, Path]:
    """Write ``samples.csv``, ``samples.json``, ``summary.md``, ``summary.json`` and ``scores.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [_sample_row(r, report.metrics) for r in report.results]
    paths = {"samples_json": out / "samples.json", "samples_csv": out / "samples.csv",
             "summary_md": out / "summary.md", "summary_json": out / "summary.json"}
    paths["samples_json"].write_text(json.dumps(rows, indent=2, ensure_ascii=False), encoding="utf-8")
    with open(paths["samples_csv"], "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["qid"], lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (json.dumps(v) if isinstance(v, list) else ("" if v is None else v))
                             for k, v in row.items()})
    paths["summary_md"].write_text(summary_markdown(report), encoding="utf-8")
    paths["summary_json"].write_text(json.dumps({
        "judge": report.judge, "samples": len(report.results), "fully_scored": report.n_fully_scored,
        "settings": dict(report.settings), "metrics": report.aggregate()}, indent=2), encoding="utf-8")
    paths["chart"] = score_chart(report, out / "scores.png")
    return paths


def run_answers_command(args: argparse.Namespace) -> int:
    """``rag eval answers``: build the pipeline, generate, score, print and write the report."""
    from rag.answer import Answerer
    from rag.embedding import Embedder
    from rag.retrieval import Retriever

    from .answers import answerer_generator, load_questions, questions_from_dataset

    metrics = parse_answer_metrics(args.metrics)
    embedder = Embedder()
    if args.questions:
        if not args.index:
            raise ValueError("--questions needs --index NAME (the index the questions are asked against)")
        from rag.index import IndexStore

        index = IndexStore(args.index_dir).load(args.index)
        samples = load_questions(args.questions, limit=args.limit)
        id_of: Callable[[Any], str] | None = (lambda chunk: chunk.source)
    else:
        if not args.path:
            raise ValueError("give --dataset/--path (a benchmark) or --questions FILE.jsonl --index NAME")
        from .datasets import load_dataset
        from .retrieval import EvalSettings, build_index

        ds = load_dataset(args.dataset, args.path, split=args.split)
        index = build_index(ds, embedder, EvalSettings(), show_progress=not args.quiet)
        samples = questions_from_dataset(ds, limit=args.limit, seed=args.seed)
        id_of = None
    retriever = Retriever(index, mode=args.mode, embedder=embedder, fusion=args.fusion, candidates=args.candidates)
    llm = None
    if not args.extractive:
        from rag.llm import LlamaCppLLM

        llm = LlamaCppLLM(args.generator)
    judge = make_judge(args.judge, model=args.judge_model, api_key=os.environ.get(args.judge_api_key_env),
                       max_tokens=args.judge_max_tokens, shared_llm=llm)
    answerer = Answerer(retriever, llm, k=args.contexts, max_tokens=args.max_tokens, extractive=args.extractive,
                        condense=False, embedder=embedder)
    scorer = AnswerScorer(judge=judge, embedder=embedder, metrics=metrics, timeout_s=args.timeout)
    settings = {"dataset": args.dataset if not args.questions else str(args.questions), "mode": args.mode,
                "fusion": args.fusion, "contexts": args.contexts, "generator": "extractive" if args.extractive
                else args.generator, "max_tokens": args.max_tokens, "timeout_s": args.timeout,
                "limit": args.limit, "seed": args.seed}
    judge_llm = getattr(judge, "llm", None)
    try:
        report = evaluate_answers(samples, answerer_generator(answerer, id_of), scorer,
                                  show_progress=not args.quiet, settings=settings)
    finally:
        for model in {id(m): m for m in (llm, judge_llm) if m is not None and hasattr(m, "close")}.values():
            model.close()
    if args.out:
        paths = write_answer_report(report, args.out)
        print(f"wrote {len(paths)} files to {Path(args.out)}/", file=sys.stderr)
    if args.format == "json":
        print(json.dumps({"judge": report.judge, "samples": len(report.results),
                          "fully_scored": report.n_fully_scored, "metrics": report.aggregate()}, indent=2))
    else:
        print(summary_markdown(report), end="")
    return 0


__all__ = ["ALL_METRICS", "AnswerReport", "AnswerScorer", "JudgeBackend", "JudgeTimeout", "LlamaCppJudge",
           "MetricScore", "OpenAICompatibleJudge", "RagasEmbeddings", "RagasJudge", "SampleResult",
           "evaluate_answers", "make_judge", "parse_answer_metrics", "run_answers_command", "schema_grammar",
           "summary_markdown", "write_answer_report"]
