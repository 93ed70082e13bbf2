#!/usr/bin/env python
"""Second-stage benchmark on any collection: the default hybrid vs hybrid + a reranker.

Retrieves the default hybrid's candidates for every judged query through the pipeline's one
retriever, then for each ``--model`` the same retriever with that reranker rescores the top
``--rerank-candidates`` chunks; reports nDCG@10 / MAP / Recall@100 for

* ``hybrid``           -- no reranking (the baseline);
* ``<model>``          -- the reranker's order over the top N, the rest below (what
  ``rag eval retrieval --reranker`` measures);
* ``<model>+rrf``      -- RRF of the hybrid rank and the reranker's rank over the top N
  (a cheap guard when the reranker is weak);

plus retrieval + rerank latency per query (N candidates, mean and p95).  ``--model`` is a
CrossEncoder directory (``rag reranker train``, ``eval/reranker_supervised.py``) or ``llm``, the
default chat model's Yes/No log-odds (:class:`rag.retrieval.rerank.LLMReranker`).  ``--even``
keeps the even-numbered judged queries: the half that a model trained on the odd ones never saw.
The corpus is indexed by the eval harness (same cache and settings as ``rag eval retrieval``).

Usage (from the repository root)::

    .venv/bin/python eval/reranker.py --path ../shared/data/cranfield --even --model eval-results/ce-supervised
    .venv/bin/python eval/reranker.py --dataset qa --path ../shared/data/covid-qa --model llm \
        --rerank-candidates 10 --limit 30
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rag.embedding import Embedder  # noqa: E402
from rag.pipeline import GenerationConfig, RetrievalConfig, build_retriever, make_llm  # noqa: E402
from rag.retrieval.fusion import ranked, reciprocal_rank_fusion  # noqa: E402
from rag.retrieval.rerank import LLMReranker, Reranker  # noqa: E402
from rag_eval.datasets import load_dataset  # noqa: E402
from rag_eval.metrics import evaluate  # noqa: E402
from rag_eval.qa import load_qa, select  # noqa: E402
from rag_eval.retrieval import EvalSettings, build_index, retrieval_config  # noqa: E402

METRICS = {"nDCG@10": "nDCG@10", "MAP": "AP", "Recall@100": "R@100"}


def doc_run(chunk_ids: list[str], source_of: dict[str, str], depth: int = 100) -> dict[str, float]:
    """Max-passage aggregation, as in rag_eval.retrieval: a document ranks at its best chunk."""
    out: dict[str, float] = {}
    n = len(chunk_ids)
    for rank, cid in enumerate(chunk_ids, start=1):
        doc = source_of[cid].split(":", 1)[1]  # the eval index's sources are "dataset:doc_id"
        if doc not in out:
            out[doc] = float(n - rank + 1)
            if len(out) >= depth:
                break
    return out


def span_at_5(args: argparse.Namespace, index: Any) -> Any:
    """For a QA collection: a function of ``{qid: chunk ids in order}`` -> the share whose top 5 holds the
    question's reference span (the answer stage's retrieval ceiling)."""
    qa = {q.qid: q for q in select(load_qa(args.path), args.split)}
    chunk = {c.id: c for c in index.chunks}

    def share(orders: dict[str, list[str]]) -> float:
        return round(sum(any(qa[q].in_chunk(chunk[i]) for i in ids[:5]) for q, ids in orders.items()) / len(orders), 3)

    return share


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="cranfield", help="cranfield, beir or qa (rag_eval.datasets)")
    ap.add_argument("--path", default="../shared/data/cranfield")
    ap.add_argument("--split", default="test")
    ap.add_argument("--model", action="append", default=[],
                    help="CrossEncoder path, or llm (the default chat model's Yes/No log-odds); repeatable")
    ap.add_argument("--rerank-candidates", type=int, default=50)
    ap.add_argument("--rrf-k", type=int, default=60)
    ap.add_argument("--even", action="store_true",
                    help="only the even-numbered judged queries (the half a model trained on the odd ones never saw)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N judged queries (0: all)")
    args = ap.parse_args()

    ds = load_dataset(args.dataset, args.path, split=args.split)
    settings = EvalSettings(rerank_candidates=args.rerank_candidates)
    embedder = Embedder()
    index = build_index(ds, embedder, settings)
    source_of = {c.id: c.source for c in index.chunks}
    queries = {q: t for q, t in ds.queries.items() if q in ds.qrels}
    if args.even:
        queries = {q: t for i, (q, t) in enumerate(queries.items(), start=1) if i % 2 == 0}
    if args.limit:
        queries = dict(list(queries.items())[: args.limit])
    config: RetrievalConfig = retrieval_config("hybrid", settings)
    base = build_retriever(config, index, embedder)
    cands = {q: [h.chunk.id for h in base.retrieve(text, k=config.k)] for q, text in queries.items()}
    qrels = {q: ds.qrels[q] for q in queries}
    gold = span_at_5(args, index) if args.dataset == "qa" else None
    rows = {"hybrid": evaluate(qrels, {q: doc_run(cands[q], source_of) for q in queries}, METRICS)}
    if gold is not None:
        rows["hybrid"]["span@5"] = gold(cands)
    lat: dict[str, tuple[float, float]] = {}
    n = args.rerank_candidates
    llm = None
    for model in args.model:
        if model == "llm":
            llm = llm or make_llm(GenerationConfig())
            rr: Any = LLMReranker(llm)
        else:
            rr = Reranker(str(Path(model).expanduser())).load()
        reranking = build_retriever(config, index, embedder, reranker=rr)
        pure, fused, times, orders, guards = {}, {}, [], {}, {}
        for q, text in queries.items():
            t0 = time.perf_counter()
            ids = [h.chunk.id for h in reranking.retrieve(text, k=config.k)]
            times.append(time.perf_counter() - t0)
            pure[q] = doc_run(ids, source_of)
            # RRF of the hybrid rank and the reranker's rank over the top n, the rest below
            head = ranked(reciprocal_rank_fusion([cands[q][:n], ids[:n]], k=args.rrf_k))
            fused[q] = doc_run(head + cands[q][n:], source_of)
            orders[q], guards[q] = ids, head + cands[q][n:]
        name = Path(model).name
        rows[name] = evaluate(qrels, pure, METRICS)
        rows[name + "+rrf"] = evaluate(qrels, fused, METRICS)
        if gold is not None:
            rows[name]["span@5"], rows[name + "+rrf"]["span@5"] = gold(orders), gold(guards)
        lat[name] = (1000 * float(np.mean(times)), 1000 * float(np.percentile(times, 95)))
    if llm is not None:
        llm.close()
    print(f"{ds.name}, {len(queries)} judged queries{' (even)' if args.even else ''}, "
          f"rerank the top {n} hybrid chunks\n")
    span = " span@5 |" if gold is not None else ""
    print(f"| config | nDCG@10 | MAP | Recall@100 |{span} retrieve + rerank ms/query (mean / p95) |")
    print("|---|---|---|---|---|" + ("---|" if span else ""))
    for name, m in rows.items():
        base_name = name[:-4] if name.endswith("+rrf") else name
        ms = f"{lat[base_name][0]:.0f} / {lat[base_name][1]:.0f}" if base_name in lat else "-"
        cell = f" {m['span@5']:.3f} |" if span else ""
        print(f"| {name} | {m['nDCG@10']:.4f} | {m['MAP']:.4f} | {m['Recall@100']:.4f} |{cell} {ms} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
