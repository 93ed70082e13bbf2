#!/usr/bin/env python
"""Retrieval over OCRed scans vs over the same documents as text PDFs (Cranfield, nDCG@10).

What: 50 Cranfield documents become PDFs twice in a temporary folder: as text PDFs (a text layer,
:func:`tests.pdfgen.write_pdf`) and as scanned, image-only PDFs (the same pages rendered at 300 dpi:
:func:`tests.pdfgen.write_scanned_pdf`), file name ``cran-<doc id>.pdf``. Each folder is ingested by
the real :class:`~rag.ingest.ingestor.Ingestor` with the real embedder (``--ocr auto``: the scans go
through Tesseract) into its own collection; the queries are run on both and scored with nDCG@10
against the Cranfield judgements restricted to the 50 documents (a hit's file name gives its doc id).

Which documents (deterministic): queries in order of how few relevant documents they have (then by
id); a query's relevant documents are taken while the total stays within ``--relevant`` (45); those
queries are the ones scored (every document judged relevant to them is in the set); the set is filled
to ``--docs`` (50) with the lowest-numbered documents not yet in it, as distractors.

The data is read in place (``../shared/data/cranfield``), never copied into the repository.

Usage (from the repository root; about 2 minutes on 2 cores, most of it Tesseract)::

    PYTHONPATH=. HF_HUB_OFFLINE=1 .venv/bin/python eval/ocr_retrieval.py > results/ocr_retrieval.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rag.embedding import Embedder  # noqa: E402
from rag.index.store import IndexStore  # noqa: E402
from rag.ingest.ingestor import Ingestor  # noqa: E402
from rag.pipeline import RetrievalConfig, build_retriever  # noqa: E402
from rag.types import RetrievalMode  # noqa: E402
from rag_eval.datasets import Dataset, load_cranfield  # noqa: E402
from rag_eval.metrics import char_error_rate, evaluate  # noqa: E402
from tests.pdfgen import wrap_pages, write_pdf, write_scanned_pdf  # noqa: E402

PREFIX = "cran-"


def pick(ds: Dataset, n_docs: int, relevant_budget: int) -> tuple[list[str], dict[str, dict[str, int]]]:
    """The document ids (sorted numerically) and the scored queries' judgements (see the module docstring)."""
    judged = {q: {d: g for d, g in docs.items() if g > 0} for q, docs in ds.qrels.items()}
    order = sorted((q for q in judged if judged[q]), key=lambda q: (len(judged[q]), int(q)))
    chosen: set[str] = set()
    qrels: dict[str, dict[str, int]] = {}
    for q in order:
        new = set(judged[q]) - chosen
        if len(chosen | new) > relevant_budget:
            continue
        chosen |= new
        qrels[q] = judged[q]
    for d in sorted((d.doc_id for d in ds.documents), key=int):
        if len(chosen) >= n_docs:
            break
        chosen.add(d)
    return sorted(chosen, key=int), qrels


def write_corpus(ds: Dataset, ids: list[str], text_dir: Path, scan_dir: Path) -> dict[str, list[str]]:
    """Both PDFs of each document; returns each document's page texts (the ground truth of the scans)."""
    by_id = {d.doc_id: d for d in ds.documents}
    pages: dict[str, list[str]] = {}
    for i in ids:
        d = by_id[i]
        pages[i] = wrap_pages(f"{d.title}. {d.text}" if d.title and d.title != d.text else d.text)
        write_pdf(text_dir / f"{PREFIX}{i}.pdf", pages[i])
        write_scanned_pdf(scan_dir / f"{PREFIX}{i}.pdf", pages[i])
    return pages


def doc_run(retriever: Any, queries: Mapping[str, str], depth: int = 100) -> dict[str, dict[str, float]]:
    """``{qid: {doc_id: score}}``: a document ranks at its best chunk (max-passage), ids from file names."""
    run: dict[str, dict[str, float]] = {}
    for qid, text in queries.items():
        hits = retriever.retrieve(text, k=retriever.candidates)
        docs: dict[str, float] = {}
        for rank, h in enumerate(hits):
            doc = Path(h.chunk.source).stem[len(PREFIX):]
            if doc not in docs:
                docs[doc] = float(len(hits) - rank)
        run[qid] = dict(list(docs.items())[:depth])
    return run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cranfield", type=Path, default=REPO.parent / "shared" / "data" / "cranfield")
    p.add_argument("--docs", type=int, default=50)
    p.add_argument("--relevant", type=int, default=45, help="at most this many documents judged relevant")
    p.add_argument("--embedder", default="default")
    args = p.parse_args(argv)

    ds = load_cranfield(args.cranfield)
    ids, qrels = pick(ds, args.docs, args.relevant)
    queries = {q: ds.queries[q] for q in qrels}
    embedder = Embedder(args.embedder)
    out: dict[str, Any] = {"dataset": "cranfield", "documents": len(ids), "queries": len(queries),
                           "relevant_pairs": sum(len(v) for v in qrels.values()), "embedder": embedder.model_id}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        dirs = {"text": root / "text", "ocr": root / "scan"}
        for d in dirs.values():
            d.mkdir()
        pages = write_corpus(ds, ids, dirs["text"], dirs["ocr"])
        out["pages"] = sum(len(v) for v in pages.values())
        store = IndexStore(root / "indexes")
        indexes = {}
        for name, folder in dirs.items():
            t0 = time.perf_counter()
            report = Ingestor(name, store=store, embedder=embedder, show_progress=False).ingest([folder])
            if report.errors:
                raise RuntimeError(f"ingesting {name} failed: {report.errors[:3]}")
            out[f"ingest_s_{name}"] = round(time.perf_counter() - t0, 1)
            indexes[name] = store.load(name)
        from rag.ingest.loaders import DocumentLoader

        cers = []  # OCR is deterministic: loading again reads what the index holds
        for i in ids:
            loaded = DocumentLoader().load(dirs["ocr"] / f"{PREFIX}{i}.pdf")
            cers.append(char_error_rate("\n".join(pages[i]), "\n".join(d.text for d in loaded.documents)))
        out["cer_mean"] = round(sum(cers) / len(cers), 4)
        out["cer_max"] = round(max(cers), 4)
        for mode in (RetrievalMode.BM25, RetrievalMode.DENSE, RetrievalMode.HYBRID):
            row = {}
            for name, index in indexes.items():
                retriever = build_retriever(RetrievalConfig(mode=mode), index, embedder)
                row[name] = round(evaluate(qrels, doc_run(retriever, queries), {"nDCG@10": "nDCG@10"})["nDCG@10"], 4)
            row["ocr_minus_text"] = round(row["ocr"] - row["text"], 4)
            out[f"nDCG@10_{mode}"] = row
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
