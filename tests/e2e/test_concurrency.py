"""Concurrent writers and readers of one index, with real processes.

Each test starts real Python processes running this module's workers (``python -m
tests.e2e.test_concurrency WORKER ...``: the real :class:`~rag.ingest.ingestor.Ingestor`, the
packaged MiniLM embedder and :class:`~rag.index.store.IndexStore`) or ``python -m rag``, and
synchronises them through files in a ``sync`` directory.  Every loop is bounded in count and
in time.  Only the public API is imported at module level.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import pytest

REPO = Path(__file__).resolve().parents[2]
WORKER_TIMEOUT = 120  # seconds: a worker that takes longer has hung


def _env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(REPO),
               OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    return env


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tests.e2e.test_concurrency", *args], cwd=REPO, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen[str]) -> tuple[int, dict[str, Any], str]:
    """Wait for a worker; its return code, the JSON it printed last (``{}`` if none) and its stderr."""
    try:
        out, err = proc.communicate(timeout=WORKER_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    lines = [line for line in out.splitlines() if line.startswith("{")]
    return proc.returncode, (json.loads(lines[-1]) if lines else {}), err[-3000:]


def _wait_for(paths: Sequence[Path], procs: Sequence[subprocess.Popen[str]], limit: float = 90.0) -> None:
    deadline = time.monotonic() + limit
    while not all(p.exists() for p in paths):
        if any(proc.poll() is not None for proc in procs):
            raise AssertionError(f"a worker exited early: {[_finish(p) for p in procs]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"workers not ready after {limit} s")
        time.sleep(0.05)


def _folder(root: Path, name: str, topics: Sequence[str]) -> Path:
    d = root / name
    d.mkdir(parents=True)
    for topic in topics:
        (d / f"{topic}.txt").write_text(f"Notes about the {topic}. The {topic} needs a yearly inspection "
                                        f"and a log entry after each repair of the {topic}.", encoding="utf-8")
    return d


def _stale(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.name.startswith((".tmp-", ".old-", ".trash-")))


# -- tests ---------------------------------------------------------------------------------


@pytest.mark.slow  # two processes load torch and the embedder: ~20 s on 2 idle cores
def test_two_concurrent_ingests_of_different_folders_keep_both(tmp_path: Path) -> None:
    """Both writers start the moment their embedders are loaded; before locking, the last save won."""
    a = _folder(tmp_path, "a", ["pump", "valve", "boiler"])
    b = _folder(tmp_path, "b", ["turbine", "gearbox", "rotor"])
    root, sync = tmp_path / "indexes", tmp_path / "sync"
    sync.mkdir()
    procs = [_start("ingest", str(root), "shared", str(folder), str(sync), str(i)) for i, folder in enumerate((a, b))]
    _wait_for([sync / "ready-0", sync / "ready-1"], procs)
    (sync / "go").touch()
    results = [_finish(p) for p in procs]
    assert [rc for rc, _, _ in results] == [0, 0], results
    assert all(r["ok"] and r["added"] == 3 for _, r, _ in results), results
    from rag.index.store import IndexStore

    index = IndexStore(root).load("shared")
    assert sorted(Path(s).name for s in index.documents) == sorted(
        ["pump.txt", "valve.txt", "boiler.txt", "turbine.txt", "gearbox.txt", "rotor.txt"])
    assert sorted(r["total_chunks"] for _, r, _ in results) == [3, 6]  # the second one saw the first's documents
    assert _stale(root) == []


@pytest.mark.model  # a `rag ingest` subprocess loads MiniLM itself
def test_an_ingest_waits_for_a_running_rag_ingest_and_keeps_its_documents(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    """``rag ingest`` in its own process holds the lock; an ingest here waits, then adds to its version."""
    from rag.index.store import IndexStore
    from rag.ingest.ingestor import Ingestor

    a = _folder(tmp_path, "a", ["pump", "valve"])
    b = _folder(tmp_path, "b", ["turbine", "gearbox"])
    root = tmp_path / "indexes"
    cli = subprocess.Popen([sys.executable, "-m", "rag", "ingest", str(a), "--index", "t", "--index-dir", str(root),
                            "-q"], cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock, deadline = root / "t" / ".lock", time.monotonic() + 90
    while not (lock.exists() and f'"pid": {cli.pid},' in lock.read_text()):  # it took the lock, before embedding
        assert cli.poll() is None and time.monotonic() < deadline, cli.communicate()
        time.sleep(0.02)
    report = Ingestor("t", store=IndexStore(root), embedder=embedder, show_progress=False).ingest([b])
    out, err = cli.communicate(timeout=WORKER_TIMEOUT)
    assert cli.returncode == 0 and "2 added" in out, err
    assert report.ok and report.total_chunks == 4  # it saw the command's two documents
    index = IndexStore(root).load("t")
    assert sorted(Path(s).name for s in index.documents) == ["gearbox.txt", "pump.txt", "turbine.txt", "valve.txt"]


def test_readers_always_see_one_complete_version_while_a_writer_rewrites(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    from rag.index.store import IndexStore
    from rag.ingest.ingestor import Ingestor

    root, sync = tmp_path / "indexes", tmp_path / "sync"
    sync.mkdir()
    docs = _folder(tmp_path, "docs", ["pump", "valve", "boiler", "turbine"])
    assert Ingestor("live", store=IndexStore(root), embedder=embedder, show_progress=False).ingest([docs]).ok
    readers = [_start("read", str(root), "live", str(sync), str(i), "400") for i in range(2)]
    _wait_for([sync / "reader-0", sync / "reader-1"], readers)
    writer = _start("rewrite", str(root), "live", str(sync), "40")
    rc, written, err = _finish(writer)
    assert rc == 0 and written["saves"] == 40, (written, err)
    results = [_finish(p) for p in readers]
    assert all(rc == 0 for rc, _, _ in results), results
    assert [r["failures"] for _, r, _ in results] == [0, 0], results
    assert all(r["loads"] >= 10 for _, r, _ in results), results
    # the readers ran while the writer alternated the full index and one without a document
    assert set().union(*(r["sizes"] for _, r, _ in results)) == {3, 4}, results
    assert len(IndexStore(root).load("live").documents) == 4


def test_a_writer_killed_mid_save_leaves_the_index_usable_and_the_next_write_cleans_up(
        tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    from rag.index.store import IndexStore
    from rag.ingest.ingestor import Ingestor

    root = tmp_path / "indexes"
    docs = _folder(tmp_path, "docs", ["pump", "valve", "boiler"])
    assert Ingestor("col", store=IndexStore(root), embedder=embedder, show_progress=False).ingest([docs]).ok
    leftovers = []
    for _ in range(2):
        rc, _, err = _finish(_start("crash", str(root), "col"))
        assert rc == -signal.SIGKILL, err
        leftovers.append(_stale(root))
    # each crash leaves its half-written version; the second writer removed the first one's
    assert len(leftovers[0]) == len(leftovers[1]) == 1 and leftovers[0] != leftovers[1], leftovers
    store = IndexStore(root, lock_timeout=5)  # the dead writers' locks went with them
    index = store.load("col")
    assert len(index.documents) == 3
    (docs / "rotor.txt").write_text("Notes about the rotor.", encoding="utf-8")
    report = Ingestor("col", store=store, embedder=embedder, show_progress=False).ingest([docs])
    assert report.ok and report.added == [str((docs / "rotor.txt").resolve())]
    assert _stale(root) == []
    assert len([p for p in store.path("col").iterdir() if p.name.startswith("v-")]) == 1
    assert len(store.load("col").documents) == 4


def test_a_second_writer_waits_then_fails_clearly_before_embedding(tmp_path: Path, docs_dir: Path,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from rag.cli.main import main
    from rag.embedding import Embedder

    encoded: list[int] = []
    real_encode = Embedder.encode

    def spy(self: Embedder, texts: Sequence[str], *args: Any, **kwargs: Any) -> Any:
        encoded.append(len(texts))
        return real_encode(self, texts, *args, **kwargs)

    monkeypatch.setattr(Embedder, "encode", spy)
    root, sync = tmp_path / "indexes", tmp_path / "sync"
    sync.mkdir()
    args = ["ingest", str(docs_dir), "--index", "col", "--index-dir", str(root), "-q"]
    assert main(args) == 0
    (docs_dir / "new.md").write_text("# Seals\n\nSeals leak when dry.", encoding="utf-8")
    encoded.clear()
    holder = _start("hold", str(root), "col", str(sync))
    try:
        _wait_for([sync / "holding"], [holder])
        t0 = time.monotonic()
        assert main([*args, "--wait", "0.5"]) == 2
        assert time.monotonic() - t0 < 30
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith(f"error: index 'col' is being written by pid {holder.pid}") and "0.5 s" in err[-1]
        assert encoded == []  # nothing was embedded
        assert main(["remove", str(docs_dir / "pump.md"), "--index", "col", "--index-dir", str(root),
                     "--wait", "0"]) == 2
        assert "is being written by pid" in capsys.readouterr().err
    finally:
        (sync / "release").touch()
    rc, _, err = _finish(holder)
    assert rc == 0, err
    assert main(args) == 0 and encoded == [1]  # then it went ahead: the new file was embedded
    assert "1 added, 0 updated, 3 unchanged" in capsys.readouterr().out


# -- workers (run in their own processes) ---------------------------------------------------


def _wait_file(path: Path, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {path}")
        time.sleep(0.01)


def _worker_ingest(root: str, name: str, folder: str, sync: str, tag: str) -> dict[str, Any]:
    from rag.embedding import Embedder
    from rag.index.store import IndexStore
    from rag.ingest.ingestor import Ingestor

    embedder = Embedder().load()
    ingestor = Ingestor(name, store=IndexStore(root), embedder=embedder, show_progress=False)
    ingestor._get_chunker()  # the tokenizer too, so both start the race with only the ingest left
    (Path(sync) / f"ready-{tag}").touch()
    _wait_file(Path(sync) / "go")
    report = ingestor.ingest([folder])
    return {"ok": report.ok, "added": len(report.added), "total_chunks": report.total_chunks,
            "errors": report.errors}


def _worker_rewrite(root: str, name: str, sync: str, saves: str) -> dict[str, Any]:
    """Alternate the full index and the index without its first document, ``saves`` times (≤ 60 s)."""
    from rag.index.store import Index, IndexStore

    store = IndexStore(root)
    full = store.load(name)
    dropped = sorted(full.documents)[0]
    keep = [i for i, c in enumerate(full.chunks) if c.source != dropped]
    smaller = Index(name, full.settings, [full.chunks[i] for i in keep], full.embeddings[keep],
                    [full.tokens[i] for i in keep], {s: r for s, r in full.documents.items() if s != dropped},
                    created_at=full.created_at)
    done, deadline = 0, time.monotonic() + 60
    (Path(sync) / "writing").touch()
    try:
        while done < int(saves) and time.monotonic() < deadline:
            store.save(smaller if done % 2 == 0 else full)
            done += 1
    finally:
        (Path(sync) / "done").touch()
    return {"saves": done}


def _worker_read(root: str, name: str, sync: str, tag: str, max_loads: str) -> dict[str, Any]:
    """Load the index in a loop until the writer is done (≤ ``max_loads`` loads, ≤ 60 s); count failures."""
    from rag.index.store import IndexStore

    store = IndexStore(root)
    store.load(name)  # imports and first load out of the way
    (Path(sync) / f"reader-{tag}").touch()
    _wait_file(Path(sync) / "writing")
    loads, failures, sizes, first_error = 0, 0, set(), ""
    deadline = time.monotonic() + 60
    while loads < int(max_loads) and time.monotonic() < deadline and not (Path(sync) / "done").exists():
        loads += 1
        try:
            index = store.load(name)
            if len(index.documents) != len({c.source for c in index.chunks}):
                raise RuntimeError("documents and chunks come from different versions")
            sizes.add(len(index.documents))
        except Exception as exc:  # noqa: BLE001 - every failure is counted and the first one reported
            failures += 1
            first_error = first_error or f"{type(exc).__name__}: {exc}"
    return {"loads": loads, "failures": failures, "sizes": sorted(sizes), "error": first_error}


def _worker_crash(root: str, name: str) -> dict[str, Any]:
    """Die by SIGKILL in the middle of writing a new version (after some parts are on disk)."""
    from rag.index.dense import FaissIndex
    from rag.index.store import IndexStore

    def die(self: FaissIndex, path: Path) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    store = IndexStore(root)
    index = store.load(name)
    FaissIndex.save = die  # type: ignore[method-assign]
    store.save(index)
    return {"survived": True}


def _worker_hold(root: str, name: str, sync: str) -> dict[str, Any]:
    """Hold the index's write lock until ``sync/release`` appears (≤ 60 s)."""
    from rag.index.store import IndexStore

    with IndexStore(root).writer(name):
        (Path(sync) / "holding").touch()
        _wait_file(Path(sync) / "release")
    return {"held": True}


WORKERS = {"ingest": _worker_ingest, "rewrite": _worker_rewrite, "read": _worker_read, "crash": _worker_crash,
           "hold": _worker_hold}

if __name__ == "__main__":
    print(json.dumps(WORKERS[sys.argv[1]](*sys.argv[2:])), flush=True)
