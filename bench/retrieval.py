#!/usr/bin/env python
"""Retrieval benchmark on the real Cranfield collection, up to ~100k chunks.

Prints Markdown tables (or, with ``--json``, one JSON object) for

1. ingestion: the full pipeline (``Ingestor.ingest_loaded``: chunk, embed, BM25 tokenize,
   build BM25 + FAISS, save atomically) split into its stages, in a fresh process whose peak
   RSS is reported.  Embeddings come through an on-disk cache keyed by sha256(model id,
   backend, text) (``$RAG_CACHE_DIR/bench-embeddings``), so only the first run of a corpus pays
   for embedding it; the embedder's speed is measured separately (4.);
2. index load and query latency p50/p95 for ``bm25`` / ``dense`` / ``hybrid`` (``Retriever``,
   k=10, candidates=100), in another fresh process (the query peak RSS), against the bare
   libraries on the same index: bm25s + FAISS + the same RRF;
3. our BM25 (``rag.index.sparse.BM25Index``, eager CSC scoring) against bm25s on the same
   analyzer tokens, k1/b and IDF: time ratio and ranking agreement; at the largest corpus,
   FAISS flat against HNSW (recall@10 against flat, search latency);
4. ``encode_speedup``: ``bench/embedding.py``'s new-vs-old embedder measurement, same run, on a
   small sample.

Corpus sizes are chunk-count targets.  The smallest uses the default chunking (200/40
tokens); larger targets re-chunk the *same real text* with smaller windows.  Where even the
smallest window (10 tokens) gives too few chunks from the 1,400 abstracts (~44k), the corpus
adds real articles from COVID-QA (``--extra``, ``documents.jsonl`` order) at the same window
until the estimate reaches the target: real, distinct text throughout (re-chunking the
abstracts with shifted starts gives mostly the same windows again, which is no test).

All timings within one table come from the same process and, for latencies, from
interleaved loops (each query runs every mode in turn), so ratios are meaningful even
on a busy machine; absolute numbers are not.

Usage (from the repository root)::

    .venv/bin/python bench/retrieval.py --json                # ~1k, ~10k and ~100k chunks (first run: embeds ~100k)
    .venv/bin/python bench/retrieval.py --sizes 1000 --queries 50 --out bench/results/retrieval.md
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import platform
import resource
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from collections import defaultdict
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from rag_eval.datasets import Dataset, load_cranfield  # noqa: E402
from rag.ingest.chunking import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE  # noqa: E402
from rag.embedding import Embedder, default_cache_dir  # noqa: E402
from rag.index.dense import FaissIndex  # noqa: E402
from rag.index.store import Index, IndexStore  # noqa: E402
from rag.ingest.ingestor import Ingestor  # noqa: E402
from rag.ingest.loaders import LoadedFile, doc_id_for  # noqa: E402
from rag.retrieval.fusion import DEFAULT_RRF_K, ranked, reciprocal_rank_fusion  # noqa: E402
from rag.retrieval.retriever import MODES, Retriever  # noqa: E402
from rag.types import Document  # noqa: E402

K = 10
CANDIDATES = 100
WARMUP_QUERIES = 5
MIN_CHUNK_SIZE = 10
#: HNSW settings compared against flat at the largest corpus (M, efSearch values)
HNSW_M = 32
HNSW_EF_SEARCH = (32, 64, 128, 256)
#: misses are embedded and written to the cache in blocks of this many texts (a killed run keeps them)
CACHE_BLOCK = 2000
# Fraction of a window the recursive splitter fills on average; on Cranfield the windows come
# out nearly full (estimate within ~3% of the real count at 34-40 tokens).  Only used to pick
# a chunk size for a target count; the real count is always reported.
SPLITTER_FILL = 1.0
#: below 20-token windows the splitter makes ~25% more chunks than the plain estimate (10/2 on Cranfield:
#: 44k real vs 35k estimated)
SPLITTER_FILL_SMALL = 0.8


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- instrumentation -------------------------------------------------------------------


class Timed:
    """Delegate every attribute to ``inner``; add the time spent in ``method`` to ``totals[label]``.

    Used to see where the pipeline's time goes without touching the ``rag`` package.
    """

    def __init__(self, inner: Any, method: str, label: str, totals: dict[str, float]) -> None:
        self._inner = inner
        self._method = method
        self._label = label
        self._totals = totals

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name != self._method:
            return attr

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                self._totals[self._label] += time.perf_counter() - t0

        return timed


def timeit(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


# -- embedding cache -------------------------------------------------------------------


class CachedEmbedder:
    """An :class:`Embedder` whose ``encode`` reads vectors from an on-disk cache first.

    Keys are sha256(model id, backend, text); misses are embedded by the wrapped embedder and
    appended as a new shard (``keys-*.npy`` + ``vecs-*.npy``) every :data:`CACHE_BLOCK` texts.
    Every other attribute is the wrapped embedder's.  Only for document chunks: queries are
    always encoded live.
    """

    def __init__(self, inner: Embedder, root: Path) -> None:
        self._inner = inner
        slug = hashlib.sha256(f"{inner.model_id}\0{inner.backend}".encode()).hexdigest()[:16]
        self.dir = root / slug
        self.dir.mkdir(parents=True, exist_ok=True)
        self._where: dict[bytes, tuple[int, int]] = {}
        self._shards: list[np.ndarray] = []
        self._seen: set[str] = set()
        self._scan()
        self.hits = 0
        self.misses = 0

    def _scan(self) -> None:
        """Read the shards not read yet (another process may be filling the same cache)."""
        for keys_path in sorted(self.dir.glob("keys-*.npy")):
            vecs_path = keys_path.with_name(keys_path.name.replace("keys-", "vecs-"))
            if keys_path.name in self._seen or not vecs_path.exists():
                continue
            keys, vecs = np.load(keys_path), np.load(vecs_path, mmap_mode="r")
            if keys.shape[0] != vecs.shape[0]:
                continue
            self._seen.add(keys_path.name)
            self._shards.append(vecs)
            for row, key in enumerate(keys):
                self._where[key.tobytes()] = (len(self._shards) - 1, row)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _key(self, text: str) -> bytes:
        return hashlib.sha256(f"{self._inner.model_id}\0{self._inner.backend}\0{text}".encode()).digest()

    def encode(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        keys = [self._key(t) for t in texts]
        if any(k not in self._where for k in keys):
            self._scan()
        todo = sorted({k: i for i, k in reversed(list(enumerate(keys))) if k not in self._where}.values())
        self.misses += len(todo)
        self.hits += len(texts) - len(todo)
        for lo in range(0, len(todo), CACHE_BLOCK):
            block = todo[lo:lo + CACHE_BLOCK]
            vecs = np.asarray(self._inner.encode([texts[i] for i in block]), dtype=np.float32)
            tag = uuid.uuid4().hex[:12]
            np.save(self.dir / f".vecs-{tag}.npy", vecs)  # the vectors first: a shard without them is ignored
            np.save(self.dir / f".keys-{tag}.npy", np.frombuffer(b"".join(keys[i] for i in block), np.uint8)
                    .reshape(len(block), 32))
            os.replace(self.dir / f".vecs-{tag}.npy", self.dir / f"vecs-{tag}.npy")
            os.replace(self.dir / f".keys-{tag}.npy", self.dir / f"keys-{tag}.npy")
            self._seen.add(f"keys-{tag}.npy")
            self._shards.append(vecs)
            for row, i in enumerate(block):
                self._where[keys[i]] = (len(self._shards) - 1, row)
            if len(todo) > CACHE_BLOCK:
                log(f"embedding cache: {lo + len(block):,}/{len(todo):,} new vectors")
        out = np.empty((len(texts), self._inner.dim), dtype=np.float32)
        for j, k in enumerate(keys):
            shard, row = self._where[k]
            out[j] = self._shards[shard][row]
        return out


# -- corpus ----------------------------------------------------------------------------


def loaded_files(ds: Dataset) -> list[LoadedFile]:
    """One ``LoadedFile`` per Cranfield document, as if each were ``cranfield/<id>.txt``."""
    files = []
    for d in ds.documents:
        source = f"cranfield/{d.doc_id}.txt"
        doc = Document.from_text(d.text, source=source, title=d.title, format=".txt")
        files.append(LoadedFile(source=source, doc_id=doc_id_for(source),
                                file_hash=hashlib.sha256(f"{d.title}\n{d.text}".encode()).hexdigest(),
                                documents=(doc,)))
    return files


def extra_articles(path: Path) -> list[tuple[str, str, str]]:
    """(doc_id, title, text) of the COVID-QA articles, in ``documents.jsonl`` order."""
    out = []
    for line in (path / "documents.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            meta = json.loads(line)
            out.append((str(meta["doc_id"]), str(meta.get("title", "")),
                        (path / meta["file"]).read_text(encoding="utf-8")))
    return out


def extra_files(path: Path, n: int) -> list[LoadedFile]:
    files = []
    for doc_id, title, text in extra_articles(path)[:n]:
        source = f"covid-qa/{doc_id}.txt"
        doc = Document.from_text(text, source=source, title=title, format=".txt")
        files.append(LoadedFile(source=source, doc_id=doc_id_for(source),
                                file_hash=hashlib.sha256(f"{title}\n{text}".encode()).hexdigest(), documents=(doc,)))
    return files


def overlap_for(chunk_size: int) -> int:
    return max(1, round(chunk_size * DEFAULT_CHUNK_OVERLAP / DEFAULT_CHUNK_SIZE))


def estimate_chunks(token_lengths: Sequence[int], size: int, overlap: int) -> int:
    stride = (size - overlap) * (SPLITTER_FILL if size >= 20 else SPLITTER_FILL_SMALL)
    return sum(max(1, math.ceil((n - overlap) / stride)) for n in token_lengths)


def chunking_for(target: int, token_lengths: Sequence[int], extra_lengths: Sequence[int]) -> tuple[int, int, int]:
    """(chunk_size, chunk_overlap, extra articles): the default chunking if it gives >= ~target chunks,
    else the window closest to target; below the smallest window, as many extra articles as it takes."""
    default = (DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_OVERLAP)
    if estimate_chunks(token_lengths, *default) >= 0.8 * target:
        return (*default, 0)
    size, overlap = MIN_CHUNK_SIZE, overlap_for(MIN_CHUNK_SIZE)
    have = estimate_chunks(token_lengths, size, overlap)
    if have < target:
        n = 0
        while n < len(extra_lengths) and have < target:
            have += estimate_chunks(extra_lengths[n:n + 1], size, overlap)
            n += 1
        return size, overlap, n
    best = min(range(MIN_CHUNK_SIZE, DEFAULT_CHUNK_SIZE + 1),
               key=lambda s: abs(estimate_chunks(token_lengths, s, overlap_for(s)) - target))
    return best, overlap_for(best), 0


@dataclasses.dataclass(frozen=True)
class Corpus:
    """What a child process needs to rebuild the same corpus and find its index."""

    data: Path
    max_docs: int
    target: int
    chunk_size: int
    chunk_overlap: int
    extra: Path
    n_extra: int
    store_root: Path
    cache_root: Path
    n_queries: int

    @property
    def name(self) -> str:
        return f"cranfield-{self.target}"

    def dataset(self) -> Dataset:
        ds = load_cranfield(self.data)
        return dataclasses.replace(ds, documents=ds.documents[: self.max_docs]) if self.max_docs else ds

    def queries(self, ds: Dataset) -> list[str]:
        return [ds.queries[q] for q in sorted(ds.queries, key=int)][: self.n_queries]

    def files(self, ds: Dataset) -> list[LoadedFile]:
        return loaded_files(ds) + (extra_files(self.extra, self.n_extra) if self.n_extra else [])


def peak_rss_mb() -> float:
    """This process' peak resident set size so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def in_fresh_process(fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(*args)`` in a new interpreter (spawn), so its peak RSS is its own."""
    import multiprocessing

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


