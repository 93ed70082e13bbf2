#!/usr/bin/env python
"""Trained-reranker benchmark on Cranfield: hybrid vs hybrid + cross-encoder rerank.

Retrieves the hybrid (RRF) candidates for every judged Cranfield query once (cached in
a pickle next to ``--out`` or under /tmp), then for each ``--model`` rescores the top
``--rerank-candidates`` chunks and reports nDCG@10 / MAP / Recall@100 for

* ``hybrid``           -- no reranking (the baseline);
* ``<model>``          -- pure cross-encoder order over the top N, the rest below (what
  ``rag eval retrieval --reranker`` measures);
* ``<model>+rrf``      -- RRF of the hybrid rank and the cross-encoder rank over the top N
  (a cheap guard when the reranker is weak);

plus rerank latency per query (N candidates, mean and p95).  The corpus is indexed by
the eval harness (same cache and settings as ``rag eval retrieval``).  Queries and
qrels are only used for scoring; training never sees them.

Usage (from the repository root)::

    .venv/bin/python bench/reranker.py --path ../shared/data/cranfield \\
        --model ~/.cache/rag-local/eval-indexes/cranfield-<hash>/reranker
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from eval.datasets import load_dataset  # noqa: E402
from eval.metrics import evaluate  # noqa: E402
from eval.retrieval import EvalSettings, build_index  # noqa: E402
from rag.embedding import Embedder  # noqa: E402
from rag.rerank import Reranker  # noqa: E402
from rag.retrieval import Retriever  # noqa: E402

METRICS = {"nDCG@10": "nDCG@10", "MAP": "AP", "Recall@100": "R@100"}


def doc_run(positions: list[int], chunks: list, depth: int = 100) -> dict[str, float]:
    """Max-passage aggregation, as in eval.retrieval: a document ranks at its best chunk."""
    out: dict[str, float] = {}
    n = len(positions)
    for rank, pos in enumerate(positions, start=1):
        doc = chunks[pos].source.split(":", 1)[1]
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
    ap.add_argument("--cache", default="/tmp/rag-bench-reranker-candidates.pkl")
    args = ap.parse_args()

    ds = load_dataset("cranfield", args.path)
    settings = EvalSettings()
    embedder = Embedder()
    index = build_index(ds, embedder, settings)
    queries = {q: t for q, t in ds.queries.items() if q in ds.qrels}
    if args.limit:
        queries = dict(list(queries.items())[: args.limit])
    cache = Path(args.cache)
    cands: dict[str, list[int]] = pickle.loads(cache.read_bytes()) if cache.exists() else {}
    if set(queries) - set(cands):
        pos_of = {c.id: i for i, c in enumerate(index.chunks)}
        r = Retriever(index, mode="hybrid", embedder=embedder, candidates=settings.candidates)
        for q, text in queries.items():
            cands[q] = [pos_of[h.chunk.id] for h in r.retrieve(text, k=settings.candidates)]
        cache.write_bytes(pickle.dumps(cands))
    qrels = {q: ds.qrels[q] for q in queries}
    rows = {"hybrid": evaluate(qrels, {q: doc_run(cands[q], index.chunks) for q in queries}, METRICS)}
    lat: dict[str, tuple[float, float]] = {}
    n = args.rerank_candidates
    for model in args.model:
        rr = Reranker(str(Path(model).expanduser())).load()
        pure, fused, times = {}, {}, []
        for q, text in queries.items():
            head, tail = cands[q][:n], cands[q][n:]
            t0 = time.perf_counter()
            scores = rr.score(text, [index.chunks[p].text for p in head])
            times.append(time.perf_counter() - t0)
            ce_order = sorted(range(len(head)), key=lambda i: (-scores[i], i))
            pure[q] = doc_run([head[i] for i in ce_order] + tail, index.chunks)
            ce_rank = {i: r for r, i in enumerate(ce_order, start=1)}
            rrf = sorted(range(len(head)), key=lambda i: -(1 / (args.rrf_k + i + 1) + 1 / (args.rrf_k + ce_rank[i])))
            fused[q] = doc_run([head[i] for i in rrf] + tail, index.chunks)
        name = Path(model).name
        rows[name] = evaluate(qrels, pure, METRICS)
        rows[name + "+rrf"] = evaluate(qrels, fused, METRICS)
        lat[name] = (1000 * float(np.mean(times)), 1000 * float(np.percentile(times, 95)))
    print(f"Cranfield, {len(queries)} judged queries, rerank top {n} hybrid chunks\n")
    print("| config | nDCG@10 | MAP | Recall@100 | rerank ms/query (mean / p95) |")
    print("|---|---|---|---|---|")
    for name, m in rows.items():
        base = name[:-4] if name.endswith("+rrf") else name
        ms = f"{lat[base][0]:.0f} / {lat[base][1]:.0f}" if base in lat else "-"
        print(f"| {name} | {m['nDCG@10']:.4f} | {m['MAP']:.4f} | {m['Recall@100']:.4f} | {ms} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
