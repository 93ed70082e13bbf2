#!/usr/bin/env python
"""Trained-reranker benchmark on Cranfield: hybrid vs hybrid + cross-encoder rerank.

Retrieves the hybrid (RRF) candidates for every judged Cranfield query through the pipeline's
one retriever, then for each ``--model`` the same retriever with that reranker rescores the top
``--rerank-candidates`` chunks; reports nDCG@10 / MAP / Recall@100 for

* ``hybrid``           -- no reranking (the baseline);
* ``<model>``          -- pure cross-encoder order over the top N, the rest below (what
  ``rag eval retrieval --reranker`` measures);
* ``<model>+rrf``      -- RRF of the hybrid rank and the cross-encoder rank over the top N
  (a cheap guard when the reranker is weak);

plus retrieval + rerank latency per query (N candidates, mean and p95).  The corpus is indexed by
the eval harness (same cache and settings as ``rag eval retrieval``).  Queries and
qrels are only used for scoring; training never sees them.

Usage (from the repository root)::

    .venv/bin/python eval/reranker.py --path ../shared/data/cranfield \\
        --model ~/.cache/rag-local/eval-indexes/cranfield-<hash>/reranker
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rag.embedding import Embedder  # noqa: E402
from rag.pipeline import RetrievalConfig, build_retriever  # noqa: E402
from rag.retrieval.fusion import ranked, reciprocal_rank_fusion  # noqa: E402
from rag.retrieval.rerank import Reranker  # noqa: E402
from rag_eval.datasets import load_dataset  # noqa: E402
from rag_eval.metrics import evaluate  # noqa: E402
from rag_eval.retrieval import EvalSettings, build_index, retrieval_config  # noqa: E402

METRICS = {"nDCG@10": "nDCG@10", "MAP": "AP", "Recall@100": "R@100"}


def doc_run(chunk_ids: list[str], source_of: dict[str, str], depth: int = 100) -> dict[str, float]:
    """Max-passage aggregation, as in rag_eval.retrieval: a document ranks at its best chunk."""
    out: dict[str, float] = {}
    n = len(chunk_ids)
    for rank, cid in enumerate(chunk_ids, start=1):
        doc = source_of[cid].split(":", 1)[1]
        if doc not in out:
            out[doc] = float(n - rank + 1)
            if len(out) >= depth:
                break
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--path", default="../shared/data/cranfield")
    ap.add_argument("--model", action="append", default=[], help="CrossEncoder path (repeatable)")
    ap.add_argument("--rerank-candidates", type=int, default=50)
    ap.add_argument("--rrf-k", type=int, default=60)
    ap.add_argument("--limit", type=int, default=0, help="only the first N judged queries (0: all)")
    args = ap.parse_args()

    ds = load_dataset("cranfield", args.path)
    settings = EvalSettings(rerank_candidates=args.rerank_candidates)
    embedder = Embedder()
    index = build_index(ds, embedder, settings)
    source_of = {c.id: c.source for c in index.chunks}
    queries = {q: t for q, t in ds.queries.items() if q in ds.qrels}
    if args.limit:
        queries = dict(list(queries.items())[: args.limit])
    config: RetrievalConfig = retrieval_config("hybrid-rrf", settings)
    base = build_retriever(config, index, embedder)
    cands = {q: [h.chunk.id for h in base.retrieve(text, k=config.k)] for q, text in queries.items()}
    qrels = {q: ds.qrels[q] for q in queries}
    rows = {"hybrid": evaluate(qrels, {q: doc_run(cands[q], source_of) for q in queries}, METRICS)}
    lat: dict[str, tuple[float, float]] = {}
    n = args.rerank_candidates
    for model in args.model:
        rr = Reranker(str(Path(model).expanduser())).load()
        reranking = build_retriever(config, index, embedder, reranker=rr)
        pure, fused, times = {}, {}, []
        for q, text in queries.items():
            t0 = time.perf_counter()
            ids = [h.chunk.id for h in reranking.retrieve(text, k=config.k)]
            times.append(time.perf_counter() - t0)
            pure[q] = doc_run(ids, source_of)
            # RRF of the hybrid rank and the cross-encoder rank over the top n, the rest below
            head = ranked(reciprocal_rank_fusion([cands[q][:n], ids[:n]], k=args.rrf_k))
            fused[q] = doc_run(head + cands[q][n:], source_of)
        name = Path(model).name
        rows[name] = evaluate(qrels, pure, METRICS)
        rows[name + "+rrf"] = evaluate(qrels, fused, METRICS)
        lat[name] = (1000 * float(np.mean(times)), 1000 * float(np.percentile(times, 95)))
    print(f"Cranfield, {len(queries)} judged queries, rerank top {n} hybrid chunks\n")
    print("| config | nDCG@10 | MAP | Recall@100 | retrieve + rerank ms/query (mean / p95) |")
    print("|---|---|---|---|---|")
    for name, m in rows.items():
        base_name = name[:-4] if name.endswith("+rrf") else name
        ms = f"{lat[base_name][0]:.0f} / {lat[base_name][1]:.0f}" if base_name in lat else "-"
        print(f"| {name} | {m['nDCG@10']:.4f} | {m['MAP']:.4f} | {m['Recall@100']:.4f} | {ms} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
