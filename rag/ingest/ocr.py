"""OCR of scanned PDF pages: render a page with pypdfium2, read it with Tesseract (pytesseract).

:class:`PageOcr` reads one page into an :class:`OcrPage`: the page's text, words joined into lines
as Tesseract groups them (a blank line where the page has one, or between Tesseract's blocks), and
for each word its character span in that text and its box in PDF points (the same space as pdfium's text rectangles, so the viewer can highlight a passage
on a page that has no text layer). :meth:`PageOcr.read_pdf` does a whole PDF for the loader: which
pages it reads depends on the :class:`OcrMode`:

* ``auto`` (the default): only pages whose text layer has fewer than :data:`MIN_LETTERS` letters
  (a scanned page, perhaps with a page number or a scanner's stamp such as "Scanned by CamScanner",
  19 letters); a page with one real sentence has more, so mixed PDFs OCR only their image pages.
* ``always``: every page; its OCR text replaces the text layer unless OCR finds nothing.
* ``never``: no OCR (a scanned PDF is then refused; the message names ``--ocr auto``).

Pages stream: each is rendered, read and dropped before the next. A page whose render at the chosen
DPI would exceed :data:`MAX_PIXELS` is rendered at a lower DPI (with a warning), so memory stays
bounded; a blank page (no ink in a quick 72 dpi render, or almost no dark pixels in the full one)
skips Tesseract. The result is deterministic: the
same page gives the same text at ingest and when the viewer highlights it.

Example (needs Tesseract)::

    import pypdfium2 as pdfium
    page = PageOcr().read(pdfium.PdfDocument("scan.pdf")[0])
    print(page.text[:80], page.words[0].box)
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from rag.types import Choice

logger = logging.getLogger(__name__)

DEFAULT_DPI = 300  # a 300 dpi scan's own pixels; 200 dpi: same CER at 8-11 pt, 2x at 6 pt (docs/benchmarks.md)
MIN_DPI, MAX_DPI = 50, 600
MAX_PIXELS = 40_000_000  # a letter page at 600 dpi is 33.7 Mpx; 40 Mpx is 40 MB grey
MIN_LETTERS = 20  # fewer letters in a page's text layer: treat it as scanned (see the module docstring)
PRESCREEN_DPI = 72  # a quick render first: no pixel paler than PALE there means a blank page, no full render
PALE = 230  # at 72 dpi the darkest pixel of even 8 pt text is far below this; a speck of dust may not be
BLANK_INK = 0.0001  # share of dark pixels under which a render is blank (3 characters of 10 pt text)
DARK = 128  # grey levels below this count as ink
TESSERACT_MISSING = ("scanned PDF needs Tesseract for OCR: install it with `sudo apt-get install tesseract-ocr` "
                     "(or `make install`)")


class OcrMode(Choice):
    """Which PDF pages are OCRed: ``always`` every page, ``auto`` those without a text layer, ``never`` none.

    Example:
        >>> OcrMode.parse("auto"), OcrMode.parse("sometimes")
        Traceback (most recent call last):
        ...
        ValueError: ocr mode must be one of always, auto, never; got 'sometimes'
    """

    ALWAYS = "always"
    AUTO = "auto"
    NEVER = "never"


class OcrError(Exception):
    """OCR of a file cannot go on (Tesseract missing, the PDF unreadable); ``str(err)`` is one line."""


@dataclass(frozen=True)
class OcrWord:
    """One word Tesseract read: ``text[start:end]`` of its page, ``box`` in PDF points (left, bottom, right, top)."""

    start: int
    end: int
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class OcrPage:
    """A page's OCR text and its words; ``dpi`` is what it was rendered at (lower than asked for a huge page)."""

    text: str
    words: tuple[OcrWord, ...]
    dpi: float
    blank: bool = False


@dataclass(frozen=True)
class OcrProgress:
    """One page done: page ``page`` (1-based) of ``source``, the ``done``-th of ``total`` pages to OCR there."""

    source: str
    page: int
    done: int
    total: int


@dataclass(frozen=True)
class OcrResult:
    """A PDF's page texts after OCR (``{page: text}``, only pages OCR changed) and its warnings."""

    texts: dict[int, str]
    warnings: tuple[str, ...]


