"""Ingestion stage 1: turn files into :class:`~rag.types.Document` records.

Supported: ``.txt``, ``.md``/``.markdown``, ``.pdf`` (pypdf, one Document per page,
1-based page numbers; encrypted ones with ``pdf_password``), ``.html``/``.htm`` (text only; scripts and styles dropped) and
``.docx`` (python-docx; paragraphs and tables); ``.pptx`` (a page per slide), ``.xlsx`` (a page per sheet),
``.csv``, ``.epub`` (a page per chapter) and ``.eml`` are read by :mod:`rag.ingest.formats`. Tables (ruled
ones in a PDF) become Markdown tables where they stand (:mod:`rag.ingest.tables`).

Every problem with a file raises :class:`LoadError` carrying the path and a one-line,
actionable reason, so a batch ingest can list it and carry on.

Walking a folder (:func:`scan_files`) never leaves it: a symlink, to a file or a folder, is
followed only when its target resolves inside the folder being ingested; one that points
outside, dangles or loops is *skipped* with a one-line reason, and so are files of
unsupported types. Symlinked folders inside the folder are followed, but every real folder
and file is visited once, so links add no duplicates and cannot loop. Hidden entries
(``.name``) are ignored.

Example:
    >>> from pathlib import Path
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "note.txt"
    >>> _ = p.write_text("Pumps need priming before start.", encoding="utf-8")
    >>> [d.text for d in DocumentLoader().load(p).documents]
    ['Pumps need priming before start.']
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator

from rag.fs import error_line
from rag.ingest.ocr import OcrError, OcrMode, OcrProgress, PageOcr
from rag.ingest.tables import docx_blocks, pdf_pages_with_tables, replace_html_tables
from rag.text import clip
from rag.types import Document, content_hash

logger = logging.getLogger(__name__)

SUPPORTED_EXTENSIONS: tuple[str, ...] = (".txt", ".md", ".markdown", ".pdf", ".html", ".htm", ".docx",
                                         ".pptx", ".xlsx", ".csv", ".epub", ".eml")
DEFAULT_MAX_FILE_MB = 100.0


class LoadError(Exception):
    """A file that could not be loaded; ``str(err)`` is a one-line reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class LoadedFile:
    """All documents (pages) of one file plus the hash of its bytes."""

    source: str
    doc_id: str
    file_hash: str
    documents: tuple[Document, ...]
    warnings: tuple[str, ...] = field(default_factory=tuple)


def corrupt(path: Path, ext: str, exc: BaseException) -> LoadError:
    """The one error for a file its library cannot read: "corrupt or unreadable .xlsx (BadZipFile: ...)"."""
    return LoadError(path, f"corrupt or unreadable {ext} ({type(exc).__name__}: {clip(error_line(exc), 200)})")


def doc_id_for(source: str) -> str:
    """Stable document id: a hash of the (resolved) source path."""
    return content_hash("doc", source)


# -- finding files ---------------------------------------------------------------------


@dataclass(frozen=True)
class FileScan:
    """The files found under a folder; ``(path, reason)`` for each entry skipped, and for
    each folder that could not be read (``errors``: its files may be missing, a failure)."""

    files: tuple[Path, ...]
    skipped: tuple[tuple[str, str], ...] = ()
    errors: tuple[tuple[str, str], ...] = ()


def scan_files(root: str | Path) -> FileScan:
    """Find the loadable files under ``root`` without leaving it (see the module docstring).

    A file named directly (or a symlink to one) is returned as is, whatever its type:
    the caller asked for it, so the loader reports any problem with it as an error.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> _ = (d / "a.md").write_text("x", encoding="utf-8")
        >>> _ = (d / "photo.jpg").write_bytes(b"jpeg")
        >>> scan = scan_files(d)
        >>> [p.name for p in scan.files], [(Path(p).name, r) for p, r in scan.skipped]
        (['a.md'], [('photo.jpg', "unsupported file type '.jpg'")])
    """
    root = Path(root)
    if not root.is_dir():
        return FileScan((root,))
    return _FolderScan(root).run()


