"""Saving API answers to the chat history on request (``rag.chat_id``, ``rag.save``): in process with extractive
answers, and against the real ``rag serve`` subprocess with other processes writing the same file."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from rag.chats import CHATS_FILE, chat_store
from rag.index.store import IndexStore
from rag.pipeline import GenerationConfig, PipelineConfig
from tests.serve.test_api import PUMP_Q, TURBINE_Q, Server, make_collections


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Path:
    return make_collections(tmp_path_factory.mktemp("saved"), embedder)


@pytest.fixture(scope="module")
def service(index_dir: Path, embedder: Any) -> Iterator[Any]:
    from rag.serve.service import RagService

    config = PipelineConfig(index="docs", generation=GenerationConfig(mode="extractive"))
    svc = RagService(IndexStore(index_dir), config, embedder=embedder).load()
    yield svc
    svc.close()


@pytest.fixture()
def client(service: Any, index_dir: Path) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from rag.serve.api import ApiSettings, create_app

    for leftover in index_dir.glob(CHATS_FILE + "*"):  # each test starts with no history
        leftover.unlink()
    with TestClient(create_app(service, ApiSettings()), base_url="http://127.0.0.1:8000") as c:
        yield c


def body(question: str, rag: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    return {"model": "rag:docs", "messages": [{"role": "user", "content": question}], **({"rag": rag} if rag else {}),
            **kw}


def streamed_rag(c: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """The ``rag`` object of a streamed completion's last chunk."""
    events = [json.loads(line[6:]) for line in c.post("/v1/chat/completions", json={**payload, "stream": True})
              .text.split("\n\n") if line.startswith("data: {")]
    return [e for e in events if e.get("rag")][-1]["rag"]


def test_save_starts_a_chat_and_chat_id_appends_to_it(client: Any, index_dir: Path) -> None:
    first = client.post("/v1/chat/completions", json=body(PUMP_Q, {"save": True})).json()
    chat_id = first["rag"]["chat_id"]
    assert chat_id and "warnings" not in first["rag"]
    follow = {"model": "rag:docs", "rag": {"chat_id": chat_id},
              "messages": [{"role": "user", "content": PUMP_Q}, {"role": "assistant", "content": first["rag"]["text"]},
                           {"role": "user", "content": TURBINE_Q}]}
    second = client.post("/v1/chat/completions", json=follow).json()
    assert second["rag"]["chat_id"] == chat_id
    chat = chat_store(index_dir).load(chat_id)
    assert (chat.title, chat.collection) == (PUMP_Q, "docs")
    assert [t.question for t in chat.turns] == [PUMP_Q, TURBINE_Q]
    assert [t.answer.text for t in chat.turns] == [first["rag"]["text"], second["rag"]["text"]]
    turn = chat.turns[0]
    assert turn.answer.citations and turn.answer.citations[0].chunk.source.endswith("pump.md")
    assert turn.model == "extractive" and turn.timings["total_s"] > 0 and turn.meta == {"via": "api"}
    assert turn.answer.diagnostics.retrieved == first["rag"]["diagnostics"]["retrieved"]


def test_nothing_is_saved_unless_asked(client: Any, index_dir: Path) -> None:
    r = client.post("/v1/chat/completions", json=body(PUMP_Q))
    assert r.status_code == 200 and "chat_id" not in r.json()["rag"]
    assert "chat_id" not in streamed_rag(client, body(PUMP_Q))
    assert chat_store(index_dir).list() == []


def test_an_unknown_chat_id_is_a_404(client: Any, index_dir: Path) -> None:
    for history in (False, True):  # no history file yet, then one without that chat
        if history:
            chat_store(index_dir).create("other", "docs")
        r = client.post("/v1/chat/completions", json=body(PUMP_Q, {"chat_id": "feedbeef0000"}))
        assert r.status_code == 404, r.text
        error = r.json()["error"]
        assert error["code"] == "chat_not_found" and error["param"] == "rag.chat_id"
        assert "feedbeef0000" in error["message"] and str(index_dir) not in error["message"]
    assert client.post("/v1/chat/completions", json=body(PUMP_Q, {"chat_id": "no spaces"})).status_code == 400


def test_a_streamed_answer_is_saved_when_complete(client: Any, index_dir: Path) -> None:
    rag = streamed_rag(client, body(PUMP_Q, {"save": True}))
    chat_id = rag["chat_id"]
    assert streamed_rag(client, body(TURBINE_Q, {"chat_id": chat_id}))["chat_id"] == chat_id
    chat = chat_store(index_dir).load(chat_id)
    assert [t.question for t in chat.turns] == [PUMP_Q, TURBINE_Q]
    assert chat.turns[0].answer.text == rag["text"]


