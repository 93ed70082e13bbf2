"""Answers, hits and vectors as the API's response models (:mod:`rag.serve.schemas`), and those as JSON.

Every body the API sends is one of these models, validated when it is built, so a response that
does not match the OpenAPI schema fails in the server (a logged 500), not in the client.
:func:`rag_extension` is also ``rag ask --json``'s output.

Example:
    >>> usage_of(prompt_tokens=12, completion_tokens=3).model_dump()
    {'prompt_tokens': 12, 'completion_tokens': 3, 'total_tokens': 15}
    >>> payload(schemas.Delta(content="Hi"))
    {'content': 'Hi'}
"""

from __future__ import annotations

import base64
import json
from typing import Any, Sequence

import numpy as np
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from rag.serve import schemas
from rag.serve.saving import Saved
from rag.serve.service import SourcePaths
from rag.types import Answer, AnswerMode, Citation, Hit


def payload(model: BaseModel) -> dict[str, Any]:
    """The JSON object of a response model (fields OpenAI leaves out when None are left out)."""
    return model.model_dump(mode="json")


def json_response(model: BaseModel) -> JSONResponse:
    return JSONResponse(payload(model))


def sse_event(model: BaseModel) -> str:
    """One server-sent event, ``data: <compact JSON>``."""
    return f"data: {json.dumps(payload(model), ensure_ascii=False, separators=(',', ':'))}\n\n"


# -- answers -------------------------------------------------------------------------------------------

def source_ref(c: Citation, paths: SourcePaths) -> schemas.SourceRef:
    ch = c.chunk
    start, end = c.span
    return schemas.SourceRef(number=c.number, chunk_id=ch.id, source=paths.relative(ch.source), title=ch.title,
                             page=ch.page, start=ch.start, end=ch.end, score=float(c.score), text=ch.text,
                             quote_start=start, quote_end=end, quote=c.quote)


def withheld_ref(h: Hit, paths: SourcePaths) -> schemas.WithheldRef:
    ch = h.chunk
    return schemas.WithheldRef(chunk_id=ch.id, source=paths.relative(ch.source), title=ch.title, page=ch.page,
                               start=ch.start, end=ch.end, rank=h.rank, score=float(h.score), text=ch.text)


def diagnostics(answer: Answer) -> schemas.RagDiagnostics:
    d = answer.diagnostics
    return schemas.RagDiagnostics(
        retrieved=d.retrieved, relevant=d.relevant, reason=d.reason, rewrite_method=d.rewrite_method,
        explicit_citations=list(d.explicit_citations), inferred_citations=list(d.inferred_citations),
        invalid_citations=list(d.invalid_citations), foreign_urls=list(d.foreign_urls),
        suspicious_sources=list(d.suspicious_sources), prompt_tokens=int(d.prompt_tokens), decision=d.decision,
        decision_score=d.decision_score, decision_threshold=d.decision_threshold, decision_rule=d.decision_rule,
        answer_check=d.answer_check, timings={k: float(v) for k, v in d.timings.items()})


def rag_extension_model(answer: Answer, paths: SourcePaths, collection: str,
                        saved: Saved | None = None) -> schemas.RagExtension:
    """The ``rag`` extension of a completion: the checked answer, its sources, the support marks, and
    (``saved``) the saved chat's id or why the turn was not saved."""
    saved = saved or Saved()
    return schemas.RagExtension(
        collection=collection, text=answer.text, mode=str(answer.mode), standalone_query=answer.standalone_query,
        grounded=answer.grounded, declined=answer.declined,
        citations=[source_ref(c, paths) for c in answer.citations],
        sources=[source_ref(c, paths) for c in answer.sources],
        support=[schemas.SupportMark(sentence=s.sentence, citation=s.citation, similarity=float(s.similarity),
                                     supported=bool(s.supported)) for s in answer.support],
        withheld=[withheld_ref(h, paths) for h in answer.diagnostics.withheld],
        diagnostics=diagnostics(answer), chat_id=saved.chat_id, warnings=list(saved.warnings) or None)


