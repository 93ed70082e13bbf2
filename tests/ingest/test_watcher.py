"""``rag watch``: real file changes in a real folder are re-indexed (watchdog, the real embedder, the real CLI)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from rag.index.store import IndexStore
from rag.ingest.ingestor import Ingestor
from rag.ingest.watcher import WATCH_PREFIX, FolderWatcher, active_watches

REPO = Path(__file__).resolve().parents[2]


def wait_for(check: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def sources(store: IndexStore, name: str) -> set[str]:
    if not store.exists(name):
        return set()
    return {Path(s).name for s in store.load(name).documents}


def text_of(store: IndexStore, name: str, file: str) -> str:
    return " ".join(c.text for c in store.load(name).chunks if Path(c.source).name == file)


@pytest.fixture()
def watching(tmp_path: Path, embedder) -> Iterator[tuple[Path, IndexStore, list]]:  # type: ignore[no-untyped-def]
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "pump.md").write_text("The Zephyr pump is primed through the bleed valve.", encoding="utf-8")
    store = IndexStore(tmp_path / "idx")
    reports: list = []
    watcher = FolderWatcher(Ingestor("notes", store=store, embedder=embedder, show_progress=False), folder,
                            debounce=0.3, settle=0.3, on_report=reports.append)
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop, ready.set), daemon=True)
    thread.start()
    assert ready.wait(60), "the watcher did not start"
    yield folder, store, reports
    stop.set()
    thread.join(30)
    assert not thread.is_alive()
    assert not list(store.path("notes").glob(f"{WATCH_PREFIX}*")), "the watcher left its status file"


def test_changes_are_reindexed_incrementally(watching) -> None:  # type: ignore[no-untyped-def]
    folder, store, reports = watching
    assert sources(store, "notes") == {"pump.md"}  # synced at start
    [status] = active_watches(store.path("notes"))
    assert status.folder == str(folder.resolve()) and status.pid == os.getpid()

    n = len(reports)
    (folder / "valve.md").write_text("The Zephyr valve is tightened to 12 Nm.", encoding="utf-8")
    (folder / "sub").mkdir()
    (folder / "sub" / "seal.txt").write_text("Seals are replaced every 400 hours.", encoding="utf-8")
    wait_for(lambda: sources(store, "notes") == {"pump.md", "valve.md", "seal.txt"}, what="new files")
    wait_for(lambda: sum(len(r.added) for r in reports[n:]) >= 2, what="the report")  # saved, then reported
    new = [r for r in reports[n:] if r.added]
    assert new and not any(r.updated or r.removed for r in reports[n:])
    assert sum(len(r.added) for r in reports[n:]) == 2  # only the new files were read, in one debounced batch or two

    n = len(reports)
    (folder / "valve.md").write_text("The Zephyr valve is now tightened to 15 Nm.", encoding="utf-8")
    wait_for(lambda: "15 Nm" in text_of(store, "notes", "valve.md"), what="the edit")
    wait_for(lambda: any(r.updated for r in reports[n:]), what="the report")
    assert [Path(p).name for r in reports[n:] for p in r.updated] == ["valve.md"]

    (folder / "pump.md").unlink()
    wait_for(lambda: sources(store, "notes") == {"valve.md", "seal.txt"}, what="the deletion")

    (folder / "sub" / "seal.txt").rename(folder / "seal-renamed.txt")
    wait_for(lambda: sources(store, "notes") == {"valve.md", "seal-renamed.txt"}, what="the rename")


def test_ignored_files_do_not_trigger_an_ingest(watching) -> None:  # type: ignore[no-untyped-def]
    folder, store, reports = watching
    n = len(reports)
    (folder / ".hidden.md").write_text("hidden", encoding="utf-8")
    (folder / "photo.jpg").write_bytes(b"\xff\xd8 not text")
    (folder / "notes.md.swp").write_bytes(b"editor swap")
    time.sleep(1.5)  # five debounce periods
    assert len(reports) == n and sources(store, "notes") == {"pump.md"}


def test_watching_a_missing_folder_is_refused(tmp_path: Path) -> None:
    from rag.cli.main import main

    with pytest.raises(ValueError, match="is not a folder"):
        FolderWatcher(Ingestor("x", store=IndexStore(tmp_path / "idx")), tmp_path / "nope")
    assert main(["watch", str(tmp_path / "nope"), "--index", "x", "--index-dir", str(tmp_path / "idx")]) == 2


def test_dead_watchers_are_not_listed(tmp_path: Path) -> None:
    d = tmp_path / "idx" / "notes"
    d.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (d / f"{WATCH_PREFIX}1.json").write_text(json.dumps({"folder": "/a", "pid": int(dead.stdout), "started_at": 1.0}))
    (d / f"{WATCH_PREFIX}2.json").write_text("{not json")
    (d / f"{WATCH_PREFIX}3.json").write_text(json.dumps({"folder": "/b", "pid": os.getpid(), "started_at": 2.0}))
    assert [w.folder for w in active_watches(d)] == ["/b"]
    assert active_watches(tmp_path / "missing") == []


def test_a_file_still_being_written_is_indexed_once_it_settles(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    """Another process writes a file in two parts, pausing longer than the debounce: it is indexed once, whole."""
    folder = tmp_path / "notes"
    folder.mkdir()
    store = IndexStore(tmp_path / "idx")
    reports: list = []
    watcher = FolderWatcher(Ingestor("notes", store=store, embedder=embedder, show_progress=False), folder,
                            debounce=0.2, on_report=reports.append)  # the default settle time (2 s)
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop, ready.set), daemon=True)
    thread.start()
    try:
        assert ready.wait(60), "the watcher did not start"
        target = folder / "manual.md"
        writer = ("import sys, time\n"
                  "with open(sys.argv[1], 'w', encoding='utf-8') as fh:\n"
                  "    fh.write('The Zephyr pump is primed through the bleed valve. ' * 20); fh.flush()\n"
                  "    time.sleep(1.0)\n"  # a slow copy or download: five debounce periods without a change
                  "    fh.write('Appendix: the valve is tightened to 12 Nm.')\n")
        subprocess.run([sys.executable, "-c", writer, str(target)], check=True, timeout=60)
        wait_for(lambda: "12 Nm" in text_of(store, "notes", "manual.md"), what="the whole file")
    finally:
        stop.set()
        thread.join(30)
    touched = [(r.added, r.updated, r.errors) for r in reports if r.added or r.updated or r.errors]
    assert touched == [([str(target.resolve())], [], [])], touched  # one ingest, of the finished file


def test_a_killed_watchers_status_file_is_removed(tmp_path: Path) -> None:
    """``kill -9`` leaves ``.watch-PID.json`` behind: whoever reads the statuses next removes it."""
    folder, d = tmp_path / "notes", tmp_path / "idx" / "notes"
    folder.mkdir()
    d.mkdir(parents=True)
    script = ("import sys, time\n"
              "from rag.index.store import IndexStore\n"
              "from rag.ingest.ingestor import Ingestor\n"
              "from rag.ingest.watcher import FolderWatcher\n"
              "FolderWatcher(Ingestor('notes', store=IndexStore(sys.argv[1])), sys.argv[2])._announce(None)\n"
              "print('announced', flush=True)\n"
              "time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "idx"), str(folder)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "announced"
        assert [w.pid for w in active_watches(d)] == [proc.pid]
    finally:
        proc.kill()  # SIGKILL: no clean-up runs
        proc.wait(timeout=30)
    assert (d / f"{WATCH_PREFIX}{proc.pid}.json").exists()
    assert active_watches(d) == []
    assert not list(d.glob(f"{WATCH_PREFIX}*")), "the stale status file was left"

    # a live process that is not the one that wrote the file (its pid was reused) does not count either
    (d / f"{WATCH_PREFIX}{os.getpid()}.json").write_text(json.dumps(
        {"folder": "/a", "pid": os.getpid(), "proc_start": "1", "started_at": 1.0}))
    assert active_watches(d) == [] and not list(d.glob(f"{WATCH_PREFIX}*"))


@pytest.mark.slow
def test_rag_watch_command(tmp_path: Path) -> None:
    """The real CLI in its own process: syncs, re-indexes a new file, announces itself, stops cleanly on Ctrl-C."""
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("Alpha document about the Zephyr pump.", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "HF_HUB_OFFLINE": "1", "RAG_INDEX_DIR": str(tmp_path / "idx")}
    out = tmp_path / "watch.log"
    with open(out, "wb") as fh:
        # started as a shell without job control starts `rag watch ... &`: with SIGINT ignored, which the
        # watcher inherits; Ctrl-C must still stop it (it did not: the docs test killed it after 30 s)
        proc = subprocess.Popen([sys.executable, "-m", "rag", "watch", str(folder), "--index", "docs", "--debounce",
                                 "0.3", "-q"], cwd=tmp_path, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    store = IndexStore(tmp_path / "idx")
    try:
        wait_for(lambda: "watching" in out.read_text(), timeout=180, what="the watcher to start")
        assert sources(store, "docs") == {"a.md"}
        assert [w.pid for w in active_watches(store.path("docs"))] == [proc.pid]
        (folder / "b.md").write_text("Beta document about the Zephyr valve.", encoding="utf-8")
        wait_for(lambda: sources(store, "docs") == {"a.md", "b.md"}, what="b.md to be indexed")
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    log = out.read_text()
    assert code == 0, log
    assert "1 added" in log and "stopped watching" in log
    assert active_watches(store.path("docs")) == []


def test_a_failed_batch_stays_pending_and_is_indexed_later(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    """Another writer holds the index: the batch fails with the lock error, keeps its files, and goes in next time."""
    from rag.index.store import IndexLockedError

    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.md").write_text("Alpha note about the Zephyr pump.", encoding="utf-8")
    store = IndexStore(tmp_path / "idx")
    ing = Ingestor("notes", store=store, embedder=embedder, show_progress=False, lock_timeout=0)
    watcher = FolderWatcher(ing, folder, debounce=0)
    watcher.sync()
    (folder / "b.md").write_text("Beta note about the Zephyr valve.", encoding="utf-8")
    watcher.notice(folder / "b.md")
    with store.writer("notes", timeout=0):  # someone else is writing
        with pytest.raises(IndexLockedError):
            watcher.flush()
    assert sources(store, "notes") == {"a.md"}
    report = watcher.flush()
    assert report is not None and [Path(p).name for p in report.added] == ["b.md"]
    assert sources(store, "notes") == {"a.md", "b.md"}
    assert watcher.flush() is None  # nothing left