def iter_files(root: Path) -> Iterator[Path]:
    """Yield the files :func:`scan_files` finds under ``root``; skipped entries are logged."""
    scan = scan_files(root)
    for path, reason in scan.skipped:
        logger.info("skipped %s: %s", path, reason)
    for path, reason in scan.errors:
        logger.error("%s: %s", path, reason)
    yield from scan.files


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


class _FolderScan:
    """One walk of a folder: real entries first (sorted, depth first), then the symlinks found."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.real_root = Path(os.path.realpath(root))
        self.files: list[Path] = []
        self.skipped: list[tuple[str, str]] = []
        self.errors: list[tuple[str, str]] = []
        self._seen: set[Path] = set()              # real paths of the folders walked and files kept
        self._links: list[tuple[Path, Path]] = []  # (symlink, real path of the folder holding it)

    def run(self) -> FileScan:
        self._walk(self.root, self.real_root)
        while self._links:
            self._follow(*self._links.pop(0))
        return FileScan(tuple(self.files), tuple(self.skipped), tuple(self.errors))

    def _skip(self, path: Path, reason: str) -> None:
        logger.debug("skipping %s: %s", path, reason)
        self.skipped.append((str(path), reason))

    def _walk(self, folder: Path, real: Path) -> None:
        self._seen.add(real)
        try:
            with os.scandir(folder) as it:
                entries = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
        except OSError as exc:
            self.errors.append((str(folder), f"cannot list the folder: {exc.strerror or exc}; "
                                             "check its permissions"))
            return
        for entry in entries:
            path = folder / entry.name
            if entry.is_symlink():
                self._links.append((path, real))
            elif entry.is_dir(follow_symlinks=False):
                if real / entry.name not in self._seen:
                    self._walk(path, real / entry.name)
            else:
                self._file(path, real / entry.name, entry.is_file(follow_symlinks=False))

    def _file(self, path: Path, real: Path, regular: bool) -> None:
        if real in self._seen:
            return
        if not regular:
            self._skip(path, "not a regular file (a device, socket or pipe)")
            return
        ext = path.suffix.lower()
        if ext not in SUPPORTED_EXTENSIONS:
            self._skip(path, f"unsupported file type {ext or '(no extension)'!r}")
            return
        self._seen.add(real)
        self.files.append(path)

    def _follow(self, link: Path, holder: Path) -> None:
        try:
            target = Path(os.path.realpath(link, strict=True))
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                self._skip(link, "symlink loop (the link leads back to itself); fix or remove the link")
            else:
                self._skip(link, "broken symlink (its target does not exist); fix or remove the link")
            return
        if not _is_within(target, self.real_root):
            self._skip(link, f"symlink to {target}, outside the folder {self.real_root}; not followed "
                             "(ingest the target directly if you mean to)")
        elif not target.is_dir():
            self._file(link, target, target.is_file())
        elif _is_within(holder, target):
            self._skip(link, f"symlink loop (points to {target}, which contains the link); not followed")
        elif target not in self._seen:
            self._walk(link, target)


# -- decoding text ---------------------------------------------------------------------

_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 12, 13))
_NOT_CONTROL_BYTES = bytes(b for b in range(256) if b not in _CONTROL_BYTES)
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f]")
_BOMS = ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
         (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))  # UTF-32 first: its LE BOM starts like UTF-16's


def _binary_reason(data: bytes) -> str | None:
    """Why ``data`` is not text (a NUL anywhere, or over 10% control bytes), else ``None``.

    Example:
        >>> _binary_reason(b"words " * 2000 + b"\\x00"), _binary_reason(b"plain text")
        ('NUL byte at offset 12000', None)
    """
    nul = data.find(b"\x00")
    if nul >= 0:
        return f"NUL byte at offset {nul}"
    control = len(data.translate(None, _NOT_CONTROL_BYTES))
    if data and control / len(data) > 0.10:
        return f"{control} control bytes in {len(data)}"
    return None


def _plausible_text(text: str) -> bool:
    return "\x00" not in text and len(_CONTROL_CHARS.findall(text)) <= 0.10 * max(len(text), 1)


def _utf16_without_bom(data: bytes) -> str | None:
    """The codec of BOM-less UTF-16 text, judged by where its zero bytes fall, else ``None``.

    Text in Latin scripts has a zero high byte in nearly every code unit, so its zeros crowd
    one byte position and almost never fall on the other; binaries spread them out.

    Example:
        >>> _utf16_without_bom("Pumps need priming.".encode("utf-16-be"))
        'utf-16-be'
        >>> _utf16_without_bom(b"plain ascii!") is None
        True
    """
    if len(data) < 4 or len(data) % 2:
        return None
    units = len(data) // 2
    even, odd = data[0::2].count(0), data[1::2].count(0)
    for codec, high, low in (("utf-16-le", odd, even), ("utf-16-be", even, odd)):
        if high >= 0.3 * units and low <= 0.02 * units:
            try:
                text = data.decode(codec)
            except UnicodeDecodeError:
                return None
            return codec if _plausible_text(text) else None
    return None


def decode_text(data: bytes, path: Path, fallback: str | None) -> tuple[str, list[str]]:
    """Decode bytes as text; return ``(text, warnings)`` or raise :class:`LoadError`.

    In order: a UTF-32/UTF-16 byte-order mark; UTF-16 without one (with a warning); then a
    NUL byte anywhere, or over 10% control bytes, means binary; then UTF-8 (BOM-aware),
    else ``fallback`` (with a warning).

    Example:
        >>> decode_text("Über".encode("utf-16-le"), Path("x.txt"), None)
        ('Über', ['no byte-order mark; decoded as UTF-16-LE'])
    """
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return _decode_marked(data, codec, path), []
    codec = _utf16_without_bom(data)
    if codec:
        return data.decode(codec), [f"no byte-order mark; decoded as {codec.upper()}"]
    reason = _binary_reason(data)
    if reason:
        raise LoadError(path, f"looks like a binary file ({reason}), not text; "
                              "remove it or give it the right extension")
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        if not fallback:
            raise LoadError(path, f"not valid UTF-8 (byte {exc.start}); re-save it as UTF-8") from None
        text = data.decode(fallback, errors="replace")
        return text, [f"not valid UTF-8 (byte {exc.start}); decoded as {fallback}"]


def _decode_marked(data: bytes, codec: str, path: Path) -> str:
    """Decode text that starts with ``codec``'s byte-order mark; refuse binaries behind one."""
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        raise LoadError(path, f"starts with a {codec.upper()} byte-order mark but is not valid "
                              f"{codec.upper()} (byte {exc.start}); re-save it as UTF-8") from None
    if not _plausible_text(text):
        raise LoadError(path, "looks like a binary file (NUL or control characters), not text; "
                              "remove it or give it the right extension")
    return text


