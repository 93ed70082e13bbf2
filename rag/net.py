"""Network addresses: whether a server bound to one can be reached only from this machine.

Both front ends that listen use it: ``rag serve`` refuses a non-loopback ``--host`` without an
API key (:mod:`rag.cli.serve`), and the Streamlit app serves nothing on one without an access
token (``ui/app.py``).

Example:
    >>> [is_loopback(a) for a in ("127.0.0.2", "::1", "[::1]", "localhost", "unix:///tmp/app.sock")]
    [True, True, True, True, True]
    >>> [is_loopback(a) for a in ("", None, "0.0.0.0", "::", "192.168.1.5", "example.com", " 127.0.0.1")]
    [False, False, False, False, False, False, False]
"""

from __future__ import annotations

import ipaddress


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
