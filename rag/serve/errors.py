"""The API's errors: every 4xx and 5xx is OpenAI's error object (:class:`~rag.serve.schemas.ErrorResponse`).

:class:`ApiError` is raised by the routes and answered by the handlers :func:`add_error_handlers`
installs; :func:`job_error` maps an exception raised while answering or retrieving to its status,
with a message that names collections but never the server's paths.

Example:
    >>> job_error(ValueError("k  must be > 0")).status, job_error(KeyError("x")).status
    (400, 500)
    >>> ApiError(404, "no such collection", code="model_not_found").body().model_dump()["error"]["code"]
    'model_not_found'
    >>> job_error(ValueError("cannot read /home/me/indexes/c/v-1/chunks.jsonl")).message
    'cannot read <path>'
"""

from __future__ import annotations

import logging
import re
from typing import Any, Sequence

import pydantic
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag.generation.models import ModelError
from rag.index.store import IndexError_
from rag.serve import schemas
from rag.serve.service import UnknownCollectionError, hide_paths

logger = logging.getLogger(__name__)

INTERNAL = "internal server error; the server log has the details"
_FIELD = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+)$")  # drops pydantic's union-branch labels


class ApiError(Exception):
    """An error answered as an OpenAI error object with ``status``."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param

    def body(self) -> schemas.ErrorResponse:
        return schemas.ErrorResponse(error=schemas.ErrorBody(message=self.message, type=self.type,
                                                             param=self.param, code=self.code))

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse(status_code=self.status, headers=headers, content=self.body().model_dump(mode="json"))


def server_fault() -> ApiError:
    return ApiError(500, INTERNAL, type="server_error")


def job_error(exc: BaseException) -> ApiError:
    """The status and error object for an exception raised while answering or retrieving."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, UnknownCollectionError):
        return ApiError(404, str(exc), code="model_not_found", param="model")
    if isinstance(exc, pydantic.ValidationError):  # a response that does not match the schema: our fault
        logger.error("a response does not match the API schema", exc_info=exc)
        return server_fault()
    if isinstance(exc, ValueError):  # bad options, a context overflow, an index built with another embedder
        return ApiError(400, _public(exc))
    if isinstance(exc, (IndexError_, ModelError)):
        logger.error("collection or model unavailable: %s", exc)
        return ApiError(503, _public(exc), type="server_error", code="unavailable")
    logger.error("internal error while answering", exc_info=exc)
    return server_fault()


def _public(exc: BaseException) -> str:
    """The exception's message on one line, with no absolute path of the server's (the service already
    made paths in the index folder relative: :meth:`~rag.serve.service.RagService.public_error`)."""
    return hide_paths(" ".join(str(exc).split()))


def validation_error(errors: Sequence[Any]) -> ApiError:
    """A 400 naming the first invalid field (OpenAI answers 400, not FastAPI's 422)."""
    if not errors:
        return ApiError(400, "invalid request")
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p != "body" and _FIELD.match(str(p))]
    if first.get("type") == "json_invalid":
        return ApiError(400, f"the request body is not valid JSON ({first.get('ctx', {}).get('error', '')})",
                        code="invalid_json")
    param = ".".join(loc) or None
    msg = str(first.get("msg", "invalid value"))
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return ApiError(400, f"{param}: {msg}{more}" if param else f"{msg}{more}", param=param)


def http_error(status: int, detail: str, max_body_bytes: int) -> ApiError:
    """Starlette's own errors (no route, wrong method, body over the limit) as error objects."""
    messages = {404: "no such endpoint; see GET /openapi.json", 405: "method not allowed on this endpoint",
                413: f"request body is over the {max_body_bytes} byte limit"}
    code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(status)
    return ApiError(status, messages.get(status, detail), code=code)


def add_error_handlers(app: FastAPI, max_body_bytes: int) -> None:
    """Answer every error with OpenAI's error object: ours, invalid requests (400, not 422), Starlette's, faults."""
    async def api_error(_request: Request, exc: Exception) -> JSONResponse:
        return exc.response()  # type: ignore[attr-defined]

    async def invalid(_request: Request, exc: Exception) -> JSONResponse:
        return validation_error(exc.errors()).response()  # type: ignore[attr-defined]

    async def http(_request: Request, exc: Exception) -> JSONResponse:
        status, detail = exc.status_code, str(exc.detail)  # type: ignore[attr-defined]
        return http_error(status, detail, max_body_bytes).response()

    async def fault(_request: Request, _exc: Exception) -> JSONResponse:  # Starlette logs the traceback
        return server_fault().response()

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http)
    app.add_exception_handler(Exception, fault)