# -- loading ---------------------------------------------------------------------------


def _title_from_markdown(text: str) -> str:
    m = re.search(r"^\s{0,3}#\s+(.+?)\s*#*\s*$", text, flags=re.MULTILINE)
    return m.group(1).strip() if m else ""


class DocumentLoader:
    """Load one file into documents.

    Args:
        max_file_mb: files larger than this are refused with a clear error.
        encoding_fallback: codec for text files that are not UTF-8 (``None`` makes
            them an error instead); the fallback is reported as a warning.
        pdf_password: opens encrypted PDFs (those with only an owner password open without
            one). Kept in memory only: never logged, shown in ``repr`` or written anywhere.
        ocr: which PDF pages are OCRed (:class:`~rag.ingest.ocr.OcrMode`: ``auto`` those without
            a text layer, ``always``, ``never``); needs Tesseract only when a page is OCRed.
        on_ocr_page: called after each page OCRed (an :class:`~rag.ingest.ocr.OcrProgress`).

    Example:
        >>> DocumentLoader(max_file_mb=0)
        Traceback (most recent call last):
        ...
        ValueError: max_file_mb must be > 0, got 0
    """

    def __init__(self, max_file_mb: float = DEFAULT_MAX_FILE_MB,
                 encoding_fallback: str | None = "cp1252", pdf_password: str | None = None,
                 ocr: OcrMode | str = OcrMode.AUTO, on_ocr_page: Callable[[OcrProgress], None] | None = None) -> None:
        if not max_file_mb > 0:
            raise ValueError(f"max_file_mb must be > 0, got {max_file_mb}")
        if encoding_fallback is not None:
            import codecs
            try:
                codecs.lookup(encoding_fallback)
            except LookupError:
                raise ValueError(f"unknown encoding_fallback {encoding_fallback!r}; "
                                 "use a Python codec name such as 'cp1252' or None") from None
        self.max_file_mb = max_file_mb
        self.encoding_fallback = encoding_fallback
        self._pdf_password = pdf_password or None
        self.ocr = OcrMode.parse(ocr)
        self._on_ocr_page = on_ocr_page
        from rag.ingest import formats  # not at the top: formats imports LoadError and decode_text from here

        self._readers: dict[str, Callable[[Path, bytes], tuple[list[tuple[int | None, str]], str, list[str]]]] = {
            ".txt": self._read_text, ".md": self._read_markdown, ".markdown": self._read_markdown,
            ".pdf": self._read_pdf, ".html": self._read_html, ".htm": self._read_html,
            ".docx": self._read_docx,
            ".pptx": formats.read_pptx, ".xlsx": formats.read_xlsx,
            ".csv": partial(formats.read_csv, encoding_fallback=encoding_fallback),
            ".epub": partial(formats.read_epub, html_reader=self._read_html),
            ".eml": partial(formats.read_eml, html_reader=self._read_html),
        }

    def load(self, path: str | Path, unless_hash: str | None = None) -> LoadedFile | None:
        """Load ``path``; raise :class:`LoadError` with a one-line reason on any problem. None, without
        parsing (or OCR), when the sha256 of its bytes is ``unless_hash``: the file has not changed."""
        path = Path(path)
        source = str(path.resolve())
        ext = path.suffix.lower()
        if ext not in self._readers:
            raise LoadError(path, f"unsupported file type {ext or '(no extension)'!r}; "
                                  f"supported: {', '.join(SUPPORTED_EXTENSIONS)}")
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise LoadError(path, f"cannot read file: {exc.strerror or exc}") from None
        if size > self.max_file_mb * 1024 * 1024:
            raise LoadError(path, f"file is {size / 1048576:.1f} MB, over the {self.max_file_mb:g} MB limit; "
                                  "split it or raise --max-file-mb")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise LoadError(path, f"cannot read file: {exc.strerror or exc}") from None
        file_hash = hashlib.sha256(data).hexdigest()
        if file_hash == unless_hash:
            return None
        if not data.strip():
            raise LoadError(path, "file is empty; nothing to index")
        pages, title, warnings = self._readers[ext](path, data)
        if ext == ".pdf":
            pages, warnings = self._ocr_pages(path, data, pages, warnings)
        pages = [(page, text) for page, text in pages if text.strip()]
        if not pages:
            hint = " (scanned PDF? it needs OCR: ingest it with --ocr auto)" if ext == ".pdf" else ""
            raise LoadError(path, f"no extractable text{hint}")
        title = title or path.stem
        docs = tuple(Document.from_text(text, source=source, page=page, title=title,
                                        format=ext) for page, text in pages)
        return LoadedFile(source=source, doc_id=doc_id_for(source),
                          file_hash=file_hash, documents=docs,
                          warnings=tuple(warnings))

    def _ocr_pages(self, path: Path, data: bytes, pages: list[tuple[int | None, str]], warnings: list[str]
                   ) -> tuple[list[tuple[int | None, str]], list[str]]:
        """The PDF's pages with scanned ones read by OCR (:mod:`rag.ingest.ocr`), and the warnings."""
        texts = {p: t for p, t in pages if p is not None}
        try:
            result = PageOcr().read_pdf(str(path.resolve()), data, texts, self.ocr, self._pdf_password,
                                        self._on_ocr_page)
        except OcrError as exc:
            raise LoadError(path, str(exc)) from None
        return [(p, result.texts.get(p, t) if p is not None else t) for p, t in pages], [*warnings, *result.warnings]

    # -- readers: (path, bytes) -> ([(page, text)], title, warnings) ------------------

    def _read_text(self, path: Path, data: bytes) -> tuple[list[tuple[int | None, str]], str, list[str]]:
        text, warnings = decode_text(data, path, self.encoding_fallback)
        return [(None, text)], "", warnings

    def _read_markdown(self, path: Path, data: bytes) -> tuple[list[tuple[int | None, str]], str, list[str]]:
        text, warnings = decode_text(data, path, self.encoding_fallback)
        return [(None, text)], _title_from_markdown(text), warnings

    def _read_pdf(self, path: Path, data: bytes) -> tuple[list[tuple[int | None, str]], str, list[str]]:
        import io

        from pypdf import PdfReader
        from pypdf.errors import PyPdfError

        if not data.lstrip().startswith(b"%PDF"):
            raise LoadError(path, "not a PDF (missing %PDF header); the file is corrupt or misnamed")
        try:
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted:
                self._decrypt(reader, path)
            pages = [(i + 1, page.extract_text() or "") for i, page in enumerate(reader.pages)]
            pages = pdf_pages_with_tables(data, pages, self._pdf_password or "")
            meta_title = ""
            try:
                meta_title = str((reader.metadata or {}).get("/Title") or "").strip()
            except Exception:  # noqa: BLE001 - metadata is optional and often malformed
                meta_title = ""
        except LoadError:
            raise
        except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
            raise LoadError(path, f"corrupt or unreadable PDF ({type(exc).__name__}: {exc})") from None
        return pages, meta_title, []

    def _decrypt(self, reader: Any, path: Path) -> None:
        """Open an encrypted PDF: with the empty user password (owner-password-only PDFs), else
        with ``pdf_password``; a :class:`LoadError` says which one is missing or wrong."""
        from pypdf.errors import DependencyError

        try:
            if reader.decrypt(""):
                return
            if self._pdf_password and reader.decrypt(self._pdf_password):
                return
        except DependencyError:
            raise LoadError(path, "encrypted PDF uses AES; install the 'cryptography' package to "
                                  "decrypt it") from None
        except Exception as exc:  # noqa: BLE001 - pypdf raises several types for damaged encryption
            raise LoadError(path, f"encrypted PDF that cannot be decrypted ({type(exc).__name__})") from None
        if self._pdf_password:
            raise LoadError(path, "encrypted PDF: wrong password (the --pdf-password given does not open it)")
        raise LoadError(path, "encrypted PDF: needs a password; give it with --pdf-password")

    def _read_html(self, path: Path, data: bytes) -> tuple[list[tuple[int | None, str]], str, list[str]]:
        from bs4 import BeautifulSoup

        html, warnings = decode_text(data, path, self.encoding_fallback)
        soup = BeautifulSoup(html, "html.parser")
        for tag in soup(["script", "style", "noscript", "template", "svg"]):
            tag.decompose()
        replace_html_tables(soup)
        title = soup.title.get_text(strip=True) if soup.title else ""
        if soup.title:
            soup.title.decompose()
        text = soup.get_text("\n")
        text = re.sub(r"[ \t\r\f\v]+", " ", text)
        text = re.sub(r"\n\s*\n\s*(\n\s*)+", "\n\n", text).strip()
        return [(None, text)], title, warnings

    def _read_docx(self, path: Path, data: bytes) -> tuple[list[tuple[int | None, str]], str, list[str]]:
        import io

        import docx

        try:
            d = docx.Document(io.BytesIO(data))
        except Exception as exc:  # noqa: BLE001 - python-docx raises zip, XML and package-specific errors alike
            raise corrupt(path, ".docx", exc) from None
        parts = docx_blocks(d)
        title = (d.core_properties.title or "").strip()
        return [(None, "\n\n".join(parts))], title, []
