"""``POST /v1/search`` (not OpenAI): ranked chunks, with every retrieval option of ``rag search``
(``rag.documents`` is its ``--doc``)."""

from typing import Any

import anyio
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from rag.pipeline import RetrievalConfig
from rag.serve import schemas
from rag.serve.errors import ApiError, job_error
from rag.serve.responses import json_response, search_result
from rag.serve.routes.context import ApiContext, collection_name, scoped_documents
from rag.serve.service import RagService


def retrieval_config(service: RagService, body: Any) -> RetrievalConfig:
    """The request's retrieval options; a reranker other than none, ``auto`` or the server's is a 400."""
    served = service.config.retrieval.reranker
    if body.reranker not in {None, "auto", served}:
        also = f" or {served!r}" if served else ""
        raise ApiError(400, f"reranker must be null, 'auto' (the collection's trained reranker){also}; "
                            "start the server with --reranker to use another", param="reranker")
    return RetrievalConfig(mode=body.mode, fusion=body.fusion, rrf_k=body.rrf_k, alpha=body.alpha,
                           candidates=body.candidates, reranker=body.reranker,
                           rerank_candidates=body.rerank_candidates, k=body.k)


async def run_search(service: RagService, body: Any) -> schemas.SearchResult:
    name = collection_name(body.collection or service.default_collection)
    if not service.has_collection(name):
        raise ApiError(404, service.unknown_message(name), code="collection_not_found", param="collection")
    config = retrieval_config(service, body)
    documents = await scoped_documents(service, name, body.rag)
    try:
        hits, paths = await anyio.to_thread.run_sync(service.search, name, body.query, config, documents)
    except Exception as exc:  # noqa: BLE001 - mapped to a status
        raise job_error(exc) from None
    return search_result(name, body.query, hits, paths)


def router(ctx: ApiContext) -> APIRouter:
    api = APIRouter(tags=["rag"])
    SearchRequest = ctx.requests.SearchRequest

    @api.post("/v1/search", response_model=schemas.SearchResult)
    async def search(body: SearchRequest) -> JSONResponse:  # type: ignore[valid-type]
        """Ranked chunks for a query (``rag search`` over HTTP), with every retrieval option."""
        return json_response(await run_search(ctx.service, body))

    return api
