"""See every connection a process tree makes, at the system-call level: ``strace`` on connect/sendto/sendmsg.

The conftest's socket guard patches Python's ``socket``; a library that opens its sockets from C
(onnxruntime's telemetry did) goes past it. ``strace -f`` sees those too. :func:`traced` is the
command prefix; :func:`egress` reads its log and returns every attempt to reach another machine:
any inet address that is not loopback or unspecified, and any DNS query (port 53, or the resolver's
unix sockets), even to a loopback resolver.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import shutil
import subprocess
from pathlib import Path

from rag.privacy import TELEMETRY_OFF

STRACE = shutil.which("strace") or "/usr/bin/strace"

_INET = re.compile(r'sin_port=htons\((\d+)\), sin_addr=inet_addr\("([^"]+)"\)')
_INET6 = re.compile(r'sin6_port=htons\((\d+)\),.*?inet_pton\(AF_INET6, "([^"]+)"')
_RESOLVER_SOCKETS = ("/run/systemd/resolve", "/var/run/nscd", "/run/nscd")


@functools.cache
def tracing_problem() -> str | None:
    """Why strace cannot trace here (not installed, ptrace not permitted), or None when it can."""
    if not Path(STRACE).exists():
        return "strace is not installed (apt-get install strace; `make test` installs it)"
    probe = subprocess.run([STRACE, "-f", "--seccomp-bpf", "-qq", "-e", "trace=connect", "-o", os.devnull, "true"],
                           capture_output=True, text=True)
    return None if probe.returncode == 0 else f"strace cannot trace here: {probe.stderr.strip()[-300:]}"


def traced(log: Path) -> list[str]:
    """The prefix that runs a command under strace, following its children, logging to ``log``."""
    return [STRACE, "-f", "--seccomp-bpf", "-qq", "-e", "trace=connect,sendto,sendmsg", "-o", str(log)]


def untouched_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's) without the telemetry switches, so a child must set them itself.

    The test process imported ``rag``, which set them in its own environment; inheriting them would
    hide a command that forgets to.
    """
    env = dict(os.environ if base is None else base)
    for name in TELEMETRY_OFF:
        env.pop(name, None)
    return env


def egress(log: Path) -> list[str]:
    """The strace lines of ``log`` that reach for another machine or ask a DNS resolver (empty: none)."""
    found = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if any(s in line for s in _RESOLVER_SOCKETS):
            found.append(line)
            continue
        for port, address in [*_INET.findall(line), *_INET6.findall(line)]:
            ip = ipaddress.ip_address(address)
            mapped = getattr(ip, "ipv4_mapped", None)
            local = (mapped or ip).is_loopback or (mapped or ip).is_unspecified
            if port == "53" or not local:
                found.append(line)
                break
    return found