def letters(text: str) -> int:
    """How many letters ``text`` has (digits, punctuation and spaces do not count).

    Example:
        >>> letters("12 -- Scanned by CamScanner")
        19
    """
    return sum(ch.isalpha() for ch in text)


def needs_ocr(text: str) -> bool:
    """Whether a page whose text layer is ``text`` is taken for scanned by ``auto`` (fewer than MIN_LETTERS letters).

    Example:
        >>> needs_ocr("  12 "), needs_ocr("Pumps need priming before they start.")
        (True, False)
    """
    return letters(text) < MIN_LETTERS


class PageOcr:
    """Render PDF pages and read them with Tesseract.

    Args:
        dpi: render resolution (300: why in docs/benchmarks.md, "OCR").
        max_pixels: a page bigger than this at ``dpi`` is rendered smaller, with a warning.
        lang: Tesseract language(s), e.g. ``"eng"`` or ``"eng+deu"`` (their traineddata must be installed).

    Example:
        >>> PageOcr(dpi=10)
        Traceback (most recent call last):
        ...
        ValueError: dpi must be in [50, 600], got 10
    """

    def __init__(self, dpi: float = DEFAULT_DPI, max_pixels: int = MAX_PIXELS, lang: str = "eng") -> None:
        if not isinstance(dpi, (int, float)) or not MIN_DPI <= dpi <= MAX_DPI:
            raise ValueError(f"dpi must be in [{MIN_DPI}, {MAX_DPI}], got {dpi!r}")
        if not isinstance(max_pixels, int) or max_pixels < 1_000_000:
            raise ValueError(f"max_pixels must be an int >= 1000000, got {max_pixels!r}")
        if not lang or not all(part.isidentifier() for part in lang.split("+")):
            raise ValueError(f"lang must be Tesseract language codes joined by '+', e.g. 'eng'; got {lang!r}")
        self.dpi = float(dpi)
        self.max_pixels = max_pixels
        self.lang = lang

    def __repr__(self) -> str:
        return f"PageOcr(dpi={self.dpi:g}, max_pixels={self.max_pixels}, lang={self.lang!r})"

    def page_dpi(self, width_pt: float, height_pt: float) -> float:
        """The DPI a page of this size is rendered at: ``dpi``, or less so it stays under ``max_pixels``.

        Example:
            >>> ocr = PageOcr(dpi=300)
            >>> ocr.page_dpi(612, 792), round(ocr.page_dpi(14400, 14400), 1)
            (300.0, 31.6)
        """
        area = max(width_pt, 1.0) * max(height_pt, 1.0) / 72 ** 2  # square inches
        return min(self.dpi, math.sqrt(self.max_pixels / area))

    def read(self, page: Any) -> OcrPage:
        """OCR one pypdfium2 page; raise :class:`OcrError` when Tesseract is missing or fails."""
        width, height = page.get_size()
        dpi = self.page_dpi(width, height)
        quick = min(dpi, PRESCREEN_DPI)
        low, _high = page.render(scale=quick / 72, grayscale=True).to_pil().convert("L").getextrema()
        if low >= PALE:
            _check_images(page)
            return OcrPage("", (), dpi, blank=True)
        image = page.render(scale=dpi / 72, grayscale=True).to_pil().convert("L")
        if _blank(image):
            _check_images(page)
            return OcrPage("", (), dpi, blank=True)
        data = self._tesseract(image)
        del image
        cropbox = tuple(page.get_cropbox())
        rotation = int(page.get_rotation()) % 360
        return _assemble(data, cropbox, rotation, dpi / 72, dpi)

    def _tesseract(self, image: Any) -> dict[str, list[Any]]:
        try:
            import pytesseract
        except ImportError:
            raise OcrError(TESSERACT_MISSING + "; and `pip install pytesseract`") from None
        from pytesseract.pytesseract import file_to_dict

        try:
            # image_to_data(output_type=DICT) without its `tesseract --version` check: that run reports
            # libcurl's version, whose OpenLDAP init looks up this machine's host name (a DNS query)
            tsv = pytesseract.run_and_get_output(image, "tsv", self.lang, "-c tessedit_create_tsv=1", 0, 0)
            return file_to_dict(tsv, "\t", -1)
        except pytesseract.TesseractNotFoundError:
            raise OcrError(TESSERACT_MISSING) from None
        except pytesseract.TesseractError as exc:
            detail = " ".join(str(exc.message).split())[:200]
            raise OcrError(f"Tesseract failed ({detail}); is its language data installed "
                           f"(`sudo apt-get install tesseract-ocr-{self.lang.split('+')[0]}`)?") from None

    def read_pdf(self, source: str, data: bytes, texts: dict[int, str], mode: OcrMode | str,
                 password: str | None = None, on_page: Callable[[OcrProgress], None] | None = None) -> OcrResult:
        """OCR the pages of the PDF ``data`` that ``mode`` picks, given each page's text layer (``{page: text}``).

        Raises :class:`OcrError` when no page has text afterwards and OCR found none, or OCR cannot run.
        """
        mode = OcrMode.parse(mode)
        if mode == OcrMode.NEVER:
            return OcrResult({}, ())
        targets = sorted(p for p, t in texts.items() if mode == OcrMode.ALWAYS or needs_ocr(t))
        if not targets:
            return OcrResult({}, ())
        import pypdfium2 as pdfium

        try:
            pdf = pdfium.PdfDocument(data, password=password)
        except pdfium.PdfiumError as exc:
            raise OcrError(f"corrupt or unreadable PDF for OCR ({exc})") from None
        out: dict[int, str] = {}
        smaller: list[str] = []
        failed: list[int] = []
        try:
            for done, number in enumerate(targets, start=1):
                got = self._read_number(pdf, number, failed)
                if got is not None:
                    if got.dpi < self.dpi:
                        smaller.append(f"{number} ({got.dpi:.0f} dpi)")
                    layer = texts[number]
                    if got.text.strip() and (mode == OcrMode.ALWAYS or letters(got.text) > letters(layer)):
                        out[number] = got.text
                if on_page is not None:
                    on_page(OcrProgress(source, number, done, len(targets)))
        finally:
            pdf.close()
        warnings = []
        if out:
            warnings.append(f"OCR read {len(out)} page(s)")
        if smaller:
            warnings.append(f"page(s) {', '.join(smaller)} too large for {self.dpi:g} dpi: OCR rendered them "
                            f"smaller to bound memory")
        if failed:
            warnings.append(f"page(s) {', '.join(map(str, failed))} could not be rendered for OCR (a corrupt image?); "
                            "skipped")
        if not any(t.strip() for t in {**texts, **out}.values()):
            if len(failed) == len(targets):
                raise OcrError(f"OCR could not render any of its {len(targets)} page(s) (corrupt images?)")
            unread = f" ({len(failed)} of them unreadable)" if failed else ""
            raise OcrError(f"no text found by OCR on {len(targets)} page(s){unread}")
        for w in warnings[1:]:
            logger.info("%s: %s", source, w)
        return OcrResult(out, tuple(warnings))

    def _read_number(self, pdf: Any, number: int, failed: list[int]) -> OcrPage | None:
        """Page ``number`` (1-based) read, or None (noted in ``failed``) when pdfium cannot load or render it."""
        import pypdfium2 as pdfium

        try:
            page = pdf[number - 1]
        except (pdfium.PdfiumError, IndexError):
            failed.append(number)
            return None
        try:
            return self.read(page)
        except pdfium.PdfiumError as exc:
            logger.info("page %d could not be rendered for OCR: %s", number, exc)
            failed.append(number)
            return None
        finally:
            page.close()


