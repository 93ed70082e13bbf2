"""See a cited passage where it came from: its PDF page with the passage highlighted, or its text in context.

Framework-free, so the app (``ui/app.py``) only draws what these return and tests need no browser.

* :class:`PdfPageRenderer` renders one page of a PDF with pypdfium2 and draws a translucent box over
  every line of the cited passage. A chunk's character offsets are into pypdf's text of the page,
  not pdfium's, so the passage is found again in pdfium's text page (:func:`find_passage`: exact
  match on the whitespace-free, case-folded text, else the longest common runs), and the boxes come
  from pdfium's text rectangles of the matched characters. A scanned page (no text layer,
  :func:`rag.ingest.ocr.needs_ocr`) is read by the same OCR as at ingest (cached per file version
  and page), and the boxes are those of the OCR words inside the passage's matches.
* :func:`passage_context` rebuilds the text around a chunk from the index's own chunks of the same
  document (their offsets say where each sits), so it works for every format and even when the
  file has since changed or moved; it also names the previous and next passage, and
  :func:`highlighted_context` writes it as inert Markdown with the passage highlighted.

Example:
    >>> from rag.types import Chunk
    >>> a = Chunk("a", "One two three.", "d", "n.md", None, 0, 14, 0)
    >>> b = Chunk("b", "three. Four five.", "d", "n.md", None, 8, 25, 1)
    >>> ctx = passage_context([a, b], b, window=40)
    >>> ctx.before, ctx.passage, ctx.after, ctx.position, ctx.total, ctx.previous.id, ctx.next
    ('One two ', 'three. Four five.', '', 2, 2, 'a', None)
    >>> find_passage("The pump\\r\\nis primed.", "pump is")
    [(4, 12)]
"""

from __future__ import annotations

import functools
import io
import logging
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path
from typing import Sequence

from rag.ingest.ocr import OcrError, OcrPage, needs_ocr, read_pdf_page
from rag.ingest.tables import plain_table_text
from rag.types import Chunk
from rag.ui.text import md

logger = logging.getLogger(__name__)

DEFAULT_SCALE = 1.5  # 108 dpi: a 612x792 pt page is 918x1188 pixels
MAX_SCALE = 4.0
DEFAULT_WINDOW = 600  # characters of context on each side of a passage
MIN_RUN = 6  # shortest common run kept by the fuzzy match (shorter ones are chance)
MIN_COVERAGE = 0.5  # the fuzzy match must account for half the passage, else it is not on this page
HIGHLIGHT_FILL = (255, 213, 0, 96)  # translucent yellow
HIGHLIGHT_EDGE = (230, 120, 0, 255)


class ViewerError(ValueError):
    """The page cannot be shown (file gone, not a PDF, page out of range); the message says which and why."""


@dataclass(frozen=True)
class PassageContext:
    """A passage with the text around it in its document (or PDF page), and its neighbours.

    ``position`` is the passage's 1-based place among its document's ``total`` passages;
    ``previous``/``next`` are the neighbouring chunks (None at either end).
    """

    before: str
    passage: str
    after: str
    position: int
    total: int
    previous: Chunk | None
    next: Chunk | None


@dataclass(frozen=True)
class PageImage:
    """A rendered page: PNG bytes, which page of how many, and the highlight boxes drawn (pixels)."""

    png: bytes
    page: int
    pages: int
    boxes: tuple[tuple[int, int, int, int], ...]
    width: int
    height: int

    @property
    def highlighted(self) -> bool:
        return bool(self.boxes)


def document_chunks(chunks: Sequence[Chunk], source: str) -> list[Chunk]:
    """The chunks of one document (by source path) in reading order."""
    return sorted((c for c in chunks if c.source == source), key=lambda c: c.index)


