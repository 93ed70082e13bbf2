"""An OpenAI-compatible HTTP API over the answer pipeline (``rag serve``): FastAPI, served by uvicorn.

Endpoints (the official ``openai`` client works unchanged on the first three):

* ``GET /v1/models``: every collection as ``rag:NAME``, the served chat model (its id selects the
  default collection) and the embedder.
* ``POST /v1/chat/completions``: non-streaming, or streaming as server-sent events (``data: {...}``
  chunks, then ``data: [DONE]``).  The last message is the question, the earlier user/assistant turns
  the history (follow-ups are condensed).  The sources, the checked answer text and the
  supported/unsupported sentence marks are in the extension field ``rag``
  (:class:`~rag.serve.schemas.RagExtension`), on the completion or on the last streamed chunk.
* ``POST /v1/embeddings`` with the packaged embedder (``float`` or ``base64``).
* ``POST /v1/search`` (not OpenAI): ranked chunks, with every retrieval option of ``rag search``.
* ``GET /health`` (never needs a key) and ``GET /openapi.json``.  No ``/docs`` page: it would load
  scripts from a CDN.

Safety: with an API key every other path needs ``Authorization: Bearer KEY``; without one (loopback
only, :mod:`rag.cli.serve` refuses anything else) the ``Host`` header must be a loopback name, so a
web page cannot reach the API through DNS rebinding.  POST bodies must be JSON, at most
``Limits.max_body_bytes``; requests over the limits get a 400, unknown models and collections a 404,
too many answers at once a 429, all as OpenAI error objects; a server fault is logged and answered
with a 500 that holds no traceback.  No CORS unless origins are given.  A client that disconnects
stops its generation (:meth:`~rag.serve.service.AnswerJob.cancel`).

Example (loads the real models)::

    import uvicorn
    from rag.index.store import IndexStore
    from rag.pipeline import PipelineConfig
    from rag.serve.service import RagService
    service = RagService(IndexStore(), PipelineConfig(index="samples")).load()
    uvicorn.run(create_app(service, ApiSettings()), host="127.0.0.1", port=8000)
"""

# No `from __future__ import annotations`: FastAPI must see the request models made in create_app().
import asyncio
import base64
import hmac
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Sequence

import anyio
import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from rag.generation.models import ModelError
from rag.index.store import IndexError_
from rag.pipeline import RetrievalConfig
from rag.serve import schemas
from rag.serve.schemas import Limits
from rag.serve.service import AnswerJob, RagService, SourcePaths, UnknownCollectionError
from rag.types import Answer, AnswerMode, Citation, Hit

logger = logging.getLogger(__name__)

COLLECTION_PREFIX = "rag:"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
PUBLIC_PATHS = ("/health",)
_TELEMETRY_OFF = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False,
                  "auto_configure": False}


@dataclass(frozen=True)
class ApiSettings:
    """How the API guards itself.

    Args:
        api_key: required as ``Authorization: Bearer KEY`` on every path but ``/health`` (None: no key).
        limits: request size and content limits (:class:`~rag.serve.schemas.Limits`).
        max_concurrent: answers in progress at once (queued on the one model); more get a 429.
        allowed_hosts: ``Host`` header names accepted; empty: any (the key protects a public bind).
        cors_origins: browser origins allowed to call the API (none by default).
    """

    api_key: str | None = None
    limits: Limits = field(default_factory=Limits)
    max_concurrent: int = 16
    allowed_hosts: tuple[str, ...] = LOOPBACK_NAMES
    cors_origins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("api_key must not be empty; omit it to run without a key (loopback only)")
        if not isinstance(self.max_concurrent, int) or self.max_concurrent <= 0:
            raise ValueError(f"max_concurrent must be a positive integer, got {self.max_concurrent!r}")


