"""Index store: round trip, manifest checks, versions, atomic writes, crash leftovers and write errors.

Concurrency with real processes (writers, readers, kill -9) is in tests/e2e/test_concurrency.py.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from rag.locks import shared_lock
from rag.index.dense import FaissIndex
from rag.index.store import (FORMAT_VERSION, PARTS, DocRecord, Index, IndexCorruptError, IndexError_,
                             IndexLockedError, IndexMismatchError, IndexNotFoundError, IndexSettings, IndexStore,
                             IndexWriteError)
from rag.types import Chunk


def _index(name: str = "col", n: int = 3, embedder_id: str = "emb/x") -> Index:
    settings = IndexSettings(embedder_id=embedder_id, dim=4, chunker={"chunk_size": 10, "chunk_overlap": 2})
    chunks = [Chunk(id=f"c{i}", text=f"text {i}", doc_id="d", source="/s.txt", page=None,
                    start=i * 10, end=i * 10 + 6, index=i) for i in range(n)]
    vecs = np.eye(4, dtype=np.float32)[:n]
    docs = {"/s.txt": DocRecord("d", "/s.txt", "h", "s", n, None, 0.0)}
    return Index(name, settings, chunks, vecs, [["text", str(i)] for i in range(n)], docs)


def _forget_digests(store: IndexStore, name: str = "col") -> None:
    """Drop the parts' sha256s from the manifests, as rag wrote them before it recorded them (not verified)."""
    for path in (store.path(name) / "manifest.json", store.version_path(name) / "manifest.json"):
        m = json.loads(path.read_text())
        del m["sha256"]
        path.write_text(json.dumps(m))


def test_round_trip_and_manifest(store: IndexStore) -> None:
    path = store.save(_index())
    assert path == store.path("col")
    manifest = json.loads((path / "manifest.json").read_text())
    version = store.version_path("col")
    assert version.parent == path and version.name == manifest["parts_dir"]
    assert json.loads((version / "manifest.json").read_text()) == manifest
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["embedder"] == {"id": "emb/x", "dim": 4}
    assert manifest["chunker"]["chunk_size"] == 10
    assert manifest["counts"] == {"documents": 1, "chunks": 3, "pages": 1}
    assert {"faiss-cpu", "rank-bm25", "sentence-transformers"} <= set(manifest["versions"])
    assert set(manifest["parts"].values()) <= {p.name for p in version.iterdir()}
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
    store.save(_index())
    path = store.version_path("col")
    (path / "chunks.jsonl").write_text((path / "chunks.jsonl").read_text().splitlines()[0] + "\n")
    with pytest.raises(IndexCorruptError, match="part chunks.jsonl does not match the sha256"):
        store.load("col")
    _forget_digests(store)  # the structural checks still catch it in an index without digests
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
    with pytest.raises(IndexWriteError, match=r"could not write index 'col' .*\(disk full\); the previous version "
                                              r"is unchanged") as info:
        store.save(_index(n=3))
    assert isinstance(info.value, OSError)  # callers catching OSError keep working
    assert len(store.load("col")) == 2
    assert not [p for p in [*store.root.iterdir(), *store.path("col").iterdir()] if p.name.startswith(".tmp-")]


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


# -- versions ------------------------------------------------------------------------------


def _versions(store: IndexStore, name: str = "col") -> list[str]:
    return sorted(p.name for p in store.path(name).iterdir() if p.name.startswith("v-"))


def test_each_save_is_a_new_version_and_the_replaced_one_is_removed(store: IndexStore) -> None:
    store.save(_index(n=2))
    first = store.version_path("col")
    store.save(_index(n=3))
    assert store.version_path("col") != first and not first.exists()
    assert _versions(store) == [store.version_path("col").name]
    assert sorted(p.name for p in store.path("col").iterdir()) == [".lock", "manifest.json",
                                                                   store.version_path("col").name]


