"""Report of a rewriter comparison (``rag eval retrieval --rewriters ...``): table and traces.

Example:
    >>> from rag_eval.retrieval import Comparison, ConfigResult, EvalSettings
    >>> r = lambda n, ndcg, ms, rw: ConfigResult(n, {}, {}, {"nDCG@10": ndcg, "MAP": ndcg / 2}, (ms,),
    ...                                           {"nDCG@10": None, "MAP": None}, rw)
    >>> cmp = Comparison("toy", 2, {"nDCG@10": "", "MAP": ""},
    ...                  {"hybrid": r("hybrid", 0.4, 20.0, "none"), "hybrid+hyde": r("hybrid+hyde", 0.42, 900.0, "hyde")},
    ...                  "hybrid", "randomization", EvalSettings())
    >>> print(rewriter_table(cmp).splitlines()[3])
    | hyde | 0.4200 | +0.0200 | - | 0.2100 | +0.0100 | - | 900.0 | +880.0 | 0 |
"""

from __future__ import annotations

import json
from pathlib import Path

from .report import format_p
from .retrieval import Comparison

TABLE_METRICS = ("nDCG@10", "MAP")


def rewriter_table(cmp: Comparison, metrics: tuple[str, ...] = TABLE_METRICS) -> str:
    """Markdown: each rewriter vs the baseline row (deltas, p-values, added latency per query)."""
    base = cmp.results[cmp.baseline] if cmp.baseline in cmp.results else next(iter(cmp.results.values()))
    labels = [m for m in metrics if m in cmp.metrics] or list(cmp.metrics)[:2]
    header = ["rewriter"]
    for m in labels:
        header += [m, f"Δ {m}", f"p ({m})"]
    header += ["mean ms/query", "added ms/query", "fallbacks"]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for r in cmp.results.values():
        row = [r.rewriter]
        for m in labels:
            row += [f"{r.means[m]:.4f}", f"{r.means[m] - base.means[m]:+.4f}", format_p(r.p_values.get(m))]
        row += [f"{r.latency_mean_ms:.1f}", f"{r.latency_mean_ms - base.latency_mean_ms:+.1f}", str(r.fallbacks)]
        lines.append("| " + " | ".join(row) + " |")
    caption = (f"{cmp.dataset}: {cmp.n_queries} judged queries, every row on the same queries; "
               f"baseline {base.name}; p: paired {cmp.test} test; latency includes the rewrite "
               f"(LLM generation) and the RRF merge; fallbacks: queries where the rewriter kept the question.")
    return "\n".join(lines) + "\n\n" + caption + "\n"


def write_traces(cmp: Comparison, out_dir: str | Path) -> Path:
    """``traces.jsonl``: one line per (row, query) with the rewrites, timings and top documents."""
    path = Path(out_dir) / "traces.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for r in cmp.results.values():
            for t in r.traces:
                fh.write(json.dumps({"config": r.name, "rewriter": r.rewriter, **t}, ensure_ascii=False) + "\n")
    return path