def passage_context(doc_chunks: Sequence[Chunk], chunk: Chunk, window: int = DEFAULT_WINDOW,
                    span: tuple[int, int] | None = None) -> PassageContext:
    """``chunk`` with up to ``window`` characters of its document (same page) on each side.

    ``doc_chunks`` are the document's chunks (any order; :func:`document_chunks`). The text is
    stitched from the chunks that overlap the window, each at its own offsets; a gap between two
    chunks (whitespace the splitter dropped) becomes one space. With ``span`` (document offsets
    inside the chunk: a cited sentence), that is the passage and the rest of the chunk is context.
    """
    if window < 0:
        raise ValueError(f"window must be >= 0 characters, got {window!r}")
    ordered = sorted(doc_chunks, key=lambda c: c.index)
    ids = [c.id for c in ordered]
    if chunk.id not in ids:
        ordered = sorted([*ordered, chunk], key=lambda c: c.index)
        ids = [c.id for c in ordered]
    i = ids.index(chunk.id)
    lo, hi = max(0, chunk.start - window), chunk.end + window
    near = [c for c in ordered if c.page == chunk.page and c.end > lo and c.start < hi] or [chunk]
    base, top = min(c.start for c in near), max(c.end for c in near)
    buf = [" "] * (top - base)
    for c in near:
        buf[c.start - base:c.end - base] = list(c.text)
    text = "".join(buf)
    a, b = span if span is not None and chunk.start <= span[0] < span[1] <= chunk.end else (chunk.start, chunk.end)
    before = text[max(lo, base) - base:a - base]
    after = text[b - base:min(hi, top) - base]
    if lo > base or (lo == base and lo > 0):
        before = _from_word(before)
    if hi < top:
        after = _to_word(after)
    return PassageContext(before, text[a - base:b - base], after, i + 1, len(ordered),
                          ordered[i - 1] if i > 0 else None, ordered[i + 1] if i + 1 < len(ordered) else None)


def highlighted_context(ctx: PassageContext) -> str:
    """The passage in its surrounding text as inert Markdown, the passage itself highlighted (line by line).

    Example:
        >>> a = Chunk("a", "Intro.", "d", "n.md", None, 0, 6, 0)
        >>> b = Chunk("b", "Open the *valve*.", "d", "n.md", None, 7, 24, 1)
        >>> print(highlighted_context(passage_context([a, b], b)))
        Intro\\. :orange-background[Open the \\*valve\\*\\.]
    """
    lines: list[list[tuple[str, bool]]] = [[]]
    for text, mark in ((ctx.before, False), (ctx.passage, True), (ctx.after, False)):
        for i, part in enumerate(text.split("\n")):
            if i:
                lines.append([])
            if part.strip():
                lines[-1].append((part, mark))
    out: list[str] = []
    for line in lines:
        if not line:
            if out and out[-1]:
                out.append("")  # a blank line in the document: a paragraph break
            continue
        last = len(line) - 1
        out.append("".join(
            (f":orange-background[{md(t.strip())}]" if mark else md(t.strip()))
            + (" " if j < last and (t.endswith(" ") or line[j + 1][0].startswith(" ")) else "")
            for j, (t, mark) in enumerate(line)))
    while out and not out[-1]:
        out.pop()
    return "".join(x + ("  \n" if i + 1 < len(out) and out[i + 1] else "\n\n") for i, x in enumerate(out) if x).rstrip()


def _from_word(text: str) -> str:
    cut = text.find(" ")
    return "…" + text[cut + 1:] if 0 <= cut < len(text) - 1 else text


def _to_word(text: str) -> str:
    cut = text.rfind(" ")
    return text[:cut] + "…" if cut > 0 else text


