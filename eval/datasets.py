"""Retrieval benchmark datasets: documents, queries and graded qrels.

Cranfield trap: the first column of ``cranqrel`` is the 1-based *position* of a query in
``cran.qry``, not its ``.I`` number (which skips values: 001, 002, 004, ...).  We key
queries by position so the qrels line up.

Example:
    >>> ds = load_cranfield("../shared/data/cranfield")        # doctest: +SKIP
    >>> len(ds.documents), len(ds.queries)                      # doctest: +SKIP
    (1400, 225)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

DATASETS: tuple[str, ...] = ("cranfield",)


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


def load_dataset(name: str, path: str | Path) -> Dataset:
    if name == "cranfield":
        return load_cranfield(path)
    raise ValueError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
