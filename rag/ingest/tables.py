"""Tables as Markdown text: every loader that meets a table (PDF, DOCX, HTML, spreadsheets) writes it this way,
so the chunker can recognise one and never cut a row from its header.

Example:
    >>> print(markdown_table(["Item", "Price"], [["Plot fee", "45 €"], ["Hose | 15 m", ""]]))
    | Item | Price |
    | --- | --- |
    | Plot fee | 45 € |
    | Hose \\| 15 m |  |
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Sequence

logger = logging.getLogger(__name__)

_SPACE = re.compile(r"\s+")


def cell_text(value: object) -> str:
    """One cell as a single line: whitespace squashed, pipes escaped (a cell may not break the table)."""
    text = "" if value is None else str(value)
    return _SPACE.sub(" ", text).strip().replace("|", "\\|")


def markdown_table(header: Sequence[object], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table; short rows are padded, so every row has the header's width."""
    width = max([len(header), *(len(r) for r in rows)] or [0])
    if width == 0:
        return ""

    def line(cells: Sequence[object]) -> str:
        padded = [cell_text(c) for c in cells] + [""] * (width - len(cells))
        return "| " + " | ".join(padded) + " |"

    return "\n".join([line(header), "| " + " | ".join(["---"] * width) + " |", *(line(r) for r in rows)])


# -- finding tables in text ---------------------------------------------------------------

_LINE = re.compile(r"[^\n]*")
_SEPARATOR = re.compile(r"\|(?:\s*:?-{3,}:?\s*\|)+\s*")
_PIPE = re.compile(r"\s*(?<!\\)\|\s*")


@dataclass(frozen=True)
class TableBlock:
    """A Markdown table in a text: ``text[start:end]`` holds it; ``rows`` are the ``(start, end)`` of its data
    rows; ``header`` is its header and separator lines, and ``header_start`` where they begin in the text
    (``None`` for rows whose header lies elsewhere: a chunk's :attr:`~rag.types.Chunk.context`)."""

    start: int
    end: int
    header: str
    rows: tuple[tuple[int, int], ...]
    header_start: int | None

    @property
    def header_line(self) -> str:
        """The column names' line, ``| Item | Price |``."""
        return self.header.split("\n", 1)[0]


def table_blocks(text: str, context: str = "") -> list[TableBlock]:
    """The Markdown tables in ``text``: runs of lines starting with ``|`` whose second line is the
    ``| --- |`` separator; with a table header as ``context``, rows at the very start of ``text`` too.

    Example:
        >>> t = "Prices:\\n| Item | Price |\\n| --- | --- |\\n| Fee | 45 |\\nThanks."
        >>> [(t[b.start:b.end], b.header_line, [t[r0:r1] for r0, r1 in b.rows]) for b in table_blocks(t)]
        [('| Item | Price |\\n| --- | --- |\\n| Fee | 45 |', '| Item | Price |', ['| Fee | 45 |'])]
    """
    runs: list[list[tuple[int, int]]] = []
    previous_end = -2
    for m in _LINE.finditer(text):
        line = m.group(0).rstrip("\r")
        if not line.startswith("|"):
            continue
        span = (m.start(), m.start() + len(line))
        if runs and previous_end + 1 == m.start():
            runs[-1].append(span)
        else:
            runs.append([span])
        previous_end = m.end()
    blocks = []
    for run in runs:
        if len(run) >= 2 and _SEPARATOR.fullmatch(text[run[1][0]:run[1][1]]):
            blocks.append(TableBlock(run[0][0], run[-1][1], text[run[0][0]:run[1][1]], tuple(run[2:]), run[0][0]))
        elif context and not text[:run[0][0]].strip():
            header = next((b.header for b in table_blocks(context)), "")
            if header:
                blocks.append(TableBlock(run[0][0], run[-1][1], header, tuple(run), None))
    return blocks


def table_cells(line: str) -> list[str]:
    """The cells of one Markdown table line, unescaped (``| a | b \\| c |`` → ``['a', 'b | c']``)."""
    return [c.replace("\\|", "|") for c in _PIPE.split(line.strip())[1:-1]]


def row_as_text(header_line: str, row: str) -> str:
    """A table row read as a sentence, each value after its column's name and empty cells left out: what
    an embedder and a word-overlap check read better than pipes (table linearisation; Herzig et al., TAPAS,
    ACL 2020, read a row's cells with their column's name).

    Example:
        >>> row_as_text("| Plot | Tenant | Size (m2) |", "| P-57 |  | 107 |")
        'Plot: P-57; Size (m2): 107.'
    """
    names, values = table_cells(header_line), table_cells(row)
    names += [""] * (len(values) - len(names))
    pairs = [f"{name}: {value}" if name else value for name, value in zip(names, values) if value]
    return "; ".join(pairs) + "." if pairs else ""


