"""Write a retrieval :class:`~rag_eval.retrieval.Comparison` as tables, TREC runs and a bar chart.

``write_comparison(cmp, out_dir)`` writes::

    comparison.md     Markdown table: metrics, p-values vs the baseline (* = p < 0.05), latency
    comparison.csv    the same table as CSV
    comparison.json   settings, metrics, p-values and latency per config
    per_query.csv     config, query id and every metric per query
    runs/CONFIG.trec  one TREC run file per config (``qid Q0 docid rank score CONFIG``)
    metrics.png       grouped bar chart of the metrics per config (matplotlib, Agg canvas)

Example:
    >>> format_p(0.0312), format_p(None), format_p(0.00001)
    ('0.031*', '-', '<0.001*')
"""

from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .datasets import write_trec_run
from .retrieval import Comparison

logger = logging.getLogger(__name__)

ALPHA = 0.05


def format_p(p: float | None, alpha: float = ALPHA) -> str:
    """A p-value for a table: 3 decimals, ``*`` when below ``alpha``, ``-`` when not tested."""
    if p is None:
        return "-"
    text = "<0.001" if p < 0.001 else f"{p:.3f}"
    return text + ("*" if p < alpha else "")


def table_rows(cmp: Comparison, with_p: bool = True, with_latency: bool = True) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the comparison table (strings, ready for Markdown or CSV)."""
    header = ["config"]
    for label in cmp.metrics:
        header.append(label)
        if with_p:
            header.append(f"p ({label})")
    if with_latency:
        header += ["mean ms", "p95 ms"]
    rows = []
    for name, r in cmp.results.items():
        row = [name]
        for label in cmp.metrics:
            row.append(f"{r.means[label]:.4f}")
            if with_p:
                row.append(format_p(r.p_values.get(label)))
        if with_latency:
            row += [f"{r.latency_mean_ms:.1f}", f"{r.latency_p95_ms:.1f}"]
        rows.append(row)
    return header, rows


def markdown_table(cmp: Comparison, with_p: bool = True, with_latency: bool = True) -> str:
    """The comparison as a Markdown table with a one-line caption."""
    header, rows = table_rows(cmp, with_p, with_latency)
    lines = ["| " + " | ".join(header) + " |",
             "|---|" + "".join("---:|" for _ in header[1:])]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    caption = f"{cmp.dataset}: {cmp.n_queries} judged queries."
    if with_p and cmp.baseline is not None:
        test = ("paired randomization test, 2-sided" if cmp.test == "randomization" else "paired t-test, 2-sided")
        caption += f" p: {test} vs {cmp.baseline}; * = p < {ALPHA}."
    if with_latency:
        caption += " Latency: per query, retrieval only."
    return "\n".join(lines) + "\n\n" + caption + "\n"


def csv_table(cmp: Comparison) -> str:
    header, rows = table_rows(cmp)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def comparison_json(cmp: Comparison) -> dict[str, Any]:
    return {
        "dataset": cmp.dataset,
        "n_queries": cmp.n_queries,
        "baseline": cmp.baseline,
        "significance_test": cmp.test,
        "alpha": ALPHA,
        "metrics": dict(cmp.metrics),
        "settings": asdict(cmp.settings),
        "configs": {
            name: {"metrics": dict(r.means), "p_values": dict(r.p_values),
                   "significant": {m: (p is not None and p < ALPHA) for m, p in r.p_values.items()},
                   "latency_ms": {"mean": round(r.latency_mean_ms, 3), "p95": round(r.latency_p95_ms, 3)}}
            for name, r in cmp.results.items()
        },
    }


def bar_chart(cmp: Comparison, path: str | Path) -> Path:
    """Grouped bars: one group per metric, one bar per config; ``*`` over significant bars."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    labels = list(cmp.metrics)
    names = list(cmp.results)
    width = 0.8 / max(len(names), 1)
    fig = Figure(figsize=(max(6.0, 1.6 * len(labels) + 0.3 * len(names)), 4.0), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for i, name in enumerate(names):
        r = cmp.results[name]
        xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(labels))]
        values = [r.means[m] for m in labels]
        bars = ax.bar(xs, values, width=width, label=name)
        for bar, m in zip(bars, labels):
            p = r.p_values.get(m)
            if p is not None and p < ALPHA:
                ax.annotate("*", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels)
    ax.set_ylim(0.0, min(1.0, max((v for r in cmp.results.values() for v in r.means.values()), default=1.0) * 1.2
                         + 0.02))
    ax.set_ylabel("score")
    title = f"{cmp.dataset} ({cmp.n_queries} queries)"
    if cmp.baseline is not None:
        title += f"; * p < {ALPHA} vs {cmp.baseline}"
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize="small", ncol=max(1, len(names) // 3))
    fig.tight_layout()
    fig.savefig(path)
    return path


def write_comparison(cmp: Comparison, out_dir: str | Path) -> dict[str, Path]:
    """Write every output file under ``out_dir`` (created); returns ``{kind: path}``."""
    out = Path(out_dir)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    paths["markdown"] = out / "comparison.md"
    paths["markdown"].write_text(markdown_table(cmp), encoding="utf-8")
    paths["csv"] = out / "comparison.csv"
    paths["csv"].write_text(csv_table(cmp), encoding="utf-8")
    paths["json"] = out / "comparison.json"
    paths["json"].write_text(json.dumps(comparison_json(cmp), indent=2), encoding="utf-8")
    paths["per_query"] = out / "per_query.csv"
    with open(paths["per_query"], "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        labels = list(cmp.metrics)
        writer.writerow(["config", "query_id", *labels])
        for name, r in cmp.results.items():
            for q in sorted(next(iter(r.per_query.values()), {})):
                writer.writerow([name, q, *(f"{r.per_query[m][q]:.6f}" for m in labels)])
    for name, r in cmp.results.items():
        paths[f"run:{name}"] = write_trec_run(r.run, out / "runs" / f"{name}.trec", tag=name)
    paths["chart"] = bar_chart(cmp, out / "metrics.png")
    logger.info("wrote %d files to %s", len(paths), out)
    return paths
