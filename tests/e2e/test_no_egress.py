"""Nothing leaves the machine, seen from the kernel's side: every long-running command under ``strace``.

``rag ingest``, ``rag chat`` (the ``rag ask`` path, several turns in one process), ``rag serve``
(answering the real ``openai`` client) and ``rag watch`` (indexing files as they arrive) run at the
same time, each for at least a minute of real work, under ``strace -f`` (:mod:`tests.egress`); the app
runs under it in every browser test (``tests/e2e/test_browser.py``). Any connection to a
non-loopback address, and any DNS query, fails the test. The commands start without the telemetry
switches in their environment, so the package must set them itself (:mod:`rag.privacy`).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import COVID_QA, REPO
from tests.egress import STRACE, egress, traced, tracing_problem, untouched_env

RAG = [sys.executable, "-m", "rag"]
WORK_S = 60.0
QUESTIONS = ["How large can a file be?", "What happens if ingestion is interrupted?", "Which formats are supported?",
             "How is my data protected?", "Can I use a GPU?", "What is hybrid search?"]


def _env(tmp_path: Path) -> dict[str, str]:
    env = untouched_env()
    env.update(RAG_INDEX_DIR=str(tmp_path / "indexes"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env


def _require_strace(tmp_path: Path) -> None:
    problem = tracing_problem()
    if problem is not None and not Path(STRACE).exists():
        pytest.fail(problem)
    if problem is not None:
        pytest.skip(problem)  # a container without ptrace: the socket guard still runs in every other test


def test_the_trace_sees_a_lookup_made_from_c(tmp_path: Path) -> None:
    """A name lookup through libc directly (as a C library makes it, past Python's socket) is reported."""
    _require_strace(tmp_path)
    log = tmp_path / "c.log"
    code = ("import ctypes; p = ctypes.c_void_p(); "
            "ctypes.CDLL(None).getaddrinfo(b'telemetry.example.com', b'443', None, ctypes.byref(p))")
    subprocess.run([*traced(log), sys.executable, "-c", code], env=_env(tmp_path), timeout=120, check=True)
    assert egress(log), log.read_text()[-2000:]


@pytest.mark.slow
@pytest.mark.model
def test_long_running_commands_reach_nothing_beyond_loopback(tmp_path: Path) -> None:
    _require_strace(tmp_path)
    from openai import OpenAI

    env = _env(tmp_path)
    logs = {name: tmp_path / f"{name}.strace" for name in ("setup", "ingest", "chat", "serve", "watch")}
    subprocess.run([*traced(logs["setup"]), *RAG, "ingest", str(REPO / "samples"), "--index", "samples", "-q"],
                   env=env, check=True, timeout=600, capture_output=True)
    papers = tmp_path / "papers"
    papers.mkdir()
    for doc in sorted((COVID_QA / "documents").glob("*.txt"))[:30]:  # ~500 chunks: a minute or more of embedding
        shutil.copy(doc, papers / doc.name)
    inbox = tmp_path / "inbox"
    inbox.mkdir()

    def start(name: str, *args: str, **kw: object) -> subprocess.Popen[str]:
        out = open(tmp_path / f"{name}.out", "w", encoding="utf-8")  # noqa: SIM115 (closed with the process)
        # a session of its own: strace ignores fatal signals while it traces, so they go to the group
        return subprocess.Popen([*traced(logs[name]), *RAG, *args], env=env, stdout=out, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True, **kw)  # type: ignore[call-overload]

    began = time.monotonic()
    ingest = start("ingest", "ingest", str(papers), "--index", "papers", "-q")
    chat = start("chat", "chat", "--index", "samples", stdin=subprocess.PIPE)
    serve = start("serve", "serve", "--index", "samples", "--port", "0")
    watch = start("watch", "watch", str(inbox), "--index", "inbox", "-q")
    procs = [ingest, chat, serve, watch]
    try:
        assert chat.stdin is not None
        chat.stdin.write("\n".join(QUESTIONS[:4]) + "\n/quit\n")
        chat.stdin.close()
        url = _wait_for(lambda: re.search(r"(http://127\.0\.0\.1:\d+/v1)", (tmp_path / "serve.out").read_text()),
                        serve, "rag serve printed no URL")
        client = OpenAI(base_url=url.group(1), api_key="unused", max_retries=0, timeout=600)
        answers, n = 0, 0
        while time.monotonic() - began < WORK_S or ingest.poll() is None:
            (inbox / f"note-{n}.md").write_text(f"# Note {n}\n\nThe meeting room number {n} is on floor {n % 4}.\n")
            reply = client.chat.completions.create(model="rag", messages=[
                {"role": "user", "content": QUESTIONS[n % len(QUESTIONS)]}])
            answers += bool(reply.choices[0].message.content)
            n += 1
        assert ingest.wait(timeout=600) == 0, (tmp_path / "ingest.out").read_text()[-2000:]
        assert chat.wait(timeout=600) == 0, (tmp_path / "chat.out").read_text()[-2000:]
        assert time.monotonic() - began >= WORK_S
        assert answers == n >= 1
        _wait_for(lambda: _documents(tmp_path, "inbox") >= 2, watch, "rag watch indexed nothing")
    finally:
        for proc in (serve, watch):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    assert (tmp_path / "chat.out").read_text().strip()
    reached = {name: egress(log) for name, log in logs.items()}
    assert reached == {name: [] for name in logs}, reached


def _documents(tmp_path: Path, name: str) -> int:
    from rag.index.store import IndexStore

    store = IndexStore(tmp_path / "indexes")
    return len(store.load(name).documents) if store.exists(name) else 0


def _wait_for(check, proc: subprocess.Popen[str], what: str, timeout: float = 300.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        if proc.poll() is not None:
            raise AssertionError(f"{what}: the process exited with {proc.returncode}")
        time.sleep(0.5)
    raise AssertionError(what)
