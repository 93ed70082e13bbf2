"""Run retrieval configurations over a benchmark dataset and score them.

A benchmark corpus is indexed through the same pipeline a user's files go through
(chunking, embedding, BM25, FAISS), cached under ``$RAG_CACHE_DIR`` (default
``~/.cache/rag-local``) keyed by the corpus and settings.  Chunk hits are mapped back to
document ids with max-passage aggregation (a document ranks at its best chunk).

Each configuration's per-query scores are compared with the BM25 baseline by a paired
significance test (:mod:`rag_eval.stats`); per-query latency is recorded alongside.

Example::

    python -m rag eval retrieval --dataset cranfield --path ../shared/data/cranfield \\
        --configs bm25,dense,hybrid --format json
    python -m rag eval retrieval --dataset beir --path datasets/scifact --out results/scifact
    python -m rag eval retrieval --dataset cranfield --path ../shared/data/cranfield --configs hybrid \\
        --rewriters none,keyword,multi-query,hyde,decompose --out results/rewriters

With ``rewriters``, every config runs once per query rewriter (:mod:`rag.plugins.rewriters`; rows are
named ``config+rewriter``, ``none`` keeps the plain config name); multiple queries' hits are
merged with RRF, the latency includes the rewrite (LLM generation included), and each query's
rewrite trace is kept (``traces.jsonl`` with ``--out``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from rag.embedding import Embedder
from rag.index.backends import location
from rag.index.base import SearchIndex
from rag.index.milvus import MilvusConfig, MilvusIndex, collection_name
from rag.index.store import Index, IndexStore
from rag.ingest.ingestor import Ingestor
from rag.ingest.loaders import LoadedFile, doc_id_for
from rag.plugins.base import PluginContext, QueryRewriter, make_rewriter
from rag.retrieval.rerank import LLMReranker, Reranker
from rag.pipeline import RetrievalConfig, build_retriever
from rag.retrieval.retriever import Retriever
from rag.types import Document, Hit
from rag.validate import in_range, non_negative_int, positive_int

from .datasets import Dataset
from .metrics import METRICS, per_query
from .stats import DEFAULT_RESAMPLES, DEFAULT_SEED, SIGNIFICANCE_TESTS, significance

logger = logging.getLogger(__name__)

CONFIGS: dict[str, dict[str, str]] = {
    "bm25": {"mode": "bm25"},
    "dense": {"mode": "dense"},
    "hybrid": {"mode": "hybrid", "fusion": "zscore"},
    "hybrid-zscore": {"mode": "hybrid", "fusion": "zscore"},
    "hybrid-adaptive": {"mode": "hybrid", "fusion": "adaptive"},
    "hybrid-rrf": {"mode": "hybrid", "fusion": "rrf"},
    "hybrid-weighted": {"mode": "hybrid", "fusion": "weighted"},
    "hybrid-rerank": {"mode": "hybrid", "fusion": "zscore", "rerank": "yes"},
    "hybrid-rrf-rerank": {"mode": "hybrid", "fusion": "rrf", "rerank": "yes"},
    "hybrid-weighted-rerank": {"mode": "hybrid", "fusion": "weighted", "rerank": "yes"},
}
DEFAULT_CONFIGS = "bm25,dense,hybrid-zscore,hybrid-adaptive,hybrid-rrf,hybrid-weighted"
RERANK_CONFIG = "hybrid-rerank"
BASELINE = "bm25"


def parse_configs(text: str) -> list[str]:
    """Comma-separated config names -> list (order kept, duplicates dropped).

    Example:
        >>> parse_configs("bm25, hybrid-rrf,bm25")
        ['bm25', 'hybrid-rrf']
    """
    names = list(dict.fromkeys(c.strip() for c in text.split(",") if c.strip()))
    unknown = [c for c in names if c not in CONFIGS]
    if unknown or not names:
        raise ValueError(f"unknown retrieval config(s) {unknown or text!r}; choose from {', '.join(CONFIGS)}")
    return names


def default_cache_dir() -> Path:
    return Path(os.environ.get("RAG_CACHE_DIR", Path.home() / ".cache" / "rag-local"))


def _source(dataset: str, doc_id: str) -> str:
    return f"{dataset}:{doc_id}"


def dataset_files(ds: Dataset) -> list[LoadedFile]:
    """One LoadedFile per benchmark document (source ``dataset:doc_id``)."""
    files = []
    for d in ds.documents:
        source = _source(ds.name, d.doc_id)
        text = d.text
        files.append(LoadedFile(
            source=source, doc_id=doc_id_for(source),
            file_hash=hashlib.sha256(f"{d.title}\x1f{text}".encode()).hexdigest(),
            documents=(Document.from_text(text, source=source, title=d.title),)))
    return files


@dataclass(frozen=True)
class EvalSettings:
    """Index and retrieval settings of an evaluation run.

    ``depth`` documents per query go into the run; each retriever fetches ``candidates``
    chunks (several chunks can belong to one document, so keep ``candidates >= depth``);
    rerank configs rescore the top ``rerank_candidates`` fused chunks and keep the rest below.

    Example:
        >>> EvalSettings(depth=0)
        Traceback (most recent call last):
        ...
        ValueError: depth must be a positive integer, got 0
    """

    chunk_size: int = 200
    chunk_overlap: int = 40
    title_prefix: bool = True
    depth: int = 100
    candidates: int = 200
    rrf_k: int = 60
    alpha: float = 0.5
    rerank_candidates: int = 50

    def __post_init__(self) -> None:
        for name in ("chunk_size", "depth", "candidates", "rerank_candidates"):
            positive_int(name, getattr(self, name))
        if not isinstance(self.chunk_overlap, int) or not 0 <= self.chunk_overlap < self.chunk_size:
            raise ValueError(f"chunk_overlap must be in [0, chunk_size={self.chunk_size}), got {self.chunk_overlap!r}")
        non_negative_int("rrf_k", self.rrf_k)
        in_range("alpha", self.alpha, 0, 1)


def build_index(ds: Dataset, embedder: Embedder, settings: EvalSettings,
                cache_dir: Path | None = None, show_progress: bool = False,
                milvus: MilvusConfig | None = None) -> SearchIndex:
    """Index the dataset's corpus (cached on disk, keyed by corpus and settings).

    With ``milvus``, the cached index's chunks and embeddings are uploaded to that server's
    collection (``rag_eval_`` + the cache name, unless ``milvus`` names one) when it does not
    already hold them, and the server-backed index is returned: the same chunks and vectors,
    searched by the server.
    """
    key = hashlib.sha256()
    for d in ds.documents:
        key.update(f"{d.doc_id}\x1f{d.title}\x1f{d.text}\x1e".encode())
    key.update(f"{embedder.model_id}|{settings.chunk_size}|{settings.chunk_overlap}|{settings.title_prefix}".encode())
    name = f"{ds.name}-{key.hexdigest()[:12]}"
    store = IndexStore((cache_dir or default_cache_dir()) / "eval-indexes")
    if store.exists(name):
        local = store.load(name, expect_embedder=embedder.model_id)
    else:
        ing = Ingestor(name, store=store, embedder=embedder, chunk_size=settings.chunk_size,
                       chunk_overlap=settings.chunk_overlap, title_prefix=settings.title_prefix,
                       show_progress=show_progress)
        report = ing.ingest_loaded(dataset_files(ds))
        if report.errors:
            raise RuntimeError(f"indexing {ds.name} failed for {len(report.errors)} documents: {report.errors[:3]}")
        local = store.load(name)
    if milvus is None:
        return local
    return _upload(store, local, milvus)


def _upload(store: IndexStore, local: Index, milvus: MilvusConfig) -> SearchIndex:
    """``local``'s chunks and vectors in a Milvus collection (reused when it already holds exactly them)."""
    from rag.index.store import IndexError_

    name = f"{local.name}-milvus"
    config = milvus if milvus.collection else replace(milvus, collection="rag_eval_" + collection_name(name)[4:])
    if store.exists(name):
        try:
            index = store.load(name)
            if index.where == location(config) and len(index) == len(local):
                return index
        except IndexError_ as exc:  # the server was reset or is another one: upload again
            if "cannot reach" in str(exc) or "refused the credentials" in str(exc):
                raise
            logger.info("re-uploading %s to %s: %s", local.name, config.uri, exc)
    with store.writer(name) as w:
        index = MilvusIndex.create(name, local.settings, config, drop=True)
        index = index.write(local.documents, [], local.chunks, local.embeddings, show_progress=False)
        w.save(index)
    return index


