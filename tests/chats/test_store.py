"""Saved chats (rag.chats): schema and migrations, file mode, damaged and newer files, real concurrent writers."""

from __future__ import annotations

import json
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rag.chats import CHATS_FILE, SCHEMA_VERSION, ChatHistoryError, ChatStore, answer_from_dict, answer_to_dict
from rag.chats import store as store_mod
from rag.chats import to_json, to_markdown
from rag.types import Answer, Chunk, Citation, Diagnostics, Hit, SentenceSupport

REPO = Path(__file__).resolve().parents[2]


def rich_answer(question: str = "How is the pump primed?") -> Answer:
    c1 = Chunk("c1", "Open the bleed valve. Fill the casing with water.", "d1", "/docs/pump.pdf", 3, 100, 149, 2)
    c2 = Chunk("c2", "Never run it dry.", "d2", "notes.md", None, 0, 17, 0, suspicious=True)
    return Answer(
        question=question, text="Fill the casing with water [1].",
        citations=(Citation(1, c1, 0.8, 121, 149),), sources=(Citation(1, c1, 0.8, 121, 149), Citation(2, c2, 0.1)),
        support=(SentenceSupport("Fill the casing with water [1].", 1, 0.91, True),),
        standalone_query="pump priming", mode="extractive",
        diagnostics=Diagnostics(retrieved=5, relevant=2, explicit_citations=(1,), repointed_citations=((2, 1),),
                                withheld=(Hit(c2, 0.4, 2, {"bm25": 1.5}),), decision_signals={"check": 1.2},
                                timings={"retrieve_s": 0.01}, unsupported_share=0.0))


def test_answer_round_trips_through_json() -> None:
    a = rich_answer()
    assert answer_from_dict(json.loads(json.dumps(answer_to_dict(a)))) == a


def test_schema_file_mode_and_turns(tmp_path: Path) -> None:
    chats = ChatStore(tmp_path / "root" / CHATS_FILE)
    assert chats.list() == [] and not chats.path.exists()  # reading makes no file
    first = chats.create("  How is the pump\nprimed? ", "manuals", documents=["pump.pdf"])
    assert stat.S_IMODE(chats.path.stat().st_mode) == 0o600
    with sqlite3.connect(chats.path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert chats.append(first, rich_answer(), model="extractive", timings={"total_s": 1.5},
                        meta={"cosines": {"c1": 0.5}}) == 1
    assert chats.append(first, rich_answer("And then?"), model="extractive") == 2
    second = chats.create("Turbine blades", "turbines")
    chats.append(second, rich_answer("Turbine blades"))

    assert [c.id for c in chats.list()] == [second, first]  # newest first
    assert [c.id for c in chats.list(collection="manuals")] == [first]
    chat = chats.load(first)
    assert (chat.title, chat.collection, chat.documents, chat.n_turns) == ("How is the pump primed?", "manuals",
                                                                           ("pump.pdf",), 2)
    assert chat.turns[0].answer == rich_answer() and chat.turns[0].meta == {"cosines": {"c1": 0.5}}
    assert chat.turns[0].model == "extractive" and chat.turns[0].timings == {"total_s": 1.5}
    assert [t.question for t in chat.turns] == ["How is the pump primed?", "And then?"]

    assert [c.id for c in chats.search("CASING")] == [second, first]  # answer text, any case
    assert [c.id for c in chats.search("then?")] == [first]  # a question
    assert chats.search("100%") == [] and chats.search("_") == []  # LIKE wildcards are literal
    chats.rename(first, "Priming")
    assert chats.load(first).title == "Priming" and [c.id for c in chats.search("prim")] == [first]
    with pytest.raises(ValueError, match="must not be empty"):
        chats.rename(first, "  ")

    md = to_markdown(chats.load(first))
    assert "## Question 1" in md and "1. pump.pdf, page 3 (/docs/pump.pdf)" in md and "> Fill the casing" in md
    doc = json.loads(to_json(chats.load(first), chats.raw_answers(first)))
    assert doc["turns"][0]["answer"]["citations"][0]["chunk"]["id"] == "c1" and doc["schema"] == SCHEMA_VERSION

    assert chats.delete(second) and not chats.delete(second)
    with pytest.raises(ChatHistoryError, match="no saved chat"):
        chats.load(second)
    with pytest.raises(ChatHistoryError, match="no saved chat"):
        chats.append(second, rich_answer())
    chats.create("other", "turbines")
    assert chats.delete_all("turbines") == 1 and [c.id for c in chats.list()] == [first]
    assert chats.delete_all() == 1 and chats.list() == []


def test_migrations_run_in_order_from_an_older_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / CHATS_FILE
    old = ChatStore(path)
    chat_id = old.create("kept", "c")
    monkeypatch.setattr(store_mod, "MIGRATIONS", (*store_mod.MIGRATIONS, ("ALTER TABLE chats ADD COLUMN pinned "
                                                                          "INTEGER NOT NULL DEFAULT 0",)))
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    assert [c.id for c in ChatStore(path).list()] == [chat_id]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
        assert conn.execute("SELECT pinned FROM chats").fetchone()[0] == 0


def test_a_damaged_or_newer_file_is_one_clear_line(tmp_path: Path) -> None:
    damaged = tmp_path / "a" / CHATS_FILE
    damaged.parent.mkdir()
    damaged.write_bytes(b"this is not a database, it is a shopping list\n" * 100)
    for call in (lambda s: s.list(), lambda s: s.create("q", "c"), lambda s: s.check()):
        with pytest.raises(ChatHistoryError) as err:
            call(ChatStore(damaged))
        msg = str(err.value)
        assert msg.startswith(f"chat history at {damaged} is damaged (") and "\n" not in msg
        assert "move it aside or delete it" in msg

    newer = tmp_path / "b" / CHATS_FILE
    ChatStore(newer).create("q", "c")
    with sqlite3.connect(newer) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    with pytest.raises(ChatHistoryError, match=rf"is newer \(schema {SCHEMA_VERSION + 5} > {SCHEMA_VERSION}\)"):
        ChatStore(newer).list()


_WRITER = textwrap.dedent("""
    import sys
    from rag.chats import ChatStore
    from rag.types import Answer
    path, shared, name, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    chats = ChatStore(path)
    own = chats.create(name, "c")
    for i in range(n):
        chats.append(shared, Answer(question=f"{name} {i}", text="a"))
        chats.append(own, Answer(question=f"{name} own {i}", text="a"))
""")


def test_concurrent_processes_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / CHATS_FILE
    shared = ChatStore(path).create("shared", "c")
    writers, n = 4, 25
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path), shared, f"w{w}", str(n)], cwd=REPO,
                              stderr=subprocess.PIPE, text=True) for w in range(writers)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    chats = ChatStore(path)
    turns = chats.load(shared).turns
    assert [t.position for t in turns] == list(range(1, writers * n + 1))
    assert sorted(t.question for t in turns) == sorted(f"w{w} {i}" for w in range(writers) for i in range(n))
    own = [c for c in chats.list() if c.id != shared]
    assert len(own) == writers and all(c.n_turns == n for c in own)
