"""Run retrieval configurations over a benchmark dataset and score them.

A benchmark corpus is indexed through the same pipeline a user's files go through
(chunking, embedding, BM25, FAISS), cached under ``$RAG_CACHE_DIR`` (default
``~/.cache/rag-local``) keyed by the corpus and settings.  Chunk hits are mapped back to
document ids with max-passage aggregation (a document ranks at its best chunk).

Example::

    python -m rag eval retrieval --dataset cranfield --path ../shared/data/cranfield \\
        --configs bm25,dense,hybrid --format json
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from rag.embedding import Embedder
from rag.index import Index, IndexStore
from rag.ingest import Ingestor
from rag.loaders import LoadedFile, doc_id_for
from rag.rerank import Reranker
from rag.retrieval import Retriever
from rag.types import Document

from .datasets import Dataset
from .metrics import evaluate

logger = logging.getLogger(__name__)

CONFIGS: dict[str, dict[str, str]] = {
    "bm25": {"mode": "bm25"},
    "dense": {"mode": "dense"},
    "hybrid": {"mode": "hybrid", "fusion": "rrf"},
    "hybrid-rrf": {"mode": "hybrid", "fusion": "rrf"},
    "hybrid-weighted": {"mode": "hybrid", "fusion": "weighted"},
}


def parse_configs(text: str) -> list[str]:
    names = [c.strip() for c in text.split(",") if c.strip()]
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
    chunk_size: int = 200
    chunk_overlap: int = 40
    title_prefix: bool = True
    depth: int = 100
    candidates: int = 200
    rrf_k: int = 60
    alpha: float = 0.5


def build_index(ds: Dataset, embedder: Embedder, settings: EvalSettings,
                cache_dir: Path | None = None, show_progress: bool = False) -> Index:
    """Index the dataset's corpus (cached on disk, keyed by corpus and settings)."""
    key = hashlib.sha256()
    for d in ds.documents:
        key.update(f"{d.doc_id}\x1f{d.title}\x1f{d.text}\x1e".encode())
    key.update(f"{embedder.model_id}|{settings.chunk_size}|{settings.chunk_overlap}|{settings.title_prefix}".encode())
    name = f"{ds.name}-{key.hexdigest()[:12]}"
    store = IndexStore((cache_dir or default_cache_dir()) / "eval-indexes")
    if store.exists(name):
        return store.load(name, expect_embedder=embedder.model_id)
    ing = Ingestor(name, store=store, embedder=embedder, chunk_size=settings.chunk_size,
                   chunk_overlap=settings.chunk_overlap, title_prefix=settings.title_prefix,
                   show_progress=show_progress)
    report = ing.ingest_loaded(dataset_files(ds))
    if report.errors:
        raise RuntimeError(f"indexing {ds.name} failed for {len(report.errors)} documents: {report.errors[:3]}")
    return store.load(name)


def run_retrieval(retriever: Retriever, queries: Mapping[str, str], depth: int,
                  show_progress: bool = False) -> tuple[dict[str, dict[str, float]], list[float]]:
    """Document-level run ``{qid: {doc_id: score}}`` (max over chunks) and per-query latency."""
    prefix_len = None
    run: dict[str, dict[str, float]] = {}
    latencies: list[float] = []
    items: Sequence[tuple[str, str]] = list(queries.items())
    if show_progress:
        from tqdm.auto import tqdm

        items = tqdm(items, desc=f"{retriever.mode}", unit="query")  # type: ignore[assignment]
    for qid, text in items:
        t0 = time.perf_counter()
        hits = retriever.retrieve(text, k=retriever.candidates)
        latencies.append(time.perf_counter() - t0)
        docs: dict[str, float] = {}
        n = len(hits)
        for h in hits:
            if prefix_len is None:
                prefix_len = h.chunk.source.index(":") + 1
            doc = h.chunk.source[prefix_len:]
            if doc not in docs:
                # rank-based score: keeps the fused order and is comparable across configs
                docs[doc] = float(n - h.rank + 1)
            if len(docs) >= depth:
                break
        run[qid] = docs
    return run, latencies


def evaluate_configs(ds: Dataset, configs: Sequence[str], embedder: Embedder | None = None,
                     settings: EvalSettings | None = None, reranker: Reranker | None = None,
                     cache_dir: Path | None = None, show_progress: bool = False) -> dict[str, dict[str, float]]:
    """``{config: {"nDCG@10", "MAP", "Recall@100", "MRR@10"}}`` for each named config."""
    settings = settings or EvalSettings()
    embedder = embedder or Embedder()
    index = build_index(ds, embedder, settings, cache_dir, show_progress)
    queries = {q: t for q, t in ds.queries.items() if q in ds.qrels}
    results: dict[str, dict[str, float]] = {}
    for name in configs:
        spec = CONFIGS[name]
        retriever = Retriever(index, mode=spec["mode"], embedder=embedder, fusion=spec.get("fusion", "rrf"),
                              rrf_k=settings.rrf_k, alpha=settings.alpha, candidates=settings.candidates,
                              reranker=reranker)
        run, _ = run_retrieval(retriever, queries, settings.depth, show_progress)
        results[name] = evaluate(ds.qrels, run)
    return results
