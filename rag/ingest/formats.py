"""Readers for office, e-book and mail formats: ``.pptx``, ``.xlsx``, ``.csv``, ``.epub`` and ``.eml``.

Each reader has the :class:`~rag.ingest.loaders.DocumentLoader` reader contract,
``(path, bytes) -> ([(page, text)], title, warnings)``, and raises
:class:`~rag.ingest.loaders.LoadError` with one line naming the format for every problem
("corrupt or unreadable .xlsx (BadZipFile: ...)"), never a traceback.

* ``.pptx``: a page per slide (1-based): its title as a heading, text boxes, tables as
  Markdown tables, then a "Notes:" line with the speaker notes. Title: the core title, else the
  first slide's.
* ``.xlsx``: a page per worksheet (1-based), headed "## Sheet: NAME", the sheet as a Markdown
  table whose first column "Row" is the spreadsheet row number; formulas give their cached values.
* ``.csv``: one document, the same table (the delimiter is sniffed; "Row" is the record number).
* ``.epub``: a page per chapter in reading (spine) order, each read like an HTML file. Title: the
  OPF's ``dc:title``. A DRM-protected book is refused.
* ``.eml``: one document: From, To, Cc, Date and Subject, then the body (plain text preferred, else
  the HTML part read like an HTML file); attachments are listed by name, not read. Title: the subject.

Tables skip empty rows and columns and keep at most :data:`MAX_TABLE_ROWS` rows and
:data:`MAX_TABLE_COLUMNS` columns (a warning says what was left out). Zip-based formats are
refused when their members would unpack to over :data:`MAX_UNZIPPED_MB` (checked in bounded reads, so a
member that lies about its size fails its CRC check instead), and an EPUB chapter over
:data:`MAX_EPUB_MEMBER_MB` is skipped, so a zip bomb is never decompressed in full.

Example:
    >>> import tempfile
    >>> from rag.ingest.loaders import DocumentLoader
    >>> p = Path(tempfile.mkdtemp()) / "fees.csv"
    >>> _ = p.write_text("item;fee\\nplot;45\\nhose;3\\n", encoding="utf-8")
    >>> print(DocumentLoader().load(p).documents[0].text)
    | Row | item | fee |
    | --- | --- | --- |
    | 2 | plot | 45 |
    | 3 | hose | 3 |
"""

from __future__ import annotations

import io
import logging
import posixpath
import zipfile
import zlib
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence
from urllib.parse import unquote
from xml.etree import ElementTree

from rag.fs import error_line
from rag.ingest.loaders import LoadError, corrupt, decode_text
from rag.ingest.tables import markdown_table, table_text, without_empty
from rag.text import clip

logger = logging.getLogger(__name__)

Pages = list[tuple[int | None, str]]
ReaderResult = tuple[Pages, str, list[str]]
Reader = Callable[[Path, bytes], ReaderResult]

MAX_TABLE_ROWS = 10_000    # rows of one sheet or CSV file indexed (a row is a sentence or two of text)
MAX_TABLE_COLUMNS = 100
MAX_UNZIPPED_MB = 1024     # all members of a .pptx/.xlsx/.epub together, as declared in the zip directory
MAX_EPUB_MEMBER_MB = 64    # one XHTML chapter
CSV_SNIFF_CHARS = 64 * 1024

_XML_NS = {
    "container": "urn:oasis:names:tc:opendocument:xmlns:container",
    "opf": "http://www.idpf.org/2007/opf",
    "dc": "http://purl.org/dc/elements/1.1/",
    "enc": "http://www.w3.org/2001/04/xmlenc#",
}
# font obfuscation (IDPF, Adobe) is listed in encryption.xml too, but leaves the text readable
_FONT_OBFUSCATION = {"http://www.idpf.org/2008/embedding", "http://ns.adobe.com/pdf/enc#RC"}
_HTML_TYPES = {"application/xhtml+xml", "text/html"}
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


# -- shared pieces -----------------------------------------------------------------------


