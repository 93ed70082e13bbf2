"""OCR of scanned PDF pages: real generated scans (tests/pdfgen.py), real pdfium and Tesseract."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from rag.ingest.loaders import DocumentLoader, LoadError
from rag.ingest.ocr import (MAX_PIXELS, TESSERACT_MISSING, OcrMode, OcrProgress, PageOcr, _to_pdf_space,
                            needs_ocr, read_pdf_page)
from rag_eval.metrics import char_error_rate
from tests.pdfgen import write_pdf, write_scanned_pdf

TEXT = ("Boundary layer transition on a flat plate\nwas measured at Mach 2.5 with a pitot tube;\n"
        "the heat transfer agrees with theory (within 4%).")
# A clean 300 dpi scan of 11 pt Helvetica: Tesseract misreads well under 1 character in 100 here
# (docs/benchmarks.md, "OCR"); 2% leaves room for one slip on this 140-character text, no more.
MAX_CER = 0.02


def _mixed_pdf(path: Path, text_page: str, scanned_page: str) -> Path:
    """Page 1 with a text layer, page 2 a scanned image."""
    from pypdf import PdfReader, PdfWriter

    a = write_pdf(path.with_suffix(".text.pdf"), [text_page])
    b = write_scanned_pdf(path.with_suffix(".scan.pdf"), [scanned_page])
    writer = PdfWriter()
    for src in (a, b):
        writer.append(PdfReader(str(src)))
    with open(path, "wb") as f:
        writer.write(f)
    a.unlink()
    b.unlink()
    return path


def test_a_scanned_page_reads_as_its_text_with_word_boxes(tmp_path: Path) -> None:
    pdf = write_scanned_pdf(tmp_path / "scan.pdf", [TEXT])
    loaded = DocumentLoader().load(pdf)
    (doc,) = loaded.documents
    assert doc.page == 1
    assert char_error_rate(TEXT, doc.text) < MAX_CER, doc.text
    assert loaded.warnings == ("OCR read 1 page(s)",)
    page = read_pdf_page(pdf, 1)
    assert page == read_pdf_page(pdf, 1)  # deterministic: the viewer finds the text the index holds
    assert page.text == doc.text and page.dpi == 300
    first = page.words[0]
    assert page.text[first.start:first.end] == "Boundary"
    left, bottom, right, top = first.box  # pdfgen's first baseline is at x = 72, y = 720 pt
    assert left == pytest.approx(72, abs=2) and bottom < 720 < top and right - left > 30
    third_line = next(w for w in page.words if page.text[w.start:w.end] == "heat")
    assert third_line.box[3] < first.box[1]  # a lower line: smaller y in PDF space


def test_a_sentence_running_on_to_the_next_line_stays_one_sentence(tmp_path: Path) -> None:
    """Lines are joined by a line break, as in a text layer; a blank line only where the page has one
    (Tesseract's paragraph numbers, which changed after a short line mid-sentence, are not used)."""
    from rag.text import sentence_spans

    page = ("Chapter 2: Priming\nBefore priming, check that the strainer is clean.\n"
            "The pump is primed by opening the bleed valve\nand filling the casing with water.\n"
            "Never run the pump dry.\n\nThe impeller is inspected once a year.")
    text = DocumentLoader().load(write_scanned_pdf(tmp_path / "scan.pdf", [page])).documents[0].text
    assert char_error_rate(page, text) < MAX_CER, text
    assert text.count("\n\n") == 1 and text.index("\n\n") == text.index("\nThe impeller") - 1, text
    sentences = [" ".join(text[a:b].split()) for a, b in sentence_spans(text)]
    assert "The pump is primed by opening the bleed valve and filling the casing with water." in sentences


def test_a_mixed_pdf_ocrs_only_its_scanned_page(tmp_path: Path) -> None:
    pdf = _mixed_pdf(tmp_path / "mixed.pdf", "The printed page speaks of centrifugal pumps and valves.", TEXT)
    seen: list[OcrProgress] = []
    loaded = DocumentLoader(on_ocr_page=seen.append).load(pdf)
    assert [d.page for d in loaded.documents] == [1, 2]
    assert loaded.documents[0].text.startswith("The printed page")
    assert char_error_rate(TEXT, loaded.documents[1].text) < MAX_CER
    assert loaded.warnings == ("OCR read 1 page(s)",)
    assert seen == [OcrProgress(str(pdf.resolve()), 2, 1, 1)]
    # always: both pages go through OCR
    seen.clear()
    DocumentLoader(ocr="always", on_ocr_page=seen.append).load(pdf)
    assert [p.page for p in seen] == [1, 2]


def test_ocr_never_refuses_a_scan_naming_ocr_auto(tmp_path: Path) -> None:
    pdf = write_scanned_pdf(tmp_path / "scan.pdf", [TEXT])
    with pytest.raises(LoadError, match="needs OCR: ingest it with --ocr auto"):
        DocumentLoader(ocr=OcrMode.NEVER).load(pdf)
    with pytest.raises(ValueError, match="ocr mode must be one of always, auto, never; got 'maybe'"):
        DocumentLoader(ocr="maybe")


def test_auto_takes_a_page_with_a_stamp_for_scanned() -> None:
    assert needs_ocr("") and needs_ocr(" 12 \n") and needs_ocr("Scanned by CamScanner")
    assert not needs_ocr("Open the bleed valve before starting the motor.")


def test_without_tesseract_a_scan_fails_in_one_line_and_the_rest_is_indexed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedder) -> None:  # type: ignore[no-untyped-def]
    import pytesseract

    from rag.index.store import IndexStore
    from rag.ingest.ingestor import Ingestor

    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", str(tmp_path / "no-tesseract-here"))
    docs = tmp_path / "docs"
    docs.mkdir()
    write_scanned_pdf(docs / "scan.pdf", [TEXT])
    write_pdf(docs / "printed.pdf", ["The printed page speaks of centrifugal pumps and valves."])
    (docs / "note.txt").write_text("Pumps need priming before start.", encoding="utf-8")
    report = Ingestor("t", store=IndexStore(tmp_path / "idx"), embedder=embedder, show_progress=False).ingest([docs])
    assert report.errors == [(str(docs / "scan.pdf"), TESSERACT_MISSING)]
    assert sorted(Path(p).name for p in report.added) == ["note.txt", "printed.pdf"]


