"""The only module that imports ``ragas`` (and the LangChain types ragas speaks): imported lazily.

``import rag_eval.ragas_adapter`` is cheap; ragas is imported on the first call that needs it
(:func:`ragas_llm`, :func:`ragas_embeddings`, :func:`make_metric`, :func:`single_turn_sample`,
:func:`run_metric`), with ``RAGAS_DO_NOT_TRACK`` defaulting to ``true`` before the import.

Robustness with a small local judge (see ``../shared/MODELS.md``): ragas is never handed a
LangChain chat model.  ``RagasJudge`` adapts a :class:`rag_eval.judges.JudgeBackend`: every call
holds one lock (ragas gathers generations concurrently; one llama.cpp context must not run two),
the finish reason is always accepted (no ``LLMDidNotFinishException``), retries are off
(``RunConfig(max_retries=1, max_workers=1)``), and generation runs in a worker thread so
``asyncio.wait_for`` can bound a (sample, metric) by its timeout.  ``RagasEmbeddings`` adapts a
:class:`rag.embedding.Embedder`.  Both classes are defined on first use over ragas' base classes
(``from rag_eval.ragas_adapter import RagasJudge`` imports ragas).

Example (a qrels-based metric; no judge, no embedder):
    >>> from rag_eval.answers import GeneratedAnswer, QuestionSample
    >>> rs = single_turn_sample(QuestionSample("q1", "what is lift?", reference_ids=("d1", "d2")),
    ...                         GeneratedAnswer("Lift is ...", ("ctx a", "ctx b"), ("d1", "d9")))
    >>> run_metric(make_metric("id_context_precision"), rs, timeout_s=10.0)
    0.5
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import os
import threading
import types
import warnings
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from ragas.dataset_schema import SingleTurnSample
    from ragas.embeddings.base import BaseRagasEmbeddings
    from ragas.llms.base import BaseRagasLLM

    from .answers import GeneratedAnswer, QuestionSample
    from .judges import JudgeBackend

logger = logging.getLogger(__name__)

_NEEDS_LLM = frozenset({"faithfulness", "answer_relevancy", "context_precision", "context_recall"})
_NEEDS_EMBEDDINGS = frozenset({"answer_relevancy", "semantic_similarity"})


class JudgeOutputUnparseable(Exception):
    """Ragas could not parse the judge's output (its ``RagasOutputParserException``)."""


@functools.cache
def _ragas() -> types.SimpleNamespace:
    """Import ragas (telemetry off, import-time warnings silenced) and define the adapters on its base classes."""
    r = _import_ragas()
    return types.SimpleNamespace(RagasJudge=_judge_class(r), RagasEmbeddings=_embeddings_class(r), **vars(r))


def _import_ragas() -> types.SimpleNamespace:
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
    return types.SimpleNamespace(
        Generation=Generation, LLMResult=LLMResult, BaseRagasLLM=BaseRagasLLM, BaseRagasEmbeddings=BaseRagasEmbeddings,
        RunConfig=RunConfig, SingleTurnSample=SingleTurnSample, RagasOutputParserException=RagasOutputParserException,
        Faithfulness=Faithfulness, ResponseRelevancy=ResponseRelevancy, SemanticSimilarity=SemanticSimilarity,
        LLMContextPrecisionWithReference=LLMContextPrecisionWithReference,
        LLMContextPrecisionWithoutReference=LLMContextPrecisionWithoutReference, LLMContextRecall=LLMContextRecall,
        IDBasedContextPrecision=IDBasedContextPrecision, IDBasedContextRecall=IDBasedContextRecall,
        NonLLMContextRecall=NonLLMContextRecall)


def _judge_class(r: types.SimpleNamespace) -> type:
    Generation, LLMResult, RunConfig = r.Generation, r.LLMResult, r.RunConfig

    class RagasJudge(r.BaseRagasLLM):  # type: ignore[misc,name-defined]
        """Ragas LLM adapter over a :class:`JudgeBackend`: serialised, always 'finished', deadline-bound."""

        def __init__(self, backend: JudgeBackend) -> None:
            super().__init__(run_config=RunConfig(max_retries=1, max_workers=1))
            self.backend = backend
            self._lock = threading.Lock()
            self.last_output = ""

        def generate_text(self, prompt: Any, n: int = 1, temperature: float = 0.01, stop: Any = None,
                          callbacks: Any = None) -> Any:
            text = prompt.to_string() if hasattr(prompt, "to_string") else str(prompt)
            outs = []
            for _ in range(max(1, n)):
                with self._lock:
                    outs.append(self.backend.complete(text, temperature=temperature or 0.0))
                    self.last_output = outs[-1]
            return LLMResult(generations=[[Generation(text=o, generation_info={"finish_reason": "stop"})
                                           for o in outs]])

        async def agenerate_text(self, prompt: Any, n: int = 1, temperature: float | None = 0.01,
                                 stop: Any = None, callbacks: Any = None) -> Any:
            # a worker thread keeps the event loop free, so asyncio.wait_for can enforce the timeout
            return await asyncio.to_thread(self.generate_text, prompt, n, temperature or 0.0, stop, callbacks)

        def is_finished(self, response: Any) -> bool:
            return True

    RagasJudge.__qualname__ = "RagasJudge"
    return RagasJudge