def _doc_run(hits: Sequence[Hit], depth: int, prefix_len: int) -> dict[str, float]:
    """Max-passage aggregation: a document ranks at its best chunk; rank-based scores keep the order."""
    docs: dict[str, float] = {}
    n = len(hits)
    for rank, h in enumerate(hits, start=1):
        doc = h.chunk.source[prefix_len:]
        if doc not in docs:
            docs[doc] = float(n - rank + 1)
            if len(docs) >= depth:
                break
    return docs


def run_retrieval(retriever: Retriever, queries: Mapping[str, str], depth: int,
                  show_progress: bool = False, desc: str | None = None
                  ) -> tuple[dict[str, dict[str, float]], list[float]]:
    """Document-level run ``{qid: {doc_id: score}}`` (max over chunks) and per-query latency in seconds.

    Each query fetches ``retriever.candidates`` chunks through :meth:`Retriever.retrieve`; with a
    reranker on the retriever, its top ``rerank_candidates`` are rescored and the rest keep their
    fused order below them (so deep metrics stay comparable).
    """
    run: dict[str, dict[str, float]] = {}
    latencies: list[float] = []
    items: Sequence[tuple[str, str]] = list(queries.items())
    if show_progress:
        from tqdm.auto import tqdm

        items = tqdm(items, desc=desc or retriever.mode, unit="query", leave=False)  # type: ignore[assignment]
    for qid, text in items:
        t0 = time.perf_counter()
        hits = retriever.retrieve(text, k=retriever.candidates)
        latencies.append(time.perf_counter() - t0)
        prefix_len = hits[0].chunk.source.index(":") + 1 if hits else 0
        run[qid] = _doc_run(hits, depth, prefix_len)
    return run, latencies


