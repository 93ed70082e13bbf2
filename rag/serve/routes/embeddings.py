"""``POST /v1/embeddings``: text embedded with the packaged embedder (the one the collections are indexed with)."""

from typing import Any, Sequence

import anyio
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from rag.serve import schemas
from rag.serve.errors import ApiError
from rag.serve.responses import embedding_list, json_response
from rag.serve.routes.context import ApiContext
from rag.serve.service import RagService


def count_embedding_tokens(service: RagService, texts: Sequence[str]) -> int:
    tokenizer = service.embedder.tokenizer
    return int(sum(len(ids) for ids in tokenizer(list(texts), truncation=True)["input_ids"]))


def check_request(service: RagService, model: str, dimensions: int | None) -> None:
    """404 for another model than the embedder, 400 for another dimension than its own."""
    if model not in service.embedding_model_ids:
        raise ApiError(404, f"model {model!r} is not an embedding model of this server; "
                            f"use {service.embedding_model_ids[0]!r}", code="model_not_found", param="model")
    dim = service.embedder.dim
    if dimensions is not None and dimensions != dim:
        raise ApiError(400, f"dimensions must be {dim} (the embedder's), got {dimensions}", param="dimensions")


async def run_embeddings(service: RagService, body: Any) -> schemas.EmbeddingList:
    check_request(service, body.model, body.dimensions)
    texts = body.texts()
    vectors = await anyio.to_thread.run_sync(service.embed, texts)
    tokens = await anyio.to_thread.run_sync(count_embedding_tokens, service, texts)
    return embedding_list(body.model, vectors, tokens, body.encoding_format)


def router(ctx: ApiContext) -> APIRouter:
    api = APIRouter(tags=["openai"])
    EmbeddingRequest = ctx.requests.EmbeddingRequest

    @api.post("/v1/embeddings", response_model=schemas.EmbeddingList)
    async def embeddings(body: EmbeddingRequest) -> JSONResponse:  # type: ignore[valid-type]
        """Embed text with the packaged embedder (the one the collections are indexed with)."""
        return json_response(await run_embeddings(ctx.service, body))

    return api