def open_zip(path: Path, data: bytes, ext: str) -> zipfile.ZipFile:
    """``data`` as a zip whose members are safe to unpack, else :class:`LoadError`.

    Refused: a corrupt zip, an OLE file (a password-protected or old-format Office file), members
    that declare more than :data:`MAX_UNZIPPED_MB` together or use a compression other than
    stored/deflated. Every member is then inflated once in bounded reads: zipfile stops a member
    at its declared size and fails its CRC check if it lied, so a zip bomb never unpacks in full.
    """
    if data.startswith(_OLE_MAGIC):
        raise LoadError(path, f"not a {ext} zip but an OLE file (password-protected, or an older Office format "
                              f"renamed); save it unprotected as {ext}")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
        total = sum(info.file_size for info in infos)
        if total > MAX_UNZIPPED_MB * 1024 * 1024:
            raise LoadError(path, f"{ext} unpacks to {total / 1048576:,.0f} MB, over the {MAX_UNZIPPED_MB} MB "
                                  "limit (a zip bomb?); not read")
        odd = [i.filename for i in infos if i.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)]
        if odd:
            raise LoadError(path, f"{ext} member {odd[0]!r} uses an unusual compression method; not read")
        for info in infos:
            with zf.open(info) as member:
                while member.read(1 << 20):
                    pass
    except LoadError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, RuntimeError,
            NotImplementedError, zlib.error) as exc:  # RuntimeError: an encrypted member
        raise corrupt(path, ext, exc) from None
    return zf


def cell_str(value: object) -> str:
    """A cell value as text: dates without a midnight time, whole floats without ``.0``.

    Example:
        >>> cell_str(datetime(2024, 5, 1)), cell_str(45.0), cell_str(None), cell_str(" 6 bar ")
        ('2024-05-01', '45', '', '6 bar')
    """
    if value is None:
        return ""
    if isinstance(value, datetime) and value.time() == time(0):
        return value.date().isoformat()
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def row_table(rows: Iterable[tuple[int, Sequence[object]]], name: str) -> tuple[str, list[str]]:
    """``(markdown table, warnings)`` of numbered rows: a "Row" column with each row's number, the first
    non-empty row as the header; empty rows and columns skipped; stops reading after
    :data:`MAX_TABLE_ROWS` rows. ``name`` says where, in warnings.

    Example:
        >>> print(row_table([(1, ["part", None, "hours"]), (2, []), (3, ["seal", None, 500])], "s")[0])
        | Row | part | hours |
        | --- | --- | --- |
        | 3 | seal | 500 |
    """
    kept: list[tuple[int, list[str]]] = []
    warnings: list[str] = []
    too_wide = False
    for number, cells in rows:
        texts = [cell_str(c) for c in cells]
        too_wide = too_wide or any(texts[MAX_TABLE_COLUMNS:])
        texts = texts[:MAX_TABLE_COLUMNS]
        if not any(texts):
            continue
        if len(kept) > MAX_TABLE_ROWS:  # the header plus MAX_TABLE_ROWS rows
            warnings.append(f"{name}: over {MAX_TABLE_ROWS:,} rows; rows from {number} on are not indexed")
            break
        kept.append((number, texts))
    if too_wide:
        warnings.append(f"{name}: over {MAX_TABLE_COLUMNS} columns; only the first {MAX_TABLE_COLUMNS} are indexed")
    if not kept:
        return "", warnings
    grid = without_empty([texts for _, texts in kept])  # no kept row is empty: one grid row each
    rows = [[str(n), *cells] for (n, _), cells in zip(kept[1:], grid[1:])]
    return markdown_table(["Row", *grid[0]], rows), warnings


# -- .pptx -------------------------------------------------------------------------------


def read_pptx(path: Path, data: bytes) -> ReaderResult:
    """A page per slide: title, text boxes, tables, then "Notes:" (see the module docstring)."""
    from pptx import Presentation

    open_zip(path, data, ".pptx").close()
    try:
        prs = Presentation(io.BytesIO(data))
        pages: Pages = [(number, _slide_text(slide)) for number, slide in enumerate(prs.slides, start=1)]
        title = (prs.core_properties.title or "").strip() or _first_slide_title(prs)
    except Exception as exc:  # noqa: BLE001 - python-pptx raises zip, XML and package errors alike
        raise corrupt(path, ".pptx", exc) from None
    return pages, title, []


def _slide_title(slide: Any) -> str:
    shape = slide.shapes.title
    return " ".join(shape.text_frame.text.split()) if shape is not None and shape.has_text_frame else ""


def _first_slide_title(prs: Any) -> str:
    return next((t for t in (_slide_title(s) for s in prs.slides) if t), "")


def _slide_text(slide: Any) -> str:
    title, title_shape = _slide_title(slide), slide.shapes.title
    parts = [f"## {title}"] if title else []
    skip = title_shape.shape_id if title_shape is not None else None
    parts += [t for t in _shape_texts(slide.shapes, skip) if t.strip()]
    if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
        notes = slide.notes_slide.notes_text_frame.text.replace("\v", "\n").strip()
        if notes:
            parts.append(f"Notes: {notes}")
    return "\n\n".join(parts)