def test_a_version_a_reader_holds_is_kept_until_a_later_write(store: IndexStore) -> None:
    store.save(_index(n=2))
    first = store.version_path("col")
    with shared_lock(first):  # a reader in the middle of loading it
        store.save(_index(n=3))
        assert first.is_dir() and len(_versions(store)) == 2
        assert {p.name for p in first.iterdir()} >= set(PARTS.values())  # still whole
    assert len(store.load("col")) == 3
    store.save(_index(n=1))
    assert not first.exists() and len(_versions(store)) == 1


def _write_flat(store: IndexStore, index: Index) -> Path:
    """An index as rag wrote it before versions (format 1): the parts directly in ``NAME/``."""
    d = store.path(index.name)
    d.mkdir(parents=True)
    (d / "documents.json").write_text(json.dumps([vars(r) for r in index.documents.values()]))
    (d / "chunks.jsonl").write_text("".join(json.dumps(c.to_dict()) + "\n" for c in index.chunks))
    np.save(d / "embeddings.npy", index.embeddings)
    (d / "bm25.json").write_text(json.dumps({"tokens": index.tokens}))
    index.dense.save(d / "dense.faiss")
    manifest = index.manifest()
    manifest["format_version"] = 1
    del manifest["bm25"]["matrix"]  # the flat layout predates the stored BM25 matrix
    (d / "manifest.json").write_text(json.dumps(manifest))
    return d


def test_an_index_in_the_flat_layout_loads_and_is_upgraded_by_the_next_write(store: IndexStore) -> None:
    d = _write_flat(store, _index(n=3))
    (d / "reranker").mkdir()
    (d / "reranker" / "weights.bin").write_bytes(b"w")
    loaded = store.load("col")
    assert len(loaded) == 3 and loaded.chunks == _index(n=3).chunks and store.version_path("col") == d
    assert store.names() == ["col"]
    store.save(loaded)
    assert json.loads((d / "manifest.json").read_text())["format_version"] == FORMAT_VERSION
    assert sorted(p.name for p in d.iterdir()) == [".lock", "manifest.json", "reranker", _versions(store)[0]]
    assert (d / "reranker" / "weights.bin").read_bytes() == b"w"
    assert store.load("col").chunks == loaded.chunks


def test_crash_leftovers_are_removed_by_the_next_write_and_nothing_else(store: IndexStore) -> None:
    d = store.save(_index(n=2))
    leftovers = [d / ".tmp-v-20240101-000000-0123abcd-89abcdef", d / ".trash-v-20240101-000000-0123abcd-89abcdef",
                 d / "v-20240101-000000-0123abcd", store.root / ".tmp-col-0123abcd", store.root / ".old-col-0123abcd",
                 store.root / ".trash-col-0123abcd"]
    for p in leftovers:
        p.mkdir()
        (p / "embeddings.npy").write_bytes(b"x" * 1000)
    (d / ".tmp-manifest.json-0123abcd").write_text("{")
    leftovers.append(d / ".tmp-manifest.json-0123abcd")
    others = [store.root / ".tmp-col-b-0123abcd",   # index "col-b"'s, not ours
              d / ".tmp-reranker-0123abcd"]          # the reranker trainer's write in progress
    for p in others:
        p.mkdir()
    assert store.load("col") and store.names() == ["col"]  # reading removes nothing
    assert all(p.exists() for p in leftovers)
    store.save(_index(n=3))
    assert [p for p in leftovers if p.exists()] == []
    assert all(p.exists() for p in others) and len(store.load("col")) == 3


# -- manifest edge cases: each is one line naming the problem, from load and from the CLI ------


def _nan_embeddings(path: Path, m: dict) -> dict:
    vecs = np.load(path / m["parts_dir"] / "embeddings.npy")
    vecs[1, 2] = np.nan
    np.save(path / m["parts_dir"] / "embeddings.npy", vecs)
    del m["sha256"]  # as an index written before the digests: the values are checked
    return m


def _drop(m: dict, *keys: str) -> dict:
    node = m
    for k in keys[:-1]:
        node = node[k]
    del node[keys[-1]]
    return m