def find_passage(page_text: str, passage: str, min_run: int = MIN_RUN) -> list[tuple[int, int]]:
    """Character ranges ``[start, end)`` of ``page_text`` that hold ``passage``, ignoring whitespace and case.

    Two text extractors (pypdf for the index, pdfium for the boxes) differ in line breaks,
    spacing and the odd ligature, so both texts are compared without whitespace, case-folded;
    an exact match gives one range; otherwise each line of the passage is looked for on its own
    (a turned page or a column layout lists lines in another order), exactly or by its common runs
    of at least ``min_run`` characters (:class:`difflib.SequenceMatcher`), provided all that is
    found covers half the passage. Empty when the passage is not on the page. A Markdown table's
    markup (pipes, the ``| --- |`` line) is not on the page, so it is left out of the match.
    """
    passage = plain_table_text(passage)
    page_pos = [i for i, ch in enumerate(page_text) if not ch.isspace()]
    raw = "".join(page_text[i] for i in page_pos)
    fold = len(raw.casefold()) == len(raw)  # else ("ß" -> "ss") positions would shift: compare as is

    def norm(text: str) -> str:
        bare = "".join(ch for ch in text if not ch.isspace())
        return bare.casefold() if fold else bare

    page_flat, flat = norm(raw), norm(passage)
    if not flat or not page_flat:
        return []
    hit = page_flat.find(flat)
    if hit >= 0:
        return _runs([page_pos[j] for j in range(hit, hit + len(flat))])
    matched: set[int] = set()
    for line in passage.splitlines():  # line by line: a turned page or columns list lines in another order
        part = norm(line)
        if len(part) < min_run:
            continue
        at = page_flat.find(part)
        if at >= 0:
            matched.update(range(at, at + len(part)))
            continue
        blocks = SequenceMatcher(None, page_flat, part, autojunk=False).get_matching_blocks()
        matched.update(a + k for a, _b, size in blocks if size >= min_run for k in range(size))
    if len(matched) < MIN_COVERAGE * len(flat):
        return []
    return _runs([page_pos[j] for j in sorted(matched)])