def _shape_texts(shapes: Iterable[Any], skip: int | None) -> Iterable[str]:
    """Text of each shape in z-order; groups are opened, tables become Markdown tables."""
    from pptx.shapes.group import GroupShape

    for shape in shapes:
        if shape.shape_id == skip:
            continue
        if isinstance(shape, GroupShape):
            yield from _shape_texts(shape.shapes, skip)
        elif getattr(shape, "has_table", False):
            yield table_text([[cell.text for cell in row.cells] for row in shape.table.rows])
        elif shape.has_text_frame:
            yield shape.text_frame.text.replace("\v", "\n").strip()


# -- .xlsx -------------------------------------------------------------------------------


def read_xlsx(path: Path, data: bytes) -> ReaderResult:
    """A page per worksheet, streamed in read-only mode (see the module docstring)."""
    import openpyxl

    open_zip(path, data, ".xlsx").close()
    try:
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises zip, XML and its own errors alike
        raise corrupt(path, ".xlsx", exc) from None
    pages: Pages = []
    warnings: list[str] = []
    try:
        for number, ws in enumerate(wb.worksheets, start=1):
            ws.reset_dimensions()  # a file's declared size can be wrong; read the rows it really has
            table, notes = row_table(enumerate(ws.iter_rows(min_row=1, values_only=True), start=1),
                                     f"sheet {ws.title!r}")
            warnings += notes
            pages.append((number, f"## Sheet: {ws.title}\n\n{table}" if table else ""))
        title = (wb.properties.title or "").strip()
    except Exception as exc:  # noqa: BLE001 - a damaged sheet fails while streaming, in any of several ways
        raise corrupt(path, ".xlsx", exc) from None
    finally:
        wb.close()
    return pages, title, warnings


# -- .csv --------------------------------------------------------------------------------