def test_a_cancelled_answer_saves_nothing(client: Any, index_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client gone before the answer completed: the job is cancelled, no chat is created."""
    from rag.serve.service import AnswerJob

    def cancelled(self: AnswerJob) -> None:
        self.cancelled = True
        self._put(("cancelled", None))
        self.finished.set()

    monkeypatch.setattr(AnswerJob, "_run", cancelled)
    for stream in (False, True):
        client.post("/v1/chat/completions", json=body(PUMP_Q, {"save": True}, stream=stream))
    assert chat_store(index_dir).list() == []


@pytest.mark.parametrize("damage", ["garbage", "newer"])
def test_a_damaged_or_newer_history_still_answers_unsaved(client: Any, index_dir: Path, damage: str) -> None:
    chat_id = chat_store(index_dir).create("kept", "docs")
    path = index_dir / CHATS_FILE
    if damage == "garbage":
        for leftover in index_dir.glob(CHATS_FILE + "-*"):
            leftover.unlink()
        path.write_bytes(b"this is not a database" * 100)
    else:
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA user_version = 99")
    for rag in ({"save": True}, {"chat_id": chat_id}):
        r = client.post("/v1/chat/completions", json=body(PUMP_Q, rag))
        assert r.status_code == 200, r.text
        out = r.json()["rag"]
        assert out["citations"] and "chat_id" not in out
        assert len(out["warnings"]) == 1 and out["warnings"][0].startswith("not saved: ")
        assert ("damaged" if damage == "garbage" else "newer") in out["warnings"][0]
        assert str(index_dir) not in out["warnings"][0]  # the server's paths stay out
        streamed = streamed_rag(client, body(PUMP_Q, rag))
        assert streamed["warnings"] == out["warnings"] and "chat_id" not in streamed


# -- real processes: `rag serve` and other writers on the same file ------------------------------------------

WRITER = """
import sys
from rag.chats import chat_store
from rag.types import Answer
chats = chat_store(sys.argv[1])
chat_id, n = sys.argv[2], int(sys.argv[3])
for i in range(n):
    chats.append(chat_id, Answer(question=f"{chat_id} q{i}", text=f"a{i}"), model="writer")
"""


@pytest.mark.model  # the real `rag serve` subprocess (MiniLM; extractive, no LLM)
def test_concurrent_api_requests_and_other_processes_lose_no_turn(tmp_path: Path, embedder: Any) -> None:
    index_dir = make_collections(tmp_path, embedder)
    chats = chat_store(index_dir)
    writer_chats = [chats.create(f"writer {i}", "docs") for i in range(3)]
    n_writer, n_api, n_threads = 25, 6, 4
    srv = Server(["--index", "docs", "--index-dir", str(index_dir), "--extractive", "--max-concurrent", "8"])
    try:
        with httpx.Client(base_url=srv.base, timeout=120) as c:
            def conversation(k: int) -> tuple[str, list[str]]:
                """One API chat: save:true, then chat_id appends, one after another."""
                asked = [f"{PUMP_Q} ({k}.0)"]
                chat_id = c.post("/v1/chat/completions", json=body(asked[0], {"save": True})).json()["rag"]["chat_id"]
                for i in range(1, n_api):
                    asked.append(f"{TURBINE_Q if i % 2 else PUMP_Q} ({k}.{i})")
                    r = c.post("/v1/chat/completions", json=body(asked[-1], {"chat_id": chat_id}, stream=i % 3 == 0))
                    assert r.status_code == 200, r.text
                return chat_id, asked

            writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(index_dir), chat_id, str(n_writer)],
                                        cwd=Path(__file__).resolve().parents[2]) for chat_id in writer_chats]
            with ThreadPoolExecutor(n_threads) as pool:
                api_chats = list(pool.map(conversation, range(n_threads)))
            assert [w.wait(timeout=120) for w in writers] == [0] * len(writers)
    finally:
        srv.stop()
    for chat_id in writer_chats:
        assert [t.question for t in chats.load(chat_id).turns] == [f"{chat_id} q{i}" for i in range(n_writer)]
    for chat_id, asked in api_chats:
        chat = chats.load(chat_id)
        assert [t.question for t in chat.turns] == asked and [t.position for t in chat.turns] == list(range(1, n_api + 1))
    assert len(chats.list()) == len(writer_chats) + n_threads