def run_rewritten(retriever: Retriever, rewriter: QueryRewriter, queries: Mapping[str, str], depth: int,
                  show_progress: bool = False, desc: str | None = None, trace_hits: int = 5
                  ) -> tuple[dict[str, dict[str, float]], list[float], list[dict[str, Any]]]:
    """Like :func:`run_retrieval`, each query rewritten first and its queries' hits merged with RRF.

    Returns the run, per-query latency (rewrite + retrieval + merge) and one trace dict per query.
    """
    from rag.retrieval.multi_query import MultiQuerySearcher

    searcher = MultiQuerySearcher(retriever, trace_hits=trace_hits)
    run: dict[str, dict[str, float]] = {}
    latencies: list[float] = []
    traces: list[dict[str, Any]] = []
    items: Sequence[tuple[str, str]] = list(queries.items())
    if show_progress:
        from tqdm.auto import tqdm

        items = tqdm(items, desc=desc, unit="query", leave=False)  # type: ignore[assignment]
    for qid, text in items:
        t0 = time.perf_counter()
        rewrite = rewriter.rewrite(text)
        t1 = time.perf_counter()
        found = searcher.search(rewrite, k=retriever.candidates)
        latencies.append(time.perf_counter() - t0)
        hits = found.hits
        prefix_len = hits[0].chunk.source.index(":") + 1 if hits else 0
        run[qid] = _doc_run(hits, depth, prefix_len)
        traces.append({"qid": qid, "query": text, "method": str(rewrite.method), "fallback": rewrite.fallback,
                       "queries": [{"text": q.text, "dense": q.dense, "kind": q.kind, "weight": q.weight}
                                   for q in rewrite.queries],
                       "raw": rewrite.raw, "rewrite_ms": round(1000 * (t1 - t0), 2),
                       "retrieve_ms": round(1000 * found.retrieve_s, 2), "fuse_ms": round(1000 * found.fuse_s, 2),
                       "top_docs": list(run[qid])[:trace_hits]})
    return run, latencies, traces