def read_csv(path: Path, data: bytes, *, encoding_fallback: str | None) -> ReaderResult:
    """One document: the file as a table with a "Row" column (see the module docstring)."""
    import csv

    text, warnings = decode_text(data, path, encoding_fallback)
    sample = text[:CSV_SNIFF_CHARS]
    try:
        dialect: Any = csv.Sniffer().sniff(sample.rsplit("\n", 1)[0] if "\n" in sample else sample,
                                           delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel  # one column, or too little to tell: commas
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    try:
        table, notes = row_table(enumerate(reader, start=1), "csv")
    except csv.Error as exc:
        raise LoadError(path, f"unreadable .csv at line {reader.line_num} ({clip(error_line(exc), 200)})") from None
    return [(None, table)], "", warnings + notes


# -- .epub -------------------------------------------------------------------------------


def read_epub(path: Path, data: bytes, *, html_reader: Reader) -> ReaderResult:
    """A page per spine item, each read by ``html_reader`` (the loader's HTML reader)."""
    with open_zip(path, data, ".epub") as zf:
        try:
            book = _EpubBook(zf, path)
            spine = book.spine()
        except (ElementTree.ParseError, KeyError, ValueError, zipfile.BadZipFile, OSError) as exc:
            raise corrupt(path, ".epub", exc) from None
        book.refuse_drm(spine)
        pages: Pages = []
        warnings: list[str] = []
        for number, member in enumerate(spine, start=1):
            text, notes = book.chapter(member, html_reader)
            pages.append((number, text))
            warnings += notes
        return pages, book.title(), warnings


class _EpubBook:
    """One EPUB's container, package (OPF) and chapters."""

    def __init__(self, zf: zipfile.ZipFile, path: Path) -> None:
        self.zf = zf
        self.path = path
        if "META-INF/container.xml" not in zf.namelist():
            raise LoadError(path, "not an EPUB (no META-INF/container.xml); the file is corrupt or misnamed")
        container = self._xml("META-INF/container.xml")
        rootfile = container.find(".//container:rootfile", _XML_NS)
        if rootfile is None or not rootfile.get("full-path"):
            raise LoadError(path, "not an EPUB (its container.xml names no package file)")
        self.opf_path = rootfile.get("full-path", "")
        self.opf = self._xml(self.opf_path)

    def _xml(self, member: str) -> ElementTree.Element:
        return ElementTree.fromstring(self._read(member, MAX_EPUB_MEMBER_MB))

    def _read(self, member: str, cap_mb: float) -> bytes:
        if self.zf.getinfo(member).file_size > cap_mb * 1024 * 1024:
            raise ValueError(f"{member} unpacks to over {cap_mb:g} MB")
        return self.zf.read(member)

    def title(self) -> str:
        node = self.opf.find(".//dc:title", _XML_NS)
        return " ".join((node.text or "").split()) if node is not None else ""

    def spine(self) -> list[str]:
        """Zip member names of the spine's (X)HTML items, in reading order."""
        base = posixpath.dirname(self.opf_path)
        items = {i.get("id"): i for i in self.opf.iterfind(".//opf:manifest/opf:item", _XML_NS)}
        members = []
        for ref in self.opf.iterfind(".//opf:spine/opf:itemref", _XML_NS):
            item = items.get(ref.get("idref"))
            if item is not None and item.get("media-type") in _HTML_TYPES and item.get("href"):
                href = unquote(item.get("href", "").split("#", 1)[0])
                members.append(posixpath.normpath(posixpath.join(base, href)))
        return members

    def refuse_drm(self, spine: list[str]) -> None:
        """Raise :class:`LoadError` when ``META-INF/encryption.xml`` encrypts a chapter (DRM), not just fonts."""
        if "META-INF/encryption.xml" not in self.zf.namelist():
            return
        drm = LoadError(self.path, "DRM-protected EPUB (its chapters are encrypted); "
                                   "only DRM-free books can be indexed")
        try:
            enc = self._xml("META-INF/encryption.xml")
        except (ElementTree.ParseError, ValueError):
            raise drm from None  # an encryption list we cannot read: assume the worst
        encrypted = set()
        for node in enc.iterfind(".//enc:EncryptedData", _XML_NS):
            method = node.find("enc:EncryptionMethod", _XML_NS)
            ref = node.find(".//enc:CipherReference", _XML_NS)
            if ref is not None and (method is None or method.get("Algorithm") not in _FONT_OBFUSCATION):
                encrypted.add(posixpath.normpath(unquote(ref.get("URI", ""))))
        if encrypted & set(spine):
            raise drm

    def chapter(self, member: str, html_reader: Reader) -> tuple[str, list[str]]:
        """``(text, warnings)`` of one chapter; a missing or oversized one is a warning, not a failure."""
        try:
            raw = self._read(member, MAX_EPUB_MEMBER_MB)
        except KeyError:
            return "", [f"chapter {member} is missing from the book; skipped"]
        except ValueError as exc:
            return "", [f"chapter {exc}; skipped"]
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise corrupt(self.path, ".epub", exc) from None
        try:
            pages, _, notes = html_reader(self.path, raw)
        except LoadError as exc:
            return "", [f"chapter {member}: {exc.reason}; skipped"]
        return "\n\n".join(text for _, text in pages), [f"chapter {member}: {n}" for n in notes]


# -- .eml --------------------------------------------------------------------------------

_EMAIL_HEADERS = ("From", "To", "Cc", "Date", "Subject")


def read_eml(path: Path, data: bytes, *, html_reader: Reader) -> ReaderResult:
    """One document: the header block, then the body; attachments listed, not read."""
    import email
    import email.policy

    try:
        msg = email.message_from_bytes(data, policy=email.policy.default)
        headers = [(name, " ".join(str(msg[name]).split())) for name in _EMAIL_HEADERS if msg[name] is not None]
        if not any(name in ("From", "To", "Subject", "Date") for name, _ in headers):
            raise LoadError(path, "not an email message (no From, To, Date or Subject header); "
                                  "the file is corrupt or misnamed")
        body, warnings = _email_body(msg, path, html_reader)
        attachments = [" ".join((part.get_filename() or part.get_content_type()).split())
                       for part in msg.iter_attachments()]
    except LoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - malformed headers and MIME structure fail in the policy's parsers
        raise corrupt(path, ".eml", exc) from None
    parts = ["\n".join(f"{name}: {value}" for name, value in headers)]
    if body.strip():
        parts.append(body.strip())
    if attachments:
        listed = ", ".join(attachments)
        parts.append(f"Attachments (not indexed): {listed}")
        warnings.append(f"{len(attachments)} attachment(s) not indexed ({clip(listed, 200)}); "
                        "save them as files to index them")
    subject = dict(headers).get("Subject", "")
    return [(None, "\n\n".join(parts))], subject, warnings


def _email_body(msg: Any, path: Path, html_reader: Reader) -> tuple[str, list[str]]:
    """The text/plain body, else the text/html one read like an HTML file; ``("", [])`` when there is none."""
    part = msg.get_body(preferencelist=("plain", "html"))
    if part is None:
        return "", []
    warnings: list[str] = []
    try:
        content = part.get_content()
    except (LookupError, UnicodeError) as exc:  # an unknown or wrong charset
        content = (part.get_payload(decode=True) or b"").decode("utf-8", errors="replace")
        warnings.append(f"body charset unreadable ({type(exc).__name__}); decoded as UTF-8")
    if part.get_content_type() != "text/html":
        return str(content), warnings
    try:
        pages, _, notes = html_reader(path, str(content).encode("utf-8"))
    except LoadError as exc:
        return "", warnings + [f"HTML body: {exc.reason}"]
    return "\n\n".join(text for _, text in pages), warnings + notes
