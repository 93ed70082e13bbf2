"""``POST /v1/chat/completions``: the last user message answered from a collection, earlier turns as history.

Non-streaming, or streamed as server-sent events (:mod:`rag.serve.routes.chat_stream`).  The answer
runs as an :class:`~rag.serve.service.AnswerJob` on its own thread; a client that disconnects
stops it, and at most ``ApiSettings.max_concurrent`` answers run at once (more get a 429).  A completed
answer is saved to the chat history when the request's ``rag`` asks for it (:mod:`rag.serve.saving`).
"""

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Sequence

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import Response

from rag.serve import schemas
from rag.serve.errors import ApiError, job_error
from rag.serve.openapi import SSE_EVENT
from rag.serve.responses import completion, json_response
from rag.serve.routes.chat_stream import JobStream, Outcome, StreamSpec, sse
from rag.serve.routes.context import COLLECTION_PREFIX, ApiContext, scoped_documents
from rag.serve.saving import Saved, SaveRequest
from rag.serve.service import AnswerJob, Event, RagService
from rag.types import Answer


@dataclass(frozen=True)
class ChatTurn:
    """A chat request, read: the collection, the question, the earlier turns and the sampling settings."""

    collection: str
    question: str
    history: list[dict[str, str]]
    max_tokens: int | None
    temperature: float | None
    seed: int | None


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


def read_turn(service: RagService, body: Any) -> ChatTurn:
    collection = resolve_collection(service, body.collection or body.model, explicit=body.collection is not None)
    question, history = conversation(body.messages)
    return ChatTurn(collection, question, history, max_tokens=body.max_completion_tokens or body.max_tokens,
                    temperature=body.temperature, seed=body.seed)


async def _cancel_on_disconnect(request: Request, job: AnswerJob) -> None:
    """Cancel ``job`` when the client goes away (the body is read, so the next message is the disconnect)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            job.cancel()
            return


async def first_events(job: AnswerJob, request: Request, stream: bool) -> tuple[Event, Event]:
    """The first event and, unless streaming, the last: (first, last); errors raised as their status."""
    watcher = asyncio.create_task(_cancel_on_disconnect(request, job))
    try:
        first = last = await job.next_event()
        while not stream and last[0] == "piece":
            last = await job.next_event()
    finally:
        watcher.cancel()
    if last[0] == "error":
        raise job_error(last[1])
    if last[0] == "cancelled":
        raise ApiError(400, "the client disconnected", code="cancelled")
    return first, last


def turn_saver(ctx: ApiContext, request: SaveRequest | None, turn: ChatTurn,
               unsaved: Saved | None) -> Callable[[Answer], Awaitable[Saved | None]]:
    """What saves the completed answer as the request's ``rag.chat_id`` or ``rag.save`` asks (on a worker
    thread: SQLite may wait for another writer); ``unsaved`` (the history could not be read) is returned as is."""
    started = time.perf_counter()
    model = "extractive" if ctx.service.extractive else ctx.service.chat_model_id

    async def save(result: Answer) -> Saved | None:
        if request is None or unsaved is not None:
            return unsaved
        timings = {**result.diagnostics.timings, "total_s": time.perf_counter() - started}
        return await anyio.to_thread.run_sync(ctx.saver.save, request, turn.collection, result, model, timings)

    return save


async def answer(ctx: ApiContext, body: Any, request: Request) -> Response:
    """Run the answer job and respond: the completion, or the event stream (which then owns the job)."""
    service, generations = ctx.service, ctx.generations
    turn = read_turn(service, body)
    documents = await scoped_documents(service, turn.collection, body.rag)
    save_request = SaveRequest.of(body.rag)
    unsaved = await anyio.to_thread.run_sync(ctx.saver.check, save_request) if save_request else None
    save = turn_saver(ctx, save_request, turn, unsaved)
    generations.begin()
    job = service.answer_job(turn.collection, turn.question, turn.history, max_tokens=turn.max_tokens,
                             temperature=turn.temperature, seed=turn.seed, documents=documents)
    outcome = Outcome()
    try:
        job.start()
        first, last = await first_events(job, request, body.stream)
        meta = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "created": int(time.time()), "model": body.model}
        limit = turn.max_tokens or service.config.generation.max_tokens
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            outcome.streaming = True  # the response ends the job from here
            spec = StreamSpec(meta, turn.collection, limit, include_usage, save=save)
            return JobStream(sse(job, first, spec, outcome), on_close=lambda: generations.end(job, outcome.ok))
        result, paths = last[1]
        saved = await save(result)
        try:
            response = json_response(completion(meta, result, paths, turn.collection, job.pieces, limit, saved))
        except Exception:
            job.failed = True  # a response off the schema: a server fault, answered by the 500 handler
            raise
        outcome.ok = True
        return response
    finally:
        if not outcome.streaming:
            generations.end(job, outcome.ok)


def router(ctx: ApiContext) -> APIRouter:
    api = APIRouter(tags=["openai"])
    ChatRequest = ctx.requests.ChatRequest

    @api.post("/v1/chat/completions", response_model=schemas.ChatCompletion,
              responses={200: {"content": {"text/event-stream": {"schema": SSE_EVENT}}}})
    async def chat_completions(body: ChatRequest, request: Request) -> Response:  # type: ignore[valid-type]
        """Answer the last user message from a collection, with the earlier turns as chat history."""
        return await answer(ctx, body, request)

    return api
