#!/usr/bin/env python
"""Query latency on Milvus (loopback client) against the in-process backend, same run, 10k chunks.

Builds one corpus of ``--chunks`` chunks from the Cranfield collection (its 2,093 real chunks
and their MiniLM embeddings, from the eval cache or embedded once, then tiled with new ids and
slightly perturbed vectors up to the size), loads it into the embedded FAISS + BM25 index and
into a collection on a ``milvus-lite server`` this script starts on a free 127.0.0.1 port,
and times ``Retriever.retrieve`` (query embedding included, k=10, 100 candidates per retriever)
for every mode on both, with the same Cranfield queries, alternating backends query by query.

Milvus Lite is a pure-Python server (NumPy brute force / per-segment BM25 behind gRPC): its
latency says what the client path and the server protocol cost here, not what a Milvus
cluster (C++ engine, Knowhere indexes, many query nodes) does.

Usage (from the repository root)::

    .venv/bin/python bench/milvus.py                 # about a minute on 2 busy cores
    .venv/bin/python bench/milvus.py --json          # one JSON object on stdout
    .venv/bin/python bench/milvus.py --chunks 20000 --queries 100 --index-type HNSW
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from rag.embedding import Embedder  # noqa: E402
from rag.index.milvus import MilvusConfig, MilvusIndex  # noqa: E402
from rag.index.store import Index  # noqa: E402
from rag.retrieval.retriever import Retriever  # noqa: E402
from rag.types import content_hash  # noqa: E402
from rag_eval.datasets import load_cranfield  # noqa: E402
from rag_eval.retrieval import EvalSettings, build_index  # noqa: E402

DEFAULT_CRANFIELD = REPO.parent / "shared" / "data" / "cranfield"
MODES = ("bm25", "dense", "hybrid")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def milvus_lite_server(data_dir: Path) -> Iterator[str]:
    """``milvus-lite server`` on a free loopback port (never its default 0.0.0.0); yields the URI."""
    exe = Path(sys.executable).parent / "milvus-lite"
    port = free_port()
    proc = subprocess.Popen([str(exe) if exe.exists() else "milvus-lite", "server", "--data-dir", str(data_dir),
                             "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("milvus-lite server did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def tiled_corpus(base: Index, n: int, seed: int = 0) -> Index:
    """``n`` chunks: ``base``'s, then copies with new ids and vectors perturbed by N(0, 0.02) and renormalised."""
    rng = np.random.default_rng(seed)
    chunks, vectors, tokens = [], [], []
    copy = 0
    while len(chunks) < n:
        take = min(len(base), n - len(chunks))
        for c in base.chunks[:take]:
            chunks.append(c if copy == 0 else replace(c, id=content_hash("tile", str(copy), c.id),
                                                      doc_id=content_hash("tile", str(copy), c.doc_id),
                                                      source=f"{c.source}#copy{copy}"))
        v = base.embeddings[:take]
        if copy:
            v = v + rng.normal(0.0, 0.02, v.shape).astype(np.float32)
            v /= np.linalg.norm(v, axis=1, keepdims=True)
        vectors.append(v)
        tokens.extend(base.tokens[:take])
        copy += 1
    docs = {}  # one record per (copied) document, so the Milvus index knows its size
    for c in chunks:
        rec = docs.get(c.source)
        docs[c.source] = (replace(rec, n_chunks=rec.n_chunks + 1) if rec is not None else
                          _record(c))
    return Index("bench-milvus", base.settings, chunks, np.concatenate(vectors), tokens, docs)


def _record(chunk: Any) -> Any:
    from rag.index.store import DocRecord

    return DocRecord(doc_id=chunk.doc_id, source=chunk.source, file_hash="", title=chunk.title, n_chunks=1,
                     pages=None, ingested_at=0.0)


def percentile(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cranfield", type=Path, default=DEFAULT_CRANFIELD)
    ap.add_argument("--chunks", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--index-type", choices=("FLAT", "IVF_FLAT", "HNSW"), default="FLAT")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    embedder = Embedder().load()
    ds = load_cranfield(args.cranfield)
    base = build_index(ds, embedder, EvalSettings())  # cached by rag eval (embedded once)
    local = tiled_corpus(base, args.chunks)
    queries = [t for q, t in ds.queries.items() if q in ds.qrels][:args.queries]
    tmp = Path(tempfile.mkdtemp(prefix="bench-milvus-"))
    try:
        with milvus_lite_server(tmp / "data") as uri:
            t0 = time.perf_counter()
            config = MilvusConfig(uri=uri, collection="bench_milvus", index_type=args.index_type)
            remote = MilvusIndex.create(local.name, local.settings, config, drop=True)
            remote = remote.write(local.documents, [], local.chunks, local.embeddings)
            load_s = time.perf_counter() - t0
            rows = []
            for mode in MODES:
                retrievers = {"in-process": Retriever(local, mode=mode, embedder=embedder),
                              "milvus": Retriever(remote, mode=mode, embedder=embedder)}
                lat: dict[str, list[float]] = {name: [] for name in retrievers}
                for name, r in retrievers.items():
                    r.retrieve(queries[0], k=10)  # warm-up
                agree = 0
                for q in queries:
                    tops = {}
                    for name, r in retrievers.items():
                        t = time.perf_counter()
                        tops[name] = [h.chunk.id for h in r.retrieve(q, k=10)]
                        lat[name].append(1000 * (time.perf_counter() - t))
                    agree += len(set(tops["in-process"]) & set(tops["milvus"]))
                row: dict[str, Any] = {"mode": mode}
                for name, xs in lat.items():
                    row[f"{name}_p50_ms"] = round(percentile(xs, 50), 2)
                    row[f"{name}_p95_ms"] = round(percentile(xs, 95), 2)
                row["p50_ratio"] = round(row["milvus_p50_ms"] / row["in-process_p50_ms"], 2)
                row["top10_overlap"] = round(agree / (10 * len(queries)), 3)
                rows.append(row)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    result = {"chunks": len(local), "queries": len(queries), "index_type": args.index_type, "k": 10,
              "candidates": 100, "milvus_load_s": round(load_s, 1), "rows": rows,
              "versions": {p: metadata.version(p) for p in ("pymilvus", "milvus-lite", "faiss-cpu")},
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs"}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['chunks']} chunks, {result['queries']} Cranfield queries, k=10, 100 candidates, "
          f"Milvus {args.index_type} (milvus-lite {result['versions']['milvus-lite']} on loopback; "
          f"loading the collection took {result['milvus_load_s']} s)\n")
    print("| mode | in-process p50 / p95 (ms) | milvus p50 / p95 (ms) | milvus / in-process (p50) | top-10 overlap |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['mode']} | {r['in-process_p50_ms']} / {r['in-process_p95_ms']} | {r['milvus_p50_ms']} / "
              f"{r['milvus_p95_ms']} | {r['p50_ratio']}x | {r['top10_overlap']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