class ApiError(Exception):
    """An error answered as an OpenAI error object with ``status``."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse(status_code=self.status, headers=headers, content=error_body(
            self.message, self.type, self.code, self.param))


def error_body(message: str, type: str = "invalid_request_error", code: str | None = None,
               param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def host_name(header: str) -> str:
    """The host of a ``Host`` header, without the port (``[::1]:8000`` -> ``::1``).

    Example:
        >>> host_name("127.0.0.1:8000"), host_name("[::1]:8000"), host_name("LocalHost")
        ('127.0.0.1', '::1', 'localhost')
    """
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class Guard:
    """ASGI middleware: ``Host`` check, API key, JSON content type — before anything else runs."""

    def __init__(self, app: ASGIApp, settings: ApiSettings) -> None:
        self.app = app
        self.settings = settings
        self.hosts = {h.lower() for h in settings.allowed_hosts}
        self.key = settings.api_key.encode("utf-8") if settings.api_key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = self.check(scope)
        if problem is not None:
            await problem.response()(scope, receive, send)
            return
        await self.app(scope, self.limited(receive), send)

    def limited(self, receive: Receive) -> Receive:
        """``receive`` that fails with a 413 once the body passes the limit (chunked or lying clients)."""
        limit, seen = self.settings.limits.max_body_bytes, 0

        async def receive_limited() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise StarletteHTTPException(413)
            return message

        return receive_limited

    def check(self, scope: Scope) -> ApiError | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.hosts and host_name(headers.get("host", "")) not in self.hosts:
            return ApiError(400, f"Host header {headers.get('host', '')!r} is not allowed; "
                                 "call the API as localhost or 127.0.0.1", code="invalid_host")
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.settings.limits.max_body_bytes:
            return ApiError(413, f"request body is over the {self.settings.limits.max_body_bytes} byte limit",
                            code="request_too_large")
        method, path = scope.get("method", "GET"), scope.get("path", "")
        if self.key is not None and path not in PUBLIC_PATHS and method != "OPTIONS":
            auth = headers.get("authorization", "")
            scheme, _, token = auth.partition(" ")
            if not auth:
                return ApiError(401, "missing API key: send the header 'Authorization: Bearer KEY'",
                                code="invalid_api_key")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode("utf-8"), self.key):
                return ApiError(401, "incorrect API key", code="invalid_api_key")
        if method in ("POST", "PUT", "PATCH"):
            ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if ctype != "application/json":
                return ApiError(415, f"the request body must be JSON (Content-Type: application/json), "
                                     f"got {ctype or 'no content type'!r}", code="unsupported_media_type")
        return None


# -- mapping answers to the wire format ---------------------------------------------------------------

def source_ref(c: Citation, paths: SourcePaths) -> dict[str, Any]:
    ch = c.chunk
    start, end = c.span
    return {"number": c.number, "chunk_id": ch.id, "source": paths.relative(ch.source), "title": ch.title,
            "page": ch.page, "start": ch.start, "end": ch.end, "score": float(c.score), "text": ch.text,
            "quote_start": start, "quote_end": end, "quote": c.quote}


def rag_extension(answer: Answer, paths: SourcePaths, collection: str) -> dict[str, Any]:
    d = answer.diagnostics
    return {
        "collection": collection, "text": answer.text, "mode": str(answer.mode),
        "standalone_query": answer.standalone_query, "grounded": answer.grounded, "declined": answer.declined,
        "citations": [source_ref(c, paths) for c in answer.citations],
        "sources": [source_ref(c, paths) for c in answer.sources],
        "support": [{"sentence": s.sentence, "citation": s.citation, "similarity": float(s.similarity),
                     "supported": bool(s.supported)} for s in answer.support],
        "diagnostics": {
            "retrieved": d.retrieved, "relevant": d.relevant, "reason": d.reason,
            "rewrite_method": d.rewrite_method, "explicit_citations": list(d.explicit_citations),
            "inferred_citations": list(d.inferred_citations), "invalid_citations": list(d.invalid_citations),
            "foreign_urls": list(d.foreign_urls), "suspicious_sources": list(d.suspicious_sources),
            "prompt_tokens": int(d.prompt_tokens), "decision": d.decision, "decision_score": d.decision_score,
            "decision_threshold": d.decision_threshold, "decision_rule": d.decision_rule,
            "answer_check": d.answer_check, "timings": {k: float(v) for k, v in d.timings.items()}},
    }


def usage(answer: Answer, pieces: int) -> dict[str, int]:
    """Token counts: the budgeted prompt, and the streamed pieces (llama.cpp streams one token per piece)."""
    prompt = int(answer.diagnostics.prompt_tokens)
    generated = answer.mode is not AnswerMode.EXTRACTIVE or bool(answer.diagnostics.fallback)  # quotes after text
    completion = pieces if generated and prompt else 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def hit_dict(h: Hit, paths: SourcePaths) -> dict[str, Any]:
    ch = h.chunk
    return {"rank": h.rank, "score": float(h.score), "scores": {k: float(v) for k, v in h.scores.items()},
            "chunk_id": ch.id, "source": paths.relative(ch.source), "title": ch.title, "page": ch.page,
            "start": ch.start, "end": ch.end, "text": ch.text}


def job_error(exc: BaseException) -> ApiError:
    """The status and error object for an exception raised while answering or retrieving."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, UnknownCollectionError):
        return ApiError(404, str(exc), code="model_not_found", param="model")
    if isinstance(exc, ValueError):  # bad options, a context overflow, an index built with another embedder
        return ApiError(400, " ".join(str(exc).split()))
    if isinstance(exc, (IndexError_, ModelError)):
        logger.error("collection or model unavailable: %s", exc)
        return ApiError(503, " ".join(str(exc).split()), type="server_error", code="unavailable")
    logger.error("internal error while answering", exc_info=exc)
    return ApiError(500, "internal server error; the server log has the details", type="server_error")


