"""`rag delete-index NAME` and the index's saved chats: --with-chats, --keep-chats, a y/N question on a terminal,
kept with one line saying how to delete them when not on a terminal; other collections' chats are untouched."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from rag.chats import CHATS_FILE, ChatStore
from rag.cli.main import main


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def two_chats(tmp_path: Path, docs_dir: Path, monkeypatch: pytest.MonkeyPatch,
              capsys: pytest.CaptureFixture[str]) -> ChatStore:
    root = tmp_path / "idx"
    monkeypatch.setenv("RAG_INDEX_DIR", str(root))
    assert main(["ingest", str(docs_dir), "--index", "t", "-q"]) == 0
    chats = ChatStore(root / CHATS_FILE)
    chats.create("one", "t")
    chats.create("two", "t")
    chats.create("elsewhere", "other")
    capsys.readouterr()
    return chats


def _titles(chats: ChatStore) -> list[str]:
    return sorted(c.title for c in chats.list())


def test_not_on_a_terminal_the_chats_are_kept_with_one_line(two_chats: ChatStore,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["delete-index", "t"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["deleted index 't'", "kept its 2 saved chats; delete them with `rag chats delete --all --index t`"]
    assert _titles(two_chats) == ["elsewhere", "one", "two"]


@pytest.mark.parametrize(("flag", "left"), [("--with-chats", ["elsewhere"]),
                                            ("--keep-chats", ["elsewhere", "one", "two"])])
def test_the_flags_answer_ahead(two_chats: ChatStore, capsys: pytest.CaptureFixture[str], flag: str,
                                left: list[str]) -> None:
    assert main(["delete-index", "t", flag]) == 0
    assert _titles(two_chats) == left
    said = "deleted its 2 saved chats" if flag == "--with-chats" else "kept its 2 saved chats"
    assert said in capsys.readouterr().out


@pytest.mark.parametrize(("reply", "left"), [("y\n", ["elsewhere"]), ("\n", ["elsewhere", "one", "two"])])
def test_on_a_terminal_it_asks(two_chats: ChatStore, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str], reply: str, left: list[str]) -> None:
    monkeypatch.setattr("sys.stdin", _Tty(reply))
    monkeypatch.setattr("sys.stdout.isatty", lambda: True, raising=False)
    assert main(["delete-index", "t"]) == 0
    assert "delete its 2 saved chats too? [y/N]" in capsys.readouterr().out
    assert _titles(two_chats) == left


def test_both_flags_are_refused(two_chats: ChatStore) -> None:
    with pytest.raises(SystemExit):
        main(["delete-index", "t", "--with-chats", "--keep-chats"])
