"""Report writers for ``rag eval answers``: a markdown summary, per-sample CSV/JSON and a bar chart
of an :class:`rag_eval.scoring.AnswerReport` (no ragas here).

Example:
    >>> from rag_eval.answers import QuestionSample
    >>> from rag_eval.scoring import AnswerReport, MetricScore, SampleResult
    >>> s = QuestionSample("q1", "what is lift?", reference_ids=("d1",))
    >>> report = AnswerReport((SampleResult(s, None, {"id_context_recall": MetricScore(0.25)}),),
    ...                       ("id_context_recall",), "none")
    >>> print(summary_markdown(report).splitlines()[2])
    | id_context_recall | 0.250 | 1/1 | 0 | 0 |
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Sequence

from .scoring import AnswerReport, MetricScore, SampleResult


def summary_markdown(report: AnswerReport) -> str:
    """Markdown table of each metric's mean, scored/failed/missing counts, and a caption."""
    agg = report.aggregate()
    n = len(report.results)
    lines = ["| metric | mean | scored | failed | missing (top reason) |", "|---|---:|---:|---:|---|"]
    for m, a in agg.items():
        mean = f"{a['mean']:.3f}" if a["mean"] is not None else "-"
        top = max(a["reasons"].items(), key=lambda kv: kv[1])[0] if a["reasons"] else ""
        miss = f"{a['missing']}" + (f" ({top[:80]})" if top else "")
        lines.append(f"| {m} | {mean} | {a['scored']}/{n} | {a['failed']} | {miss} |")
    lat = [r.answer.latency_ms for r in report.results if r.answer is not None]
    caption = (f"{n} samples, {report.n_fully_scored} with every applicable metric scored "
               f"(failed = attempted but timed out, unparseable or NaN); judge: {report.judge}"
               + (f"; mean generation latency {sum(lat) / len(lat):.0f} ms." if lat else "."))
    return "\n".join(lines) + "\n\n" + caption + "\n"


def _sample_row(r: SampleResult, metrics: Sequence[str]) -> dict[str, Any]:
    a = r.answer
    row: dict[str, Any] = {
        "qid": r.sample.qid, "question": r.sample.question,
        "answer": a.text if a else "", "context_ids": list(a.context_ids) if a else [],
        "reference_ids": list(r.sample.reference_ids[:20]), "latency_ms": round(a.latency_ms, 1) if a else None,
        "error": r.error,
    }
    for m in metrics:
        s = r.scores.get(m, MetricScore(None, "not computed"))
        row[m] = s.value
        row[f"{m}_reason"] = s.reason
    return row


def score_chart(report: AnswerReport, path: str | Path) -> Path:
    """Bar chart of each metric's mean, labelled with how many samples were scored."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    agg = report.aggregate()
    names = list(agg)
    fig = Figure(figsize=(max(6.0, 1.1 * len(names)), 4.0), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    values = [agg[m]["mean"] or 0.0 for m in names]
    bars = ax.bar(range(len(names)), values, color=["C0" if agg[m]["scored"] else "0.8" for m in names])
    for bar, m in zip(bars, names):
        ax.annotate(f"{agg[m]['scored']}/{len(report.results)}", (bar.get_x() + bar.get_width() / 2,
                    bar.get_height()), ha="center", va="bottom", fontsize="small")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize="small")
    ax.set_ylim(0.0, 1.1)
    ax.set_ylabel("mean score (label: samples scored)")
    ax.set_title(f"answer quality; judge: {report.judge}", fontsize="small")
    fig.tight_layout()
    fig.savefig(Path(path))
    return Path(path)


def write_answer_report(report: AnswerReport, out_dir: str | Path) -> dict[str, Path]:
    """Write ``samples.csv``, ``samples.json``, ``summary.md``, ``summary.json`` and ``scores.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [_sample_row(r, report.metrics) for r in report.results]
    paths = {"samples_json": out / "samples.json", "samples_csv": out / "samples.csv",
             "summary_md": out / "summary.md", "summary_json": out / "summary.json"}
    paths["samples_json"].write_text(json.dumps(rows, indent=2, ensure_ascii=False), encoding="utf-8")
    with open(paths["samples_csv"], "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["qid"], lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (json.dumps(v) if isinstance(v, list) else ("" if v is None else v))
                             for k, v in row.items()})
    paths["summary_md"].write_text(summary_markdown(report), encoding="utf-8")
    paths["summary_json"].write_text(json.dumps({
        "judge": report.judge, "samples": len(report.results), "fully_scored": report.n_fully_scored,
        "settings": dict(report.settings), "metrics": report.aggregate()}, indent=2), encoding="utf-8")
    paths["chart"] = score_chart(report, out / "scores.png")
    return paths


__all__ = ["score_chart", "summary_markdown", "write_answer_report"]
