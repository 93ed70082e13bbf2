"""An OpenAI-compatible HTTP API over the answer pipeline (``rag serve``): FastAPI, served by uvicorn.

Endpoints (the official ``openai`` client works unchanged on the first three):

* ``GET /v1/models``: every collection as ``rag:NAME``, the served chat model (its id selects the
  default collection) and the embedder.
* ``POST /v1/chat/completions``: non-streaming, or streaming as server-sent events (``data: {...}``
  chunks, then ``data: [DONE]``).  The last message is the question, the earlier user/assistant turns
  the history (follow-ups are condensed).  The sources, the checked answer text and the
  supported/unsupported sentence marks are in the extension field ``rag``
  (:class:`~rag.serve.schemas.RagExtension`), on the completion or on the last streamed chunk.
  ``rag.save`` / ``rag.chat_id`` on a request save the turn to the chat history (:mod:`rag.serve.saving`).
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

The app is assembled here from its parts: one router per endpoint group (:mod:`rag.serve.routes`),
the guard middleware (:mod:`rag.serve.guard`), the error handlers (:mod:`rag.serve.errors`) and the
OpenAPI schema (:mod:`rag.serve.openapi`); every body is built from the schema models
(:mod:`rag.serve.responses`).

Example (loads the real models)::

    import uvicorn
    from rag.index.store import IndexStore
    from rag.pipeline import PipelineConfig
    from rag.serve.service import RagService
    service = RagService(IndexStore(), PipelineConfig(index="samples")).load()
    uvicorn.run(create_app(service, ApiSettings()), host="127.0.0.1", port=8000)
"""

from fastapi import FastAPI

from rag.serve.errors import ApiError, add_error_handlers
from rag.serve.guard import LOOPBACK_NAMES, PUBLIC_PATHS, ApiSettings, Guard, host_name
from rag.serve.openapi import openapi_schema
from rag.serve.responses import rag_extension
from rag.serve.routes import ApiContext, routers
from rag.serve.routes.context import COLLECTION_PREFIX
from rag.serve.service import RagService

__all__ = ["COLLECTION_PREFIX", "LOOPBACK_NAMES", "PUBLIC_PATHS", "ApiError", "ApiSettings", "create_app",
           "host_name", "rag_extension"]

_TELEMETRY_OFF = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False,
                  "auto_configure": False}


def create_app(service: RagService, settings: ApiSettings | None = None) -> FastAPI:
    """The FastAPI app over a loaded :class:`~rag.serve.service.RagService`: the routers, the error
    handlers, the served OpenAPI schema, CORS (only for ``settings.cors_origins``) and the guard."""
    settings = settings or ApiSettings()
    ctx = ApiContext.create(service, settings)
    app = FastAPI(title="rag: local question answering over your documents", version="1",
                  description=__doc__.split("\n\n")[0] if __doc__ else "", docs_url=None, redoc_url=None,
                  telemetry=_TELEMETRY_OFF)  # type: ignore[arg-type]
    add_error_handlers(app, settings.limits.max_body_bytes)
    for router in routers(ctx):
        app.include_router(router)
    app.openapi = lambda: openapi_schema(app, settings)  # type: ignore[method-assign]
    if settings.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["GET", "POST"], allow_headers=["authorization", "content-type"])
    app.add_middleware(Guard, settings=settings)
    return app
