"""``rag ingest`` and ``rag watch`` on a disk that is full (a real tmpfs, the real CLI in its own process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from rag.fs import TMP_PREFIX
from rag.index.store import IndexStore
from rag.ingest.watcher import WATCH_PREFIX, active_watches
from tests.ingest.test_watcher import sources, wait_for
from tests.small_disk import fill, small_disk

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def disk(tmp_path: Path) -> Iterator[Path]:
    with small_disk(tmp_path / "disk", size="1m") as d:
        yield d


def rag_env(index_dir: Path) -> dict[str, str]:
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1", "RAG_INDEX_DIR": str(index_dir)}


def test_rag_ingest_on_a_full_disk_says_so_in_one_line(tmp_path: Path, disk: Path, embedder,  # type: ignore[no-untyped-def]
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Was: ``error: could not write index 'notes' to ... (23040 requested and 15328 written)``."""
    from rag.cli.main import main

    monkeypatch.setattr("rag.embedding.Embedder", lambda name: embedder)  # the session's, not a second load
    monkeypatch.setenv("RAG_INDEX_DIR", str(disk / "idx"))
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(3):
        (docs / f"note{i}.md").write_text(f"Note {i}: the Zephyr pump is primed through the bleed valve. " * 20,
                                          encoding="utf-8")
    fill(disk, leave=8 * 1024)
    assert main(["ingest", str(docs), "--index", "notes", "-q"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "disk full (ENOSPC)" in lines[0] and str(disk) in lines[0], lines[0]
    assert "needs about" in lines[0] and "free" in lines[0], lines[0]
    assert "requested and" not in lines[0]
    left = sorted(str(p.relative_to(disk)) for p in disk.rglob("*"))
    assert left in (["filler.bin"], ["filler.bin", "idx"]), left  # no index, no partial version


@pytest.mark.slow
def test_rag_watch_backs_off_on_a_full_disk_and_resumes(tmp_path: Path, disk: Path) -> None:
    """One warning line per failed try at growing delays, no traceback; indexed once space is back;
    SIGTERM stops it cleanly and removes its status file."""
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("Alpha document about the Zephyr pump.", encoding="utf-8")
    log = tmp_path / "watch.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "rag", "watch", str(folder), "--index", "docs", "--debounce",
                                 "0.2", "--settle", "0.2", "-q"], cwd=tmp_path, env=rag_env(disk / "idx"),
                                stdout=fh, stderr=subprocess.STDOUT)
    store = IndexStore(disk / "idx")
    try:
        wait_for(lambda: "watching" in log.read_text(), timeout=180, what="the watcher to start")
        assert sources(store, "docs") == {"a.md"}
        filler = fill(disk)
        (folder / "b.md").write_text("Beta document about the Zephyr valve. " * 30, encoding="utf-8")

        def failures() -> list[str]:
            return [line for line in log.read_text().splitlines() if "re-indexing" in line]

        wait_for(lambda: len(failures()) >= 2, timeout=60, what="two failed tries")
        first, second = failures()[:2]
        for line in (first, second):
            assert "disk full (ENOSPC)" in line and str(disk) in line, line
        assert first.endswith("retrying in 1 s") and second.endswith("retrying in 2 s"), (first, second)
        assert "Traceback" not in log.read_text()
        assert sources(store, "docs") == {"a.md"}

        filler.unlink()  # space is back: the next try goes through
        wait_for(lambda: sources(store, "docs") == {"a.md", "b.md"}, timeout=60, what="b.md to be indexed")
        assert [w.pid for w in active_watches(store.path("docs"))] == [proc.pid]
    finally:
        proc.send_signal(signal.SIGTERM)  # as a service manager stops it
        code = proc.wait(timeout=60)
    text = log.read_text()
    assert code == 0, text
    assert "stopped watching" in text and "Traceback" not in text, text
    assert not list(store.path("docs").glob(f"{WATCH_PREFIX}*")), "SIGTERM left the status file"
    assert not [p for p in store.path("docs").iterdir() if p.name.startswith(TMP_PREFIX)]