# -- the app ------------------------------------------------------------------------------------------

class _Generations:
    """Answers in progress (for the 429 limit) and how earlier ones ended (for ``/health``); event loop only."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = self.completed = self.cancelled = self.failed = 0

    def begin(self) -> None:
        if self.active >= self.limit:
            raise ApiError(429, f"{self.limit} answers are already in progress; retry shortly",
                           type="rate_limit_error", code="server_busy")
        self.active += 1

    def end(self, job: AnswerJob, ok: bool) -> None:
        """The request is over: stop the job if it still runs (the client left) and count the outcome."""
        self.active -= 1
        if ok:
            self.completed += 1
            return
        job.cancel()
        if job.failed:
            self.failed += 1
        else:
            self.cancelled += 1
            logger.info("answer stopped before its end (the client disconnected)")

    def stats(self) -> dict[str, int]:
        return {"active": self.active, "completed": self.completed, "cancelled": self.cancelled,
                "failed": self.failed}


class JobStream(StreamingResponse):
    """Server-sent events of one answer; ``on_close`` runs however the response ends (a disconnect too)."""

    def __init__(self, content: AsyncIterator[str], on_close: Any) -> None:
        super().__init__(content, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


def create_app(service: RagService, settings: ApiSettings | None = None) -> FastAPI:
    """The FastAPI app over a loaded :class:`~rag.serve.service.RagService`."""
    settings = settings or ApiSettings()
    limits = settings.limits
    req = schemas.request_models(limits, service.default_collection)
    ChatRequest, EmbeddingRequest, SearchRequest = req.ChatRequest, req.EmbeddingRequest, req.SearchRequest
    generations = _Generations(settings.max_concurrent)

    app = FastAPI(title="rag: local question answering over your documents", version="1",
                  description=__doc__.split("\n\n")[0] if __doc__ else "", docs_url=None, redoc_url=None,
                  telemetry=_TELEMETRY_OFF)  # type: ignore[arg-type]

    # -- errors: always OpenAI's error object ------------------------------------------------------
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_error(exc.errors()).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        messages = {404: "no such endpoint; see GET /openapi.json", 405: "method not allowed on this endpoint",
                    413: f"request body is over the {limits.max_body_bytes} byte limit"}
        code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(exc.status_code)
        return ApiError(exc.status_code, messages.get(exc.status_code, str(exc.detail)), code=code).response()

    @app.exception_handler(Exception)
    async def _fault(_request: Request, exc: Exception) -> JSONResponse:  # Starlette logs the traceback
        return ApiError(500, "internal server error; the server log has the details", type="server_error").response()

    # -- endpoints ----------------------------------------------------------------------------------
    @app.get("/health", response_model=schemas.Health, tags=["meta"])
    async def health() -> dict[str, Any]:
        """Liveness, what is served, and the answers in progress; needs no key."""
        return {"status": "ok", "default_collection": service.default_collection,
                "chat_model": None if service.extractive else service.chat_model_id,
                "embedding_model": service.embedding_model_ids[0], "generations": generations.stats()}

    @app.get("/v1/models", response_model=schemas.ModelList, tags=["openai"])
    async def models() -> dict[str, Any]:
        """Collections as ``rag:NAME``, the served chat model (the default collection) and the embedder."""
        names = await anyio.to_thread.run_sync(service.collections)
        now = int(time.time())
        data = [{"id": f"{COLLECTION_PREFIX}{n}", "created": now, "owned_by": "rag",
                 "rag": {"kind": "collection", "collection": n}} for n in names]
        if not service.extractive:
            data.append({"id": service.chat_model_id, "created": now, "owned_by": "llama.cpp",
                         "rag": {"kind": "chat", "collection": service.default_collection}})
        data.append({"id": service.embedding_model_ids[0], "created": now, "owned_by": "sentence-transformers",
                     "rag": {"kind": "embedding"}})
        return {"object": "list", "data": data}

    @app.post("/v1/chat/completions", response_model=schemas.ChatCompletion, tags=["openai"],
              responses={200: {"content": {"text/event-stream": {"schema": SSE_EVENT}}}})
    async def chat_completions(body: ChatRequest, request: Request) -> Any:  # type: ignore[valid-type]
        """Answer the last user message from a collection, with the earlier turns as chat history."""
        b: Any = body  # a model made in this function: no static type
        collection = resolve_collection(service, b.collection or b.model,
                                        explicit=b.collection is not None)
        question, history = conversation(b.messages)
        max_tokens = b.max_completion_tokens or b.max_tokens
        generations.begin()
        job = service.answer_job(collection, question, history, max_tokens=max_tokens,
                                 temperature=b.temperature, seed=b.seed)
        outcome = {"ok": False, "streaming": False}
        try:
            job.start()
            watcher = asyncio.create_task(_cancel_on_disconnect(request, job))
            try:
                kind, value = await job.next_event()
                first = (kind, value)
                while not b.stream and kind == "piece":
                    kind, value = await job.next_event()
            finally:
                watcher.cancel()
            if kind == "error":
                raise job_error(value)
            if kind == "cancelled":
                raise ApiError(400, "the client disconnected", code="cancelled")
            meta = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "created": int(time.time()),
                    "model": b.model}
            limit = max_tokens or service.config.generation.max_tokens
            if b.stream:
                include_usage = bool(b.stream_options and b.stream_options.include_usage)
                outcome["streaming"] = True  # the response ends the job from here
                return JobStream(sse(job, first, meta, collection, limit, include_usage, outcome),
                                 on_close=lambda: generations.end(job, outcome["ok"]))
            answer, paths = value
            outcome["ok"] = True
            return JSONResponse({**meta, "object": "chat.completion", "choices": [{
                "index": 0, "message": {"role": "assistant", "content": answer.text},
                "finish_reason": finish_reason(answer, job.pieces, limit), "logprobs": None}],
                "usage": usage(answer, job.pieces), "rag": rag_extension(answer, paths, collection)})
        finally:
            if not outcome["streaming"]:
                generations.end(job, outcome["ok"])

    @app.post("/v1/embeddings", response_model=schemas.EmbeddingList, tags=["openai"])
    async def embeddings(body: EmbeddingRequest) -> dict[str, Any]:  # type: ignore[valid-type]
        """Embed text with the packaged embedder (the one the collections are indexed with)."""
        b: Any = body  # a model made in this function: no static type
        if b.model not in service.embedding_model_ids:
            raise ApiError(404, f"model {b.model!r} is not an embedding model of this server; "
                                f"use {service.embedding_model_ids[0]!r}", code="model_not_found", param="model")
        dim = service.embedder.dim
        if b.dimensions is not None and b.dimensions != dim:
            raise ApiError(400, f"dimensions must be {dim} (the embedder's), got {b.dimensions}",
                           param="dimensions")
        texts = b.texts()
        vectors = await anyio.to_thread.run_sync(service.embed, texts)
        tokens = await anyio.to_thread.run_sync(count_embedding_tokens, service, texts)
        data = [{"object": "embedding", "index": i,
                 "embedding": (base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode("ascii")
                               if b.encoding_format == "base64" else [float(x) for x in v])}
                for i, v in enumerate(vectors)]
        return {"object": "list", "data": data, "model": b.model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    @app.post("/v1/search", response_model=schemas.SearchResult, tags=["rag"])
    async def search(body: SearchRequest) -> dict[str, Any]:  # type: ignore[valid-type]
        """Ranked chunks for a query (``rag search`` over HTTP), with every retrieval option."""
        b: Any = body  # a model made in this function: no static type
        name = b.collection or service.default_collection
        if name.startswith(COLLECTION_PREFIX):
            name = name[len(COLLECTION_PREFIX):]
        if not service.has_collection(name):
            raise ApiError(404, service.unknown_message(name), code="collection_not_found", param="collection")
        allowed = {None, "auto", service.config.retrieval.reranker}
        if b.reranker not in allowed:
            raise ApiError(400, "reranker must be null, 'auto' (the collection's trained reranker)"
                                + (f" or {service.config.retrieval.reranker!r}" if service.config.retrieval.reranker
                                   else "") + "; start the server with --reranker to use another",
                           param="reranker")
        config = RetrievalConfig(mode=b.mode, fusion=b.fusion, rrf_k=b.rrf_k, alpha=b.alpha,
                                 candidates=b.candidates, reranker=b.reranker,
                                 rerank_candidates=b.rerank_candidates, k=b.k)
        try:
            hits, paths = await anyio.to_thread.run_sync(service.search, name, b.query, config)
        except Exception as exc:  # noqa: BLE001 - mapped to a status
            raise job_error(exc) from None
        return {"object": "list", "collection": name, "query": b.query,
                "data": [hit_dict(h, paths) for h in hits]}

    app.openapi = lambda: openapi_schema(app, settings)  # type: ignore[method-assign]
    if settings.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["GET", "POST"], allow_headers=["authorization", "content-type"])
    app.add_middleware(Guard, settings=settings)
    return app


async def _cancel_on_disconnect(request: Request, job: AnswerJob) -> None:
    """Cancel ``job`` when the client goes away (the body is read, so the next message is the disconnect)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            job.cancel()
            return