def test_the_ingestor_reports_each_ocred_page_to_its_callback_instead_of_a_bar(
        tmp_path: Path, embedder, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    from rag.index.store import IndexStore
    from rag.ingest.ingestor import Ingestor

    docs = tmp_path / "docs"
    docs.mkdir()
    scan = write_scanned_pdf(docs / "scan.pdf", [TEXT, "Chapter 2: the pitot tube is calibrated yearly."])
    (docs / "note.txt").write_text("Pumps need priming before start.", encoding="utf-8")
    seen: list[OcrProgress] = []
    # show_progress on: the callback replaces the tqdm page bar, it is not added to it
    report = Ingestor("t", store=IndexStore(tmp_path / "idx"), embedder=embedder, show_progress=True,
                      on_ocr_page=seen.append).ingest([docs])
    assert report.ok, report.summary()
    source = str(scan.resolve())
    assert seen == [OcrProgress(source, 1, 1, 2), OcrProgress(source, 2, 2, 2)]
    assert "OCR scan.pdf" not in capsys.readouterr().err
    with pytest.raises(TypeError, match="on_ocr_page must be a callable"):
        Ingestor("t", store=IndexStore(tmp_path / "idx"), embedder=embedder, on_ocr_page="progress")  # type: ignore[arg-type]
    # the same folder again: the scan is unchanged, so it is not read (nor OCRed) again
    seen.clear()
    again = Ingestor("t", store=IndexStore(tmp_path / "idx"), embedder=embedder, show_progress=False,
                     on_ocr_page=seen.append).ingest([docs])
    assert seen == [] and source in again.unchanged and not again.added and not again.updated, again.summary()
    scan.write_bytes(scan.read_bytes() + b"\n")  # changed bytes: read, and OCRed, again
    changed = Ingestor("t", store=IndexStore(tmp_path / "idx"), embedder=embedder, show_progress=False,
                       on_ocr_page=seen.append).ingest([docs])
    assert len(seen) == 2 and changed.updated == [source], changed.summary()


def test_ocr_makes_no_name_lookup(tmp_path: Path) -> None:
    """Seen by strace: reading a scan asks no resolver (`tesseract --version`, which pytesseract's image_to_data
    runs once, made OpenLDAP look up this machine's host name through nscd, or DNS where /etc/hosts lacks it)."""
    import os
    import subprocess
    import sys

    from tests.egress import egress, traced, tracing_problem, untouched_env

    if tracing_problem() is not None:
        pytest.skip(tracing_problem())
    pdf = write_scanned_pdf(tmp_path / "scan.pdf", [TEXT])
    log = tmp_path / "ocr.strace"
    env = {**untouched_env(), "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                                               os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    code = f"from rag.ingest.loaders import DocumentLoader; print(DocumentLoader().load({str(pdf)!r}).warnings)"
    run = subprocess.run([*traced(log), sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0 and "OCR read 1 page(s)" in run.stdout, run.stderr[-2000:]
    assert egress(log) == []


def test_blank_scans_skip_tesseract_and_say_no_text_was_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pdf = write_scanned_pdf(tmp_path / "blank.pdf", [""] * 20)

    def no_tesseract(self: PageOcr, image: object) -> None:
        raise AssertionError("Tesseract ran on a blank page")

    monkeypatch.setattr(PageOcr, "_tesseract", no_tesseract)
    t0 = time.perf_counter()
    with pytest.raises(LoadError, match=r"blank\.pdf: no text found by OCR on 20 page\(s\)$"):
        DocumentLoader().load(pdf)
    assert time.perf_counter() - t0 < 20  # 500 pages took 34 s here (docs/benchmarks.md, "OCR")


def test_a_huge_page_is_rendered_smaller_with_a_warning(tmp_path: Path) -> None:
    # a 14,400 pt (200 in) square page: 60,000 x 60,000 px at 300 dpi; held to the pixel cap instead
    pdf = write_scanned_pdf(tmp_path / "poster.pdf", ["HUGE POSTER TEXT READS WELL"], dpi=72,
                            page_pt=(14400, 14400 * 792 / 612))
    ocr = PageOcr(max_pixels=4_000_000)
    result = ocr.read_pdf("poster.pdf", pdf.read_bytes(), {1: ""}, OcrMode.AUTO)
    assert "HUGE" in result.texts[1]
    assert any(re.match(r"page\(s\) 1 \(\d+ dpi\) too large for 300 dpi", w) for w in result.warnings)
    width_in, height_in = 14400 / 72, 14400 * 792 / 612 / 72
    dpi = ocr.page_dpi(14400, 14400 * 792 / 612)
    assert (width_in * dpi) * (height_in * dpi) <= 4_000_000 * 1.0001
    assert PageOcr().page_dpi(20000, 20000) ** 2 * (20000 / 72) ** 2 <= MAX_PIXELS * 1.0001
    assert PageOcr().page_dpi(612, 792) == 300  # a letter page: the full DPI


def _corrupt_image(pdf: Path, which: int) -> None:
    """Overwrite the start of the ``which``-th image stream (its JPEG header) with zeros, keeping its length."""
    data = pdf.read_bytes()
    starts = [m.end() for m in re.finditer(rb"/Subtype /Image.*?stream\n", data, flags=re.S)]
    at = starts[which]
    pdf.write_bytes(data[:at] + b"\x00" * 4000 + data[at + 4000:])


def test_a_corrupt_image_skips_its_page_with_a_warning(tmp_path: Path) -> None:
    pdf = write_scanned_pdf(tmp_path / "scan.pdf", [TEXT, "This page will be damaged."])
    _corrupt_image(pdf, 1)
    loaded = DocumentLoader().load(pdf)
    assert [d.page for d in loaded.documents] == [1]
    assert loaded.warnings == ("OCR read 1 page(s)",
                               "page(s) 2 could not be rendered for OCR (a corrupt image?); skipped")
    _corrupt_image(pdf, 0)
    with pytest.raises(LoadError, match=r"OCR could not render any of its 2 page\(s\) \(corrupt images\?\)$"):
        DocumentLoader().load(pdf)


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_word_boxes_map_back_to_the_pixels_the_viewer_draws(rotation: int) -> None:
    from rag.ui.viewer import _to_pixels

    cropbox = (10, 20, 622, 812)
    drawn = (72.0, 80.0, 172.0, 92.0) if rotation in (0, 180) else (80.0, 72.0, 92.0, 172.0)
    assert _to_pixels(_to_pdf_space(drawn, cropbox, rotation), cropbox, rotation, 1.0) == drawn


def test_page_ocr_validates_its_settings() -> None:
    with pytest.raises(ValueError, match="dpi must be in \\[50, 600\\], got 1000"):
        PageOcr(dpi=1000)
    with pytest.raises(ValueError, match="lang must be"):
        PageOcr(lang="eng; rm -rf")
    with pytest.raises(ValueError, match="max_pixels must be"):
        PageOcr(max_pixels=10)


@pytest.mark.slow
def test_cli_ingests_a_scan_and_search_finds_its_page(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    docs = tmp_path / "docs"
    docs.mkdir()
    _mixed_pdf(docs / "report.pdf", "The printed page speaks of centrifugal pumps and valves.", TEXT)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    run = [sys.executable, "-m", "rag"]
    ingest = subprocess.run([*run, "ingest", str(docs), "--index", "x", "--index-dir", str(tmp_path / "idx"), "-q"],
                            capture_output=True, text=True, timeout=300, env=env)
    assert ingest.returncode == 0, ingest.stderr
    assert "1 added" in ingest.stdout and "OCR read 1 page(s)" in ingest.stdout
    search = subprocess.run([*run, "search", "heat transfer boundary layer Mach", "--index", "x", "--index-dir",
                             str(tmp_path / "idx"), "--format", "json", "--mode", "bm25"],
                            capture_output=True, text=True, timeout=300, env=env)
    assert search.returncode == 0, search.stderr
    top = json.loads(search.stdout)[0]
    assert Path(top["source"]).name == "report.pdf" and top["page"] == 2
    never = subprocess.run([*run, "ingest", str(docs), "--index", "y", "--index-dir", str(tmp_path / "idx"), "-q",
                            "--ocr", "never"], capture_output=True, text=True, timeout=300, env=env)
    assert never.returncode == 0 and "OCR" not in never.stdout  # the text page alone is indexed
