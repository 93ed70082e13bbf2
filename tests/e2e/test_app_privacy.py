"""Private by default: the app binds loopback, makes no outbound connection, and gates other addresses.

The real app is started the way ``make run`` starts it (``streamlit run ui/app.py`` from the repo root,
so ``.streamlit/config.toml`` applies), under a socket guard: a ``sitecustomize`` put first on
``PYTHONPATH`` that records and refuses every non-loopback ``connect``/``sendto`` and every DNS
lookup of a non-local name; and under ``strace`` (:mod:`tests.egress`), which sees the connections a
library opens from C, past Python's socket. The telemetry switches are not inherited: the app must
set them itself. The access gate is Streamlit logic, so it is tested with AppTest.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.egress import egress, traced, tracing_problem, untouched_env

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "ui" / "app.py"
TOKEN = "correct-horse-battery-staple-42"

GUARD = r'''
"""Test-only network guard (loaded as sitecustomize): non-loopback connections are recorded and refused."""
import errno, ipaddress, json, os, socket

_LOG = os.environ["RAG_NET_GUARD_LOG"]


def _record(kind, target):
    with open(_LOG, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"kind": kind, "target": repr(target), "pid": os.getpid()}) + "\n")


def _local_host(host):
    if host in (None, "", "localhost", "localhost.localdomain", b"localhost"):
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    try:
        ip = ipaddress.ip_address(str(host).split("%")[0])
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified


def _local(address):
    if isinstance(address, tuple) and address and isinstance(address[0], (str, bytes)):
        return _local_host(address[0])
    return True  # unix sockets, netlink


_connect, _connect_ex, _sendto = socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto
_getaddrinfo, _gethostbyname = socket.getaddrinfo, socket.gethostbyname


def connect(self, address):
    if not _local(address):
        _record("connect", address)
        raise OSError(errno.ENETUNREACH, "network blocked by the test guard")
    return _connect(self, address)


def connect_ex(self, address):
    if not _local(address):
        _record("connect_ex", address)
        return errno.ENETUNREACH
    return _connect_ex(self, address)


def sendto(self, data, *args):
    if args and not _local(args[-1]):
        _record("sendto", args[-1])
        raise OSError(errno.ENETUNREACH, "network blocked by the test guard")
    return _sendto(self, data, *args)


def getaddrinfo(host, *args, **kwargs):
    if not _local_host(host):
        _record("getaddrinfo", host)
        raise socket.gaierror(socket.EAI_NONAME, "name lookups blocked by the test guard")
    return _getaddrinfo(host, *args, **kwargs)


def gethostbyname(host):
    if not _local_host(host):
        _record("gethostbyname", host)
        raise socket.gaierror(socket.EAI_NONAME, "name lookups blocked by the test guard")
    return _gethostbyname(host)


socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto = connect, connect_ex, sendto
socket.getaddrinfo, socket.gethostbyname = getaddrinfo, gethostbyname
_record("guard-loaded", None)
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_guard(folder: Path) -> tuple[Path, Path]:
    """The guard as ``folder/sitecustomize.py``; return (folder for PYTHONPATH, its log file)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(GUARD, encoding="utf-8")
    log = folder / "network.jsonl"
    log.write_text("", encoding="utf-8")
    return folder, log


