"""The API's routers, one module per endpoint group; :func:`routers` makes them for one app.

* :mod:`~rag.serve.routes.health`: ``GET /health``
* :mod:`~rag.serve.routes.models`: ``GET /v1/models``
* :mod:`~rag.serve.routes.chat` (+ :mod:`~rag.serve.routes.chat_stream`): ``POST /v1/chat/completions``
* :mod:`~rag.serve.routes.embeddings`: ``POST /v1/embeddings``
* :mod:`~rag.serve.routes.search`: ``POST /v1/search``

A router is made per app (:class:`~rag.serve.routes.context.ApiContext`): the request models carry
that app's limits and defaults.  No ``from __future__ import annotations`` in these modules: FastAPI
must see the request model classes in the handlers' annotations.
"""

from fastapi import APIRouter

from rag.serve.routes import chat, embeddings, health, models, search
from rag.serve.routes.context import ApiContext

__all__ = ["ApiContext", "routers"]


def routers(ctx: ApiContext) -> list[APIRouter]:
    """Every router of the API, in the order of the OpenAPI schema."""
    return [module.router(ctx) for module in (health, models, chat, embeddings, search)]
