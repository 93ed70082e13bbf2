"""What every route of one app shares: the service, the settings, the request models, the answers in progress."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import SimpleNamespace

import anyio

from rag.chats import chat_store
from rag.serve import schemas
from rag.serve.errors import ApiError
from rag.serve.guard import ApiSettings
from rag.serve.saving import ChatSaver
from rag.serve.service import AnswerJob, RagService

logger = logging.getLogger(__name__)

COLLECTION_PREFIX = "rag:"


class Generations:
    """Answers in progress (for the 429 limit) and how earlier ones ended (for ``/health``); event loop only.

    Example:
        >>> gens = Generations(limit=1)
        >>> gens.begin()
        >>> gens.begin()
        Traceback (most recent call last):
        ...
        rag.serve.errors.ApiError: 1 answers are already in progress; retry shortly
    """

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

    def stats(self) -> schemas.GenerationStats:
        return schemas.GenerationStats(active=self.active, completed=self.completed, cancelled=self.cancelled,
                                       failed=self.failed)


@dataclass(frozen=True)
class ApiContext:
    """One app's shared state; ``requests`` are its request models (:func:`rag.serve.schemas.request_models`)."""

    service: RagService
    settings: ApiSettings
    requests: SimpleNamespace
    generations: Generations
    saver: ChatSaver

    @classmethod
    def create(cls, service: RagService, settings: ApiSettings) -> "ApiContext":
        requests = schemas.request_models(settings.limits, service.default_collection,
                                          generation=service.config.generation)
        saver = ChatSaver(chat_store(service.store.root), public=lambda exc: str(service.public_error(exc)))
        return cls(service, settings, requests, Generations(settings.max_concurrent), saver)


def collection_name(name: str) -> str:
    """``rag:NAME`` -> ``NAME`` (other names unchanged)."""
    return name[len(COLLECTION_PREFIX):] if name.startswith(COLLECTION_PREFIX) else name


async def scoped_documents(service: RagService, name: str, options: schemas.RagOptions | None) -> frozenset[str] | None:
    """The documents of collection ``name`` a request's ``rag.documents`` names (None: all of them);
    a 400 (``param`` ``rag.documents``) naming an unknown one and a few valid ones."""
    if options is None or options.documents is None:
        return None
    try:
        return await anyio.to_thread.run_sync(service.documents, name, options.documents)
    except ValueError as exc:
        raise ApiError(400, str(service.public_error(exc)), code="document_not_found", param="rag.documents") from None
