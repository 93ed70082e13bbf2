"""How the API guards itself, before anything else runs: ``Host`` names, the API key, JSON bodies, body size.

With an API key every path but ``/health`` needs ``Authorization: Bearer KEY``; without one (loopback
only, :mod:`rag.cli.serve` refuses anything else) the ``Host`` header must be a loopback name, so a
web page cannot reach the API through DNS rebinding.  POST bodies must be JSON, at most
``Limits.max_body_bytes`` (checked on ``Content-Length`` and again as the body arrives).

A wrong key is compared in constant time and answered after a delay that doubles with each failure
from that client address (:class:`Lockout`); after ``max_failures`` in a minute the address gets a
429 on every path but ``/health`` until the minute has passed, right key or not.

Example:
    >>> ApiSettings(max_concurrent=0)
    Traceback (most recent call last):
    ...
    ValueError: max_concurrent must be a positive integer, got 0
    >>> ApiSettings(api_key="a")
    Traceback (most recent call last):
    ...
    ValueError: the API key has 1 character; use at least 16 random ones (`rag serve --generate-key` prints one)
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from rag.net import secret_problem
from rag.serve.errors import ApiError
from rag.serve.schemas import Limits

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
PUBLIC_PATHS = ("/health",)
WRONG_KEY = "incorrect API key"


@dataclass(frozen=True)
class ApiSettings:
    """How the API guards itself.

    Args:
        api_key: required as ``Authorization: Bearer KEY`` on every path but ``/health`` (None: no key).
        limits: request size and content limits (:class:`~rag.serve.schemas.Limits`).
        max_concurrent: answers in progress at once (queued on the one model); more get a 429.
        allowed_hosts: ``Host`` header names accepted; empty: any (the key protects a public bind).
        cors_origins: browser origins allowed to call the API (none by default).
        max_failures: wrong keys per client address per minute before it gets 429s (:class:`Lockout`).
    """

    api_key: str | None = None
    limits: Limits = field(default_factory=Limits)
    max_concurrent: int = 16
    allowed_hosts: tuple[str, ...] = LOOPBACK_NAMES
    cors_origins: tuple[str, ...] = ()
    max_failures: int = 10

    def __post_init__(self) -> None:
        if self.api_key is not None:
            problem = secret_problem(self.api_key, "the API key")
            if problem is not None:
                raise ValueError(problem)
        if not isinstance(self.max_concurrent, int) or self.max_concurrent <= 0:
            raise ValueError(f"max_concurrent must be a positive integer, got {self.max_concurrent!r}")
        if not isinstance(self.max_failures, int) or self.max_failures <= 0:
            raise ValueError(f"max_failures must be a positive integer, got {self.max_failures!r}")


class Lockout:
    """Wrong-key failures per client address in the last ``window`` seconds: the delay, then the lockout.

    The n-th failure in the window waits ``base * 2**(n-1)`` seconds (at most ``max_delay``) before
    its 401; at ``max_failures`` the address is locked out until its oldest failure leaves the window.
    At most ``max_clients`` addresses are remembered (the stalest forgotten first), so a flood of
    addresses cannot grow the memory.

    Example:
        >>> lock = Lockout(max_failures=3, base=0.1)
        >>> [lock.record("10.0.0.9", now=t) for t in (0, 1, 2)], lock.locked("10.0.0.9", now=3)
        ([0.1, 0.2, 0.4], True)
        >>> lock.locked("10.0.0.9", now=61), lock.locked("10.0.0.8", now=3)
        (False, False)
    """

    def __init__(self, max_failures: int = 10, window: float = 60.0, base: float = 0.05, max_delay: float = 1.0,
                 max_clients: int = 4096) -> None:
        if max_failures <= 0 or window <= 0:
            raise ValueError(f"max_failures and window must be positive, got {max_failures!r} and {window!r}")
        self.max_failures, self.window, self.base, self.max_delay = max_failures, window, base, max_delay
        self.max_clients = max_clients
        self.failures: dict[str, deque[float]] = {}

    def _recent(self, client: str, now: float) -> deque[float]:
        times = self.failures.get(client, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            self.failures.pop(client, None)
        return times

    def locked(self, client: str, now: float | None = None) -> bool:
        """Whether ``client`` has used up its failures for now."""
        return len(self._recent(client, time.monotonic() if now is None else now)) >= self.max_failures

    def record(self, client: str, now: float | None = None) -> float:
        """Count a failure of ``client``; the seconds to wait before answering it."""
        now = time.monotonic() if now is None else now
        times = self._recent(client, now)
        times.append(now)
        self.failures.pop(client, None)
        self.failures[client] = times  # most recent last: the stalest is the first to forget
        while len(self.failures) > self.max_clients:
            del self.failures[next(iter(self.failures))]
        return min(self.base * 2 ** (len(times) - 1), self.max_delay)


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
        self.lockout = Lockout(max_failures=settings.max_failures)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = str((scope.get("client") or ("unknown",))[0])
        if self.key is not None and scope.get("path", "") not in PUBLIC_PATHS and self.lockout.locked(client):
            await ApiError(429, "too many wrong API keys from this address; wait a minute",
                           type="rate_limit_error", code="too_many_failures").response()(scope, receive, send)
            return
        problem = self.check(scope)
        if problem is not None:
            if problem.message == WRONG_KEY:
                await asyncio.sleep(self.lockout.record(client))
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
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode("utf-8"), self.key):
                return ApiError(401, WRONG_KEY, code="invalid_api_key")
        if method in ("POST", "PUT", "PATCH"):
            ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if ctype != "application/json":
                return ApiError(415, f"the request body must be JSON (Content-Type: application/json), "
                                     f"got {ctype or 'no content type'!r}", code="unsupported_media_type")
        return None
