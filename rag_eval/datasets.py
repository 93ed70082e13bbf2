"""Retrieval benchmark datasets (documents, queries, graded qrels) and TREC file formats.

Loaders:

* :func:`load_cranfield` - the Cranfield 1400 SMART files.
* :func:`load_qa_retrieval` - an extractive QA folder (COVID-QA's ``documents/`` and
  ``questions.jsonl``) as a retrieval collection: each question of the split judges its article.
* :func:`load_beir` - any folder in the BEIR layout: ``corpus.jsonl`` (``_id``, ``title``,
  ``text``), ``queries.jsonl`` (``_id``, ``text``) and ``qrels/<split>.tsv`` with the header
  ``query-id corpus-id score``.
* :func:`read_trec_qrels` / :func:`write_trec_qrels` (``qid 0 docid rel``) and
  :func:`read_trec_run` / :func:`write_trec_run` (``qid Q0 docid rank score tag``).

Cranfield trap: the first column of ``cranqrel`` is the 1-based *position* of a query in
``cran.qry``, not its ``.I`` number (which skips values: 001, 002, 004, ...).  We key
queries by position so the qrels line up.

Example:
    >>> ds = load_cranfield("../shared/data/cranfield")        # doctest: +SKIP
    >>> len(ds.documents), len(ds.queries)                      # doctest: +SKIP
    (1400, 225)
"""

from __future__ import annotations

import csv
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping

logger = logging.getLogger(__name__)

DATASETS: tuple[str, ...] = ("cranfield", "beir", "qa")

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Mapping[str, float]]


@dataclass(frozen=True)
class BenchDocument:
    doc_id: str
    title: str
    text: str


@dataclass(frozen=True)
class Dataset:
    """A retrieval test collection. ``qrels[qid][doc_id] = graded relevance (0 = not relevant)``."""

    name: str
    documents: tuple[BenchDocument, ...]
    queries: Mapping[str, str]
    qrels: Mapping[str, Mapping[str, int]]


def _parse_fields(text: str) -> list[dict[str, str]]:
    """Parse the SMART ``.I``/``.T``/``.W`` record format."""
    records: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    field = None
    for line in text.splitlines():
        m = re.match(r"^\.([ITABW])(?:\s+(.*))?$", line)
        if m:
            tag, rest = m.group(1), (m.group(2) or "").strip()
            if tag == "I":
                current = {"I": rest}
                records.append(current)
                field = None
            else:
                field = tag
                if current is not None:
                    current.setdefault(tag, "")
            continue
        if current is not None and field is not None:
            current[field] = (current[field] + "\n" + line) if current[field] else line
    return records


def cranfield_gain(code: int) -> int:
    """Relevance code 1..4 -> gain 4..1 (5 - code); -1 (no interest) and others -> 0."""
    return 5 - code if 1 <= code <= 4 else 0


def load_cranfield(path: str | Path) -> Dataset:
    """Load the Cranfield 1400 collection from ``cran.all.1400``, ``cran.qry`` and ``cranqrel``."""
    root = Path(path)
    missing = [f for f in ("cran.all.1400", "cran.qry", "cranqrel") if not (root / f).exists()]
    if missing:
        raise FileNotFoundError(f"{root} is not a Cranfield folder: missing {', '.join(missing)}")
    docs = []
    for r in _parse_fields((root / "cran.all.1400").read_text(encoding="utf-8", errors="replace")):
        title = " ".join(r.get("T", "").split())
        body = r.get("W", "").strip()
        docs.append(BenchDocument(doc_id=r["I"].strip(), title=title, text=body or title))
    queries: dict[str, str] = {}
    for pos, r in enumerate(_parse_fields((root / "cran.qry").read_text(encoding="utf-8", errors="replace")),
                            start=1):
        queries[str(pos)] = " ".join(r.get("W", "").split())
    qrels: dict[str, dict[str, int]] = {}
    for line in (root / "cranqrel").read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        qid, did, code = parts[0], parts[1], int(parts[2])
        if qid not in queries:
            raise ValueError(f"cranqrel refers to query position {qid}, but cran.qry has {len(queries)} queries")
        qrels.setdefault(qid, {})[did] = cranfield_gain(code)
    return Dataset(name="cranfield", documents=tuple(docs), queries=queries, qrels=qrels)


def read_jsonl(path: Path, required: str = "_id", what: str = "an '_id' field",
               check: Callable[[dict[str, object]], bool] | None = None) -> Iterator[tuple[int, dict[str, object]]]:
    """``(line number, object)`` for each non-blank line of a JSONL file; one-line errors name the line.

    A line must be a JSON object for which ``check`` holds (default: it has the key ``required``);
    ``what`` describes the requirement in the error.
    """
    ok = check or (lambda record: required in record)
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict) or not ok(record):
                raise ValueError(f"{path}:{lineno}: expected an object with {what}")
            yield lineno, record


def read_beir_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """Read a BEIR qrels TSV (header ``query-id corpus-id score``; header optional)."""
    path = Path(path)
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8", newline="") as fh:
        for lineno, row in enumerate(csv.reader(fh, delimiter="\t"), start=1):
            if not row or not "".join(row).strip():
                continue
            if lineno == 1 and row[0].strip().lower() in ("query-id", "query_id", "qid"):
                continue
            if len(row) < 3:
                raise ValueError(f"{path}:{lineno}: expected 3 tab-separated columns "
                                 f"(query-id, corpus-id, score), got {row!r}")
            try:
                score = int(float(row[2]))
            except ValueError:
                raise ValueError(f"{path}:{lineno}: score must be a number, got {row[2]!r}") from None
            qrels.setdefault(row[0].strip(), {})[row[1].strip()] = score
    return qrels