def _runs(indices: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted character indices -> ranges, a gap of whitespace-only characters not splitting a range."""
    runs: list[tuple[int, int]] = []
    for i in indices:
        if runs and i <= runs[-1][1] + 2:
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    return runs


def _to_pixels(rect: tuple[float, float, float, float], cropbox: tuple[float, ...], rotation: int,
               scale: float) -> tuple[int, int, int, int]:
    """A rectangle in PDF page space (left, bottom, right, top) -> pixels (x0, y0, x1, y1) of the rendered page.

    The page is drawn turned clockwise by its ``/Rotate`` (0, 90, 180 or 270 degrees); pdfium's text
    rectangles are in the unturned page's space, with y growing upwards from the crop box's bottom.

    Example:
        >>> page = (0, 0, 612, 792)
        >>> _to_pixels((72, 700, 172, 712), page, 0, 1.0), _to_pixels((72, 700, 172, 712), page, 90, 1.0)
        ((72, 80, 172, 92), (700, 72, 712, 172))
    """
    l, b, r, t = rect
    cl, cb, cr, ct = cropbox[:4]
    if rotation == 90:
        x0, y0, x1, y1 = b - cb, l - cl, t - cb, r - cl
    elif rotation == 180:
        x0, y0, x1, y1 = cr - r, b - cb, cr - l, t - cb
    elif rotation == 270:
        x0, y0, x1, y1 = ct - t, cr - r, ct - b, cr - l
    else:
        x0, y0, x1, y1 = l - cl, ct - t, r - cl, ct - b
    return round(x0 * scale), round(y0 * scale), round(x1 * scale), round(y1 * scale)


class PdfPageRenderer:
    """Render a PDF page to PNG with a passage highlighted (pypdfium2).

    Args:
        scale: pixels per PDF point (1.5 = 108 dpi); at most 4.

    Example (a real PDF)::

        image = PdfPageRenderer().render("manual.pdf", page=3, passage=chunk.text)
        Path("page3.png").write_bytes(image.png); print(image.highlighted, image.boxes[:2])
    """

    def __init__(self, scale: float = DEFAULT_SCALE) -> None:
        if not isinstance(scale, (int, float)) or not 0 < scale <= MAX_SCALE:
            raise ValueError(f"scale must be a number in (0, {MAX_SCALE:g}], got {scale!r}")
        self.scale = float(scale)

    def render(self, path: str | Path, page: int, passage: str = "") -> PageImage:
        """Page ``page`` (1-based) of ``path`` as PNG, with every line of ``passage`` on it boxed."""
        import pypdfium2 as pdfium
        from PIL import Image, ImageDraw

        path = Path(path)
        if not path.is_file():
            raise ViewerError(f"{path.name} is no longer at {path}; showing the indexed text instead")
        try:
            pdf = pdfium.PdfDocument(str(path))
        except pdfium.PdfiumError as exc:
            raise ViewerError(f"{path.name} cannot be opened as a PDF ({exc})") from None
        try:
            n = len(pdf)
            if not isinstance(page, int) or not 1 <= page <= n:
                raise ViewerError(f"{path.name} has {n} page(s), not a page {page!r}; was the file changed? "
                                  "Re-index it")
            pg = pdf[page - 1]
            try:
                cropbox = tuple(pg.get_cropbox())
                rotation = int(pg.get_rotation()) % 360
                rects = self._passage_rects(pg, passage) if passage.strip() else []
                if not rects and passage.strip():
                    rects = self._ocr_rects(pg, path, page, passage)
                image = pg.render(scale=self.scale).to_pil().convert("RGBA")  # drawn as the page's /Rotate says
            finally:
                pg.close()
        finally:
            pdf.close()
        boxes = tuple(_to_pixels(rect, cropbox, rotation, self.scale) for rect in rects)
        overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(overlay)
        pad = max(1, round(self.scale))
        for x0, y0, x1, y1 in boxes:
            draw.rectangle((x0 - pad, y0 - pad, x1 + pad, y1 + pad), fill=HIGHLIGHT_FILL, outline=HIGHLIGHT_EDGE,
                           width=pad)
        out = io.BytesIO()
        # compress_level=1: 0.14 s a page here; optimize=True took 0.85 s for a 20% larger file
        Image.alpha_composite(image, overlay).convert("RGB").save(out, format="PNG", compress_level=1)
        return PageImage(out.getvalue(), page, n, boxes, image.width, image.height)

    @staticmethod
    def _passage_rects(pg: object, passage: str) -> list[tuple[float, float, float, float]]:
        """pdfium's line rectangles (PDF points: left, bottom, right, top) of the passage's characters."""
        textpage = pg.get_textpage()  # type: ignore[attr-defined]
        try:
            text = textpage.get_text_range()
            rects: list[tuple[float, float, float, float]] = []
            for start, end in find_passage(text, passage):
                for j in range(textpage.count_rects(start, end - start)):
                    rects.append(tuple(textpage.get_rect(j)))  # type: ignore[arg-type]
            return rects
        finally:
            textpage.close()

    @staticmethod
    def _ocr_rects(pg: object, path: Path, page: int, passage: str) -> list[tuple[float, float, float, float]]:
        """On a scanned page, the OCR word boxes (PDF points) inside the passage's matches in the OCR text."""
        textpage = pg.get_textpage()  # type: ignore[attr-defined]
        try:
            scanned = needs_ocr(textpage.get_text_range())
        finally:
            textpage.close()
        if not scanned:
            return []
        import pypdfium2 as pdfium

        stat = path.stat()
        try:
            ocr = _page_ocr(str(path.resolve()), stat.st_mtime_ns, stat.st_size, page)
        except (OcrError, pdfium.PdfiumError) as exc:  # no highlight is better than no page
            logger.warning("no highlight on %s page %d: %s", path.name, page, exc)
            return []
        spans = find_passage(ocr.text, passage)
        rects: list[tuple[float, float, float, float]] = []
        last_end = -2
        for w in ocr.words:
            if not any(w.start < end and start < w.end for start, end in spans):
                continue
            if ocr.text[last_end:w.start] == " " and rects:  # the next word on the same line: one box per line
                l, b, r, t = rects[-1]
                rects[-1] = (min(l, w.box[0]), min(b, w.box[1]), max(r, w.box[2]), max(t, w.box[3]))
            else:
                rects.append(w.box)
            last_end = w.end
        return rects


@functools.lru_cache(maxsize=16)
def _page_ocr(path: str, mtime_ns: int, size: int, page: int) -> OcrPage:
    """One page's OCR; the file's mtime and size in the key, so a changed file is read again."""
    return read_pdf_page(path, page)
