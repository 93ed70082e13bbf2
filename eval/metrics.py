"""IR metrics through ir_measures (pytrec_eval underneath), never hand-rolled.

Queries with judgements but no retrieved documents score 0 (they are not dropped).

Example:
    >>> qrels = {"q1": {"d1": 2, "d2": 0}}
    >>> run = {"q1": {"d1": 1.0, "d2": 0.5}}
    >>> evaluate(qrels, run)["nDCG@10"]
    1.0
"""

from __future__ import annotations

from typing import Mapping

METRICS: dict[str, str] = {"nDCG@10": "nDCG@10", "MAP": "AP", "Recall@100": "R@100", "MRR@10": "RR@10"}


def per_query(qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]],
              metrics: Mapping[str, str] | None = None) -> dict[str, dict[str, float]]:
    """``{metric_label: {qid: value}}`` for every judged query (0.0 where the run has none)."""
    import ir_measures

    metrics = dict(metrics or METRICS)
    parsed = {label: ir_measures.parse_measure(spec) for label, spec in metrics.items()}
    by_measure = {m: label for label, m in parsed.items()}
    judged = [q for q, docs in qrels.items() if any(g > 0 for g in docs.values())]
    out: dict[str, dict[str, float]] = {label: {q: 0.0 for q in judged} for label in metrics}
    qrels_list = [ir_measures.Qrel(q, d, int(g)) for q, docs in qrels.items() for d, g in docs.items()]
    run_list = [ir_measures.ScoredDoc(q, d, float(s)) for q, docs in run.items() if q in qrels
                for d, s in docs.items()]
    for m in ir_measures.iter_calc(list(parsed.values()), qrels_list, run_list):
        label = by_measure[m.measure]
        if m.query_id in out[label]:
            out[label][m.query_id] = float(m.value)
    return out


def evaluate(qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]],
             metrics: Mapping[str, str] | None = None) -> dict[str, float]:
    """Mean of each metric over all judged queries."""
    pq = per_query(qrels, run, metrics)
    return {label: (sum(v.values()) / len(v) if v else 0.0) for label, v in pq.items()}
