"""Hybrid fusion measured on two collections at once, so a gain on one cannot hide a loss on the other.

* COVID-QA (../shared/data/covid-qa): share of questions whose gold answer span lies in a top-k chunk,
  dev and test splits apart (the answer benchmark's retrieval ceiling);
* Cranfield (../shared/data/cranfield): nDCG@10, MAP and Recall@100 (documents ranked at their best chunk).

Part 1 runs the real :class:`~rag.retrieval.retriever.Retriever` for bm25, dense and each hybrid fusion
(adaptive is the default). Part 2 sweeps the adaptive fusion's two parameters (the dense weight's floor and
the agreement at which it is full) over the same BM25 and dense candidate lists with the pure fusion
functions; the defaults were chosen on the dev split and Cranfield, and the test split is reported, not tuned.

Usage: python eval/fusion.py [--json]   (~5 min with the eval indexes cached; building them adds ~5 min)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import ir_measures  # noqa: E402
from ir_measures import AP, R, nDCG  # noqa: E402

from rag.embedding import Embedder  # noqa: E402
from rag.retrieval.fusion import adaptive_rank_fusion, ranked, reciprocal_rank_fusion  # noqa: E402
from rag.retrieval.retriever import Retriever  # noqa: E402
from rag_eval.datasets import load_dataset  # noqa: E402
from rag_eval.qa import load_qa, select  # noqa: E402
from rag_eval.retrieval import EvalSettings, build_index  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
DEPTH = 200  # candidates per retriever, as in `rag eval retrieval`
KS = (1, 3, 5, 10)
CONFIGS = (("bm25", "bm25", None), ("dense", "dense", None), ("hybrid-zscore", "hybrid", "zscore"),
           ("hybrid-rrf", "hybrid", "rrf"),
           ("hybrid-adaptive", "hybrid", "adaptive"), ("hybrid-weighted", "hybrid", "weighted"))


def covid_hits(order: list, chunks: list, q) -> int | None:
    """1-based rank of the first chunk that overlaps the question's gold span, or None."""
    return next((rank for rank, i in enumerate(order[:max(KS)], start=1) if q.in_chunk(chunks[i])), None)


def cran_metrics(orders: dict[str, list], chunks: list, qrels) -> dict[str, float]:
    run = {}
    for qid, order in orders.items():
        docs: dict[str, float] = {}
        for rank, i in enumerate(order):
            doc = chunks[i].source.split(":", 1)[1]
            docs.setdefault(doc, float(len(order) - rank))
            if len(docs) >= 100:
                break
        run[qid] = docs
    m = ir_measures.calc_aggregate([nDCG @ 10, AP, R @ 100], qrels, run)
    return {"nDCG@10": round(m[nDCG @ 10], 4), "MAP": round(m[AP], 4), "Recall@100": round(m[R @ 100], 4)}


