"""The streamed chat answer: server-sent events of :class:`~rag.serve.schemas.ChatCompletionChunk`.

The first chunk has the role, then one chunk a piece of the model's output, then, when the checks
changed the text after it streamed, one chunk with what the streamed text lacks
(:func:`~rag.answer.stream.catch_up`: the ``[n]`` markers the support check added, or the answer that
replaced the streamed one), then the chunk with the ``finish_reason`` and the ``rag`` extension, the
usage chunk (``stream_options.include_usage``) and ``data: [DONE]``.  A turn the request asks to save
is saved when the answer is complete, before that last chunk; a client that disconnects earlier saves
nothing.  An error after the status went
out is an error event (the ``openai`` client raises it).  Every event is built from the schema models.
"""

from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable

from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from rag.answer.stream import catch_up
from rag.serve import schemas
from rag.serve.errors import job_error
from rag.serve.responses import chunk, finish_reason, rag_extension_model, sse_event, usage_chunk
from rag.serve.saving import Saved
from rag.serve.service import AnswerJob, Event
from rag.types import Answer

DONE = "data: [DONE]\n\n"


@dataclass
class Outcome:
    """How a chat request ended: ``ok`` once its answer is out; ``streaming`` once the stream owns the job."""

    ok: bool = False
    streaming: bool = False


@dataclass(frozen=True)
class StreamSpec:
    """What the stream's chunks say: ``meta`` (id, created, model), the collection, the token limit; ``save``
    saves the completed answer (before the last chunk, which says the chat's id or why it was not saved)."""

    meta: dict[str, Any]
    collection: str
    max_tokens: int
    include_usage: bool
    save: Callable[[Answer], Awaitable[Saved | None]] | None = None


class JobStream(StreamingResponse):
    """Server-sent events of one answer; ``on_close`` runs however the response ends (a disconnect too)."""

    def __init__(self, content: AsyncIterator[str], on_close: Callable[[], None]) -> None:
        super().__init__(content, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


def final_events(job: AnswerJob, spec: StreamSpec, value: Any, saved: Saved | None = None) -> list[str]:
    """The chunk with the ``finish_reason`` and ``rag``, and the usage chunk if asked."""
    answer, paths = value
    finish = finish_reason(answer, job.pieces, spec.max_tokens)
    rag = rag_extension_model(answer, paths, spec.collection, saved)
    events = [sse_event(chunk(spec.meta, finish=finish, rag=rag))]
    if spec.include_usage:
        events.append(sse_event(usage_chunk(spec.meta, answer, job.pieces)))
    return events


async def sse(job: AnswerJob, first: Event, spec: StreamSpec, outcome: Outcome) -> AsyncIterator[str]:
    """The ``data:`` events of a streamed completion: role, pieces, catch-up, the finish with ``rag``, ``[DONE]``."""
    yield sse_event(chunk(spec.meta, schemas.Delta(role="assistant", content="")))
    kind, value = first
    shown: list[str] = []
    while kind == "piece":
        shown.append(value)
        yield sse_event(chunk(spec.meta, schemas.Delta(content=value)))
        kind, value = await job.next_event()
    if kind == "done":
        saved = await spec.save(value[0]) if spec.save is not None else None  # never raises
        try:
            rest = catch_up("".join(shown), value[0])
            events = [sse_event(chunk(spec.meta, schemas.Delta(content=rest)))] if rest else []
            events += final_events(job, spec, value, saved)
        except Exception as exc:  # noqa: BLE001 - a response off the schema: a logged 500 event
            job.failed = True  # the answer is lost (a server fault), not cancelled
            kind, value = "error", exc
        else:
            for event in events:
                yield event
    if kind == "error":  # the status is sent already: an error event, which the openai client raises
        yield sse_event(job_error(value).body())
    yield DONE
    outcome.ok = kind == "done"