# -- 1. ingestion ----------------------------------------------------------------------


def ingest_child(c: Corpus) -> dict[str, Any]:
    """Ingest corpus ``c`` into ``c.store_root`` (embeddings through the cache); stage times and peak RSS."""
    ds = c.dataset()
    files = c.files(ds)
    embedder = Embedder()
    embedder.load()
    cached = CachedEmbedder(embedder, c.cache_root)
    rss_before = peak_rss_mb()  # the interpreter, the libraries and the model: not the ingest's doing
    totals: dict[str, float] = defaultdict(float)
    ing = Ingestor(c.name, store=Timed(IndexStore(c.store_root), "save", "save", totals),  # type: ignore[arg-type]
                   embedder=Timed(cached, "encode", "encode", totals),  # type: ignore[arg-type]
                   chunk_size=c.chunk_size, chunk_overlap=c.chunk_overlap, show_progress=False)
    # the chunker is built lazily from the embedder's tokenizer; wrap the instance it will use
    ing._chunker = Timed(ing._get_chunker(), "split", "chunk", totals)  # type: ignore[assignment]
    ing.analyzer = Timed(ing.analyzer, "tokenize", "bm25 tokenize", totals)  # type: ignore[assignment]
    t_pipe, report = timeit(lambda: ing.ingest_loaded(files, rebuild=True))
    if not report.ok:
        raise RuntimeError(f"ingest of {c.name} failed:\n{report.summary()}")
    stats = {"chunks": report.chunks_added, "files": len(files), "pipeline_s": t_pipe,
             "encode_s": totals["encode"], "chunk_s": totals["chunk"], "tokenize_s": totals["bm25 tokenize"],
             "save_s": totals["save"], "cache_hits": cached.hits, "cache_misses": cached.misses,
             "rss_before_mb": rss_before, "peak_rss_mb": peak_rss_mb()}
    stats["rest_s"] = t_pipe - sum(stats[k] for k in ("encode_s", "chunk_s", "tokenize_s", "save_s"))
    return stats