MANIFEST_CASES = {
    "a JSON list": (lambda p, m: [m], IndexCorruptError, "manifest.json is a JSON list, not an object"),
    "no format_version": (lambda p, m: _drop(m, "format_version"), IndexCorruptError, "lacks 'format_version'"),
    "format_version a string": (lambda p, m: {**m, "format_version": "2"}, IndexCorruptError,
                                "field 'format_version' must be an int, got '2' \\(str\\)"),
    "format_version a bool": (lambda p, m: {**m, "format_version": True}, IndexCorruptError, "must be an int"),
    "format_version from the future": (lambda p, m: {**m, "format_version": 999}, IndexMismatchError,
                                       "format version 999"),
    "no embedder": (lambda p, m: _drop(m, "embedder"), IndexCorruptError, "lacks 'embedder.id'"),
    "no chunk count": (lambda p, m: _drop(m, "counts", "chunks"), IndexCorruptError, "lacks 'counts.chunks'"),
    "no parts_dir": (lambda p, m: _drop(m, "parts_dir"), IndexCorruptError, "lacks 'parts_dir'"),
    "dim a string": (lambda p, m: {**m, "embedder": {"id": "emb/x", "dim": "4"}}, IndexCorruptError,
                     "'embedder.dim' must be an int"),
    "k1 NaN": (lambda p, m: {**m, "bm25": {**m["bm25"], "k1": float("nan")}}, IndexCorruptError,
               "'bm25.k1' must be a number"),
    "unknown FAISS kind": (lambda p, m: {**m, "faiss": {**m["faiss"], "kind": "annoy"}}, IndexCorruptError,
                           "names FAISS kind 'annoy'"),
    "FAISS kind not the file's": (lambda p, m: {**m, "faiss": {**m["faiss"], "kind": "hnsw"}}, IndexCorruptError,
                                  "dense.faiss is a flat index of dim 4, but manifest.json says hnsw"),
    "parts_dir outside the index": (lambda p, m: {**m, "parts_dir": "../../etc"}, IndexCorruptError,
                                    "names parts directory '../../etc'"),
    "NaN in the embeddings": (_nan_embeddings, IndexCorruptError, "embeddings.npy contains 1 NaN or infinite values"),
    "part digests a list": (lambda p, m: {**m, "sha256": []}, IndexCorruptError, "field 'sha256' must be an object"),
    "a part digest outside the version": (lambda p, m: {**m, "sha256": {"../manifest.json": "0" * 64}},
                                          IndexCorruptError, "field 'sha256' has entry '../manifest.json'"),
    "a part digest not hex": (lambda p, m: {**m, "sha256": {**m["sha256"], "chunks.jsonl": "abc"}},
                              IndexCorruptError, "field 'sha256' has entry 'chunks.jsonl': 'abc'"),
}


