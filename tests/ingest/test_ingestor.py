"""Ingestion with the real embedder: incremental updates, removal, bad files, provenance."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.index.store import IndexMismatchError, IndexStore
from rag.ingest.ingestor import Ingestor
from tests.pdfgen import write_pdf


def _ing(store: IndexStore, embedder, **kw) -> Ingestor:  # type: ignore[no-untyped-def]
    return Ingestor("docs", store=store, embedder=embedder, show_progress=False, **kw)


def test_incremental_ingest(store: IndexStore, embedder, docs_dir: Path) -> None:  # type: ignore[no-untyped-def]
    ing = _ing(store, embedder)
    r1 = ing.ingest([docs_dir])
    assert r1.ok and len(r1.added) == 3 and r1.total_chunks >= 3
    ids_before = {c.id for c in store.load("docs").chunks}

    r2 = ing.ingest([docs_dir])
    assert (len(r2.added), len(r2.updated), len(r2.unchanged), r2.chunks_added) == (0, 0, 3, 0)
    assert {c.id for c in store.load("docs").chunks} == ids_before

    (docs_dir / "turbine.txt").write_text("Turbine blades are now inspected every 250 hours.", encoding="utf-8")
    (docs_dir / "fruit.html").unlink()
    (docs_dir / "new.md").write_text("# Seals\n\nSeals leak when dry.", encoding="utf-8")
    r3 = ing.ingest([docs_dir])
    assert [Path(p).name for p in r3.updated] == ["turbine.txt"]
    assert [Path(p).name for p in r3.removed] == ["fruit.html"]
    assert [Path(p).name for p in r3.added] == ["new.md"]
    index = store.load("docs")
    assert {Path(s).name for s in index.documents} == {"pump.md", "turbine.txt", "new.md"}
    texts = " ".join(c.text for c in index.chunks)
    assert "250 hours" in texts and "500" not in texts and "Bananas" not in texts
    assert len(index) == index.dense.ntotal == len(index.tokens)


def test_bad_files_are_reported_and_the_rest_indexed(store: IndexStore, embedder, docs_dir: Path) -> None:  # type: ignore[no-untyped-def]
    (docs_dir / "empty.txt").write_text("", encoding="utf-8")
    (docs_dir / "bin.txt").write_bytes(b"\x00\x00\x01")
    (docs_dir / "broken.pdf").write_bytes(b"%PDF-1.7 truncated")
    (docs_dir / "image.png").write_bytes(b"\x89PNG\r\n")
    r = _ing(store, embedder).ingest([docs_dir, docs_dir / "missing-dir"])
    assert not r.ok
    failed = {Path(p).name for p, _ in r.errors}
    assert failed == {"empty.txt", "bin.txt", "broken.pdf", "missing-dir"}
    assert r.skipped == [(str(docs_dir / "image.png"), "unsupported file type '.png'")]  # not a failure
    assert len(r.added) == 3
    summary = r.summary()
    assert "4 failed, 1 skipped" in summary and "error: " in summary and "broken.pdf" in summary


def test_a_file_that_turns_bad_keeps_its_old_version(store: IndexStore, embedder, docs_dir: Path) -> None:  # type: ignore[no-untyped-def]
    ing = _ing(store, embedder)
    ing.ingest([docs_dir])
    (docs_dir / "pump.md").write_bytes(b"\x00\x00 corrupted")
    r = ing.ingest([docs_dir])
    assert not r.ok
    assert any("prime" in c.text for c in store.load("docs").chunks)


def test_pdf_chunks_carry_pages_and_offsets(store: IndexStore, embedder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pdf = write_pdf(tmp_path / "manual.pdf", ["Intro page about the manual.", "Priming: open the bleed valve."])
    _ing(store, embedder).ingest([pdf])
    index = store.load("docs")
    by_page = {c.page: c for c in index.chunks}
    assert set(by_page) == {1, 2}
    assert "bleed valve" in by_page[2].text
    assert index.documents[str(pdf.resolve())].pages == 2
    from rag.ingest.loaders import DocumentLoader

    pages = {d.page: d.text for d in DocumentLoader().load(pdf).documents}
    for c in index.chunks:
        assert pages[c.page][c.start:c.end] == c.text


def test_remove_one_document(store: IndexStore, embedder, docs_dir: Path) -> None:  # type: ignore[no-untyped-def]
    ing = _ing(store, embedder)
    ing.ingest([docs_dir])
    assert ing.remove(docs_dir / "pump.md") is True
    assert ing.remove(docs_dir / "pump.md") is False
    index = store.load("docs")
    assert all("pump.md" not in c.source for c in index.chunks)
    assert len(index.documents) == 2


def test_settings_mismatch_requires_rebuild(store: IndexStore, embedder, docs_dir: Path) -> None:  # type: ignore[no-untyped-def]
    _ing(store, embedder).ingest([docs_dir])
    other = _ing(store, embedder, chunk_size=64, chunk_overlap=8)
    with pytest.raises(IndexMismatchError, match="chunker"):
        other.ingest([docs_dir])
    r = other.ingest([docs_dir], rebuild=True)
    assert r.ok and len(r.added) == 3
    assert store.load("docs").settings.chunker["chunk_size"] == 64


def test_ingest_loaded_reports_an_empty_file_and_keeps_going(store: IndexStore, embedder) -> None:  # type: ignore[no-untyped-def]
    from rag.ingest.loaders import LoadedFile
    from rag.types import Document

    good = LoadedFile("mem:a", "a", "h1", (Document.from_text("Valves need grease.", source="mem:a"),))
    empty = LoadedFile("mem:b", "b", "h2", ())
    r = _ing(store, embedder).ingest_loaded([empty, good])
    assert r.errors == [("mem:b", "no text to index")]
    assert r.added == ["mem:a"] and len(store.load("docs")) == 1


# -- index safety: where the index cannot be written, concurrent writers, the kept reranker ---------


def _count_encodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the size of every real ``Embedder.encode`` call."""
    from rag.embedding import Embedder

    calls: list[int] = []
    real = Embedder.encode

    def counted(self, texts, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(len(texts))
        return real(self, texts, *args, **kwargs)

    monkeypatch.setattr(Embedder, "encode", counted)
    return calls


@pytest.mark.parametrize("layout", ["index dir under a file", "index name taken by a file"])
def test_an_unwritable_index_fails_in_one_line_before_embedding(tmp_path: Path, docs_dir: Path, layout: str,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from rag.cli.main import main

    calls = _count_encodes(monkeypatch)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    root = blocker / "indexes" if layout == "index dir under a file" else tmp_path
    name = "docs" if layout == "index dir under a file" else "a-file"
    assert main(["ingest", str(docs_dir), "--index", name, "--index-dir", str(root), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write index {name!r} under {root}: {blocker} is a file, not a directory")
    assert err.count("\n") == 1 and calls == []


def test_two_threads_ingesting_into_one_index_keep_both_folders(store: IndexStore, embedder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The app's sessions are threads of one process: they take turns on the index's lock too."""
    import threading

    folders = []
    for name, topics in (("a", ("pump", "valve")), ("b", ("turbine", "rotor"))):
        d = tmp_path / name
        d.mkdir()
        for t in topics:
            (d / f"{t}.txt").write_text(f"The {t} is inspected yearly.", encoding="utf-8")
        folders.append(d)
    start = threading.Barrier(2)
    reports = []

    def run(folder: Path) -> None:
        start.wait(10)
        reports.append(_ing(store, embedder).ingest([folder]))

    threads = [threading.Thread(target=run, args=(f,)) for f in folders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(reports) == 2 and all(r.ok for r in reports)
    assert sorted(Path(s).name for s in store.load("docs").documents) == ["pump.txt", "rotor.txt", "turbine.txt",
                                                                         "valve.txt"]


def test_remove_from_a_missing_index_creates_nothing(store: IndexStore, embedder, docs_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from rag.index.store import IndexNotFoundError

    with pytest.raises(IndexNotFoundError, match="no index named 'docs'"):
        _ing(store, embedder).remove(docs_dir / "pump.md")
    assert not store.path("docs").exists()


def test_a_trained_reranker_and_the_lock_survive_reingest_and_remove(store: IndexStore, embedder,  # type: ignore[no-untyped-def]
                                                                     docs_dir: Path) -> None:
    ing = _ing(store, embedder)
    ing.ingest([docs_dir])
    (store.path("docs") / "reranker").mkdir()
    (store.path("docs") / "reranker" / "weights.bin").write_bytes(b"w")
    (docs_dir / "new.md").write_text("# Seals\n\nSeals leak when dry.", encoding="utf-8")
    assert ing.ingest([docs_dir]).added == [str((docs_dir / "new.md").resolve())]
    assert ing.remove(docs_dir / "pump.md")
    assert (store.path("docs") / "reranker" / "weights.bin").read_bytes() == b"w"
    assert sorted(p.name for p in store.path("docs").iterdir() if not p.name.startswith("v-")) == [
        ".lock", "manifest.json", "reranker"]


def test_ingest_streams_files_and_never_holds_every_text_at_once(store: IndexStore, embedder, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import gc
    import weakref

    from rag.ingest import ingestor as ingestor_module
    from rag.ingest.loaders import DocumentLoader

    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(12):
        (folder / f"note{i:02d}.txt").write_text(f"Note {i}: the pump number {i} was primed and sealed. " * 20,
                                                 encoding="utf-8")
    monkeypatch.setattr(ingestor_module, "EMBED_BLOCK", 8)  # several embedding blocks for 12 files
    alive: list[weakref.ref] = []
    most_alive = 0
    real_load = DocumentLoader.load

    def tracking_load(self: DocumentLoader, path: Path, unless_hash: str | None = None):  # type: ignore[no-untyped-def]
        nonlocal most_alive
        gc.collect()
        most_alive = max(most_alive, sum(r() is not None for r in alive))
        loaded = real_load(self, path, unless_hash)
        alive.append(weakref.ref(loaded))
        return loaded

    monkeypatch.setattr(DocumentLoader, "load", tracking_load)
    report = _ing(store, embedder).ingest([folder])
    assert report.ok and len(report.added) == 12
    assert most_alive <= 1  # when a file is loaded, at most the previous one is still referenced
    index = store.load("docs")
    assert len(index) == report.total_chunks == index.dense.ntotal == len(index.tokens)
    # the blocks line up: every chunk's vector is its own text's embedding
    some = [0, len(index) // 2, len(index) - 1]
    from rag.index.store import indexed_text

    np_vecs = embedder.encode([indexed_text(index.chunks[i], True) for i in some])
    import numpy as np

    np.testing.assert_allclose(np.asarray(index.embeddings)[some], np_vecs, atol=1e-5)