# -- 2. load and latency ---------------------------------------------------------------


def query_latencies(index: Index, embedder: Embedder, queries: Sequence[str],
                    bare: Callable[[str], Any]) -> dict[str, list[float]]:
    """Per-query seconds for each mode, hybrid's two halves and the bare pair, interleaved per query."""
    retrievers = {m: Retriever(index, mode=m, embedder=embedder, candidates=CANDIDATES) for m in MODES}
    analyzer, bm25, dense = index.analyzer, index.bm25, index.dense

    def bm25_part(q: str) -> Any:
        return bm25.search(analyzer.tokenize(q), CANDIDATES)

    def dense_part(q: str) -> Any:
        return dense.search(embedder.encode([q])[0], CANDIDATES)

    steps: dict[str, Callable[[str], Any]] = {m: (lambda q, r=r: r.retrieve(q, k=K)) for m, r in retrievers.items()}
    steps["hybrid: bm25 part"] = bm25_part
    steps["hybrid: dense part"] = dense_part
    steps["bare bm25s + FAISS + RRF"] = bare
    for q in queries[:WARMUP_QUERIES]:
        for fn in steps.values():
            fn(q)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for q in queries:
        for name, fn in steps.items():
            t0 = time.perf_counter()
            fn(q)
            times[name].append(time.perf_counter() - t0)
    return times


