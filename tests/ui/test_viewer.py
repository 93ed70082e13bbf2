"""Seeing a cited passage where it came from: the PDF page with the passage boxed, or the text around it.

Real PDFs (tests/pdfgen.py), real pdfium rendering, real ingests with the packaged embedder.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from rag.ui.viewer import (DEFAULT_SCALE, PdfPageRenderer, ViewerError, document_chunks, find_passage,
                              passage_context)
from tests.pdfgen import write_pdf

# pdfgen: 11 pt Helvetica, first baseline at y = 720 pt, 14 pt leading, on a 612 x 792 pt page
PAGE_H, FIRST_BASELINE, LEADING = 792, 720, 14
PAGES = [
    "Zephyr-9 pump manual\nChapter 1: Safety\nWear gloves and eye protection.",
    "Chapter 2: Priming\nOpen the bleed valve first.\nFill the casing with water until no air escapes.\n"
    "Never run the Zephyr-9 pump dry.\nClose the bleed valve before starting the motor.\nChapter 3 follows.",
    "Chapter 3: Maintenance\nReplace the seals every 400 hours.",
]


def _highlighted_pixels(png: bytes, box: tuple[int, int, int, int]) -> int:
    """Pixels inside ``box`` tinted by the highlight (white paper under translucent yellow)."""
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB")
    x0, y0, x1, y1 = box
    return sum(1 for x in range(max(0, x0), min(img.width, x1)) for y in range(max(0, y0), min(img.height, y1))
               if (lambda p: p[0] > 230 and 200 <= p[1] <= 240 and p[2] < 190)(img.getpixel((x, y))))


def test_find_passage_ignores_whitespace_and_case_and_survives_small_differences() -> None:
    page = "Chapter 2: Priming\r\nOpen the bleed valve first.\r\nFill the casing with water."
    (start, end), = find_passage(page, "open the BLEED valve\nfirst.")
    assert page[start:end] == "Open the bleed valve first."
    # another extractor's text: one word differs, the rest still matches, the odd word does not
    runs = find_passage(page, "Open the bleed valve first. Fill the tank with water.")
    covered = "".join(page[s:e] for s, e in runs)
    assert "Open the bleed valve first." in covered and "water" in covered and "casing" not in covered
    assert find_passage(page, "nothing of the sort here xyz") == []
    assert find_passage(page, "   ") == []


def test_a_pdf_page_is_rendered_with_the_passage_lines_boxed(tmp_path: Path) -> None:
    pdf = write_pdf(tmp_path / "manual.pdf", PAGES)
    passage = "Fill the casing with water until no air escapes.\nNever run the Zephyr-9 pump dry."
    image = PdfPageRenderer().render(pdf, 2, passage)
    assert (image.page, image.pages) == (2, 3)
    assert (image.width, image.height) == (round(612 * DEFAULT_SCALE), round(PAGE_H * DEFAULT_SCALE))
    assert len(image.boxes) == 2  # the passage's two lines, nothing else
    for line, box in zip((2, 3), sorted(image.boxes, key=lambda b: b[1])):
        baseline = (PAGE_H - (FIRST_BASELINE - LEADING * line)) * DEFAULT_SCALE
        assert box[1] < baseline < box[3] + 4, (line, box)
        assert box[0] == pytest.approx(72 * DEFAULT_SCALE, abs=3)  # text starts at x = 72 pt
        assert _highlighted_pixels(image.png, box) > 100
    # the lines around it are not highlighted
    above = (PAGE_H - (FIRST_BASELINE - LEADING)) * DEFAULT_SCALE
    assert _highlighted_pixels(image.png, (100, round(above - 12), 500, round(above - 2))) == 0
    # without a passage: the page, no boxes
    assert not PdfPageRenderer().render(pdf, 3).highlighted


def _dark_pixels(png: bytes, box: tuple[int, int, int, int]) -> int:
    """Pixels of text (dark ink) inside ``box``."""
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("L")
    x0, y0, x1, y1 = box
    return sum(1 for x in range(max(0, x0), min(img.width, x1)) for y in range(max(0, y0), min(img.height, y1))
               if img.getpixel((x, y)) < 100)


@pytest.mark.parametrize("rotate", [0, 90, 180, 270])
def test_the_boxes_lie_on_the_passage_text_on_turned_pages_too(tmp_path: Path, rotate: int) -> None:
    pdf = write_pdf(tmp_path / "turned.pdf", PAGES, rotate=rotate)
    passage = "Fill the casing with water until no air escapes.\nNever run the Zephyr-9 pump dry."
    image = PdfPageRenderer().render(pdf, 2, passage)
    plain = PdfPageRenderer().render(pdf, 2)  # the same page without the highlight
    turned = rotate in (90, 270)
    assert (image.width > image.height) == turned
    assert len(image.boxes) == 2
    for x0, y0, x1, y1 in image.boxes:
        assert ((y1 - y0) > (x1 - x0)) == turned  # a line of text runs down a turned page
        assert _dark_pixels(plain.png, (x0, y0, x1, y1)) > 150  # the box covers the line's ink
    ink = sum(_dark_pixels(plain.png, (0, 0, plain.width, plain.height)) for _ in [0])
    assert ink > sum(_dark_pixels(plain.png, b) for b in image.boxes)  # and not the whole page


def test_pages_that_are_not_there_say_so(tmp_path: Path) -> None:
    pdf = write_pdf(tmp_path / "manual.pdf", PAGES)
    with pytest.raises(ViewerError, match="has 3 page\\(s\\), not a page 7"):
        PdfPageRenderer().render(pdf, 7, "x")
    with pytest.raises(ViewerError, match="no longer at"):
        PdfPageRenderer().render(tmp_path / "gone.pdf", 1, "x")
    (tmp_path / "fake.pdf").write_bytes(b"%PDF-1.4 not really")
    with pytest.raises(ViewerError, match="cannot be opened as a PDF"):
        PdfPageRenderer().render(tmp_path / "fake.pdf", 1, "x")
    with pytest.raises(ValueError, match="scale must be"):
        PdfPageRenderer(scale=0)


def test_an_indexed_pdf_chunk_is_found_on_its_own_page(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    """Offsets come from pypdf; the boxes from pdfium: the chunk is still found, on the page provenance names."""
    from rag.index.store import IndexStore
    from rag.ingest.ingestor import Ingestor

    docs = tmp_path / "docs"
    docs.mkdir()
    write_pdf(docs / "manual.pdf", PAGES)
    store = IndexStore(tmp_path / "idx")
    assert Ingestor("m", store=store, embedder=embedder, show_progress=False).ingest([docs]).ok
    index = store.load("m")
    chunk = next(c for c in index.chunks if "bleed valve" in c.text)
    assert chunk.page == 2
    image = PdfPageRenderer().render(chunk.source, chunk.page, chunk.text)
    assert len(image.boxes) == len(chunk.text.strip().splitlines())


def test_passage_context_stitches_neighbours_and_walks_the_document(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    from rag.index.store import IndexStore
    from rag.ingest.ingestor import Ingestor

    paragraphs = [f"Paragraph {i}: the Zephyr valve step number {i} is done with care and a torque wrench."
                  for i in range(1, 13)]
    text = "\n\n".join(paragraphs)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "steps.md").write_text(text, encoding="utf-8")
    (docs / "other.md").write_text("Unrelated text about a garden.", encoding="utf-8")
    store = IndexStore(tmp_path / "idx")
    Ingestor("s", store=store, embedder=embedder, chunk_size=40, chunk_overlap=8, show_progress=False).ingest([docs])
    index = store.load("s")
    source = next(s for s in index.documents if s.endswith("steps.md"))
    chunks = document_chunks(index.chunks, source)
    assert len(chunks) >= 4 and all(c.source == source for c in chunks)
    middle = chunks[len(chunks) // 2]
    ctx = passage_context(chunks, middle, window=200)
    assert (ctx.position, ctx.total) == (len(chunks) // 2 + 1, len(chunks))
    assert ctx.previous == chunks[len(chunks) // 2 - 1] and ctx.next == chunks[len(chunks) // 2 + 1]
    assert ctx.passage == middle.text and ctx.before.strip() and ctx.after.strip()

    def flat(s: str) -> str:
        return " ".join(s.replace("…", " ").split())

    # what is shown around the passage is the document's own text, in order
    assert flat(ctx.before + " " + ctx.passage + " " + ctx.after) in flat(text)
    assert len(ctx.before) <= 201 and len(ctx.after) <= 201
    first, last = passage_context(chunks, chunks[0]), passage_context(chunks, chunks[-1])
    assert first.previous is None and first.before == "" and last.next is None and last.after == ""
    with pytest.raises(ValueError, match="window must be >= 0"):
        passage_context(chunks, middle, window=-1)