@pytest.mark.parametrize("case", sorted(MANIFEST_CASES))
def test_manifest_edge_cases_are_one_line_errors(store: IndexStore, case: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from rag.cli.main import main

    mutate, error, message = MANIFEST_CASES[case]
    path = store.save(_index())
    manifest = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(json.dumps(mutate(path, manifest)))
    with pytest.raises(error, match=message) as info:
        store.load("col")
    assert isinstance(info.value, IndexError_) and "\n" not in str(info.value) and "rebuild" in str(info.value)
    assert main(["docs", "--index", "col", "--index-dir", str(store.root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: index 'col'") and err.count("\n") == 1


def test_an_unreadable_manifest_is_one_line(store: IndexStore) -> None:
    path = store.save(_index())
    (path / "manifest.json").write_bytes(b"\xff\xfe{ not json")
    with pytest.raises(IndexCorruptError, match="unreadable manifest.json") as info:
        store.read_manifest("col")
    assert "\n" not in str(info.value)


def test_an_index_with_nan_embeddings_is_never_written(store: IndexStore) -> None:
    index = _index()
    vecs = index.embeddings.copy()
    vecs[0, 0] = np.inf
    with pytest.raises(IndexCorruptError, match="1 embedding values are NaN or infinite"):
        Index("col", index.settings, index.chunks, vecs, index.tokens, index.documents)


# -- writers: lock and write errors -------------------------------------------------------


def test_a_second_writer_in_the_same_thread_fails_at_once(store: IndexStore) -> None:
    with store.writer("col") as w:
        w.save(_index(n=2))
        with pytest.raises(IndexLockedError, match="already being written by this thread"):
            store.save(_index(n=3))  # would otherwise wait 600 s for itself
    assert len(store.load("col")) == 2


def test_a_writer_in_another_thread_waits_for_the_first(store: IndexStore) -> None:
    import threading

    store.save(_index(n=1))
    holding, order = threading.Event(), []

    def first() -> None:
        with store.writer("col") as w:
            holding.set()
            time.sleep(0.5)
            w.save(_index(n=2))
            order.append("first")

    t = threading.Thread(target=first)
    t.start()
    holding.wait(10)
    with pytest.raises(IndexLockedError, match=rf"index 'col' is being written by pid {os.getpid()}.* 0.1 s"):
        IndexStore(store.root, lock_timeout=0.1).save(_index(n=3))
    store.save(_index(n=3))  # waits for the first writer, then replaces its version
    order.append("second")
    t.join(10)
    assert order == ["first", "second"] and len(store.load("col")) == 3


@pytest.mark.parametrize("where", ["root under a file", "index dir is a file"])
def test_an_index_that_cannot_be_written_fails_before_any_work(tmp_path: Path, where: str) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file")
    store = IndexStore(blocker / "indexes") if where == "root under a file" else IndexStore(tmp_path)
    if where == "index dir is a file":
        blocker = tmp_path / "col"
        blocker.write_text("a regular file")
    with pytest.raises(IndexWriteError, match=rf"cannot write index 'col' under .*: {blocker} is a file, "
                                              r"not a directory; choose a writable --index-dir") as info:
        store.writer("col").__enter__()
    assert "\n" not in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_an_unwritable_index_dir_fails_before_any_work(store: IndexStore) -> None:
    path = store.save(_index())
    path.chmod(0o555)
    try:
        with pytest.raises(IndexWriteError, match="cannot write index 'col' .*permission denied"):
            store.save(_index(n=2))
    finally:
        path.chmod(0o755)
    assert len(store.load("col")) == 3


def test_a_permission_error_on_the_write_probe_is_one_line(store: IndexStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same path as an unwritable directory, for runs as root (who may write anywhere)."""
    import tempfile

    store.save(_index())

    def denied(prefix: str, dir: Path) -> str:
        raise PermissionError(13, "Permission denied", str(dir))

    monkeypatch.setattr(tempfile, "mkdtemp", denied)
    with pytest.raises(IndexWriteError, match=rf"cannot write index 'col' under {store.root}: permission denied on "
                                              rf"{store.path('col')}; choose a writable --index-dir"):
        store.save(_index(n=2))
    monkeypatch.undo()
    assert len(store.load("col")) == 3 and store.save(_index(n=2))


def test_delete_removes_every_version(store: IndexStore) -> None:
    store.save(_index(n=2))
    store.save(_index(n=3))
    store.delete("col")
    assert not store.path("col").exists() and store.names() == []
    assert [p.name for p in store.root.iterdir()] == []
    with pytest.raises(IndexNotFoundError):
        store.delete("col")


# -- the stored BM25 matrix and lazy parts --------------------------------------------------


def _random_index(name: str = "bm", n: int = 120, seed: int = 0) -> Index:
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(30)]
    tokens = [list(rng.choice(words, size=int(rng.integers(0, 20)), p=np.linspace(2, 0.1, 30) / 31.5))
              for _ in range(n)]
    settings = IndexSettings(embedder_id="e", dim=4, chunker={}, bm25_k1=1.1, bm25_b=0.6)
    chunks = [Chunk(id=f"c{i}", text=" ".join(t), doc_id="d", source="/s.txt", page=None, start=0, end=1, index=i)
              for i, t in enumerate(tokens)]
    vecs = rng.standard_normal((n, 4)).astype(np.float32)
    return Index(name, settings, chunks, vecs / np.linalg.norm(vecs, axis=1, keepdims=True), tokens,
                 {"/s.txt": DocRecord("d", "/s.txt", "h", "s", n, None, 0.0)})


def _queries(seed: int = 1) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    return [list(rng.choice([f"w{i}" for i in range(30)] + ["unknown"], size=int(rng.integers(1, 5))))
            for _ in range(30)]


def test_a_loaded_index_scores_exactly_like_a_freshly_built_one(store: IndexStore) -> None:
    from rag.index.sparse import BM25_PARTS, BM25Index

    built = _random_index()
    store.save(built)
    manifest = json.loads((store.path("bm") / "manifest.json").read_text())
    assert manifest["bm25"]["matrix"] == {"format": "csc-eager-v1", "parts": BM25_PARTS, "docs": 120,
                                          "terms": len(built.bm25.vocab), "nnz": built.bm25.nnz}
    assert set(BM25_PARTS.values()) <= {p.name for p in store.version_path("bm").iterdir()}
    loaded = store.load("bm")
    assert isinstance(loaded.bm25.data, np.memmap)  # read from the parts, not rebuilt
    fresh = BM25Index.build(built.tokens, k1=1.1, b=0.6)
    for q in _queries():
        np.testing.assert_array_equal(loaded.bm25.scores(q), fresh.scores(q))  # bit-identical
        assert loaded.bm25.search(q, 10) == fresh.search(q, 10)
    assert loaded.tokens == built.tokens and loaded.chunks == built.chunks


def _corrupt(part: str, how: str) -> object:
    def apply(d: Path) -> None:
        p = d / part
        if how == "missing":
            p.unlink()
        elif how == "truncated":
            p.write_bytes(p.read_bytes()[:100])
        elif how == "short":
            np.save(p, np.load(p)[:-1])
        elif how == "out of range":
            arr = np.load(p)
            arr[0] = 10_000
            np.save(p, arr)
        else:
            p.write_text('["w0"]')
    return apply


@pytest.mark.parametrize("part, how, message", [
    ("bm25.data.npy", "missing", r"BM25 matrix: bm25.data.npy is missing or unreadable"),
    ("bm25.indices.npy", "truncated", r"BM25 matrix: bm25.indices.npy is missing or unreadable"),
    ("bm25.indptr.npy", "short", r"BM25 matrix: bm25.indptr.npy holds int64 \(\d+,\), expected int64 \(\d+,\)"),
    ("bm25.indices.npy", "out of range", r"BM25 matrix: bm25.indices.npy names documents outside 0..119"),
    ("bm25.vocab.json", "other", r"BM25 matrix: bm25.vocab.json must be a list of \d+ terms"),
])
def test_a_missing_or_corrupt_bm25_part_fails_with_one_clear_line(store: IndexStore, part: str, how: str,
                                                                   message: str) -> None:
    store.save(_random_index())
    _forget_digests(store, "bm")  # the structure is checked without them too
    _corrupt(part, how)(store.version_path("bm"))  # type: ignore[operator]
    with pytest.raises(IndexCorruptError, match=message + r".*; rebuild it with `rag ingest DIR --index bm --rebuild`") \
            as info:
        store.load("bm")
    assert "\n" not in str(info.value)


def test_an_index_without_the_bm25_parts_loads_and_the_next_write_adds_them(store: IndexStore) -> None:
    from rag.index.sparse import BM25_PARTS

    built = _random_index()
    store.save(built)
    version = store.version_path("bm")
    for path in (store.path("bm") / "manifest.json", version / "manifest.json"):  # as rag wrote it before
        m = json.loads(path.read_text())
        del m["bm25"]["matrix"], m["sha256"]
        path.write_text(json.dumps(m))
    for f in BM25_PARTS.values():
        (version / f).unlink()
    loaded = store.load("bm")
    assert not isinstance(loaded.bm25.data, np.memmap)  # rebuilt in memory from bm25.json
    for q in _queries():
        assert loaded.bm25.search(q, 10) == built.bm25.search(q, 10)
    store.save(loaded)
    assert "matrix" in json.loads((store.path("bm") / "manifest.json").read_text())["bm25"]
    again = store.load("bm")
    assert isinstance(again.bm25.data, np.memmap)
    assert [again.bm25.search(q, 10) for q in _queries()] == [built.bm25.search(q, 10) for q in _queries()]


def test_a_loaded_index_stays_readable_after_its_version_is_replaced(store: IndexStore) -> None:
    built = _random_index()
    store.save(built)
    first = store.version_path("bm")
    reader = store.load("bm")  # the chunks, tokens and BM25 arrays are read lazily / memory-mapped
    store.save(_random_index(n=5, seed=3))
    assert not first.exists()
    assert reader.chunks[7] == built.chunks[7] and list(reader.chunks) == built.chunks
    assert reader.tokens == built.tokens
    assert reader.bm25.search(["w1", "w2"], 5) == built.bm25.search(["w1", "w2"], 5)
    assert reader.dense.search(built.embeddings[9], 3) == built.dense.search(built.embeddings[9], 3)
    np.testing.assert_array_equal(reader.embeddings, built.embeddings)


def test_an_unreadable_chunk_line_is_named_when_it_is_read(store: IndexStore) -> None:
    from rag.index.lazy import LazyPartError

    store.save(_random_index())
    _forget_digests(store, "bm")  # with them, the load fails (test_swapped_chunk_lines_...)
    path = store.version_path("bm") / "chunks.jsonl"
    lines = path.read_text().splitlines()
    lines[4] = '{"id": "c4", "text": '
    path.write_text("\n".join(lines) + "\n")
    loaded = store.load("bm")
    assert loaded.chunks[3].id == "c3"
    with pytest.raises(LazyPartError, match=r"index 'bm': chunks.jsonl line 5 is unreadable"):
        loaded.chunks[4]


def test_an_hnsw_index_records_its_parameters_and_searches_like_flat(store: IndexStore) -> None:
    built = _random_index()
    settings = IndexSettings(embedder_id="e", dim=4, chunker={}, bm25_k1=1.1, bm25_b=0.6, faiss_kind="hnsw")
    store.save(Index("hn", settings, built.chunks, built.embeddings, built.tokens, built.documents))
    manifest = json.loads((store.path("hn") / "manifest.json").read_text())
    assert manifest["faiss"]["kind"] == "hnsw"
    assert manifest["faiss"]["params"] == {"hnsw_m": 32, "ef_construction": 40, "ef_search": 128}
    loaded = store.load("hn")
    assert loaded.dense.kind == "hnsw" and loaded.dense.params == manifest["faiss"]["params"]
    q = built.embeddings[7]
    assert loaded.dense.search(q, 5) == built.dense.search(q, 5)  # 120 vectors: HNSW finds the exact top-5
    store.save(built)  # flat: nothing to record
    assert json.loads((store.path("bm") / "manifest.json").read_text())["faiss"]["params"] == {}


# -- silent tampering: each part's sha256 in the manifest, and unit-length vectors ------------


def test_each_part_s_sha256_is_recorded_in_the_manifest(store: IndexStore) -> None:
    from rag.fs import file_sha256

    store.save(_random_index())
    manifest = json.loads((store.path("bm") / "manifest.json").read_text())
    version = store.version_path("bm")
    parts = sorted(p.name for p in version.iterdir() if p.name != "manifest.json")
    assert sorted(manifest["sha256"]) == parts and "chunks.jsonl" in parts and "embeddings.npy" in parts
    assert all(manifest["sha256"][p] == file_sha256(version / p) for p in parts)


def test_swapped_chunk_lines_are_detected_on_load(store: IndexStore, capsys: pytest.CaptureFixture[str]) -> None:
    from rag.cli.main import main

    store.save(_random_index())
    path = store.version_path("bm") / "chunks.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    lines[3], lines[4] = lines[4], lines[3]  # same lines, same sizes: every structural check passes
    path.write_text("".join(lines))
    with pytest.raises(IndexCorruptError) as info:
        store.load("bm")
    message = str(info.value)
    assert message.startswith("index 'bm': part chunks.jsonl does not match the sha256 recorded in manifest.json")
    assert message.endswith("rebuild it with `rag ingest DIR --index bm --rebuild`") and "\n" not in message
    assert main(["search", "w1", "--index", "bm", "--index-dir", str(store.root), "--mode", "bm25"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "chunks.jsonl does not match the sha256" in err and "--rebuild" in err


def test_scaled_embeddings_are_detected_on_load_by_digest_and_by_length(store: IndexStore) -> None:
    store.save(_random_index())
    path = store.version_path("bm") / "embeddings.npy"
    np.save(path, np.load(path) * 1000)  # the same ranking by inner product, but not the cosine the gate reads
    with pytest.raises(IndexCorruptError, match=r"^index 'bm': part embeddings.npy does not match the sha256 .*"
                                                r"rebuild it with `rag ingest DIR --index bm --rebuild`$"):
        store.load("bm")
    _forget_digests(store, "bm")  # an index written before the digests: the vectors' length still is checked
    with pytest.raises(IndexCorruptError, match=r"^index 'bm': part embeddings.npy holds 120 vectors whose length is "
                                                r"not 1 \(row 0: \d+\), but embedder 'e' gives unit vectors; "
                                                r"rebuild it with `rag ingest DIR --index bm --rebuild`$"):
        store.load("bm")


def test_an_index_without_digests_loads_unchecked_and_the_next_write_records_them(
        store: IndexStore, caplog: pytest.LogCaptureFixture) -> None:
    built = _random_index()
    store.save(built)
    _forget_digests(store, "bm")
    with caplog.at_level("DEBUG", logger="rag.index.manifest"):
        loaded = store.load("bm")
    assert loaded.chunks == built.chunks
    assert any("records no part digests" in r.getMessage() for r in caplog.records)
    store.save(loaded)
    assert "chunks.jsonl" in json.loads((store.path("bm") / "manifest.json").read_text())["sha256"]


def test_a_changed_token_part_is_detected_when_a_writer_first_reads_it(store: IndexStore) -> None:
    built = _random_index()
    store.save(built)
    path = store.version_path("bm") / "bm25.json"
    tokens = json.loads(path.read_text())["tokens"]
    tokens[0], tokens[1] = tokens[1], tokens[0]
    path.write_text(json.dumps({"tokens": tokens}))
    loaded = store.load("bm")  # read only by writers: checked when first read, not on every load
    assert loaded.bm25.search(["w1"], 3) == built.bm25.search(["w1"], 3)
    with pytest.raises(IndexCorruptError, match=r"^index 'bm': part bm25.json does not match the sha256 .*--rebuild`$"):
        loaded.delete(["/not-indexed.txt"])  # keeps every chunk: their tokens are read


def test_a_changed_faiss_part_is_detected_at_the_first_dense_search(store: IndexStore) -> None:
    built = _random_index()
    store.save(built)
    vecs = built.embeddings.copy()
    vecs[[0, 1]] = vecs[[1, 0]]  # two rows swapped: the same kind, dim and count
    FaissIndex.build(vecs).save(store.version_path("bm") / "dense.faiss")
    loaded = store.load("bm")  # hashing the FAISS part on load would cost ~0.4 s at 100k chunks
    assert loaded.bm25.search(["w1"], 3) == built.bm25.search(["w1"], 3)
    for _ in range(2):  # and on every later try
        with pytest.raises(IndexCorruptError, match=r"^index 'bm': part dense.faiss does not match the sha256"):
            loaded.search_dense(built.embeddings[0], 3)
    with pytest.raises(IndexCorruptError, match="part dense.faiss does not match"):
        store.save(loaded)  # never copied into a new version with a fresh digest