def top_n(scores: np.ndarray, n: int) -> list[int]:
    """The selection ``BM25Index.search`` does, applied identically to both libraries."""
    n = min(n, scores.size)
    top = np.argpartition(-scores, n - 1)[:n]
    return [int(i) for i in top[np.lexsort((top, -scores[top]))] if scores[i] > 0]


def bm25s_index(index: Index) -> Any:
    import bm25s

    settings = index.settings
    fast = bm25s.BM25(k1=settings.bm25_k1, b=settings.bm25_b, method="lucene")  # Lucene IDF, as rag.index.sparse
    fast.index(list(index.tokens), show_progress=False)
    return fast


def bare_pair(index: Index, embedder: Embedder, fast: Any) -> Callable[[str], list[int]]:
    """Hybrid from the bare libraries: bm25s top-100 + FAISS top-100 (same index object) + RRF, top-10."""
    raw_faiss = index.dense._index

    def run(q: str) -> list[int]:
        tokens = index.analyzer.tokenize(q)
        sparse = top_n(np.asarray(fast.get_scores(tokens)), CANDIDATES) if tokens else []
        vec = np.ascontiguousarray(embedder.encode([q]), dtype=np.float32)
        _, ids = raw_faiss.search(vec, CANDIDATES)
        fused = reciprocal_rank_fusion([sparse, [int(i) for i in ids[0] if i >= 0]], k=DEFAULT_RRF_K)
        return ranked(fused)[:K]

    return run


