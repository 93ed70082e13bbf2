"""Index store: round trip, manifest checks, atomic writes and crash recovery."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from rag.index.dense import FaissIndex
from rag.index.store import (FORMAT_VERSION, DocRecord, Index, IndexCorruptError, IndexMismatchError,
                             IndexNotFoundError, IndexSettings, IndexStore)
from rag.types import Chunk


def _index(name: str = "col", n: int = 3, embedder_id: str = "emb/x") -> Index:
    settings = IndexSettings(embedder_id=embedder_id, dim=4, chunker={"chunk_size": 10, "chunk_overlap": 2})
    chunks = [Chunk(id=f"c{i}", text=f"text {i}", doc_id="d", source="/s.txt", page=None,
                    start=i * 10, end=i * 10 + 6, index=i) for i in range(n)]
    vecs = np.eye(4, dtype=np.float32)[:n]
    docs = {"/s.txt": DocRecord("d", "/s.txt", "h", "s", n, None, 0.0)}
    return Index(name, settings, chunks, vecs, [["text", str(i)] for i in range(n)], docs)


def test_round_trip_and_manifest(store: IndexStore) -> None:
    path = store.save(_index())
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["embedder"] == {"id": "emb/x", "dim": 4}
    assert manifest["chunker"]["chunk_size"] == 10
    assert manifest["counts"] == {"documents": 1, "chunks": 3, "pages": 1}
    assert {"faiss-cpu", "rank-bm25", "sentence-transformers"} <= set(manifest["versions"])
    assert set(manifest["parts"].values()) <= {p.name for p in path.iterdir()}
    loaded = store.load("col")
    assert loaded.chunks == _index().chunks
    np.testing.assert_array_equal(loaded.embeddings, _index().embeddings)
    assert loaded.dense.search(np.array([0, 1, 0, 0], np.float32), 1)[0][0] == 1
    assert loaded.bm25.search(["2"], 1)[0][0] == 2
    assert store.names() == ["col"]


def test_several_named_indexes_side_by_side(store: IndexStore) -> None:
    store.save(_index("a", 2))
    store.save(_index("b", 3))
    assert store.names() == ["a", "b"]
    assert len(store.load("a")) == 2 and len(store.load("b")) == 3
    store.delete("a")
    assert store.names() == ["b"]


def test_missing_index_names_the_available_ones(store: IndexStore) -> None:
    store.save(_index("present"))
    with pytest.raises(IndexNotFoundError, match=r"no index named 'absent'.*available: present"):
        store.load("absent")


def test_embedder_mismatch_fails_clearly(store: IndexStore) -> None:
    store.save(_index())
    with pytest.raises(IndexMismatchError, match="built with embedder 'emb/x' but 'other/model' was requested"):
        store.load("col", expect_embedder="other/model")


def test_format_version_mismatch(store: IndexStore) -> None:
    path = store.save(_index())
    m = json.loads((path / "manifest.json").read_text())
    m["format_version"] = 999
    (path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(IndexMismatchError, match="format version 999"):
        store.load("col")


def test_corrupt_parts_are_detected(store: IndexStore) -> None:
    path = store.save(_index())
    (path / "chunks.jsonl").write_text((path / "chunks.jsonl").read_text().splitlines()[0] + "\n")
    with pytest.raises(IndexCorruptError, match="part sizes disagree"):
        store.load("col")
    (path / "dense.faiss").unlink()
    with pytest.raises(IndexCorruptError, match="missing or unreadable part"):
        store.load("col")


def test_failed_write_leaves_previous_index_usable(store: IndexStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.save(_index(n=2))

    def boom(self: FaissIndex, path: Path) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(FaissIndex, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        store.save(_index(n=3))
    assert len(store.load("col")) == 2
    assert not [p for p in store.root.iterdir() if p.name.startswith(".tmp-")]


def test_crash_between_renames_is_recovered(store: IndexStore) -> None:
    path = store.save(_index(n=2))
    # simulate a crash right after the old version was moved aside
    os.replace(path, store.root / ".old-col-deadbeef")
    assert store.names() == ["col"]
    assert len(store.load("col")) == 2


def test_recovery_never_takes_another_index_with_a_longer_name(store: IndexStore) -> None:
    store.save(_index("a", 2))
    path = store.save(_index("a-b", 3))
    os.replace(path, store.root / ".old-a-b-0123abcd")  # index "a-b" crashed mid-write
    store.delete("a")
    assert not store.exists("a")
    assert store.names() == ["a-b"] and len(store.load("a-b")) == 3


@pytest.mark.parametrize("name", ["", "../evil", "a/b", ".hidden", "-x", "x" * 65])
def test_bad_index_names(store: IndexStore, name: str) -> None:
    with pytest.raises(ValueError, match="index name must be"):
        store.path(name)


def test_settings_validation() -> None:
    with pytest.raises(ValueError, match="FAISS index kind must be one of"):
        IndexSettings(embedder_id="e", dim=4, chunker={}, faiss_kind="annoy")
    with pytest.raises(IndexCorruptError, match="must match"):
        Index("x", IndexSettings(embedder_id="e", dim=4, chunker={}), [], np.zeros((1, 4), np.float32), [], {})


def test_a_trained_reranker_survives_a_reingest(store: IndexStore) -> None:
    path = store.save(_index(n=2))
    (path / "reranker").mkdir()
    (path / "reranker" / "weights.bin").write_bytes(b"w")
    path = store.save(_index(n=3))
    assert (path / "reranker" / "weights.bin").read_bytes() == b"w"
    assert len(store.load("col")) == 3


def test_an_index_from_an_older_stop_list_is_re_analysed_on_load(store: IndexStore) -> None:
    from rag.index.sparse import Analyzer

    settings = IndexSettings(embedder_id="e", dim=4, chunker={}, analyzer={"stemmer": "english", "stopwords": True,
                                                                           "lowercase": True})
    chunks = [Chunk(id="c0", text="Lift plotted against the angle of attack", doc_id="d", source="/s.txt",
                    page=None, start=0, end=40, index=0)]
    old_tokens = [["lift", "plot", "against", "angl", "attack"]]  # the old list kept "against"
    store.save(Index("old", settings, chunks, np.eye(4, dtype=np.float32)[:1], old_tokens,
                     {"/s.txt": DocRecord("d", "/s.txt", "h", "s", 1, None, 0.0)}))
    loaded = store.load("old")
    assert loaded.tokens == [Analyzer().tokenize(chunks[0].text)] and "against" not in loaded.tokens[0]
    assert loaded.settings.analyzer == Analyzer().params and loaded.bm25.search(["against"], 1) == []
    store.save(loaded)
    assert json.loads((store.path("old") / "manifest.json").read_text())["bm25"]["analyzer"] == Analyzer().params
