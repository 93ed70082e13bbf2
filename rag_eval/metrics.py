"""IR metrics through ir_measures (pytrec_eval underneath), never hand-rolled.

Queries with judgements but no retrieved documents score 0 (they are not dropped).
Metric labels are ``nDCG@k``, ``MAP`` (or ``MAP@k``), ``Recall@k``, ``MRR@k`` (or ``MRR``)
and ``P@k``; :func:`parse_metrics` maps them to ir_measures specs.

Example:
    >>> qrels = {"q1": {"d1": 2, "d2": 0}}
    >>> run = {"q1": {"d1": 1.0, "d2": 0.5}}
    >>> evaluate(qrels, run)["nDCG@10"]
    1.0
    >>> evaluate(qrels, run, parse_metrics("P@1,P@2"))
    {'P@1': 1.0, 'P@2': 0.5}
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

from rag.validate import positive_int
METRICS: dict[str, str] = {"nDCG@10": "nDCG@10", "MAP": "AP", "Recall@100": "R@100", "MRR@10": "RR@10"}

# label prefix -> ir_measures measure name; a cutoff "@k" is carried over
_FAMILIES: dict[str, str] = {"nDCG": "nDCG", "MAP": "AP", "Recall": "R", "MRR": "RR", "P": "P"}
_NEEDS_CUTOFF = ("nDCG", "Recall", "P")
_LABEL_RE = re.compile(r"^(nDCG|MAP|Recall|MRR|P)(?:@(\d+))?$")
METRIC_FAMILIES: tuple[str, ...] = tuple(_FAMILIES)


def metric_spec(label: str) -> str:
    """The ir_measures spec for a metric label.

    Example:
        >>> metric_spec("Recall@100"), metric_spec("MAP"), metric_spec("P@5")
        ('R@100', 'AP', 'P@5')
        >>> metric_spec("F1")
        Traceback (most recent call last):
        ...
        ValueError: unknown metric 'F1'; use one of nDCG@k, MAP, Recall@k, MRR@k, P@k (k a positive integer)
    """
    m = _LABEL_RE.match(label.strip())
    if not m or (m.group(2) is not None and int(m.group(2)) <= 0) or (m.group(1) in _NEEDS_CUTOFF and not m.group(2)):
        raise ValueError(f"unknown metric {label!r}; use one of nDCG@k, MAP, Recall@k, MRR@k, P@k "
                         f"(k a positive integer)")
    family, k = m.group(1), m.group(2)
    return _FAMILIES[family] + (f"@{int(k)}" if k else "")


def parse_metrics(text: str | Sequence[str]) -> dict[str, str]:
    """``"nDCG@10,P@5"`` (or a list of labels) -> ``{label: ir_measures spec}``, order kept."""
    labels = [s.strip() for s in (text.split(",") if isinstance(text, str) else text) if s.strip()]
    if not labels:
        raise ValueError(f"no metrics given in {text!r}; use e.g. 'nDCG@10,MAP,Recall@100,MRR@10'")
    return {label: metric_spec(label) for label in labels}


def default_metrics(k: int = 10, recall_k: int = 100) -> dict[str, str]:
    """``nDCG@k, MAP, Recall@recall_k, MRR@k`` (the defaults are :data:`METRICS`)."""
    for name, value in (("k", k), ("recall_k", recall_k)):
        positive_int(name, value)
    return parse_metrics([f"nDCG@{k}", "MAP", f"Recall@{recall_k}", f"MRR@{k}"])


def per_query(qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]],
              metrics: Mapping[str, str] | None = None) -> dict[str, dict[str, float]]:
    """``{metric_label: {qid: value}}`` for every judged query (0.0 where the run has none)."""
    import ir_measures

    metrics = dict(metrics or METRICS)
    parsed = {label: ir_measures.parse_measure(spec) for label, spec in metrics.items()}
    by_measure: dict[object, list[str]] = {}
    for label, m in parsed.items():
        by_measure.setdefault(m, []).append(label)
    judged = [q for q, docs in qrels.items() if any(g > 0 for g in docs.values())]
    out: dict[str, dict[str, float]] = {label: {q: 0.0 for q in judged} for label in metrics}
    qrels_list = [ir_measures.Qrel(q, d, int(g)) for q, docs in qrels.items() for d, g in docs.items()]
    run_list = [ir_measures.ScoredDoc(q, d, float(s)) for q, docs in run.items() if q in qrels
                for d, s in docs.items()]
    for m in ir_measures.iter_calc(list(set(parsed.values())), qrels_list, run_list):
        for label in by_measure[m.measure]:
            if m.query_id in out[label]:
                out[label][m.query_id] = float(m.value)
    return out


def evaluate(qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]],
             metrics: Mapping[str, str] | None = None) -> dict[str, float]:
    """Mean of each metric over all judged queries."""
    pq = per_query(qrels, run, metrics)
    return {label: (sum(v.values()) / len(v) if v else 0.0) for label, v in pq.items()}


def char_error_rate(reference: str, hypothesis: str) -> float:
    """Character error rate of an OCR ``hypothesis``: Levenshtein distance / reference length (RapidFuzz),
    both texts with whitespace runs collapsed to one space (line breaks are layout, not characters read).

    Example:
        >>> char_error_rate("the pump", "the  pumq"), char_error_rate("ab", "")
        (0.125, 1.0)
    """
    from rapidfuzz.distance import Levenshtein

    ref, hyp = " ".join(reference.split()), " ".join(hypothesis.split())
    if not ref:
        raise ValueError("reference must hold some text, got only whitespace")
    return Levenshtein.distance(ref, hyp) / len(ref)