def guard_events(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass
class RunningApp:
    url: str
    port: int
    proc: subprocess.Popen[bytes]
    output: Path
    guard_log: Path
    trace_log: Path

    def outbound(self) -> list[dict[str, object]]:
        """Every non-loopback connection or lookup the app attempted, from Python (refused) or from C (traced)."""
        events = guard_events(self.guard_log)
        if not any(e["kind"] == "guard-loaded" for e in events):
            raise AssertionError("the network guard was not loaded into the app process")
        traced_calls = [{"kind": "syscall", "target": line} for line in egress(self.trace_log)] \
            if self.trace_log.exists() else []
        return [e for e in events if e["kind"] != "guard-loaded"] + traced_calls

    def log(self) -> str:
        return self.output.read_text(encoding="utf-8", errors="replace")


@contextlib.contextmanager
def start_app(tmp_path: Path, *extra: str, script: Path = APP, env: dict[str, str] | None = None,
              ) -> Iterator[RunningApp]:
    """Start ``streamlit run`` on a free port exactly as ``make run`` does, under the socket guard and strace."""
    port = free_port()
    guard_dir, guard_log = write_guard(tmp_path / "netguard")
    trace_log = tmp_path / f"streamlit-{port}.strace"
    full_env = {k: v for k, v in untouched_env().items() if not k.startswith("STREAMLIT_") and k != "RAG_ACCESS_TOKEN"}
    full_env.update(RAG_INDEX_DIR=str(tmp_path / "idx"), RAG_UPLOAD_DIR=str(tmp_path / "up"), HF_HUB_OFFLINE="1",
                    RAG_NET_GUARD_LOG=str(guard_log),
                    PYTHONPATH=os.pathsep.join([str(guard_dir), full_env.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    full_env.update(env or {})
    output = tmp_path / f"streamlit-{port}.log"
    with open(output, "wb") as out:
        # a session of its own: strace ignores fatal signals while it traces, so they go to the group
        proc = subprocess.Popen([*([] if tracing_problem() else traced(trace_log)), sys.executable, "-m", "streamlit", "run", str(script),
                                 "--server.port", str(port), *extra], cwd=REPO, env=full_env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    app = RunningApp(f"http://127.0.0.1:{port}", port, proc, output, guard_log, trace_log)
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{app.url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("streamlit did not start:\n" + app.log())
            time.sleep(0.3)
        yield app
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def listening_addresses(port: int) -> list[str]:
    """Local addresses of the sockets listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            hexaddr, hexport = local.split(":")
            if state != "0A" or int(hexport, 16) != port:  # 0A = LISTEN
                continue
            raw = bytes.fromhex(hexaddr)
            # the kernel prints each 32-bit word in host (little-endian) order
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            found.append(str(ipaddress.ip_address(raw)) if width == 8 else str(ipaddress.IPv6Address(raw)))
    return found


def cross_origin_websocket(port: int, origin: str = "http://evil.example") -> bytes:
    """Open the app's WebSocket from a foreign page's origin (what a malicious site could do); return the reply."""
    req = (f"GET /_stcore/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
           f"Sec-WebSocket-Protocol: streamlit\r\nOrigin: {origin}\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(req.encode("ascii"))
        return s.recv(256)


# -- the configuration -----------------------------------------------------------------------
def test_streamlit_config_is_private() -> None:
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["server"]["address"] == "127.0.0.1"
    assert config["server"]["headless"] is True
    assert config["browser"]["gatherUsageStats"] is False
    assert config["browser"]["serverAddress"] == "localhost"  # printing the URL needs no IP lookup
    assert config["client"]["toolbarMode"] == "minimal"  # no Deploy button, no developer menu
    assert config["client"]["showErrorLinks"] is False  # no "Ask Google" / "Ask ChatGPT" on errors


def test_the_guard_catches_streamlits_ip_lookups(tmp_path: Path) -> None:
    """The guard sees exactly what the issue reported: the UDP probe to 8.8.8.8 and the external-IP lookup."""
    guard_dir, log = write_guard(tmp_path / "netguard")
    env = dict(os.environ, RAG_NET_GUARD_LOG=str(log), PYTHONPATH=str(guard_dir))
    subprocess.run([sys.executable, "-c", "import streamlit.net_util as n; n.get_internal_ip(); n.get_external_ip()"],
                   env=env, check=True, timeout=120, capture_output=True)
    targets = " ".join(str(e["target"]) for e in guard_events(log))
    assert "8.8.8.8" in targets and "checkip.amazonaws.com" in targets


# -- the real app --------------------------------------------------------------------------
def test_app_binds_loopback_and_makes_no_outbound_connection(tmp_path: Path) -> None:
    with start_app(tmp_path) as app:
        addresses = listening_addresses(app.port)
        for path in ("/", "/_stcore/health", "/_stcore/host-config"):
            with urllib.request.urlopen(app.url + path, timeout=10) as r:
                assert r.status == 200
        time.sleep(1.0)  # let any background lookup happen
        outbound = app.outbound()
        log = app.log()
    assert outbound == [], f"the app reached for the network at startup: {outbound}"
    if Path("/proc/net/tcp").exists():
        assert addresses, f"nothing listening on port {app.port}"
        assert all(ipaddress.ip_address(a).is_loopback for a in addresses), f"listening on {addresses}"
    assert f"URL: http://localhost:{app.port}" in log
    assert "Network URL" not in log and "External URL" not in log


# -- the access gate (AppTest) -----------------------------------------------------------------
@pytest.fixture()
def bind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Pretend the server listens on an address (AppTest binds nothing); restore it afterwards."""
    from streamlit import config

    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "idx"))
    monkeypatch.setenv("RAG_UPLOAD_DIR", str(tmp_path / "up"))
    monkeypatch.delenv("RAG_ACCESS_TOKEN", raising=False)
    old = config.get_option("server.address")

    def set_address(address: str | None) -> None:
        config.set_option("server.address", address)

    yield set_address
    config.set_option("server.address", old)


def _app():  # type: ignore[no-untyped-def]
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(APP), default_timeout=120)


def _serves_the_app(at) -> bool:  # type: ignore[no-untyped-def]
    return any("no collection yet" in i.value for i in at.info)


@pytest.mark.parametrize("address", [None, "", "0.0.0.0", "::", "192.168.1.5", "my-laptop.lan"])
def test_refuses_a_network_address_without_a_token(bind, address: str | None) -> None:  # type: ignore[no-untyped-def]
    bind(address)
    at = _app()
    at.run()
    assert not at.exception
    assert at.title[0].value == "Not serving: no access token"
    assert "RAG\\_ACCESS\\_TOKEN" in at.error[0].value or "RAG_ACCESS_TOKEN" in at.error[0].value
    assert not _serves_the_app(at) and not at.sidebar.children and not at.button and not at.text_input


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_serves_on_loopback_without_a_token(bind, address: str) -> None:  # type: ignore[no-untyped-def]
    bind(address)
    at = _app()
    at.run()
    assert not at.exception
    assert _serves_the_app(at)


def test_token_gate(bind, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    bind("0.0.0.0")
    monkeypatch.setenv("RAG_ACCESS_TOKEN", TOKEN)
    at = _app()
    at.run()
    assert not at.exception and not _serves_the_app(at) and not at.sidebar.children
    at.text_input(key="access_token").input("wrong-token-wrong-token")
    at.button[0].click().run()
    assert "Wrong access token" in at.error[0].value
    assert not _serves_the_app(at)
    at.text_input(key="access_token").input(TOKEN)
    at.button[0].click().run()
    assert not at.exception
    assert _serves_the_app(at)
    at.run()  # stays open for this session
    assert _serves_the_app(at)
    # a new session starts locked again
    other = _app()
    other.run()
    assert not _serves_the_app(other)


def test_a_short_token_is_refused(bind, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    bind("0.0.0.0")
    monkeypatch.setenv("RAG_ACCESS_TOKEN", "1234")
    at = _app()
    at.run()
    assert at.title[0].value == "Not serving: access token too short"
    assert not at.text_input and not _serves_the_app(at)


def test_loopback_with_a_token_is_gated_too(bind, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    bind("127.0.0.1")
    monkeypatch.setenv("RAG_ACCESS_TOKEN", TOKEN)
    at = _app()
    at.run()
    assert at.text_input(key="access_token") is not None and not _serves_the_app(at)

