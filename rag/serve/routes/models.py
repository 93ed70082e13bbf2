"""``GET /v1/models``: every collection as ``rag:NAME``, the served chat model and the embedder."""

import time

import anyio
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from rag.serve import schemas
from rag.serve.responses import json_response
from rag.serve.routes.context import COLLECTION_PREFIX, ApiContext
from rag.serve.service import RagService


def model_list(service: RagService, collections: list[str], now: int) -> schemas.ModelList:
    """Collections as ``rag:NAME``, the chat model (it selects the default collection), the embedder."""
    data = [schemas.ModelCard(id=f"{COLLECTION_PREFIX}{n}", created=now, owned_by="rag",
                              rag=schemas.ModelInfo(kind="collection", collection=n)) for n in collections]
    if not service.extractive:
        data.append(schemas.ModelCard(id=service.chat_model_id, created=now, owned_by="llama.cpp",
                                      rag=schemas.ModelInfo(kind="chat", collection=service.default_collection)))
    data.append(schemas.ModelCard(id=service.embedding_model_ids[0], created=now, owned_by="sentence-transformers",
                                  rag=schemas.ModelInfo(kind="embedding")))
    return schemas.ModelList(data=data)


def router(ctx: ApiContext) -> APIRouter:
    api = APIRouter(tags=["openai"])

    @api.get("/v1/models", response_model=schemas.ModelList)
    async def models() -> JSONResponse:
        """Collections as ``rag:NAME``, the served chat model (the default collection) and the embedder."""
        names = await anyio.to_thread.run_sync(ctx.service.collections)
        return json_response(model_list(ctx.service, names, int(time.time())))

    return api
