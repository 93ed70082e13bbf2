"""The Milvus backend against a real server: ``milvus-lite server`` on a free loopback port.

The fixture starts the server as a subprocess bound to 127.0.0.1 (never its default 0.0.0.0)
with a temporary data directory, waits for the port, and stops it with SIGTERM.  The same
client code (``MilvusClient(uri="http://...")``) talks to a Milvus cluster.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import CRANFIELD, REPO

pytestmark = pytest.mark.milvus

SAMPLES = REPO / "samples"
QUERY = "what happens if ingestion is interrupted"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _milvus_lite() -> str:
    exe = Path(sys.executable).parent / "milvus-lite"
    found = str(exe) if exe.exists() else shutil.which("milvus-lite")
    if not found:
        pytest.fail("milvus-lite is not installed (pinned in requirements.txt: milvus-lite==3.2.2)")
    return found


class MilvusServer:
    """A ``milvus-lite server`` subprocess on ``127.0.0.1:port`` with its data in ``data_dir``."""

    def __init__(self, data_dir: Path, port: int, log: Path) -> None:
        self.data_dir = data_dir
        self.port = port
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [_milvus_lite(), "server", "--data-dir", str(self.data_dir), "--host", "127.0.0.1",
                 "--port", str(self.port)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"milvus-lite server exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        pytest.fail(f"milvus-lite server did not listen on port {self.port} within {timeout:g} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture(scope="module")
def milvus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusServer]:
    root = tmp_path_factory.mktemp("milvus")
    server = MilvusServer(root / "data", _free_port(), root / "server.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _listens_only_on_loopback(port: int) -> bool:
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout
    addrs = [line.split()[3] for line in out.splitlines() if line.strip()]
    return bool(addrs) and all("127.0.0.1" in a for a in addrs)


def _copy_samples(dest: Path) -> Path:
    shutil.copytree(SAMPLES, dest)
    return dest


def _ingest(docs: Path, index_dir: Path, uri: str, *extra: str) -> int:
    from rag.cli.main import main

    return main(["ingest", str(docs), "--index", "notes", "--index-dir", str(index_dir), "--backend", "milvus",
                 "--uri", uri, "-q", *extra])


def _search(capsys: pytest.CaptureFixture[str], index_dir: Path, *args: str) -> list[dict]:
    from rag.cli.main import main

    capsys.readouterr()
    code = main(["search", QUERY, "--index", "notes", "--index-dir", str(index_dir), "--format", "json", *args])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def test_server_listens_on_loopback_only(milvus: MilvusServer) -> None:
    assert _listens_only_on_loopback(milvus.port)


def test_ingest_samples_and_search_each_mode_like_the_embedded_backend(
        milvus: MilvusServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rag.cli.main import main
    from rag.index.store import IndexStore

    docs = _copy_samples(tmp_path / "docs")
    assert _ingest(docs, tmp_path / "idx", milvus.uri) == 0
    manifest = json.loads((tmp_path / "idx" / "notes" / "manifest.json").read_text())
    assert manifest["backend"]["kind"] == "milvus" and manifest["backend"]["uri"] == milvus.uri
    assert "faiss" not in manifest and manifest["counts"]["documents"] == 3
    version = tmp_path / "idx" / "notes" / manifest["parts_dir"]
    assert sorted(p.name for p in version.iterdir()) == ["documents.json", "manifest.json"]  # chunks on the server
    assert main(["ingest", str(docs), "--index", "notes", "--index-dir", str(tmp_path / "local"), "-q"]) == 0
    index = IndexStore(tmp_path / "idx").load("notes")
    assert type(index).__name__ == "MilvusIndex" and len(index) == manifest["counts"]["chunks"]

    for mode, key in (("bm25", "bm25"), ("dense", "dense"), ("hybrid", "zscore"), ("hybrid", "adaptive"),
                      ("hybrid", "rrf")):
        flags = ["--mode", mode, "-k", "3"] + (["--fusion", key] if mode == "hybrid" else [])
        hits = _search(capsys, tmp_path / "idx", *flags)  # no backend flag: from the manifest
        local = _search(capsys, tmp_path / "local", *flags)
        assert [h["rank"] for h in hits] == [1, 2, 3]
        assert hits[0]["source"].endswith("faq.md") and "interrupted" in hits[0]["text"]
        assert hits[0]["id"] == local[0]["id"], mode  # the same chunk tops both backends
        assert all(key in h["scores"] for h in hits)
        assert all(h["start"] < h["end"] and h["doc_id"] and h["title"] for h in hits)  # provenance kept
        if mode == "bm25":
            assert all(h["scores"]["bm25"] > 0 for h in hits)  # positive, whatever sign the server uses
        if mode != "bm25":
            assert all(-1.0 <= h["scores"]["dense"] <= 1.0 for h in hits)  # the gate needs the cosine
    weighted = _search(capsys, tmp_path / "idx", "--mode", "hybrid", "--fusion", "weighted", "--alpha", "0.3")
    assert weighted[0]["source"].endswith("faq.md") and "weighted" in weighted[0]["scores"]


def test_answers_from_a_milvus_index_through_the_one_pipeline_builder(milvus: MilvusServer, tmp_path: Path,
                                                                      embedder) -> None:  # type: ignore[no-untyped-def]
    from rag.index.store import IndexStore
    from rag.pipeline import GenerationConfig, PipelineConfig, build

    docs = _copy_samples(tmp_path / "docs")
    assert _ingest(docs, tmp_path / "idx", milvus.uri, "--collection", "rag_pipeline") == 0
    config = PipelineConfig(index="notes", generation=GenerationConfig(mode="extractive"))  # what app and API build
    with build(config, IndexStore(tmp_path / "idx"), embedder=embedder) as pipeline:
        answer = pipeline.answerer.answer("What happens if ingestion is interrupted?")
        off_topic = pipeline.answerer.answer("What is the boiling point of mercury in kelvin?")
    assert not answer.declined and answer.citations
    assert answer.citations[0].chunk.source.endswith("faq.md")  # the gate passed on the server's dense cosine
    assert off_topic.declined


def test_incremental_update_and_delete(milvus: MilvusServer, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    from rag.cli.main import main
    from rag.index.store import IndexStore

    docs = _copy_samples(tmp_path / "docs")
    assert _ingest(docs, tmp_path / "idx", milvus.uri, "--collection", "rag_incremental") == 0
    before = IndexStore(tmp_path / "idx").load("notes")
    n_before = len(before)
    assert before.count() == n_before

    capsys.readouterr()
    assert main(["ingest", str(docs), "--index", "notes", "--index-dir", str(tmp_path / "idx"), "-q"]) == 0
    assert "0 added, 0 updated, 3 unchanged" in capsys.readouterr().out  # nothing re-sent

    (docs / "glossary.md").write_text("# Glossary\n\nZeppelin: a rigid airship kept aloft by hydrogen cells.\n",
                                      encoding="utf-8")
    (docs / "faq.md").unlink()
    capsys.readouterr()
    assert main(["ingest", str(docs), "--index", "notes", "--index-dir", str(tmp_path / "idx"), "-q"]) == 0
    out = capsys.readouterr().out
    assert "0 added, 1 updated, 1 unchanged, 1 removed" in out, out
    after = IndexStore(tmp_path / "idx").load("notes")
    assert after.count() == len(after) < n_before
    sources = {h.chunk.source for h in _retrieve(after, "interrupted ingestion", 20)}
    assert not any(s.endswith("faq.md") for s in sources)  # the removed file's chunks are gone
    top = _retrieve(after, "rigid airship hydrogen", 1)[0]
    assert top.chunk.source.endswith("glossary.md") and "Zeppelin" in top.chunk.text  # the new text is there

    assert main(["remove", str(docs / "glossary.md"), "--index", "notes", "--index-dir", str(tmp_path / "idx")]) == 0
    gone = IndexStore(tmp_path / "idx").load("notes")
    assert gone.count() == len(gone) and not any(h.chunk.source.endswith("glossary.md")
                                                 for h in _retrieve(gone, "rigid airship hydrogen", 20))

    # --rebuild without --backend re-creates the collection on the recorded server
    assert main(["ingest", str(docs), "--index", "notes", "--index-dir", str(tmp_path / "idx"), "-q",
                 "--rebuild"]) == 0
    rebuilt = IndexStore(tmp_path / "idx").load("notes")
    assert type(rebuilt).__name__ == "MilvusIndex" and rebuilt.config.collection == "rag_incremental"
    assert rebuilt.count() == len(rebuilt) > 0 and set(rebuilt.documents) == set(after.documents)


def test_an_ingest_interrupted_mid_write_is_repaired_by_the_next_one(
        milvus: MilvusServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rag.index.milvus import MilvusIndex
    from rag.index.store import IndexStore

    docs = _copy_samples(tmp_path / "docs")
    assert _ingest(docs, tmp_path / "idx", milvus.uri, "--collection", "rag_crash") == 0
    (docs / "faq.md").write_text((docs / "faq.md").read_text() + "\n\nA zeppelin appendix.\n" * 40,
                                 encoding="utf-8")
    real_insert, calls = MilvusIndex.write, []

    def dies_mid_insert(self, documents, delete_doc_ids, chunks, vectors, show_progress=False):  # type: ignore[no-untyped-def]
        calls.append(1)
        self._call("delete", self.client.delete, self.config.collection,
                   filter=f"doc_id in {json.dumps(sorted(set(delete_doc_ids)))}")
        self._call("insert", self.client.insert, self.config.collection, [self._row(chunks[0], vectors[0])])
        raise KeyboardInterrupt  # killed after the delete and one row

    from rag.cli.main import main

    rerun = ["ingest", str(docs), "--index", "notes", "--index-dir", str(tmp_path / "idx"), "-q"]
    monkeypatch.setattr(MilvusIndex, "write", dies_mid_insert)
    assert main(rerun) == 130
    monkeypatch.setattr(MilvusIndex, "write", real_insert)
    assert calls
    broken = IndexStore(tmp_path / "idx").load("notes")  # readers still work (a warning is logged)
    assert broken.count() != len(broken)
    assert main(rerun) == 0  # the same command again
    fixed = IndexStore(tmp_path / "idx").load("notes")
    assert fixed.count() == len(fixed)
    assert "zeppelin" in _retrieve(fixed, "zeppelin appendix", 1)[0].chunk.text


def _retrieve(index, query: str, k: int):  # type: ignore[no-untyped-def]
    from rag.retrieval.retriever import Retriever

    return Retriever(index, mode="bm25").retrieve(query, k=k)


def test_server_restart_keeps_the_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server = MilvusServer(tmp_path / "data", _free_port(), tmp_path / "server.log")
    server.start()
    try:
        docs = _copy_samples(tmp_path / "docs")
        assert _ingest(docs, tmp_path / "idx", server.uri) == 0
        first = _search(capsys, tmp_path / "idx", "--mode", "hybrid", "-k", "5")
        server.stop()
        server.start()
        again = _search(capsys, tmp_path / "idx", "--mode", "hybrid", "-k", "5")
        assert [h["id"] for h in again] == [h["id"] for h in first]
    finally:
        server.stop()


def test_a_server_killed_mid_ingest_is_one_line_and_searches_never_return_unrecorded_documents(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    from rag.index.milvus import MilvusError, MilvusIndex
    from rag.index.store import IndexStore
    from rag.ingest.ingestor import Ingestor

    server = MilvusServer(tmp_path / "data", _free_port(), tmp_path / "server.log")
    server.start()
    try:
        docs = _copy_samples(tmp_path / "docs")
        assert _ingest(docs, tmp_path / "idx", server.uri) == 0
        (docs / "faq.md").write_text((docs / "faq.md").read_text() + "\n\nA zeppelin appendix.\n" * 40,
                                     encoding="utf-8")
        real_call = MilvusIndex._call

        def kills_after_the_first_insert(self, doing, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
            out = real_call(self, doing, fn, *args, **kwargs)
            if doing == "insert chunks":
                server.proc.kill()  # type: ignore[union-attr]
                server.proc.wait()  # type: ignore[union-attr]
            return out

        # pymilvus as a library user gets it (its own stderr handler at WARNING; the CLI turns it down)
        pymilvus_log, seen = logging.getLogger("pymilvus"), []
        handler = logging.Handler(logging.WARNING)
        handler.emit = seen.append  # type: ignore[method-assign]
        monkeypatch.setattr(pymilvus_log, "level", logging.WARNING)
        pymilvus_log.manager._clear_cache()
        pymilvus_log.addHandler(handler)
        monkeypatch.setattr(MilvusIndex, "_call", kills_after_the_first_insert)
        try:
            with pytest.raises(MilvusError) as info:
                Ingestor("notes", store=IndexStore(tmp_path / "idx"), show_progress=False).ingest([docs])
        finally:
            pymilvus_log.removeHandler(handler)
            monkeypatch.undo()
        assert str(info.value).startswith(f"cannot reach the Milvus server at {server.uri}")
        assert "\n" not in str(info.value)
        assert [r.getMessage()[:80] for r in seen] == []  # no pymilvus tracebacks or retry warnings

        server.proc = None
        server.start()
        deadline = time.monotonic() + 30
        while True:  # the client's channel to the killed server backs off before it reconnects
            try:
                index = IndexStore(tmp_path / "idx").load("notes")
                break
            except MilvusError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        recorded = {r.doc_id for r in index.documents.values()}
        # rows no record names, as a killed ingest leaves them (inserted directly: the kill above may land
        # before the server stored its batch)
        row = index.client.query(index.config.collection, filter="", output_fields=["*"], limit=1)[0]
        orphans = [{**row, "id": f"orphan{i}", "doc_id": "not-recorded", "source": str(docs / "gone.md"),
                    "text": "zeppelin appendix interrupted ingestion orphan", "terms": "zeppelin appendix interrupt "
                    "ingest orphan"} for i in range(3)]
        for o in orphans:
            o.pop("sparse", None)
        index.client.insert(index.config.collection, orphans)
        index.client.flush(index.config.collection)
        for mode, fusion in (("bm25", None), ("dense", None), ("hybrid", "rrf"), ("hybrid", "zscore")):
            flags = ["--mode", mode, "-k", "10"] + (["--fusion", fusion] if fusion else [])
            hits = _search(capsys, tmp_path / "idx", *flags)
            assert hits and all(h["doc_id"] in recorded for h in hits), (mode, fusion)
        still_open = _retrieve(index, "zeppelin appendix orphan", 10)  # opened before the rows landed
        assert still_open and all(h.chunk.doc_id in recorded for h in still_open)
    finally:
        server.stop()


def test_unreachable_server_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rag.cli.main import main

    uri = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    docs = _copy_samples(tmp_path / "docs")
    t0 = time.monotonic()
    assert _ingest(docs, tmp_path / "idx", uri) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert err.startswith(f"error: cannot reach the Milvus server at {uri}") and "--uri" in err
    assert time.monotonic() - t0 < 60
    assert not (tmp_path / "idx" / "notes" / "manifest.json").exists()  # nothing recorded


def test_index_whose_server_is_down_fails_in_one_line(milvus: MilvusServer, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from rag.cli.main import main

    docs = _copy_samples(tmp_path / "docs")
    assert _ingest(docs, tmp_path / "idx", milvus.uri, "--collection", "rag_moved") == 0
    manifest_path = tmp_path / "idx" / "notes" / "manifest.json"
    dead = f"http://127.0.0.1:{_free_port()}"
    for path in (manifest_path, manifest_path.parent / json.loads(manifest_path.read_text())["parts_dir"]
                 / "manifest.json"):
        m = json.loads(path.read_text())
        m["backend"]["uri"] = dead
        path.write_text(json.dumps(m))
    capsys.readouterr()
    assert main(["search", QUERY, "--index", "notes", "--index-dir", str(tmp_path / "idx")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"cannot reach the Milvus server at {dead}" in err


def test_backend_arguments_are_checked_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rag.cli.main import main

    base = ["ingest", str(SAMPLES), "--index", "notes", "--index-dir", str(tmp_path / "idx"), "-q"]
    for extra, message in ((["--backend", "milvus"], "--backend milvus needs the server: --uri"),
                           (["--uri", "http://127.0.0.1:19530"], "are for --backend milvus"),
                           (["--backend", "milvus", "--uri", "127.0.0.1:19530"], "must start with http://")):
        capsys.readouterr()
        assert main([*base, *extra]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "idx").exists()


def test_collection_of_another_embedder_or_dim_is_refused(milvus: MilvusServer, tmp_path: Path) -> None:
    from rag.index.milvus import MilvusConfig, MilvusIndex
    from rag.index.store import IndexMismatchError, IndexSettings

    ours = IndexSettings(embedder_id="sentence-transformers/all-MiniLM-L6-v2", dim=384, chunker={})
    config = MilvusConfig(uri=milvus.uri, collection="rag_dims")
    MilvusIndex.create("dims", ours, config, drop=True)
    other = IndexSettings(embedder_id="nomic-embed-text-v1.5", dim=768, chunker={})
    with pytest.raises(IndexMismatchError, match=r"rag_dims' at http://127\.0\.0\.1:\d+ was built with embedder "
                                                 r"'sentence-transformers/all-MiniLM-L6-v2'.*--rebuild"):
        MilvusIndex.create("dims", other, config)
    MilvusIndex.create("dims", other, config, drop=True)  # --rebuild replaces it


def test_switching_backend_without_rebuild_is_refused(milvus: MilvusServer, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from rag.cli.main import main

    docs = _copy_samples(tmp_path / "docs")
    assert main(["ingest", str(docs), "--index", "notes", "--index-dir", str(tmp_path / "idx"), "-q"]) == 0
    capsys.readouterr()
    assert _ingest(docs, tmp_path / "idx", milvus.uri, "--collection", "rag_switch") == 2
    err = capsys.readouterr().err
    assert "stored in local files" in err and "--rebuild" in err
    assert _ingest(docs, tmp_path / "idx", milvus.uri, "--collection", "rag_switch", "--rebuild") == 0


def test_token_is_never_written_to_the_manifest(milvus: MilvusServer, tmp_path: Path) -> None:
    docs = _copy_samples(tmp_path / "docs")
    secret = "root:s3cret-token-value"
    assert _ingest(docs, tmp_path / "idx", milvus.uri, "--collection", "rag_token", "--token", secret) == 0
    for path in (tmp_path / "idx").rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(errors="replace"), path
    assert json.loads((tmp_path / "idx" / "notes" / "manifest.json").read_text())["backend"]["token_env"] == \
        "RAG_MILVUS_TOKEN"


@pytest.mark.slow
@pytest.mark.skipif(not CRANFIELD.exists(), reason="needs ../shared/data/cranfield")
def test_cranfield_hybrid_on_milvus_matches_in_process(milvus: MilvusServer, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from rag.cli.main import main

    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path / "cache"))
    args = ["eval", "retrieval", "--dataset", "cranfield", "--path", str(CRANFIELD), "--configs", "bm25,hybrid",
            "--format", "json", "-q"]
    assert main(args) == 0
    local = json.loads(capsys.readouterr().out)
    assert main([*args, "--backend", "milvus", "--uri", milvus.uri]) == 0
    remote = json.loads(capsys.readouterr().out)
    print(f"Cranfield nDCG@10 hybrid: in-process {local['hybrid']['nDCG@10']:.4f}, "
          f"milvus {remote['hybrid']['nDCG@10']:.4f}; bm25: {local['bm25']['nDCG@10']:.4f} / "
          f"{remote['bm25']['nDCG@10']:.4f}", file=sys.stderr)
    assert abs(remote["hybrid"]["nDCG@10"] - local["hybrid"]["nDCG@10"]) <= 0.01
    assert remote["hybrid"]["nDCG@10"] > remote["bm25"]["nDCG@10"]


@pytest.mark.parametrize("index_type", ["FLAT", "IVF_FLAT", "HNSW"])
def test_each_dense_index_type_finds_a_chunk_by_its_own_vector(milvus: MilvusServer, index_type: str) -> None:
    import numpy as np

    from rag.index.milvus import MilvusConfig, MilvusIndex
    from rag.index.store import DocRecord, IndexSettings
    from rag.types import Chunk, RetrievalMode

    settings = IndexSettings(embedder_id="test-embedder", dim=16, chunker={})
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(300, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    chunks = [Chunk(f"c{i}", f"note {i} about {'pumps' if i % 3 else 'valves'}", f"d{i % 5}", f"s{i % 5}", None,
                    0, 10, i // 5) for i in range(300)]
    docs = {f"s{j}": DocRecord(f"d{j}", f"s{j}", "", "", 60, None, 0.0) for j in range(5)}
    config = MilvusConfig(uri=milvus.uri, collection=f"rag_kind_{index_type.lower()}", index_type=index_type)
    index = MilvusIndex.create("kinds", settings, config, drop=True).write(docs, [], chunks, vectors)
    for i in (7, 123, 299):
        found = index.search("", vectors[i], RetrievalMode.DENSE, n=3)
        assert next(iter(found.fused)) == f"c{i}"
        assert found.fused[f"c{i}"] == pytest.approx(1.0, abs=1e-4)
    hybrid = index.search("valves", vectors[9], RetrievalMode.HYBRID, n=5)
    assert next(iter(hybrid.fused)) == "c9"  # first in both lists (9 % 3 == 0: a valves note)
    rest = {s: r for s, r in docs.items() if s != "s0"}
    assert index.write(rest, ["d0"], [], np.zeros((0, 16), np.float32)).count() == 240  # one document deleted
    with pytest.raises(Exception, match="holds 240 chunks after the write, the records say 300"):
        index.write(docs, [], [], np.zeros((0, 16), np.float32))  # records and server disagree: caught


def test_a_scoped_search_ranks_only_the_chosen_documents_on_the_server(milvus: MilvusServer, tmp_path: Path,
                                                                       embedder) -> None:  # type: ignore[no-untyped-def]
    """The server filters by doc_id before ranking: k hits from the chosen document in every mode, where a
    post-filter of the unscoped top k would find none; an unknown document is a one-line error."""
    from rag.index.milvus import MilvusConfig
    from rag.index.store import IndexStore
    from rag.ingest.ingestor import Ingestor
    from rag.retrieval.retriever import Retriever
    from tests import scoping

    store = IndexStore(tmp_path / "idx")
    config = MilvusConfig(uri=milvus.uri, collection="rag_scope")
    report = Ingestor("scope", store=store, embedder=embedder, show_progress=False, backend="milvus", milvus=config,
                      **scoping.CHUNKING).ingest([scoping.write(tmp_path / "docs")])
    assert report.ok, report.summary()
    index = store.load("scope")
    assert type(index).__name__ == "MilvusIndex"
    assert scoping.chunks_per_file(index) == {"pumps.md": 12, "valves.md": 6, "notes.md": 6}
    k = scoping.K
    for mode, fusion in (("bm25", None), ("dense", None), ("hybrid", "zscore"), ("hybrid", "rrf")):
        r = Retriever(index, mode=mode, fusion=fusion, embedder=embedder, candidates=k)
        unscoped = r.retrieve(scoping.QUERY, k=k)
        assert [Path(h.chunk.source).name for h in unscoped] == ["pumps.md"] * k, mode
        hits = r.retrieve(scoping.QUERY, k=k, documents=["notes.md"])
        assert [Path(h.chunk.source).name for h in hits] == ["notes.md"] * k, mode
        assert [h.rank for h in hits] == list(range(1, k + 1))
    both = Retriever(index, mode="hybrid", fusion="rrf", embedder=embedder).retrieve(
        scoping.QUERY, k=10, documents=["notes.md", "valves.md"])
    assert len(both) == 10 and {Path(h.chunk.source).name for h in both} == {"notes.md", "valves.md"}
    with pytest.raises(ValueError, match="^unknown document 'nope.md' in index 'scope'; its documents include "):
        Retriever(index, mode="bm25").retrieve(scoping.QUERY, documents=["nope.md"])