def plain_table_text(text: str) -> str:
    """``text`` with its Markdown tables' markup removed: separator lines dropped, cells spaced apart
    (what a PDF page shows of a table, for finding it there).

    Example:
        >>> plain_table_text("Prices\\n| Item | Price |\\n| --- | --- |\\n| Hose \\\\| 15 m | 45 |")
        'Prices\\nItem  Price\\nHose | 15 m  45'
    """
    out = []
    for line in text.split("\n"):
        if not line.startswith("|"):
            out.append(line)
        elif not _SEPARATOR.fullmatch(line.rstrip("\r")):
            out.append("  ".join(table_cells(line)))
    return "\n".join(out)


def table_text(rows: Sequence[Sequence[object]]) -> str:
    """A table read from a file as text: a Markdown table with the first row as its header, or, for
    fewer than two rows or columns (a frame, a list or one key-value row drawn as a table), a line of
    text per row, its cells between ``" | "``.
    Rows and columns without any text are dropped.

    Example:
        >>> print(table_text([["Item", None, "Price"], ["Fee", "", "45"], ["", None, ""]]))
        | Item | Price |
        | --- | --- |
        | Fee | 45 |
        >>> table_text([["Pressure", "6 bar"]])
        'Pressure | 6 bar'
    """
    cells = without_empty([["" if c is None else " ".join(str(c).split()) for c in row] for row in rows])
    if len(cells) < 2 or len(cells[0]) < 2:
        return "\n".join(" | ".join(c for c in row if c) for row in cells)
    return markdown_table(cells[0], cells[1:])


def without_empty(rows: Sequence[Sequence[str]]) -> list[list[str]]:
    """``rows`` padded to one width, with the rows and the columns that hold no text dropped.

    Example:
        >>> without_empty([["Item", "", "Price"], [], ["Fee"]])
        [['Item', 'Price'], ['Fee', '']]
    """
    cells = [list(row) for row in rows if any(row)]
    width = max((len(row) for row in cells), default=0)
    cells = [row + [""] * (width - len(row)) for row in cells]
    keep = [j for j in range(width) if any(row[j] for row in cells)]
    return [[row[j] for j in keep] for row in cells]


# -- reading tables from files ------------------------------------------------------------

#: a page is searched for tables only when its rules lie at this many places across and down (2 rows, 2 columns)
MIN_RULES = 3
_THIN = 2.0  # points: a path this thin in one direction is a rule


def pdf_pages_with_tables(data: bytes, pages: Sequence[tuple[int | None, str]], password: str = ""
                          ) -> list[tuple[int | None, str]]:
    """``pages`` (``(number, text)`` as pypdf read them) with each page that holds a ruled table read
    again by pdfplumber: its tables as Markdown tables where they stand, its other text line by line.

    Finding tables costs pdfplumber's layout analysis (slower per page than pypdf's text), so only pages
    that draw enough rules for a table (:func:`_ruled_pages`, with pdfium: milliseconds) are analysed;
    a page whose tables cannot be read keeps its pypdf text.
    """
    import io

    out = list(pages)
    try:
        ruled = _ruled_pages(data, password)
        if not ruled:
            return out
        import pdfplumber

        with pdfplumber.open(io.BytesIO(data), password=password or None, pages=[i + 1 for i in ruled]) as pdf:
            for i, page in zip(ruled, pdf.pages):
                try:
                    text = _pdf_page_text(page)
                except Exception as exc:  # noqa: BLE001 - pdfminer raises many types on odd pages
                    logger.warning("page %d: tables not read (%s: %s); its plain text is kept", i + 1,
                                   type(exc).__name__, exc)
                    continue
                finally:
                    page.close()
                if text is not None and i < len(out):
                    out[i] = (out[i][0], text)
    except Exception as exc:  # noqa: BLE001 - tables are a refinement: the pypdf text stands without them
        logger.warning("tables not read (%s: %s); the plain text is kept", type(exc).__name__, exc)
    return out