def bm25_libraries(index: Index, fast: Any, queries: Sequence[str]) -> dict[str, Any]:
    """Our eager BM25 against bm25s on the same tokens: agreement and interleaved timings."""
    settings = index.settings
    t_build, _ = timeit(lambda: type(index.bm25).build(index.tokens, k1=settings.bm25_k1, b=settings.bm25_b))
    t_s_build, _ = timeit(lambda: bm25s_index(index))
    qtoks = [t for t in (index.analyzer.tokenize(q) for q in queries) if t]

    def ours(t: list[str]) -> np.ndarray:
        return index.bm25.scores(t)

    def theirs(t: list[str]) -> np.ndarray:
        return np.asarray(fast.get_scores(t), dtype=np.float64)

    # rank-bm25 (our reference) keeps the classic (k1 + 1) factor in the numerator, Lucene/bm25s drop it:
    # a constant scale, so rankings are identical and scores agree once it is divided out
    scale = settings.bm25_k1 + 1.0
    max_diff, same_top = 0.0, 0
    for t in qtoks[:WARMUP_QUERIES] + qtoks:  # warm-up, then a correctness check over all queries
        a, b = ours(t) / scale, theirs(t)
        max_diff = max(max_diff, float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(a)))))
    for t in qtoks:
        same_top += top_n(ours(t), K) == top_n(theirs(t), K)
    ours_t: list[float] = []
    fast_t: list[float] = []
    for t in qtoks:  # interleaved; both sides do the same top-n selection
        t0 = time.perf_counter()
        index.bm25.search(t, CANDIDATES)
        t1 = time.perf_counter()
        top_n(theirs(t), CANDIDATES)
        t2 = time.perf_counter()
        ours_t.append(t1 - t0)
        fast_t.append(t2 - t1)
    return {"n_queries": len(qtoks), "build_s": t_build, "bm25s_build_s": t_s_build,
            "ours": ours_t, "bm25s": fast_t, "max_rel_diff": max_diff, "same_top": same_top}


def flat_vs_hnsw(index: Index, embedder: Embedder, queries: Sequence[str]) -> dict[str, Any]:
    """HNSW (``FaissIndex.build(kind="hnsw")``) against the index's flat FAISS: recall@10 and latency."""
    vecs = np.asarray(embedder.encode(list(queries)), dtype=np.float32)
    t_build, hnsw = timeit(lambda: FaissIndex.build(index.embeddings, kind="hnsw", hnsw_m=HNSW_M))
    flat = index.dense
    truth = [[i for i, _ in flat.search(v, K)] for v in vecs]
    rows = []
    flat_t = []
    for v in vecs:
        t0 = time.perf_counter()
        flat.search(v, CANDIDATES)
        flat_t.append(time.perf_counter() - t0)
    for ef in HNSW_EF_SEARCH:
        hnsw._index.hnsw.efSearch = ef
        found, times = [], []
        for v in vecs:
            t0 = time.perf_counter()
            hits = hnsw.search(v, CANDIDATES)
            times.append(time.perf_counter() - t0)
            found.append([i for i, _ in hits[:K]])
        recall = float(np.mean([len(set(f) & set(t)) / max(1, len(t)) for f, t in zip(found, truth)]))
        rows.append({"ef_search": ef, "recall_at_10": recall, "p50_ms": pct(times, 50) * 1000,
                     "p95_ms": pct(times, 95) * 1000})
    return {"m": HNSW_M, "build_s": t_build, "flat_p50_ms": pct(flat_t, 50) * 1000,
            "flat_p95_ms": pct(flat_t, 95) * 1000, "hnsw": rows, "n_queries": len(vecs)}


def query_child(c: Corpus, compare_hnsw: bool) -> dict[str, Any]:
    """Load the index (timed), time queries (peak RSS after them), then the library comparisons."""
    ds = c.dataset()
    queries = c.queries(ds)
    embedder = Embedder()
    embedder.load()
    embedder.encode(queries[:16])  # warm-up, outside every timing
    rss_before = peak_rss_mb()
    store = IndexStore(c.store_root)
    t_load, index = timeit(lambda: store.load(c.name))
    t_load2, index = timeit(lambda: store.load(c.name))
    rss_loaded = peak_rss_mb()
    fast = bm25s_index(index)
    lat = query_latencies(index, embedder, queries, bare_pair(index, embedder, fast))
    out: dict[str, Any] = {"load_s": t_load, "load2_s": t_load2, "rss_before_mb": rss_before,
                           "rss_loaded_mb": rss_loaded, "peak_rss_mb": peak_rss_mb(), "latency": lat,
                           "chunks": len(index)}
    out["libraries"] = bm25_libraries(index, fast, queries)
    if compare_hnsw:
        out["faiss"] = flat_vs_hnsw(index, embedder, queries)
    return out