@dataclass(frozen=True)
class ConfigResult:
    """One configuration's run, scores (means and per query), latency and p-values vs the baseline."""

    name: str
    run: Mapping[str, Mapping[str, float]]
    per_query: Mapping[str, Mapping[str, float]]
    means: Mapping[str, float]
    latencies_ms: tuple[float, ...]
    p_values: Mapping[str, float | None]
    rewriter: str = "none"
    traces: tuple[Mapping[str, Any], ...] = ()

    @property
    def fallbacks(self) -> int:
        """Queries for which the rewriter fell back to the original question."""
        return sum(1 for t in self.traces if t.get("fallback"))

    @property
    def latency_mean_ms(self) -> float:
        return float(np.mean(self.latencies_ms)) if self.latencies_ms else 0.0

    @property
    def latency_p95_ms(self) -> float:
        return float(np.percentile(self.latencies_ms, 95)) if self.latencies_ms else 0.0


@dataclass(frozen=True)
class Comparison:
    """Side-by-side results of several configurations on one dataset."""

    dataset: str
    n_queries: int
    metrics: Mapping[str, str]
    results: Mapping[str, ConfigResult]
    baseline: str | None
    test: str
    settings: EvalSettings

    def means(self, with_latency: bool = False) -> dict[str, dict[str, float]]:
        """``{config: {metric: mean}}`` (plus ``latency_mean_ms``/``latency_p95_ms`` if asked)."""
        out: dict[str, dict[str, float]] = {}
        for name, r in self.results.items():
            out[name] = dict(r.means)
            if with_latency:
                out[name]["latency_mean_ms"] = round(r.latency_mean_ms, 3)
                out[name]["latency_p95_ms"] = round(r.latency_p95_ms, 3)
        return out


def retrieval_config(name: str, settings: EvalSettings) -> RetrievalConfig:
    """The pipeline's :class:`~rag.pipeline.RetrievalConfig` for a named eval config.

    Example:
        >>> c = retrieval_config("hybrid-weighted", EvalSettings(alpha=0.7))
        >>> str(c.mode), str(c.fusion), c.alpha, c.k
        ('hybrid', 'weighted', 0.7, 200)
    """
    spec = CONFIGS[name]
    return RetrievalConfig(mode=spec["mode"], fusion=spec.get("fusion", "zscore"), rrf_k=settings.rrf_k,
                           alpha=settings.alpha, candidates=settings.candidates,
                           rerank_candidates=settings.rerank_candidates, k=settings.candidates)


