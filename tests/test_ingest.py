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
    assert failed == {"empty.txt", "bin.txt", "broken.pdf", "image.png", "missing-dir"}
    assert len(r.added) == 3
    summary = r.summary()
    assert "5 failed" in summary and "error: " in summary and "broken.pdf" in summary


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