def rag_extension(answer: Answer, paths: SourcePaths, collection: str) -> dict[str, Any]:
    """:func:`rag_extension_model` as its JSON object (``rag ask --json``)."""
    return payload(rag_extension_model(answer, paths, collection))


def usage_of(prompt_tokens: int, completion_tokens: int) -> schemas.Usage:
    return schemas.Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                         total_tokens=prompt_tokens + completion_tokens)


def usage(answer: Answer, pieces: int) -> schemas.Usage:
    """Token counts: the budgeted prompt, and the streamed pieces (llama.cpp streams one token per piece)."""
    prompt = int(answer.diagnostics.prompt_tokens)
    generated = answer.mode is not AnswerMode.EXTRACTIVE or bool(answer.diagnostics.fallback)  # quotes after text
    return usage_of(prompt, pieces if generated and prompt else 0)


def finish_reason(answer: Answer, pieces: int, max_tokens: int) -> str:
    return "length" if answer.mode is AnswerMode.GENERATIVE and pieces >= max_tokens else "stop"


def completion(meta: dict[str, Any], answer: Answer, paths: SourcePaths, collection: str, pieces: int,
               max_tokens: int, saved: Saved | None = None) -> schemas.ChatCompletion:
    """The non-streamed chat completion; ``meta`` is its ``id``, ``created`` and ``model``."""
    choice = schemas.CompletionChoice(index=0, message=schemas.AssistantMessage(content=answer.text),
                                      finish_reason=finish_reason(answer, pieces, max_tokens))
    return schemas.ChatCompletion(**meta, choices=[choice], usage=usage(answer, pieces),
                                  rag=rag_extension_model(answer, paths, collection, saved))


def chunk(meta: dict[str, Any], delta: schemas.Delta | None = None, finish: str | None = None,
          rag: schemas.RagExtension | None = None) -> schemas.ChatCompletionChunk:
    """One streamed chunk: a delta (the role, a piece, or nothing with the ``finish_reason`` and ``rag``)."""
    choice = schemas.ChunkChoice(index=0, delta=delta or schemas.Delta(), finish_reason=finish)
    return schemas.ChatCompletionChunk(**meta, choices=[choice], rag=rag)


def usage_chunk(meta: dict[str, Any], answer: Answer, pieces: int) -> schemas.ChatCompletionChunk:
    """The chunk after the last (``stream_options.include_usage``): no choices, the token counts."""
    return schemas.ChatCompletionChunk(**meta, choices=[], usage=usage(answer, pieces))


# -- search, embeddings ------------------------------------------------------------------------------------

def search_hit(h: Hit, paths: SourcePaths) -> schemas.SearchHit:
    ch = h.chunk
    return schemas.SearchHit(rank=h.rank, score=float(h.score), scores={k: float(v) for k, v in h.scores.items()},
                             chunk_id=ch.id, source=paths.relative(ch.source), title=ch.title, page=ch.page,
                             start=ch.start, end=ch.end, text=ch.text)


def search_result(collection: str, query: str, hits: Sequence[Hit], paths: SourcePaths) -> schemas.SearchResult:
    return schemas.SearchResult(collection=collection, query=query, data=[search_hit(h, paths) for h in hits])


def embedding_list(model: str, vectors: Sequence[Any], tokens: int, encoding: str) -> schemas.EmbeddingList:
    """Vectors as floats, or (``encoding == "base64"``) base64 of little-endian float32."""
    def encode(v: Any) -> list[float] | str:
        if encoding == "base64":
            return base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode("ascii")
        return [float(x) for x in v]

    return schemas.EmbeddingList(
        data=[schemas.EmbeddingItem(index=i, embedding=encode(v)) for i, v in enumerate(vectors)], model=model,
        usage=schemas.EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens))
