"""`rag chat` saves each turn, `rag chat --resume` continues, `rag chats` lists, exports and deletes (real CLI)."""

from __future__ import annotations

import io
import json
import stat
from pathlib import Path

import pytest

from rag.chats import CHATS_FILE, ChatStore
from rag.cli.main import main


def chat(monkeypatch: pytest.MonkeyPatch, *args: str, stdin: str) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(["chat", "--index", "t", "--extractive", *args])


def test_chat_is_saved_resumed_listed_exported_and_deleted(tmp_path: Path, docs_dir: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "idx"
    monkeypatch.setenv("RAG_INDEX_DIR", str(root))
    assert main(["ingest", str(docs_dir), "--index", "t", "-q"]) == 0
    capsys.readouterr()
    assert chat(monkeypatch, stdin="How do I prime the pump?\n/quit\n") == 0
    err = capsys.readouterr().err
    chats = ChatStore(root / CHATS_FILE)
    [saved] = chats.list()
    assert f"chat saved as {saved.id}" in err
    assert stat.S_IMODE(chats.path.stat().st_mode) == 0o600
    assert saved.title == "How do I prime the pump?" and saved.collection == "t" and saved.n_turns == 1

    assert chat(monkeypatch, "--resume", stdin="What about the turbine blades?\n") == 0
    assert f"resuming chat {saved.id} (1 turns)" in capsys.readouterr().out
    turns = chats.load(saved.id).turns
    assert [t.question for t in turns] == ["How do I prime the pump?", "What about the turbine blades?"]
    assert "pump.md" in turns[0].answer.citations[0].chunk.source and turns[0].model == "extractive"

    chats.rename(saved.id, "\x1b[2Jpump\tpriming\x07")
    other = chats.create("another", "t")
    assert main(["chats"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{other}  ") and lines[1].startswith(f"{saved.id}  ")
    assert "\x1b" not in lines[1] and "  t  [2Jpump priming  (2 turns)" in lines[1]
    assert main(["chats", "--search", "turbine"]) == 0
    assert capsys.readouterr().out.startswith(saved.id)

    assert main(["chats", "export", saved.id, "--format", "md"]) == 0
    md = capsys.readouterr().out
    assert "## Question 2" in md and "What about the turbine blades?" in md and "pump.md" in md and "   > " in md
    assert main(["chats", "export", saved.id, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["id"] == saved.id and doc["turns"][0]["answer"]["citations"][0]["chunk"]["source"].endswith("pump.md")

    assert main(["chats", "delete", other]) == 0
    assert main(["chats", "delete", other]) == 2
    assert capsys.readouterr().err.startswith(f"error: no saved chat {other!r}")
    assert main(["chats", "delete", "--all"]) == 0
    assert "deleted 1 chat from" in capsys.readouterr().out and chats.list() == []
    assert main(["chat", "--index", "t", "--resume"]) == 2
    assert "no saved chat to resume" in capsys.readouterr().err


def test_a_damaged_history_still_answers_unsaved(tmp_path: Path, docs_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "idx"
    monkeypatch.setenv("RAG_INDEX_DIR", str(root))
    assert main(["ingest", str(docs_dir), "--index", "t", "-q"]) == 0
    (root / CHATS_FILE).write_bytes(b"garbage" * 1000)
    capsys.readouterr()
    assert chat(monkeypatch, stdin="How do I prime the pump?\n") == 0
    out, err = capsys.readouterr()
    assert "pump.md" in out  # answered
    assert err.startswith(f"warning: chat history at {root / CHATS_FILE} is damaged (")
    assert err.rstrip().endswith("; answering without saving") and len(err.strip().splitlines()) == 1
    assert main(["chats"]) == 2
    assert "is damaged" in capsys.readouterr().err
