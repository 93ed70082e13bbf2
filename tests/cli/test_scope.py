"""``--doc PATH`` on ``rag search``, ``rag ask`` and ``rag chat``, end to end (the CLI loads MiniLM itself)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from rag.cli import answer as cli_answer
from rag.cli.main import build_parser, main
from tests import scoping
from tests.scoping import K, QUERY

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scope-cli")
    scoping.write(root / "docs")
    assert main(["ingest", str(root / "docs"), "--index", "parts", "--index-dir", str(root / "idx"), "-q",
                 "--chunk-size", "40", "--chunk-overlap", "0"]) == 0
    return root


def _run(argv: list[str], root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([*argv, "--index", "parts", "--index-dir", str(root / "idx")])
    out, err = capsys.readouterr()
    return code, out, err


def test_search_with_doc_returns_k_hits_from_it(workspace: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(workspace)
    for mode in ("bm25", "dense", "hybrid"):
        flags = ["search", QUERY, "--mode", mode, "-k", str(K), "--candidates", str(K), "--format", "json"]
        code, out, err = _run(flags, workspace, capsys)
        assert code == 0, err
        assert {Path(h["source"]).name for h in json.loads(out)} == {"pumps.md"}
        code, out, err = _run([*flags, "--doc", "docs/notes.md"], workspace, capsys)  # as typed in the shell
        assert code == 0, err
        assert [Path(h["source"]).name for h in json.loads(out)] == ["notes.md"] * K, mode
    code, out, _ = _run(["search", QUERY, "--mode", "bm25", "-k", "10", "--doc", "notes.md", "--doc", "valves.md",
                         "--format", "json"], workspace, capsys)
    assert code == 0 and {Path(h["source"]).name for h in json.loads(out)} == {"notes.md", "valves.md"}


def test_ask_and_chat_with_doc_answer_from_it(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["ask", "how is a leaking pump seal repaired?", "--extractive", "--json",
                           "--doc", "valves.md"], workspace, capsys)
    assert code == 0, err
    sources = json.loads(out)["sources"]
    assert sources and {s["source"] for s in sources} == {"valves.md"}

    args = build_parser().parse_args(["chat", "--index", "parts", "--index-dir", str(workspace / "idx"),
                                      "--extractive", "--doc", "valves.md", "--trace"])
    capsys.readouterr()
    assert cli_answer.cmd_chat(args, stdin=io.StringIO("how is a leaking pump seal repaired?\n/quit\n")) == 0
    out = capsys.readouterr().out
    assert "valves.md" in out and "pumps.md" not in out, out  # the trace lists every hit


def test_unknown_doc_is_one_error_line(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["search", QUERY], ["ask", "pump?", "--extractive"], ["chat", "--extractive"]):
        code, out, err = _run([*argv, "--doc", "nope.md"], workspace, capsys)
        assert code == 2, argv  # a bad value, as for other options
        assert err == ("error: unknown document 'nope.md' in index 'parts'; its documents include notes.md, "
                       "pumps.md, valves.md\n"), argv