def load_beir(path: str | Path, split: str = "test") -> Dataset:
    """Load a BEIR-format folder; only queries that have judgements in ``split`` are kept.

    Example:
        >>> ds = load_beir("datasets/scifact", split="test")      # doctest: +SKIP
        >>> ds.name                                             # doctest: +SKIP
        'scifact'
    """
    root = Path(path)
    qrels_path = root / "qrels" / f"{split}.tsv"
    missing = [str(p.relative_to(root)) for p in (root / "corpus.jsonl", root / "queries.jsonl", qrels_path)
               if not p.exists()]
    if missing:
        splits = sorted(p.stem for p in (root / "qrels").glob("*.tsv")) if (root / "qrels").is_dir() else []
        hint = f" (available splits: {', '.join(splits)})" if splits else ""
        raise FileNotFoundError(f"{root} is not a BEIR folder: missing {', '.join(missing)}{hint}")
    docs = []
    seen: set[str] = set()
    for _, r in read_jsonl(root / "corpus.jsonl"):
        doc_id = str(r["_id"])
        if doc_id in seen:
            raise ValueError(f"{root / 'corpus.jsonl'}: duplicate document _id {doc_id!r}")
        seen.add(doc_id)
        title = " ".join(str(r.get("title") or "").split())
        text = str(r.get("text") or "").strip()
        docs.append(BenchDocument(doc_id=doc_id, title=title, text=text or title))
    all_queries = {str(r["_id"]): " ".join(str(r.get("text") or "").split())
                   for _, r in read_jsonl(root / "queries.jsonl")}
    qrels = read_beir_qrels(qrels_path)
    unknown = sorted(set(qrels) - set(all_queries))
    if unknown:
        raise ValueError(f"{qrels_path} judges queries missing from queries.jsonl: {unknown[:5]}")
    queries = {q: t for q, t in all_queries.items() if q in qrels}
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", root.resolve().name).lstrip("-._")[:40] or "beir"
    logger.info("loaded BEIR %s: %d docs, %d judged queries (%s)", name, len(docs), len(queries), split)
    return Dataset(name=name, documents=tuple(docs), queries=queries, qrels=qrels)


def read_trec_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """Read TREC qrels: ``qid iteration docid relevance`` per line (whitespace separated)."""
    path = Path(path)
    qrels: dict[str, dict[str, int]] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 4:
            raise ValueError(f"{path}:{lineno}: TREC qrels lines are 'qid 0 docid rel', got {line!r}")
        try:
            qrels.setdefault(parts[0], {})[parts[2]] = int(parts[3])
        except ValueError:
            raise ValueError(f"{path}:{lineno}: relevance must be an integer, got {parts[3]!r}") from None
    return qrels


def write_trec_qrels(qrels: Qrels, path: str | Path) -> Path:
    """Write qrels as ``qid 0 docid rel`` lines (sorted, so the file is reproducible)."""
    path = Path(path)
    lines = [f"{q} 0 {d} {int(qrels[q][d])}" for q in sorted(qrels) for d in sorted(qrels[q])]
    path.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
    return path


def read_trec_run(path: str | Path) -> dict[str, dict[str, float]]:
    """Read a TREC run: ``qid Q0 docid rank score tag`` per line -> ``{qid: {docid: score}}``."""
    path = Path(path)
    run: dict[str, dict[str, float]] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 6:
            raise ValueError(f"{path}:{lineno}: TREC run lines are 'qid Q0 docid rank score tag', got {line!r}")
        try:
            run.setdefault(parts[0], {})[parts[2]] = float(parts[4])
        except ValueError:
            raise ValueError(f"{path}:{lineno}: score must be a number, got {parts[4]!r}") from None
    return run


def write_trec_run(run: Run, path: str | Path, tag: str = "rag") -> Path:
    """Write a run as ``qid Q0 docid rank score tag``, ranked by descending score (ties by docid).

    Example:
        >>> import tempfile, os
        >>> p = write_trec_run({"q1": {"d2": 0.5, "d1": 0.9}}, os.path.join(tempfile.mkdtemp(), "r.trec"))
        >>> p.read_text().splitlines()[0]
        'q1 Q0 d1 1 0.9 rag'
    """
    if not tag or any(c.isspace() for c in tag):
        raise ValueError(f"run tag must be a non-empty string without whitespace, got {tag!r}")
    path = Path(path)
    lines = []
    for q in sorted(run):
        ranking = sorted(run[q].items(), key=lambda kv: (-kv[1], kv[0]))
        lines.extend(f"{q} Q0 {d} {r} {float(s)!r} {tag}" for r, (d, s) in enumerate(ranking, start=1))
    path.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
    return path


def load_qa_retrieval(path: str | Path, split: str = "test") -> Dataset:
    """An extractive QA folder as a retrieval collection: the split's questions as queries, each
    judging its own article relevant (gain 1) and no other; ``split`` ``all`` takes every question."""
    from rag_eval.qa import load_qa, select  # noqa: PLC0415 (qa builds on this module)

    qa = load_qa(path)
    questions = select(qa, split)
    return Dataset(name=qa.name, documents=qa.documents, queries={q.qid: q.question for q in questions},
                   qrels={q.qid: {q.doc_id: 1} for q in questions})


def load_dataset(name: str, path: str | Path, split: str = "test") -> Dataset:
    """Load a benchmark by format name (``cranfield``, ``beir`` or ``qa``) from ``path``.

    Example:
        >>> load_dataset("msmarco", ".")
        Traceback (most recent call last):
        ...
        ValueError: unknown dataset 'msmarco'; available: cranfield, beir, qa
    """
    if name == "cranfield":
        return load_cranfield(path)
    if name == "beir":
        return load_beir(path, split=split)
    if name == "qa":
        return load_qa_retrieval(path, split=split)
    raise ValueError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
