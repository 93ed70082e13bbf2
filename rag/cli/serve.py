"""``rag serve``: the OpenAI-compatible HTTP API (:mod:`rag.serve.api`) on uvicorn, loopback by default.

Takes every retrieval, answer and plugin option of ``rag ask`` (they are the server's defaults),
plus the server's own: ``--host``, ``--port`` (0: a free port, printed at start), the API key
(``$RAG_API_KEY``, ``--api-key-file`` or ``--api-key``; at least 16 characters, never logged), the
request limits, ``--header-timeout``, ``--max-connections`` and ``--cors-origin``.  A host that is
not a loopback address is refused unless a key is set::

    rag serve --index samples                                  # http://127.0.0.1:8000/v1
    RAG_API_KEY=$(rag serve --generate-key) rag serve --index samples --host 0.0.0.0

Example:
    >>> import argparse
    >>> sub = argparse.ArgumentParser(prog="rag").add_subparsers(dest="command")
    >>> add_commands(sub)
    >>> a = sub.choices["serve"].parse_args(["--index", "docs", "--port", "0", "--mode", "bm25"])
    >>> a.host, a.port, a.mode, a.max_tokens_limit
    ('127.0.0.1', 0, 'bm25', 1024)
    >>> check_bind("0.0.0.0", None)
    Traceback (most recent call last):
    ...
    ValueError: refusing to listen on '0.0.0.0' (not a loopback address) without an API key; set RAG_API_KEY or pass --api-key-file, or use --host 127.0.0.1
    >>> check_bind("0.0.0.0", "a")
    Traceback (most recent call last):
    ...
    ValueError: RAG_API_KEY has 1 character; use at least 16 random ones (`rag serve --generate-key` prints one)
    >>> is_loopback("127.0.0.2"), is_loopback("::1"), is_loopback("localhost"), is_loopback("192.168.1.5")
    (True, True, True, False)
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any

from rag.cli.common import (add_generation_args, add_index_args, add_plugin_args, add_retrieval_args,
                            non_negative_int, pipeline_config, positive_float, positive_int, store)
from rag.net import generate_secret, is_loopback, secret_problem

logger = logging.getLogger(__name__)

API_KEY_ENV = "RAG_API_KEY"


def port(value: str) -> int:
    n = non_negative_int(value)
    if n > 65535:
        raise argparse.ArgumentTypeError(f"must be a port number in 0..65535, got {value!r}")
    return n


def check_bind(host: str, api_key: str | None, source: str = API_KEY_ENV) -> None:
    """Refuse a weak API key (named by ``source``), and a non-loopback ``host`` without one."""
    if api_key is not None:
        problem = secret_problem(api_key, source)
        if problem is not None:
            raise ValueError(problem)
    elif not is_loopback(host):
        raise ValueError(f"refusing to listen on {host!r} (not a loopback address) without an API key; "
                         f"set {API_KEY_ENV} or pass --api-key-file, or use --host 127.0.0.1")


def read_api_key(args: argparse.Namespace) -> tuple[str | None, str]:
    """The key from ``--api-key-file`` (its first line), ``--api-key`` or ``$RAG_API_KEY``, and where it came from."""
    if args.api_key_file is not None:
        try:
            lines = args.api_key_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ValueError(f"cannot read --api-key-file {str(args.api_key_file)!r}: {exc.strerror}") from None
        if not lines:
            raise ValueError(f"--api-key-file {str(args.api_key_file)!r} is empty; put the key on its first line "
                             "(`rag serve --generate-key > FILE`)")
        return lines[0], "--api-key-file"
    if args.api_key is not None:
        return args.api_key, "--api-key"
    return os.environ.get(API_KEY_ENV) or None, API_KEY_ENV


def _listen(host: str, port_: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit this (Linux): without it, Nagle's algorithm holds the body write behind the
    # header write until the client's delayed ACK, ~40 ms per request on a keep-alive connection.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host.strip("[]"), port_))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port_}: {exc.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def header_timeout_protocol(seconds: float) -> type:
    """uvicorn's h11 protocol, closing a connection whose request line and headers take over ``seconds``.

    uvicorn times out only an idle keep-alive connection; one that sends its headers a byte at a time
    (a slow-header attack) would be held open for ever, one socket each.
    """
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeoutProtocol(H11Protocol):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(seconds, self._too_slow)

        def _disarm(self) -> None:
            timer = getattr(self, "_header_timer", None)
            if timer is not None:
                timer.cancel()
                self._header_timer = None

        def _too_slow(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                logger.info("closed a connection whose request headers took over %.0f s", seconds)
                self.transport.close()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:  # the request line and headers are in
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()  # the next request on this connection gets the same time

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeaderTimeoutProtocol


def cmd_serve(args: argparse.Namespace) -> int:
    if args.generate_key:
        print(generate_secret())
        return 0
    api_key, source = read_api_key(args)
    check_bind(args.host, api_key, source)
    import uvicorn

    from rag.serve.api import LOOPBACK_NAMES, ApiSettings, create_app
    from rag.serve.schemas import Limits
    from rag.serve.service import RagService

    limits = Limits(max_body_bytes=int(args.max_body_mb * 1024 * 1024), max_tokens=args.max_tokens_limit)
    if args.max_tokens > limits.max_tokens:
        raise ValueError(f"--max-tokens {args.max_tokens} is over --max-tokens-limit {limits.max_tokens}")
    # Without a key, only loopback Host names are served (no DNS rebinding); a key protects any name.
    hosts = () if api_key else tuple(dict.fromkeys((*LOOPBACK_NAMES, args.host.strip("[]").lower())))
    settings = ApiSettings(api_key=api_key, limits=limits, max_concurrent=args.max_concurrent,
                           allowed_hosts=hosts, cors_origins=tuple(args.cors_origin))
    service = RagService(store(args), pipeline_config(args)).load()
    try:
        config = uvicorn.Config(create_app(service, settings), log_level="info" if args.verbose else "warning",
                                access_log=bool(args.verbose), proxy_headers=False, server_header=False,
                                timeout_graceful_shutdown=5, lifespan="off", http=header_timeout_protocol(
                                    args.header_timeout), timeout_keep_alive=5,
                                limit_concurrency=args.max_connections)
        sock = _listen(args.host, args.port)
        bound = sock.getsockname()[1]
        shown = f"[{args.host.strip('[]')}]" if ":" in args.host.strip("[]") else args.host
        print(f"rag API on http://{shown}:{bound}/v1 (collection {service.default_collection!r}, "
              f"{'extractive answers' if service.extractive else 'model ' + service.chat_model_id}, "
              f"{'API key required' if api_key else 'no API key: loopback only'}); Ctrl+C to stop", flush=True)
        try:
            uvicorn.Server(config).run(sockets=[sock])
        except KeyboardInterrupt:  # uvicorn re-raises the Ctrl+C it handled, once it has shut down
            pass
    finally:
        service.close()
    print("rag API stopped", file=sys.stderr)
    return 0


def add_commands(sub: Any) -> None:
    """Add ``serve`` to an argparse ``add_subparsers()`` object."""
    p = sub.add_parser("serve", help="OpenAI-compatible HTTP API over your collections (loopback by default)")
    add_index_args(p)
    add_retrieval_args(p)
    add_generation_args(p)
    add_plugin_args(p)
    g = p.add_argument_group("server")
    g.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: %(default)s); another than loopback needs an API key")
    g.add_argument("--port", type=port, default=8000, help="port (default: %(default)s; 0: a free one, printed)")
    g.add_argument("--api-key", default=None, metavar="KEY",
                   help=f"require 'Authorization: Bearer KEY', at least 16 characters (default: ${API_KEY_ENV}; "
                        "prefer the variable or --api-key-file: arguments are visible to other users)")
    g.add_argument("--api-key-file", type=Path, default=None, metavar="FILE",
                   help="read the API key from the first line of FILE (keep it mode 0600)")
    g.add_argument("--generate-key", action="store_true",
                   help="print a strong random API key and exit (e.g. `rag serve --generate-key > key.txt`)")
    g.add_argument("--header-timeout", type=positive_float, default=10.0, metavar="SECONDS",
                   help="close a connection whose request headers take longer (default: %(default)s)")
    g.add_argument("--max-connections", type=positive_int, default=64, metavar="N",
                   help="open connections at once; more get a 503 (default: %(default)s)")
    g.add_argument("--max-tokens-limit", type=positive_int, default=1024, metavar="N",
                   help="largest max_tokens a request may ask for (default: %(default)s)")
    g.add_argument("--max-body-mb", type=positive_float, default=1.0, metavar="MB", help="largest request body (default: 1 MB)")
    g.add_argument("--max-concurrent", type=positive_int, default=16, metavar="N",
                   help="answers in progress at once, queued on the one model; more get a 429 (default: %(default)s)")
    g.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                   help="allow browser calls from ORIGIN (repeatable; default: none)")
    p.set_defaults(func=cmd_serve)