def recall_at(ranks: list, k: int) -> float:
    return round(sum(1 for r in ranks if r is not None and r <= k) / len(ranks), 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = ap.parse_args()
    emb = Embedder()
    qa = load_qa(DATA / "covid-qa")
    splits = {s: select(qa, s) for s in ("dev", "test")}
    covid = build_index(qa.corpus(), emb, EvalSettings(), show_progress=True)
    cran = load_dataset("cranfield", DATA / "cranfield")
    cran_idx = build_index(cran, emb, EvalSettings(), show_progress=True)
    pos_c = {c.id: i for i, c in enumerate(covid.chunks)}
    pos_r = {c.id: i for i, c in enumerate(cran_idx.chunks)}

    out: dict = {"retriever": {}, "sweep": []}
    # Part 1: the real retriever
    lists: dict[str, dict] = {"covid": {}, "cran": {}}
    for name, mode, fusion in CONFIGS:
        kw = {"fusion": fusion} if fusion else {}
        row: dict = {}
        r = Retriever(covid, mode=mode, embedder=emb, candidates=DEPTH, **kw)
        for split, qs in splits.items():
            ranks = []
            for q in qs:
                order = [pos_c[h.chunk.id] for h in r.retrieve(q.question, k=DEPTH)]
                ranks.append(covid_hits(order, covid.chunks, q))
                if mode != "hybrid":
                    lists["covid"].setdefault(q.qid, {})[mode] = order
            row[f"covid_{split}"] = {f"@{k}": recall_at(ranks, k) for k in KS}
        r = Retriever(cran_idx, mode=mode, embedder=emb, candidates=DEPTH, **kw)
        orders = {}
        for qid, text in cran.queries.items():
            orders[qid] = [pos_r[h.chunk.id] for h in r.retrieve(text, k=DEPTH)]
            if mode != "hybrid":
                lists["cran"].setdefault(qid, {})[mode] = orders[qid]
        row["cranfield"] = cran_metrics(orders, cran_idx.chunks, cran.qrels)
        out["retriever"][name] = row
        print(f"{name}: {json.dumps(row)}", file=sys.stderr, flush=True)

    def measure(fuse) -> dict:  # type: ignore[no-untyped-def]
        """COVID-QA @5 per split and Cranfield nDCG@10 of ``fuse(per)`` -> fused order, same candidate lists."""
        row = {f"covid_{split}@5": recall_at([covid_hits(fuse(lists["covid"][q.qid]), covid.chunks, q) for q in qs], 5)
               for split, qs in splits.items()}
        orders = {qid: fuse(per) for qid, per in lists["cran"].items()}
        row["cranfield_nDCG@10"] = cran_metrics(orders, cran_idx.chunks, cran.qrels)["nDCG@10"]
        return row

    # Part 2: the adaptive fusion's parameters, on the same candidate lists
    for floor in (0.0, 0.2, 0.3, 0.5, 1.0):
        for full_at in (0.3, 0.5, 0.7):
            if floor == 1.0 and full_at != 0.5:
                continue  # floor 1 is plain RRF whatever full_at is
            out["sweep"].append({"floor": floor, "full_at": full_at, **measure(
                lambda per, f=floor, a=full_at: ranked(adaptive_rank_fusion(per["bm25"], per["dense"],
                                                                            floor=f, full_at=a)[0]))})
    # fixed dense weights, for comparison: what a constant lower weight does on each collection
    out["fixed"] = [{"fixed_dense_weight": w, **measure(
        lambda per, w=w: ranked(reciprocal_rank_fusion([per["bm25"], per["dense"]], weights=(1.0, w))))}
        for w in (0.3, 0.5)]
    # sanity: the sweep's plain RRF equals the retriever's
    rrf = {qid: ranked(reciprocal_rank_fusion([per["bm25"], per["dense"]])) for qid, per in lists["cran"].items()}
    out["sweep_rrf_matches_retriever"] = (cran_metrics(rrf, cran_idx.chunks, cran.qrels)
                                          == out["retriever"]["hybrid-rrf"]["cranfield"])
    out["n"] = {"covid_dev": len(splits["dev"]), "covid_test": len(splits["test"]), "cranfield": len(cran.queries)}
    if args.json:
        print(json.dumps(out, indent=1))
        return
    print(f"\n| config | COVID-QA dev @1/@3/@5/@10 | COVID-QA test @1/@3/@5/@10 | Cranfield nDCG@10 | MAP | R@100 |")
    print("|---|---|---|---:|---:|---:|")
    for name, row in out["retriever"].items():
        d, t, c = row["covid_dev"], row["covid_test"], row["cranfield"]
        print(f"| {name} | {' / '.join(str(v) for v in d.values())} | {' / '.join(str(v) for v in t.values())} "
              f"| {c['nDCG@10']} | {c['MAP']} | {c['Recall@100']} |")
    print("\n| floor | full at | COVID-QA dev @5 | COVID-QA test @5 | Cranfield nDCG@10 |")
    print("|---:|---:|---:|---:|---:|")
    for row in out["sweep"]:
        print(f"| {row['floor']} | {row['full_at']} | {row['covid_dev@5']} | {row['covid_test@5']} "
              f"| {row['cranfield_nDCG@10']} |")
    print("\n| fixed dense weight | COVID-QA dev @5 | COVID-QA test @5 | Cranfield nDCG@10 |")
    print("|---:|---:|---:|---:|")
    for row in out["fixed"]:
        print(f"| {row['fixed_dense_weight']} | {row['covid_dev@5']} | {row['covid_test@5']} | {row['cranfield_nDCG@10']} |")
    print(f"\nn: {out['n']}; sweep's RRF equals the retriever's: {out['sweep_rrf_matches_retriever']}")


if __name__ == "__main__":
    main()
