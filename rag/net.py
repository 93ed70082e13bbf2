"""Network addresses: whether a server bound to one can be reached only from this machine.

Both front ends that listen use it: ``rag serve`` refuses a non-loopback ``--host`` without an
API key (:mod:`rag.cli.serve`), and the Streamlit app serves nothing on one without an access
token (``ui/app.py``). Both hold their secret to one rule, :func:`secret_problem`.

Example:
    >>> [is_loopback(a) for a in ("127.0.0.2", "::1", "[::1]", "localhost", "unix:///tmp/app.sock")]
    [True, True, True, True, True]
    >>> [is_loopback(a) for a in ("", None, "0.0.0.0", "::", "192.168.1.5", "example.com", " 127.0.0.1")]
    [False, False, False, False, False, False, False]
    >>> secret_problem("a", "RAG_API_KEY")
    'RAG_API_KEY has 1 character; use at least 16 random ones (`rag serve --generate-key` prints one)'
    >>> secret_problem("correct-horse-battery-staple ", "RAG_API_KEY")
    'RAG_API_KEY ends or starts with whitespace, which no client sends; remove it'
    >>> secret_problem(generate_secret(), "RAG_API_KEY") is None
    True
"""

from __future__ import annotations

import ipaddress
import secrets

#: the shortest API key or access token accepted (16 random characters resist online guessing for good)
MIN_SECRET_CHARS = 16


def secret_problem(value: str, name: str) -> str | None:
    """Why ``value`` cannot be the secret called ``name`` (one line), or None when it can.

    At least :data:`MIN_SECRET_CHARS` characters, and no surrounding whitespace: a key read with its
    newline, or pasted with a space, would be accepted at start and then never match.
    """
    if value != value.strip():
        return f"{name} ends or starts with whitespace, which no client sends; remove it"
    if len(value) < MIN_SECRET_CHARS:
        plural = "" if len(value) == 1 else "s"
        return (f"{name} has {len(value)} character{plural}; use at least {MIN_SECRET_CHARS} random ones "
                "(`rag serve --generate-key` prints one)")
    return None


def generate_secret() -> str:
    """A strong random secret: 32 bytes from the OS, URL-safe (43 characters)."""
    return secrets.token_urlsafe(32)


def is_loopback(address: str | None) -> bool:
    """True for an address only this machine can reach: 127.0.0.0/8, ``::1`` (``[::1]``), ``localhost``, a unix socket.

    Unset or empty means every interface (to Streamlit and to a socket bind), so it is not loopback;
    nor is anything else that does not parse as one of the above as written (no whitespace
    trimmed, brackets only as a pair, no other host names resolved): when in doubt, not loopback.
    """
    if not address:
        return False
    if address.startswith("unix://"):
        return True
    host = address[1:-1] if address.startswith("[") and address.endswith("]") else address
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