@dataclass(frozen=True)
class CompareSettings:
    """What :func:`compare_configs` runs, scores and tests (the models it runs with are its arguments).

    Args:
        configs: names from :data:`CONFIGS`, run in this order.
        retrieval: the index and retrieval settings (:class:`EvalSettings`; part of the index cache key).
        metrics: ``{label: measure}`` to score (default :data:`rag_eval.metrics.METRICS`).
        baseline: the config every other is tested against (None, or not among the rows: no p-values;
            with ``rewriters``, the first config without a rewriter when it is not among them).
        test, n_resamples, seed: the paired significance test (:mod:`rag_eval.stats`).
        rewriters: names from :func:`rag.plugins.base.available_rewriters`; each config runs once per
            rewriter, rows ``config+rewriter`` (``none``: the plain config name).
        limit: keep the first N judged queries (dataset order).
        cache_dir: where the benchmark index is cached (default :func:`default_cache_dir`).
        milvus: run every config on that Milvus server (the same chunks and vectors, uploaded once;
            :func:`build_index`) instead of the in-process FAISS + BM25.

    Example:
        >>> CompareSettings(["bm25", "hybrid-rrf", "bm25"]).configs
        ('bm25', 'hybrid-rrf')
        >>> CompareSettings(["bm25"], test="anova")
        Traceback (most recent call last):
        ...
        ValueError: unknown significance test 'anova'; choose from randomization, t-test
    """

    configs: Sequence[str]
    retrieval: EvalSettings = field(default_factory=EvalSettings)
    metrics: Mapping[str, str] = field(default_factory=lambda: dict(METRICS))
    baseline: str | None = BASELINE
    test: str = "randomization"
    n_resamples: int = DEFAULT_RESAMPLES
    seed: int = DEFAULT_SEED
    rewriters: Sequence[str] = ()
    limit: int | None = None
    cache_dir: Path | None = None
    milvus: MilvusConfig | None = None

    def __post_init__(self) -> None:
        configs = tuple(dict.fromkeys(self.configs))
        unknown = [c for c in configs if c not in CONFIGS]
        if unknown or not configs:
            raise ValueError(f"unknown retrieval config(s) {unknown or list(self.configs)!r}; "
                             f"choose from {', '.join(CONFIGS)}")
        object.__setattr__(self, "configs", configs)
        if self.test not in SIGNIFICANCE_TESTS:
            raise ValueError(f"unknown significance test {self.test!r}; choose from {', '.join(SIGNIFICANCE_TESTS)}")
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit <= 0):
            raise ValueError(f"limit must be a positive integer or None, got {self.limit!r}")
        object.__setattr__(self, "rewriters", tuple(dict.fromkeys(self.rewriters)))
        object.__setattr__(self, "metrics", dict(self.metrics or METRICS))
        if self.rerank_configs and any(r != "none" for r in self.rewriters):
            raise ValueError(f"rewriters cannot be combined with rerank configs ({', '.join(self.rerank_configs)}) yet")

    @property
    def rerank_configs(self) -> list[str]:
        """The configs that need a reranker."""
        return [c for c in self.configs if CONFIGS[c].get("rerank")]


def compare_configs(ds: Dataset, settings: CompareSettings, *, embedder: Embedder | None = None,
                    reranker: Reranker | LLMReranker | None = None, llm: Any | None = None,
                    show_progress: bool = False) -> Comparison:
    """Run every config of ``settings`` over the dataset's judged queries and test each against the baseline.

    p-values (per metric, paired over queries) are None for the baseline itself and for every
    config when the baseline is not among the rows.  ``embedder`` (default: the packaged one)
    indexes and searches, ``reranker`` serves the rerank configs, ``llm`` is the chat model LLM
    rewriters use.

    Example (builds or reuses the cached Cranfield index)::

        from rag_eval.datasets import load_dataset
        cmp = compare_configs(load_dataset("cranfield", "../shared/data/cranfield"),
                              CompareSettings(["bm25", "hybrid-rrf"]))
        print(cmp.results["hybrid-rrf"].means["nDCG@10"], cmp.results["hybrid-rrf"].p_values["nDCG@10"])
    """
    if settings.rerank_configs and reranker is None:
        raise ValueError(f"config(s) {', '.join(settings.rerank_configs)} need a reranker; pass --reranker MODEL")
    embedder = embedder or Embedder()
    rewriter_objs = {name: make_rewriter(name, PluginContext(llm=llm, embedder=embedder))
                     for name in settings.rewriters if name != "none"}  # unknown names fail before indexing
    if rewriter_objs and llm is not None and hasattr(llm, "load"):
        llm.load()  # so the first rewrite's latency does not include loading the model
    index = build_index(ds, embedder, settings.retrieval, settings.cache_dir, show_progress, milvus=settings.milvus)
    if any(CONFIGS[c]["mode"] != "bm25" for c in settings.configs):
        embedder.load()  # so the first dense query's latency does not include loading the model
    if reranker is not None and settings.rerank_configs:
        reranker.load()
    queries = {q: t for q, t in ds.queries.items() if q in ds.qrels}
    if settings.limit is not None:
        queries = dict(list(queries.items())[:settings.limit])
    logger.info("evaluating %d configs on %s (%d judged queries)", len(settings.configs), ds.name, len(queries))
    raw, traces = _run_configs(settings, index, embedder, reranker, rewriter_objs, queries, show_progress)
    baseline = _baseline(settings, list(raw))
    qrels = ds.qrels if settings.limit is None else {q: ds.qrels[q] for q in queries}
    results = _score(raw, traces, qrels, settings, baseline)
    n_judged = sum(1 for docs in qrels.values() if any(g > 0 for g in docs.values()))
    return Comparison(dataset=ds.name, n_queries=n_judged, metrics=settings.metrics, results=results,
                      baseline=baseline, test=settings.test, settings=settings.retrieval)


