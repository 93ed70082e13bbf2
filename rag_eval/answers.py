"""Question sets and the generation protocol for answer evaluation (no ragas here).

A *generator* is any callable ``question -> GeneratedAnswer`` (or ``-> (answer_text,
context_texts, context_ids)``), so the scorer in :mod:`rag_eval.scoring` does not depend on
how answers are produced.  :func:`answerer_generator` adapts the real pipeline
(:class:`rag.answer.answerer.Answerer`: retrieve -> gate -> prompt -> generate -> check).

``context_ids`` must name the same things as a sample's ``reference_ids``: for a benchmark
dataset those are document ids (the chunk source ``"cranfield:123"`` -> ``"123"``).

Example:
    >>> gen = as_generator(lambda q: ("Paris [1].", ["Paris is the capital of France."], ["d1"]))
    >>> ans = gen("What is the capital of France?")
    >>> ans.text, ans.context_ids
    ('Paris [1].', ('d1',))
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, Union

from rag.validate import positive_int

from .datasets import Dataset, read_jsonl

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QuestionSample:
    """One evaluation question with whatever references the dataset has.

    ``reference`` is a reference answer (enables LLM context recall and semantic similarity);
    ``reference_ids`` are relevant document ids (enables ID-based context precision/recall);
    ``reference_contexts`` are relevant passages (enables non-LLM context recall).
    """

    qid: str
    question: str
    reference: str | None = None
    reference_ids: tuple[str, ...] = ()
    reference_contexts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.question, str) or not self.question.strip():
            raise ValueError(f"question {self.qid!r} must be a non-empty string, got {self.question!r}")


@dataclass(frozen=True)
class GeneratedAnswer:
    """What a generator returns: the answer and the contexts it was given (text and id)."""

    text: str
    contexts: tuple[str, ...] = ()
    context_ids: tuple[str, ...] = ()
    latency_ms: float = 0.0
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.context_ids and len(self.context_ids) != len(self.contexts):
            raise ValueError(f"got {len(self.context_ids)} context ids for {len(self.contexts)} contexts")


GeneratorResult = Union[GeneratedAnswer, tuple[str, Sequence[str], Sequence[str]]]
Generator = Callable[[str], GeneratorResult]


def as_generator(fn: Generator) -> Callable[[str], GeneratedAnswer]:
    """Wrap a ``question -> GeneratedAnswer | (text, contexts, ids)`` callable; measures latency."""
    if not callable(fn):
        raise ValueError(f"generator must be callable, got {type(fn).__name__}")

    def generate(question: str) -> GeneratedAnswer:
        t0 = time.perf_counter()
        out = fn(question)
        ms = 1000.0 * (time.perf_counter() - t0)
        if isinstance(out, GeneratedAnswer):
            return out if out.latency_ms else GeneratedAnswer(out.text, out.contexts, out.context_ids, ms,
                                                              out.metadata)
        if isinstance(out, tuple) and len(out) == 3:
            text, contexts, ids = out
            return GeneratedAnswer(str(text), tuple(str(c) for c in contexts), tuple(str(i) for i in ids), ms)
        raise ValueError("a generator must return GeneratedAnswer or (answer_text, context_texts, context_ids), "
                         f"got {type(out).__name__}")

    return generate


def dataset_doc_id(source: str) -> str:
    """Benchmark chunk source ``"dataset:doc_id"`` -> ``"doc_id"`` (see :mod:`rag_eval.retrieval`).

    Example:
        >>> dataset_doc_id("cranfield:184"), dataset_doc_id("notes/a.txt")
        ('184', 'notes/a.txt')
    """
    name, sep, rest = source.partition(":")
    return rest if sep and name and "/" not in name and "\\" not in name else source


def answerer_generator(answerer: Any, id_of: Callable[[Any], str] | None = None) -> Callable[[str], GeneratedAnswer]:
    """Adapter: a :class:`rag.answer.answerer.Answerer` as a generator.

    The contexts are the chunks that went into the prompt (``Answer.sources``; the quoted ones
    in extractive mode); a "not found" answer has no contexts.
    ``id_of(chunk)`` names a context for ID-based metrics (default: the document id from the
    chunk source, :func:`dataset_doc_id`).

    Example (runs the real models)::

        from rag.index.store import IndexStore
        from rag.pipeline import PipelineConfig, RetrievalConfig, build
        pipeline = build(PipelineConfig(index="docs", retrieval=RetrievalConfig(k=3)), IndexStore())
        gen = answerer_generator(pipeline.answerer)
        print(gen("what is a boundary layer?").text)
    """
    ident = id_of or (lambda chunk: dataset_doc_id(chunk.source))

    def generate(question: str) -> GeneratedAnswer:
        t0 = time.perf_counter()
        answer = answerer.answer(question)
        ms = 1000.0 * (time.perf_counter() - t0)
        chunks = [] if answer.declined else [c.chunk for c in (answer.sources or answer.citations)]
        d = answer.diagnostics
        meta = {"grounded": bool(answer.grounded), "mode": str(answer.mode),
                "citations": [c.number for c in answer.citations], "reason": d.reason, "retrieved": d.retrieved,
                "relevant": d.relevant, "prompt_tokens": d.prompt_tokens, "truncated": d.truncated}
        return GeneratedAnswer(text=answer.text, contexts=tuple(c.text for c in chunks),
                               context_ids=tuple(ident(c) for c in chunks), latency_ms=ms, metadata=meta)

    return generate


def questions_from_dataset(ds: Dataset, limit: int | None = None, seed: int = 0,
                           max_reference_contexts: int = 3) -> list[QuestionSample]:
    """Judged queries of a benchmark as question samples (a seeded random subset if ``limit``).

    ``reference_ids`` are the relevant documents (gain > 0), most relevant first;
    ``reference_contexts`` are the texts of the top ``max_reference_contexts`` of them.

    Example:
        >>> from rag_eval.datasets import BenchDocument
        >>> ds = Dataset("toy", (BenchDocument("d1", "T", "Lift grows with speed."),),
        ...              {"q1": "what grows lift?"}, {"q1": {"d1": 2}})
        >>> questions_from_dataset(ds)[0].reference_ids
        ('d1',)
    """
    positive_int("limit", limit, optional=True)
    texts = {d.doc_id: (f"{d.title}\n{d.text}" if d.title and d.title not in d.text else d.text)
             for d in ds.documents}
    samples = []
    for qid, question in ds.queries.items():
        judged = ds.qrels.get(qid, {})
        relevant = [d for d, g in sorted(judged.items(), key=lambda kv: (-kv[1], kv[0])) if g > 0]
        if not relevant or not question.strip():
            continue
        samples.append(QuestionSample(
            qid=qid, question=question, reference_ids=tuple(relevant),
            reference_contexts=tuple(texts[d] for d in relevant[:max_reference_contexts] if d in texts)))
    if limit is not None and limit < len(samples):
        picked = sorted(random.Random(seed).sample(range(len(samples)), limit))
        samples = [samples[i] for i in picked]
    return samples


def load_questions(path: str | Path, limit: int | None = None) -> list[QuestionSample]:
    """Read a JSONL question set: ``{"question": ..., "id"?, "reference"?, "reference_ids"?,
    "reference_contexts"?}`` per line."""
    path = Path(path)
    samples = []
    for lineno, r in read_jsonl(path, what="a 'question' string", check=lambda r: isinstance(r.get("question"), str)):
        samples.append(QuestionSample(
            qid=str(r.get("id", lineno)), question=str(r["question"]),
            reference=(str(r["reference"]) if r.get("reference") else None),
            reference_ids=tuple(str(x) for x in r.get("reference_ids", ())),  # type: ignore[attr-defined]
            reference_contexts=tuple(str(x) for x in r.get("reference_contexts", ()))))  # type: ignore[attr-defined]
        if limit is not None and len(samples) >= limit:
            break
    if not samples:
        raise ValueError(f"{path} has no questions")
    return samples