def read_pdf_page(path: str | Path, page: int, ocr: PageOcr | None = None) -> OcrPage:
    """OCR page ``page`` (1-based) of the PDF at ``path`` (the viewer's way to box a passage on a scanned page)."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(path))
    try:
        pg = pdf[page - 1]
        try:
            return (ocr or PageOcr()).read(pg)
        finally:
            pg.close()
    finally:
        pdf.close()


def _check_images(page: Any) -> None:
    """Raise ``PdfiumError`` when an image on ``page`` cannot be decoded: pdfium draws a corrupt image as
    nothing, so a blank render alone would hide it (checked on blank pages only: it decodes every image)."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    for obj in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE]):
        try:
            obj.get_bitmap()
        except pdfium.PdfiumError:
            raise pdfium.PdfiumError("an image on the page cannot be decoded") from None


def _blank(image: Any) -> bool:
    """A grey render with (almost) no ink: fewer than BLANK_INK of its pixels darker than DARK."""
    low, _high = image.getextrema()
    if low >= DARK:
        return True
    dark = sum(image.histogram()[:DARK])
    return dark < BLANK_INK * image.width * image.height


def _assemble(data: dict[str, list[Any]], cropbox: tuple[float, ...], rotation: int, scale: float,
              dpi: float) -> OcrPage:
    """Tesseract's words -> page text (a space between words, a line break between lines, a blank line
    between blocks and before a line set off by a blank line's gap), each word's span and its box in PDF points.

    Tesseract's paragraph numbers are not used: it starts a new paragraph after most lines that end short
    of the margin, so they split sentences that run on to the next line (a text layer does not).
    """
    lines = {_line_key(data, i): (int(data["top"][i]), int(data["height"][i]))
             for i, level in enumerate(data["level"]) if int(level) == 4}
    parts: list[str] = []
    words: list[OcrWord] = []
    at = 0
    last: tuple[int, int, int] | None = None
    for i, word in enumerate(data["text"]):
        word = " ".join(str(word).split())
        if int(data["level"][i]) != 5 or not word:
            continue
        key = _line_key(data, i)
        if last is not None:
            sep = " " if key == last else ("\n\n" if key[0] != last[0] or _blank_line_before(lines, last, key)
                                           else "\n")
            parts.append(sep)
            at += len(sep)
        last = key
        left, top = data["left"][i] / scale, data["top"][i] / scale
        right, bottom = left + data["width"][i] / scale, top + data["height"][i] / scale
        box = _to_pdf_space((left, top, right, bottom), cropbox, rotation)
        words.append(OcrWord(at, at + len(word), (round(box[0], 2), round(box[1], 2), round(box[2], 2),
                                                  round(box[3], 2))))
        parts.append(word)
        at += len(word)
    return OcrPage("".join(parts), tuple(words), dpi)