# -- report ----------------------------------------------------------------------------


def environment(embedder: Embedder) -> str:
    vers = []
    for pkg in ("onnxruntime", "sentence-transformers", "transformers", "faiss-cpu", "bm25s", "scipy", "numpy",
                "PyStemmer", "langchain-text-splitters"):
        try:
            vers.append(f"{pkg} {metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            vers.append(f"{pkg} (not installed)")
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return (f"Environment: {platform.python_implementation()} {platform.python_version()} on "
            f"{platform.machine()}, {os.cpu_count()} cores ({affinity} usable), load avg {load}; embedder "
            f"{embedder.model_id}, backend {embedder.backend}; {', '.join(vers)}")


def size_key(target: int) -> str:
    return f"{target // 1000}k" if target >= 1000 and target % 1000 == 0 else str(target)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "cranfield",
                        help="Cranfield folder (cran.all.1400, cran.qry, cranqrel); default %(default)s")
    parser.add_argument("--sizes", default="1000,10000,100000",
                        help="comma-separated target chunk counts (default %(default)s)")
    parser.add_argument("--extra", type=Path, default=REPO.parent / "shared" / "data" / "covid-qa",
                        help="COVID-QA folder (documents.jsonl + documents/): real text added to targets the "
                             "abstracts cannot reach; default %(default)s")
    parser.add_argument("--queries", type=int, default=200, help="Cranfield queries to time (default %(default)s)")
    parser.add_argument("--max-docs", type=int, default=0,
                        help="use only the first N documents, for a quick smoke run (default: all)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="embedding cache (default $RAG_CACHE_DIR/bench-embeddings)")
    parser.add_argument("--encode-chunks", type=int, default=32,
                        help="chunks for the encode_speedup measurement (bench/embedding.py); 0 skips it "
                             "(default %(default)s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    parser.add_argument("--out", type=Path, help="also write the Markdown report here")
    args = parser.parse_args(argv)
    try:
        sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    except ValueError:
        parser.error(f"--sizes must be comma-separated integers, got {args.sizes!r}")
    if not sizes or min(sizes) <= 0:
        parser.error(f"--sizes must be positive integers, got {args.sizes!r}")
    if args.queries <= 0:
        parser.error(f"--queries must be > 0, got {args.queries}")
    if args.max_docs < 0:
        parser.error(f"--max-docs must be >= 0, got {args.max_docs}")
    cache_root = args.cache_dir or default_cache_dir() / "bench-embeddings"

    t_start = time.perf_counter()
    ds = load_cranfield(args.data)
    if args.max_docs:
        ds = dataclasses.replace(ds, documents=ds.documents[: args.max_docs])
    embedder = Embedder()
    embedder.load()
    env = environment(embedder)
    log(env)
    lengths = [len(embedder.tokenizer.tokenize(d.text)) for d in ds.documents]
    need_extra = max(sizes) > estimate_chunks(lengths, MIN_CHUNK_SIZE, overlap_for(MIN_CHUNK_SIZE))
    extra_lengths = ([len(embedder.tokenizer.tokenize(t)) for _, _, t in extra_articles(args.extra)]
                     if need_extra else [])
    del embedder

    result: dict[str, Any] = {}
    ingest_rows, stage_rows, latency_rows, lib_rows, mem_rows = [], [], [], [], []
    faiss_lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        for target in sizes:
            size, overlap, n_extra = chunking_for(target, lengths, extra_lengths)
            c = Corpus(args.data, args.max_docs, target, size, overlap, args.extra, n_extra, Path(tmp), cache_root,
                       args.queries)
            key = size_key(target)
            log(f"{c.name}: ingesting with chunk_size={size}, chunk_overlap={overlap}, {n_extra} COVID-QA articles")
            st = in_fresh_process(ingest_child, c)
            n = st["chunks"]
            log(f"{c.name}: {n} chunks, pipeline {st['pipeline_s']:.1f}s (encode {st['encode_s']:.1f}s, "
                f"cache {st['cache_hits']} hits / {st['cache_misses']} misses), peak RSS {st['peak_rss_mb']:.0f} MB")
            label = f"~{target:,} ({n:,} chunks, {size}/{overlap}{f', +{n_extra} COVID-QA' if n_extra else ''})"
            parts_s = st["pipeline_s"] - st["encode_s"]
            ingest_rows.append([label, f"{st['pipeline_s']:.1f}", f"{st['encode_s']:.1f}",
                                f"{st['cache_hits']:,} / {st['cache_misses']:,}", f"{parts_s:.1f}",
                                f"{n / parts_s:,.0f}"])
            stage_rows.append([label] + [f"{st[k]:.2f} ({100 * st[k] / st['pipeline_s']:.0f}%)"
                                         for k in ("encode_s", "chunk_s", "tokenize_s", "rest_s", "save_s")])
            log(f"{c.name}: loading and timing {args.queries} queries")
            q = in_fresh_process(query_child, c, target == sizes[-1] and target >= 50_000)
            lat = q["latency"]
            hyb = pct(lat["hybrid"], 50)
            bare = pct(lat["bare bm25s + FAISS + RRF"], 50)
            for mode in (*MODES, "hybrid: bm25 part", "hybrid: dense part", "bare bm25s + FAISS + RRF"):
                t = lat[mode]
                share = f"{100 * pct(t, 50) / hyb:.0f}%" if mode.startswith(("hybrid", "bare")) else ""
                latency_rows.append([label if mode == MODES[0] else "", mode, ms(pct(t, 50)), ms(pct(t, 95)),
                                     ms(float(np.mean(t))), share])
            lib = q["libraries"]
            o50, s50 = pct(lib["ours"], 50), pct(lib["bm25s"], 50)
            lib_rows.append([label, ms(o50), ms(pct(lib["ours"], 95)), ms(s50), ms(pct(lib["bm25s"], 95)),
                             f"{o50 / s50:.2f}x", f"{lib['build_s']:.2f} / {lib['bm25s_build_s']:.2f}",
                             f"{lib['same_top']}/{lib['n_queries']}, {lib['max_rel_diff']:.1e}"])
            mem_rows.append([label, f"{st['rss_before_mb']:.0f}", f"{st['peak_rss_mb']:.0f}",
                             f"{q['load_s']:.3f} / {q['load2_s']:.3f}", f"{q['rss_before_mb']:.0f}",
                             f"{q['rss_loaded_mb']:.0f}", f"{q['peak_rss_mb']:.0f}"])
            result.update({
                f"chunks_{key}": n, f"chunking_{key}": f"{size}/{overlap}",
                f"covid_qa_articles_{key}": n_extra,
                f"bm25_vs_bm25s_p50_ratio_{key}": round(o50 / s50, 3), f"bm25_p50_ms_{key}": round(o50 * 1000, 3),
                f"bm25s_p50_ms_{key}": round(s50 * 1000, 3), f"bm25_same_top10_{key}": lib["same_top"],
                f"hybrid_p50_ms_{key}": round(hyb * 1000, 2), f"hybrid_p95_ms_{key}": round(pct(lat["hybrid"], 95) * 1000, 2),
                f"bare_pair_p50_ms_{key}": round(bare * 1000, 2), f"hybrid_vs_bare_p50_ratio_{key}": round(hyb / bare, 3),
                f"load_s_{key}": round(q["load_s"], 3), f"peak_rss_mb_ingest_{key}": round(st["peak_rss_mb"]),
                f"peak_rss_mb_query_{key}": round(q["peak_rss_mb"]), f"ingest_s_{key}": round(st["pipeline_s"], 1),
                f"ingest_index_parts_s_{key}": round(parts_s, 1),
            })
            if "faiss" in q:
                f = q["faiss"]
                result[f"faiss_flat_p50_ms_{key}"] = round(f["flat_p50_ms"], 3)
                result[f"faiss_hnsw_{key}"] = [{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}
                                               for r in f["hnsw"]]
                result[f"faiss_hnsw_build_s_{key}"] = round(f["build_s"], 1)
                faiss_lines = [f"### 4. FAISS flat vs HNSW at {label}", "",
                               f"HNSW M={f['m']} (`FaissIndex.build(kind=\"hnsw\")`, built in {f['build_s']:.0f} s); "
                               f"recall@{K} = overlap of HNSW's top-{K} with flat's (exact) top-{K} over "
                               f"{f['n_queries']} Cranfield query vectors; latency = one `search` of "
                               f"{CANDIDATES} candidates, query already encoded.", ""]
                faiss_lines += table(["index", "efSearch", f"recall@{K} vs flat", "p50 ms", "p95 ms"],
                                     [["flat", "-", "1.000", f"{f['flat_p50_ms']:.2f}", f"{f['flat_p95_ms']:.2f}"]]
                                     + [["hnsw", r["ef_search"], f"{r['recall_at_10']:.3f}", f"{r['p50_ms']:.2f}",
                                         f"{r['p95_ms']:.2f}"] for r in f["hnsw"]])
    if args.encode_chunks > 0:
        log(f"encode_speedup on {args.encode_chunks} chunks (bench/embedding.py)")
        from bench.embedding import measure

        enc = measure(n_chunks=args.encode_chunks, repeats=1, cranfield=args.data)
        result["encode_speedup"] = enc["encode_speedup"]
        result["encode"] = {k: enc[k] for k in ("old", "new", "chunks", "pipeline_speedup", "query_speedup")}
    wall = time.perf_counter() - t_start
    result["seconds"] = round(wall, 1)
    result["environment"] = env

    lines = [env, "", f"Corpus: real Cranfield text, {len(ds.documents)} abstracts; larger chunk-count targets "
             "re-chunk the same text with smaller windows (chunk_size/chunk_overlap in embedder tokens); "
             "beyond what 10-token windows give, real COVID-QA articles are added at the same window.", ""]
    lines += ["### 1. Ingestion (fresh process, embeddings from the on-disk cache)", "",
              "Pipeline = `Ingestor.ingest_loaded` (chunk, embed, BM25 tokenize, build BM25 + FAISS flat, "
              "atomic save). Encode = time inside `encode`, i.e. cache lookups plus embedding the misses; "
              "index parts = pipeline - encode.", ""]
    lines += table(["corpus", "pipeline s", "encode s", "cache hits / misses", "index parts s",
                    "index parts chunks/s"], ingest_rows)
    lines += [""]
    lines += table(["corpus", "encode", "chunk", "BM25 tokenize", "build + other", "save"], stage_rows)
    lines += ["", "### 2. Memory (MB, peak RSS) and index load", "",
              "Ingest and queries each run in a fresh process. `before` = interpreter, libraries and the loaded "
              "embedder; load = `IndexStore.load` in the query process, first / second call (s); query peak = "
              "after loading and all timed queries.", ""]
    lines += table(["corpus", "ingest: before", "ingest: peak", "load s", "query: before", "query: loaded",
                    "query: peak"], mem_rows)
    lines += ["", f"### 3. Query latency (ms), {args.queries} Cranfield queries, k={K}, candidates={CANDIDATES}",
              "", "Each query runs every row in turn (interleaved) after "
              f"{WARMUP_QUERIES} warm-up queries. Hybrid = RRF through `Retriever.retrieve`. `bare` = bm25s "
              "`get_scores` + top-100, query encode + FAISS search of the same index, "
              "`reciprocal_rank_fusion`, top-10. share = p50 / p50 hybrid.", ""]
    lines += table(["corpus", "mode", "p50", "p95", "mean", "share of hybrid"], latency_rows)
    lines += ["", "### 3b. Our BM25 (eager CSC) vs bm25s, same analyzer tokens, k1/b and Lucene IDF", "",
              f"Per query: `BM25Index.search(tokens, {CANDIDATES})` vs bm25s `get_scores` + the same top-"
              f"{CANDIDATES} selection (ms), interleaved. Agreement = queries with identical top-{K}; the max "
              "relative score difference after dividing ours by (k1 + 1), a constant factor Lucene drops.", ""]
    lines += table(["corpus", "ours p50", "ours p95", "bm25s p50", "bm25s p95", "ratio p50",
                    "build s (ours / bm25s)", "agreement"], lib_rows)
    if faiss_lines:
        lines += [""] + faiss_lines
    if "encode_speedup" in result:
        e = result["encode"]
        lines += ["", f"### 5. Embedder: encode_speedup {result['encode_speedup']:.2f}x ({e['new']['backend']} vs "
                  f"{e['old']['backend']}, {e['chunks']} chunks, bench/embedding.py, 1 repeat)"]
    lines += ["", f"Total wall time {wall:.0f}s."]
    report = "\n".join(lines)
    print(json.dumps(result, indent=1) if args.json else report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report + "\n", encoding="utf-8")
        log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