_Runs = dict[str, tuple[dict[str, dict[str, float]], list[float]]]
_Traces = dict[str, tuple[str, list[dict[str, Any]]]]


def _run_configs(settings: CompareSettings, index: SearchIndex, embedder: Embedder, reranker: Reranker | None,
                 rewriters: Mapping[str, QueryRewriter], queries: Mapping[str, str],
                 show_progress: bool) -> tuple[_Runs, _Traces]:
    """Every row's run and latencies (``config`` or ``config+rewriter``), and the rewritten rows' traces."""
    raw: _Runs = {}
    traces: _Traces = {}
    depth = settings.retrieval.depth
    for name in settings.configs:
        rr = reranker if CONFIGS[name].get("rerank") else None
        for rw in settings.rewriters or ["none"]:
            row = name if rw == "none" else f"{name}+{rw}"
            retriever = build_retriever(retrieval_config(name, settings.retrieval), index, embedder, reranker=rr)
            if rw == "none":
                raw[row] = run_retrieval(retriever, queries, depth, show_progress, desc=row)
                continue
            run, lat, tr = run_rewritten(retriever, rewriters[rw], queries, depth, show_progress, row)
            raw[row] = (run, lat)
            traces[row] = (rw, tr)
    return raw, traces


def _baseline(settings: CompareSettings, rows: list[str]) -> str | None:
    """The row the others are tested against: ``settings.baseline`` if it is a row (see :class:`CompareSettings`)."""
    baseline = settings.baseline
    if settings.rewriters and baseline not in rows:
        baseline = next((c for c in rows if "+" not in c), rows[0])
    if baseline is not None and baseline not in rows:
        logger.warning("baseline %r is not among the configs %s: no p-values", baseline, rows)
        baseline = None
    return baseline


def _score(raw: _Runs, traces: _Traces, qrels: Mapping[str, Mapping[str, int]], settings: CompareSettings,
           baseline: str | None) -> dict[str, ConfigResult]:
    """Per-query scores, means and p-values vs ``baseline`` of every row."""
    metrics = settings.metrics
    scored = {name: per_query(qrels, run, metrics) for name, (run, _) in raw.items()}
    results: dict[str, ConfigResult] = {}
    for name, (run, lat) in raw.items():
        pq = scored[name]
        p_values: dict[str, float | None] = {}
        for label in metrics:
            if baseline is None or name == baseline:
                p_values[label] = None
                continue
            qids = sorted(pq[label])
            p_values[label] = significance([scored[baseline][label][q] for q in qids],
                                           [pq[label][q] for q in qids], test=settings.test,
                                           n_resamples=settings.n_resamples, seed=settings.seed)
        means = {label: (sum(v.values()) / len(v) if v else 0.0) for label, v in pq.items()}
        rw, tr = traces.get(name, ("none", []))
        results[name] = ConfigResult(name=name, run=run, per_query=pq, means=means,
                                     latencies_ms=tuple(1000.0 * x for x in lat), p_values=p_values,
                                     rewriter=rw, traces=tuple(tr))
    return results
