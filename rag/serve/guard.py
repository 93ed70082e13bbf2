"""How the API guards itself, before anything else runs: ``Host`` names, the API key, JSON bodies, body size.

With an API key every path but ``/health`` needs ``Authorization: Bearer KEY``; without one (loopback
only, :mod:`rag.cli.serve` refuses anything else) the ``Host`` header must be a loopback name, so a
web page cannot reach the API through DNS rebinding.  POST bodies must be JSON, at most
``Limits.max_body_bytes`` (checked on ``Content-Length`` and again as the body arrives).

Example:
    >>> ApiSettings(max_concurrent=0)
    Traceback (most recent call last):
    ...
    ValueError: max_concurrent must be a positive integer, got 0
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Any

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from rag.serve.errors import ApiError
from rag.serve.schemas import Limits

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
PUBLIC_PATHS = ("/health",)


@dataclass(frozen=True)
class ApiSettings:
    """How the API guards itself.

    Args:
        api_key: required as ``Authorization: Bearer KEY`` on every path but ``/health`` (None: no key).
        limits: request size and content limits (:class:`~rag.serve.schemas.Limits`).
        max_concurrent: answers in progress at once (queued on the one model); more get a 429.
        allowed_hosts: ``Host`` header names accepted; empty: any (the key protects a public bind).
        cors_origins: browser origins allowed to call the API (none by default).
    """

    api_key: str | None = None
    limits: Limits = field(default_factory=Limits)
    max_concurrent: int = 16
    allowed_hosts: tuple[str, ...] = LOOPBACK_NAMES
    cors_origins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("api_key must not be empty; omit it to run without a key (loopback only)")
        if not isinstance(self.max_concurrent, int) or self.max_concurrent <= 0:
            raise ValueError(f"max_concurrent must be a positive integer, got {self.max_concurrent!r}")


def host_name(header: str) -> str:
    """The host of a ``Host`` header, without the port (``[::1]:8000`` -> ``::1``).

    Example:
        >>> host_name("127.0.0.1:8000"), host_name("[::1]:8000"), host_name("LocalHost")
        ('127.0.0.1', '::1', 'localhost')
    """
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class Guard:
    """ASGI middleware: ``Host`` check, API key, JSON content type — before anything else runs."""

    def __init__(self, app: ASGIApp, settings: ApiSettings) -> None:
        self.app = app
        self.settings = settings
        self.hosts = {h.lower() for h in settings.allowed_hosts}
        self.key = settings.api_key.encode("utf-8") if settings.api_key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = self.check(scope)
        if problem is not None:
            await problem.response()(scope, receive, send)
            return
        await self.app(scope, self.limited(receive), send)

    def limited(self, receive: Receive) -> Receive:
        """``receive`` that fails with a 413 once the body passes the limit (chunked or lying clients)."""
        limit, seen = self.settings.limits.max_body_bytes, 0

        async def receive_limited() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise StarletteHTTPException(413)
            return message

        return receive_limited

    def check(self, scope: Scope) -> ApiError | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.hosts and host_name(headers.get("host", "")) not in self.hosts:
            return ApiError(400, f"Host header {headers.get('host', '')!r} is not allowed; "
                                 "call the API as localhost or 127.0.0.1", code="invalid_host")
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.settings.limits.max_body_bytes:
            return ApiError(413, f"request body is over the {self.settings.limits.max_body_bytes} byte limit",
                            code="request_too_large")
        method, path = scope.get("method", "GET"), scope.get("path", "")
        if self.key is not None and path not in PUBLIC_PATHS and method != "OPTIONS":
            auth = headers.get("authorization", "")
            scheme, _, token = auth.partition(" ")
            if not auth:
                return ApiError(401, "missing API key: send the header 'Authorization: Bearer KEY'",
                                code="invalid_api_key")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode("utf-8"), self.key):
                return ApiError(401, "incorrect API key", code="invalid_api_key")
        if method in ("POST", "PUT", "PATCH"):
            ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if ctype != "application/json":
                return ApiError(415, f"the request body must be JSON (Content-Type: application/json), "
                                     f"got {ctype or 'no content type'!r}", code="unsupported_media_type")
        return None
