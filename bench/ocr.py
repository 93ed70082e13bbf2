#!/usr/bin/env python
"""OCR speed and accuracy: pages/s and character error rate (CER) of :class:`rag.ingest.ocr.PageOcr` per DPI.

The page set: the first ``--pages`` Cranfield abstracts (real technical prose with numbers, formulas and
symbols; ``../shared/data/cranfield``, read in place), each typeset on one letter page in Helvetica at each
``--font-pt`` (11 pt body text and 8 pt footnote-size by default; :func:`tests.pdfgen.wrap_pages`) and
"scanned" at 300 dpi into an image-only PDF (:func:`tests.pdfgen.write_scanned_pdf`: grey,
JPEG-compressed by Pillow, no noise or skew: a clean scan).
For each DPI the same PDF is OCRed page by page exactly as ``rag ingest`` does it (render with pypdfium2,
Tesseract's words joined into lines), timed end to end; CER is the Levenshtein distance over the page's
known text with whitespace collapsed (:func:`rag_eval.metrics.char_error_rate`), averaged over pages.
The DPIs run one after the other in one process, so their ratio is the thing to read on a busy machine.

``--blank N`` also times N blank scanned pages through :class:`rag.ingest.loaders.DocumentLoader` (the
"no text found by OCR" path: rendered, found blank, Tesseract skipped).

Usage (from the repository root)::

    PYTHONPATH=. .venv/bin/python bench/ocr.py            # 20 pages x 11 and 8 pt x 200 and 300 dpi, ~4 min
    PYTHONPATH=. .venv/bin/python bench/ocr.py --dpi 150 200 300 --font-pt 11 --blank 500 --json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rag.ingest.loaders import DocumentLoader, LoadError  # noqa: E402
from rag.ingest.ocr import OcrMode, PageOcr  # noqa: E402
from rag_eval.datasets import load_cranfield  # noqa: E402
from rag_eval.metrics import char_error_rate  # noqa: E402
from tests.pdfgen import wrap_pages, write_scanned_pdf  # noqa: E402


def page_texts(cranfield: Path, n: int, font_pt: float) -> list[str]:
    """The first ``n`` Cranfield abstracts that fill at least 8 lines, each cut to one page."""
    out = []
    for d in load_cranfield(cranfield).documents:
        page = wrap_pages(d.text, width=int(90 * 11 / font_pt), lines=int(48 * 11 / font_pt))[0]
        if page.count("\n") >= 7:
            out.append(page)
        if len(out) == n:
            break
    return out


def measure(pdf: Path, texts: list[str], dpi: int, font_pt: float) -> dict[str, Any]:
    ocr = PageOcr(dpi=dpi)
    data = pdf.read_bytes()
    t0 = time.perf_counter()
    result = ocr.read_pdf(str(pdf), data, {i + 1: "" for i in range(len(texts))}, OcrMode.AUTO)
    seconds = time.perf_counter() - t0
    cers = [char_error_rate(ref, result.texts.get(i + 1, "")) for i, ref in enumerate(texts)]
    return {"font_pt": font_pt, "dpi": dpi, "pages": len(texts), "seconds": round(seconds, 2),
            "pages_per_s": round(len(texts) / seconds, 3),
            "cer_mean": round(statistics.mean(cers), 4), "cer_max": round(max(cers), 4)}


def blank(n: int, folder: Path) -> dict[str, Any]:
    pdf = write_scanned_pdf(folder / "blank.pdf", [""] * n)
    t0 = time.perf_counter()
    try:
        DocumentLoader().load(pdf)
        message = "(loaded)"
    except LoadError as exc:
        message = exc.reason
    seconds = time.perf_counter() - t0
    return {"pages": n, "seconds": round(seconds, 2), "pages_per_s": round(n / seconds, 1), "message": message}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cranfield", type=Path, default=REPO.parent / "shared" / "data" / "cranfield")
    p.add_argument("--pages", type=int, default=20)
    p.add_argument("--dpi", type=int, nargs="+", default=[200, 300])
    p.add_argument("--font-pt", type=float, nargs="+", default=[11, 8])
    p.add_argument("--blank", type=int, default=0, help="also time this many blank scanned pages")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = p.parse_args(argv)
    import pytesseract

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for font_pt in args.font_pt:
            texts = page_texts(args.cranfield, args.pages, font_pt)
            pdf = write_scanned_pdf(Path(tmp) / "pages.pdf", texts, font_pt=font_pt)
            some = [measure(pdf, texts, dpi, font_pt) for dpi in args.dpi]
            for r in some:  # time relative to the last DPI, same font, same run
                r["time_vs_last"] = round(r["seconds"] / some[-1]["seconds"], 2)
            rows += some
        blanks = blank(args.blank, Path(tmp)) if args.blank else None
    out = {"machine": f"{platform.machine()}, {platform.python_version()}",
           "tesseract": str(pytesseract.get_tesseract_version()), "scan_dpi": 300, "by_dpi": rows, "blank": blanks}
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    print(f"{'font':>5} {'dpi':>4} {'pages':>5} {'s':>7} {'pages/s':>8} {'CER mean':>9} {'CER max':>8} "
          f"{'time ratio':>10}")
    for r in rows:
        print(f"{r['font_pt']:>5g} {r['dpi']:>4} {r['pages']:>5} {r['seconds']:>7} {r['pages_per_s']:>8} "
              f"{r['cer_mean']:>9.2%} "
              f"{r['cer_max']:>8.2%} {r['time_vs_last']:>10}")
    if blanks:
        print(f"blank: {blanks['pages']} pages in {blanks['seconds']} s ({blanks['pages_per_s']} pages/s): "
              f"{blanks['message']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
