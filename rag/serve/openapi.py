"""The served OpenAPI schema: FastAPI's, with this API's real error responses and auth.

Errors are OpenAI error objects (400, not FastAPI's 422), every route lists the statuses it can
answer, the streamed chat answer is described as server-sent events of
:class:`~rag.serve.schemas.ChatCompletionChunk`, and with an API key the routes need ``bearer``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from rag.serve import schemas
from rag.serve.guard import PUBLIC_PATHS, ApiSettings

# Open API 3.1: the `schema` of an event stream describes one event (`data:` lines joined).
SSE_EVENT = {"type": "object", "required": ["data"], "description": (
    "with stream=true: one server-sent event per chunk, `data: <ChatCompletionChunk JSON>`; the last chunk with a "
    "finish_reason carries `rag`; an error mid-stream is `data: <ErrorResponse JSON>`; the stream ends with "
    "`data: [DONE]`"), "properties": {
    "data": {"anyOf": [{"const": "[DONE]"}, {
        "type": "string", "contentMediaType": "application/json", "contentSchema": {"anyOf": [
            {"$ref": "#/components/schemas/ChatCompletionChunk"}, {"$ref": "#/components/schemas/ErrorResponse"}]}}]},
    "event": {"type": "string"}, "id": {"type": "string"}, "retry": {"type": "integer"}}}
_ERRORS = {"400": "invalid request (OpenAI error object)", "401": "missing or incorrect API key",
           "404": "unknown model, collection, saved chat or path", "413": "request body too large",
           "415": "the body is not JSON",
           "429": "too many answers in progress, or too many wrong API keys from this address in a minute",
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
            keyed = bool(settings.api_key) and path not in PUBLIC_PATHS
            codes = ["400", "404"] + (["401"] if keyed else [])
            if "requestBody" in op:
                codes += ["413", "415"]
            if path == "/v1/chat/completions" or keyed:  # answers in progress; a locked-out address
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