def _line_key(data: dict[str, list[Any]], i: int) -> tuple[int, int, int]:
    return int(data["block_num"][i]), int(data["par_num"][i]), int(data["line_num"][i])


def _blank_line_before(lines: dict[tuple[int, int, int], tuple[int, int]], prev: tuple[int, int, int],
                       key: tuple[int, int, int]) -> bool:
    """Whether the gap above line ``key`` (pixels between line ``prev``'s bottom and its top) is at least its height.

    Example (single-spaced 11 pt lines at 300 dpi: a 15 px gap; then a blank line's 73 px):
        >>> lines = {(1, 1, 1): (266, 44), (1, 2, 1): (325, 43), (1, 3, 1): (441, 43)}
        >>> _blank_line_before(lines, (1, 1, 1), (1, 2, 1)), _blank_line_before(lines, (1, 2, 1), (1, 3, 1))
        (False, True)
    """
    if prev not in lines or key not in lines:
        return False
    prev_top, prev_height = lines[prev]
    top, height = lines[key]
    return top - (prev_top + prev_height) >= height


def _to_pdf_space(box: tuple[float, float, float, float], cropbox: tuple[float, ...],
                  rotation: int) -> tuple[float, float, float, float]:
    """A box on the page as drawn (points from its top left, turned by ``/Rotate``) -> PDF space
    (left, bottom, right, top): the inverse of :func:`rag.ui.viewer._to_pixels` at scale 1.

    Example:
        >>> _to_pdf_space((72, 80, 172, 92), (0, 0, 612, 792), 0)
        (72, 700, 172, 712)
    """
    x0, y0, x1, y1 = box
    cl, cb, cr, ct = cropbox[:4]
    if rotation == 90:
        return y0 + cl, x0 + cb, y1 + cl, x1 + cb
    if rotation == 180:
        return cr - x1, y0 + cb, cr - x0, y1 + cb
    if rotation == 270:
        return cr - y1, ct - x1, cr - y0, ct - x0
    return x0 + cl, ct - y1, x1 + cl, ct - y0


class OcrProgressBar:
    """A tqdm bar per file while its pages are OCRed (``desc="OCR <file>"``); pass it as ``on_page``."""

    def __init__(self) -> None:
        self._bar: Any = None

    def __call__(self, p: OcrProgress) -> None:
        if self._bar is None or p.done == 1:
            from tqdm.auto import tqdm

            self.close()
            self._bar = tqdm(total=p.total, desc=f"OCR {Path(p.source).name}", unit="page", leave=False)
        self._bar.update(1)
        if p.done >= p.total:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
