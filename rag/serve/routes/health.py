"""``GET /health``: liveness, what is served, and the answers in progress; needs no key."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from rag.serve import schemas
from rag.serve.responses import json_response
from rag.serve.routes.context import ApiContext


def health_status(ctx: ApiContext) -> schemas.Health:
    service = ctx.service
    return schemas.Health(default_collection=service.default_collection,
                          chat_model=None if service.extractive else service.chat_model_id,
                          embedding_model=service.embedding_model_ids[0], generations=ctx.generations.stats())


def router(ctx: ApiContext) -> APIRouter:
    api = APIRouter(tags=["meta"])

    @api.get("/health", response_model=schemas.Health)
    async def health() -> JSONResponse:
        """Liveness, what is served, and the answers in progress; needs no key."""
        return json_response(health_status(ctx))

    return api
