"""The `rag` command line end to end (real embedder, temp index dir)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rag.cli.main import main


@pytest.fixture()
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "idx"
    monkeypatch.setenv("RAG_INDEX_DIR", str(root))
    return root


def test_ingest_search_docs_remove(cli_env: Path, docs_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (docs_dir / "junk.bin.txt").write_bytes(b"\x00\x01\x02")
    assert main(["ingest", str(docs_dir), "--index", "t", "-q"]) == 1  # one file failed
    out = capsys.readouterr().out
    assert "3 added" in out and "1 failed" in out and "junk.bin.txt" in out

    assert main(["search", "prime the pump", "--index", "t", "-k", "2"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith(" 1.") and "pump.md" in lines[0]

    assert main(["search", "prime the pump", "--index", "t", "--mode", "bm25", "--format", "json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert hits[0]["rank"] == 1 and Path(hits[0]["source"]).name == "pump.md" and "start" in hits[0]

    assert main(["docs", "--index", "t"]) == 0
    assert "3 documents" in capsys.readouterr().out
    assert main(["indexes"]) == 0
    assert capsys.readouterr().out.startswith("t: 3 documents")

    assert main(["remove", str(docs_dir / "pump.md"), "--index", "t"]) == 0
    assert main(["remove", str(docs_dir / "pump.md"), "--index", "t"]) == 1
    assert "not in index 't'" in capsys.readouterr().err


def test_errors_are_one_clear_line(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "x", "--index", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no index named 'nope'") and "rag ingest" in err
    assert main(["ingest", "/does/not/exist", "--index", "bad/name"]) == 2
    assert "index name must be" in capsys.readouterr().err


def test_python_dash_m_rag_entry_point() -> None:
    out = subprocess.run([sys.executable, "-m", "rag", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    for cmd in ("ingest", "search", "remove", "eval"):
        assert cmd in out.stdout


def test_search_reranker_auto_needs_a_trained_one(cli_env: Path, docs_dir: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ingest", str(docs_dir), "--index", "t", "-q"]) == 0
    assert main(["search", "pump", "--index", "t", "--reranker", "auto"]) == 2
    assert "has no trained reranker" in capsys.readouterr().err