def _embeddings_class(r: types.SimpleNamespace) -> type:
    RunConfig = r.RunConfig

    class RagasEmbeddings(r.BaseRagasEmbeddings):  # type: ignore[misc,name-defined]
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

    RagasEmbeddings.__qualname__ = "RagasEmbeddings"
    return RagasEmbeddings


def __getattr__(name: str) -> Any:
    """``RagasJudge`` and ``RagasEmbeddings`` exist once ragas is imported (on first access)."""
    if name in ("RagasJudge", "RagasEmbeddings"):
        return getattr(_ragas(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def ragas_llm(backend: JudgeBackend) -> BaseRagasLLM:
    """A ``RagasJudge`` over ``backend``; its ``last_output`` holds the judge's latest reply."""
    return _ragas().RagasJudge(backend)


def ragas_embeddings(embedder: Any) -> BaseRagasEmbeddings:
    """A ``RagasEmbeddings`` over ``embedder`` (anything with ``encode(list[str])``)."""
    return _ragas().RagasEmbeddings(embedder)


def make_metric(name: str, llm: BaseRagasLLM | None = None,
                embeddings: Callable[[], BaseRagasEmbeddings] | None = None, strictness: int = 1,
                with_reference: bool = False) -> Any:
    """The ragas single-turn metric object for ``name`` (see :data:`rag_eval.scoring.ALL_METRICS`).

    ``embeddings`` is called only for a metric that needs them; ``with_reference`` picks
    context precision's with-reference variant.

    Example:
        >>> make_metric("faithfulness")
        Traceback (most recent call last):
        ...
        ValueError: metric 'faithfulness' needs a judge llm
    """
    if name in _NEEDS_LLM and llm is None:
        raise ValueError(f"metric {name!r} needs a judge llm")
    if name in _NEEDS_EMBEDDINGS and embeddings is None:
        raise ValueError(f"metric {name!r} needs embeddings")
    r = _ragas()
    if name == "faithfulness":
        return r.Faithfulness(llm=llm)
    if name == "answer_relevancy":
        return r.ResponseRelevancy(llm=llm, embeddings=embeddings(), strictness=strictness)  # type: ignore[misc]
    if name == "context_precision":
        if with_reference:
            return r.LLMContextPrecisionWithReference(llm=llm)
        return r.LLMContextPrecisionWithoutReference(llm=llm)
    if name == "context_recall":
        return r.LLMContextRecall(llm=llm)
    if name == "id_context_precision":
        return r.IDBasedContextPrecision()
    if name == "id_context_recall":
        return r.IDBasedContextRecall()
    if name == "nonllm_context_recall":
        return r.NonLLMContextRecall()
    if name == "semantic_similarity":
        return r.SemanticSimilarity(embeddings=embeddings())  # type: ignore[misc]
    raise ValueError(f"unknown answer metric {name!r}")


def single_turn_sample(sample: QuestionSample, answer: GeneratedAnswer) -> SingleTurnSample:
    """The ragas sample for one (question, generated answer) pair."""
    return _ragas().SingleTurnSample(
        user_input=sample.question, response=answer.text, retrieved_contexts=list(answer.contexts),
        retrieved_context_ids=list(answer.context_ids), reference=sample.reference,
        reference_contexts=list(sample.reference_contexts) or None,
        reference_context_ids=list(sample.reference_ids) or None)


def run_metric(metric: Any, sample: SingleTurnSample, timeout_s: float) -> Any:
    """Score ``sample`` with ``metric`` (no retries, one worker, bounded by ``timeout_s``); ragas'
    raw value (a float, possibly NaN).

    Raises :class:`asyncio.TimeoutError` past the timeout and :class:`JudgeOutputUnparseable` when
    ragas cannot parse the judge's output; anything else the judge or ragas raises propagates.
    """
    r = _ragas()
    metric.init(r.RunConfig(max_retries=1, max_workers=1, timeout=int(math.ceil(timeout_s)), max_wait=1))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return asyncio.run(metric.single_turn_ascore(sample, timeout=timeout_s))
    except r.RagasOutputParserException as exc:
        raise JudgeOutputUnparseable(str(exc)) from exc


__all__ = ["JudgeOutputUnparseable", "RagasEmbeddings", "RagasJudge", "make_metric",
           "ragas_embeddings", "ragas_llm", "run_metric", "single_turn_sample"]
