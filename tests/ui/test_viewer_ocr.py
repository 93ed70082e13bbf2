"""The viewer highlights a passage on a scanned page (no text layer) from the page's OCR words."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.ui.viewer import DEFAULT_SCALE, PdfPageRenderer
from tests.pdfgen import write_scanned_pdf

# pdfgen: first baseline at y = 720 pt, 14 pt leading, on a 612 x 792 pt page
PAGE_H, FIRST_BASELINE, LEADING = 792, 720, 14
PAGE = ("Chapter 2: Priming\nOpen the bleed valve first.\nFill the casing with water until no air escapes.\n"
        "Never run the Zephyr-9 pump dry.\nClose the bleed valve before starting the motor.")


@pytest.mark.parametrize("rotate", [0, 90])
def test_a_passage_on_a_scanned_page_is_boxed_on_its_lines(tmp_path: Path, rotate: int) -> None:
    pdf = write_scanned_pdf(tmp_path / "scan.pdf", ["Chapter 1", PAGE], rotate=rotate)
    passage = "Fill the casing with water until no air escapes.\nNever run the Zephyr-9 pump dry."
    image = PdfPageRenderer().render(pdf, 2, passage)
    assert len(image.boxes) == 2  # one box per line of the passage, nothing else
    for line, box in zip((2, 3), sorted(image.boxes, key=lambda b: b[1] if not rotate else -b[0])):
        baseline = (PAGE_H - (FIRST_BASELINE - LEADING * line)) * DEFAULT_SCALE  # pixels from the top
        if rotate:  # turned clockwise: the top of the page is on the right, lines run down
            x0, _y0, x1, _y1 = box
            assert PAGE_H * DEFAULT_SCALE - x1 < baseline < PAGE_H * DEFAULT_SCALE - x0 + 4, (line, box)
        else:
            x0, y0, _x1, y1 = box
            assert y0 < baseline < y1 + 4, (line, box)
            assert x0 == pytest.approx(72 * DEFAULT_SCALE, abs=4)  # text starts at x = 72 pt
    assert not PdfPageRenderer().render(pdf, 2, "words that are not on this page at all").highlighted


def test_without_tesseract_the_scanned_page_is_shown_without_a_box(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import pytesseract

    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", str(tmp_path / "no-tesseract-here"))
    pdf = write_scanned_pdf(tmp_path / "scan.pdf", [PAGE])
    image = PdfPageRenderer().render(pdf, 1, "Open the bleed valve first.")
    assert image.png and not image.highlighted