def finish_reason(answer: Answer, pieces: int, max_tokens: int) -> str:
    return "length" if answer.mode is AnswerMode.GENERATIVE and pieces >= max_tokens else "stop"


async def sse(job: AnswerJob, first: tuple[str, Any], meta: dict[str, Any], collection: str, max_tokens: int,
              include_usage: bool, outcome: dict[str, bool]) -> AsyncIterator[str]:
    """The ``data:`` events of a streamed completion: role, pieces, the finish with ``rag``, ``[DONE]``."""
    def event(payload: dict[str, Any]) -> str:
        return f"data: {json.dumps(payload, ensure_ascii=False, separators=(',', ':'))}\n\n"

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        return event({**meta, "object": "chat.completion.chunk",
                      "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra})

    yield chunk({"role": "assistant", "content": ""})
    kind, value = first
    while kind == "piece":
        yield chunk({"content": value})
        kind, value = await job.next_event()
    if kind == "done":
        answer, paths = value
        yield chunk({}, finish_reason(answer, job.pieces, max_tokens), rag=rag_extension(answer, paths, collection))
        if include_usage:
            yield event({**meta, "object": "chat.completion.chunk", "choices": [],
                         "usage": usage(answer, job.pieces)})
    elif kind == "error":  # the status is sent already: an error event, which the openai client raises
        err = job_error(value)
        yield event(error_body(err.message, err.type, err.code, err.param))
    yield "data: [DONE]\n\n"
    outcome["ok"] = kind == "done"


def resolve_collection(service: RagService, model: str, explicit: bool = False) -> str:
    """The collection a chat request's ``model`` (or explicit ``collection``) selects; 404 otherwise."""
    if model.startswith(COLLECTION_PREFIX):
        name = model[len(COLLECTION_PREFIX):]
    elif explicit:
        name = model
    elif model in (service.chat_model_id, "rag"):
        name = service.default_collection
    else:
        ids = ", ".join([f"{COLLECTION_PREFIX}{n}" for n in service.collections()] + [service.chat_model_id])
        raise ApiError(404, f"model {model!r} does not exist; available: {ids} (GET /v1/models)",
                       code="model_not_found", param="model")
    if not service.has_collection(name):
        raise ApiError(404, service.unknown_message(name), code="model_not_found", param="model")
    return name


def conversation(messages: Sequence[Any]) -> tuple[str, list[dict[str, str]]]:
    """The question (the last message, from the user) and the history (earlier user/assistant turns)."""
    last = messages[-1]
    if last.role != "user":
        raise ApiError(400, f"the last message must be the user's question, got role {last.role!r}",
                       param="messages")
    question = last.text().strip()
    if not question:
        raise ApiError(400, "the last message (the question) is empty", param="messages")
    history = [{"role": m.role, "content": m.text()} for m in messages[:-1]
               if m.role in ("user", "assistant") and m.text().strip()]
    return question, history


def count_embedding_tokens(service: RagService, texts: Sequence[str]) -> int:
    tokenizer = service.embedder.tokenizer
    return int(sum(len(ids) for ids in tokenizer(list(texts), truncation=True)["input_ids"]))


def validation_error(errors: Sequence[Any]) -> ApiError:
    """A 400 naming the first invalid field (OpenAI answers 400, not FastAPI's 422)."""
    if not errors:
        return ApiError(400, "invalid request")
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p != "body" and _FIELD.match(str(p))]
    if first.get("type") == "json_invalid":
        return ApiError(400, f"the request body is not valid JSON ({first.get('ctx', {}).get('error', '')})",
                        code="invalid_json")
    param = ".".join(loc) or None
    msg = str(first.get("msg", "invalid value"))
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return ApiError(400, f"{param}: {msg}{more}" if param else f"{msg}{more}", param=param)


# Open API 3.1: the `schema` of an event stream describes one event (`data:` lines joined).
SSE_EVENT = {"type": "object", "required": ["data"], "description": (
    "with stream=true: one server-sent event per chunk, `data: <ChatCompletionChunk JSON>`; the last chunk with a "
    "finish_reason carries `rag`; an error mid-stream is `data: <ErrorResponse JSON>`; the stream ends with "
    "`data: [DONE]`"), "properties": {
    "data": {"anyOf": [{"const": "[DONE]"}, {
        "type": "string", "contentMediaType": "application/json", "contentSchema": {"anyOf": [
            {"$ref": "#/components/schemas/ChatCompletionChunk"}, {"$ref": "#/components/schemas/ErrorResponse"}]}}]},
    "event": {"type": "string"}, "id": {"type": "string"}, "retry": {"type": "integer"}}}
_FIELD = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+)$")  # drops pydantic's union-branch labels
_ERRORS = {"400": "invalid request (OpenAI error object)", "401": "missing or incorrect API key",
           "404": "unknown model, collection or path", "413": "request body too large",
           "415": "the body is not JSON", "429": "too many answers in progress",
           "500": "server fault (logged; no traceback)", "503": "collection or model unavailable"}


def openapi_schema(app: FastAPI, settings: ApiSettings) -> dict[str, Any]:
    """FastAPI's schema with this API's real error responses (OpenAI error objects, 400 not 422) and auth."""
    if app.openapi_schema:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (schemas.ErrorResponse, schemas.ChatCompletionChunk):  # bodies no route declares
        components[model.__name__] = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in components[model.__name__].pop("$defs", {}).items():
            components.setdefault(name, sub)
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    error_ref = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
    for path, ops in schema.get("paths", {}).items():
        for op in ops.values():
            responses = op.setdefault("responses", {})
            responses.pop("422", None)
            codes = ["400", "404"] + (["401"] if settings.api_key and path not in PUBLIC_PATHS else [])
            if "requestBody" in op:
                codes += ["413", "415"]
            if path == "/v1/chat/completions":
                codes += ["429"]
            codes += ["500", "503"]
            for code in codes:
                responses.setdefault(code, {"description": _ERRORS[code], "content": error_ref})
            if settings.api_key and path not in PUBLIC_PATHS:
                op["security"] = [{"bearer": []}]
    if settings.api_key:
        schema["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    app.openapi_schema = schema
    return schema