def _ruled_pages(data: bytes, password: str) -> list[int]:
    """0-based numbers of the pages whose rules (thin paths, or the sides of rectangles) lie at
    :data:`MIN_RULES` or more heights and as many horizontal positions: a grid of two rows and two
    columns at least. A framed box (code listings: two sides, however many segments) is not one; a
    path of many segments may be a whole grid drawn at once, so it counts."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    try:
        doc = pdfium.PdfDocument(data, password=password or None)
    except Exception as exc:  # noqa: BLE001 - pypdf opened it; pdfium's refusal just means no tables
        logger.debug("pdfium cannot open the PDF (%s); no tables looked for", exc)
        return []
    ruled = []
    try:
        for i in range(len(doc)):
            page = doc[i]
            across: set[int] = set()  # the heights of horizontal rules, to the point
            down: set[int] = set()    # the positions of vertical rules
            for obj in page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_PATH,), max_depth=3):
                left, bottom, right, top = obj.get_bounds()
                w, h = right - left, top - bottom
                if h <= _THIN < w:
                    across.add(round(bottom))
                elif w <= _THIN < h:
                    down.add(round(left))
                elif w > _THIN and h > _THIN:
                    if pdfium_c.FPDFPath_CountSegments(obj.raw) >= 8:
                        ruled.append(i)
                        break
                    across.update((round(bottom), round(top)))
                    down.update((round(left), round(right)))
                if len(across) >= MIN_RULES and len(down) >= MIN_RULES:
                    ruled.append(i)
                    break
            page.close()
    finally:
        doc.close()
    return ruled


def _pdf_page_text(page: Any) -> str | None:
    """A pdfplumber page's text with its tables as Markdown tables in reading order (top to bottom);
    ``None`` when it has no table of two rows and two columns."""
    tables = []
    for table in page.find_tables():
        text = table_text(table.extract())
        if table_blocks(text):
            tables.append((table.bbox, text))
    if not tables:
        return None

    def outside(obj: dict[str, Any]) -> bool:
        x, y = (obj["x0"] + obj["x1"]) / 2, (obj["top"] + obj["bottom"]) / 2
        return not any(x0 <= x <= x1 and top <= y <= bottom for (x0, top, x1, bottom), _ in tables)

    items = [(line["top"], False, line["text"]) for line in page.filter(outside).extract_text_lines(return_chars=False)]
    items += [(bbox[1], True, text) for bbox, text in tables]
    parts: list[str] = []
    for _top, is_table, text in sorted(items, key=lambda item: item[0]):
        # a blank line around a table: the chunker and the splitter see it as a block of its own
        parts.append(f"\n{text}\n" if is_table else text)
    return "\n".join(parts).strip("\n")


def docx_blocks(document: Any) -> list[str]:
    """A python-docx document's paragraphs and tables in document order, each table as
    :func:`table_text` (its first row the header). A merged cell's text is repeated in every row
    and column it spans (python-docx gives each grid cell the merged cell), so a row read alone,
    as a chunk of rows is, still says everything about it."""
    from docx.oxml.ns import qn
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    parts = []
    for child in document.element.body.iterchildren():
        if child.tag == qn("w:p"):
            text = Paragraph(child, document).text
        elif child.tag == qn("w:tbl"):
            text = table_text([[cell.text for cell in row.cells] for row in Table(child, document).rows])
        else:
            continue
        if text.strip():
            parts.append(text)
    return parts


def replace_html_tables(soup: Any) -> None:
    """Replace each ``<table>`` of a BeautifulSoup tree, innermost first, by its :func:`table_text`
    between blank lines. The header is the ``<thead>``'s row, else the first row of ``<th>`` cells,
    else the first row; a cell spanning rows or columns is repeated in each (as for DOCX)."""
    for table in reversed(soup.find_all("table")):
        rows = [tr for tr in table.find_all("tr") if tr.find_parent("table") is table]
        head = next((tr for tr in rows if tr.find_parent("thead") is not None), None) or next(
            (tr for tr in rows if tr.find_all(["td", "th"], recursive=False)
             and all(c.name == "th" for c in tr.find_all(["td", "th"], recursive=False))), None)
        if head is not None:
            rows.remove(head)
            rows.insert(0, head)
        text = table_text(_html_grid(rows))
        table.replace_with(f"\n\n{text}\n\n" if text else "")


def _html_grid(rows: Sequence[Any]) -> list[list[str]]:
    """The cell texts of ``<tr>`` elements, ``rowspan``/``colspan`` cells repeated where they reach."""
    grid: list[list[str]] = []
    below: dict[int, tuple[int, str]] = {}  # column -> (rows still spanned, text)
    for tr in rows:
        row: list[str] = []
        cells = list(tr.find_all(["td", "th"], recursive=False))
        while cells or any(col >= len(row) for col in below):
            col = len(row)
            if col in below:
                left, text = below[col]
                row.append(text)
                below[col] = (left - 1, text)
                if left <= 1:
                    del below[col]
                continue
            if not cells:
                row.append("")
                continue
            cell = cells.pop(0)
            text = cell.get_text(" ", strip=True)
            span, down = _span(cell.get("colspan")), _span(cell.get("rowspan"))
            for k in range(span):
                row.append(text)
                if down > 1:
                    below[col + k] = (down - 1, text)
        grid.append(row)
    return grid


def _span(value: object) -> int:
    try:
        return max(1, min(int(str(value)), 100))  # a span beyond 100 is a broken page, not a table
    except (TypeError, ValueError):
        return 1
