"""Ingestion stage 1: turn files into :class:`~rag.types.Document` records.

Supported: ``.txt``, ``.md``/``.markdown``, ``.pdf`` (pypdf, one Document per page,
1-based page numbers), ``.html``/``.htm`` (text only; scripts and styles dropped) and
``.docx`` (python-docx; paragraphs and tables).

Every problem with a file raises :class:`LoadError` carrying the path and a one-line,
actionable reason, so a batch ingest can list it and carry on.

Example:
    >>> from pathlib import Path
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "note.txt"
    >>> _ = p.write_text("Pumps need priming before start.", encoding="utf-8")
    >>> [d.text for d in DocumentLoader().load(p).documents]
    ['Pumps need priming before start.']
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from rag.types import Document, content_hash

logger = logging.getLogger(__name__)

SUPPORTED_EXTENSIONS: tuple[str, ...] = (".txt", ".md", ".markdown", ".pdf", ".html", ".htm", ".docx")
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


def doc_id_for(source: str) -> str:
    """Stable document id: a hash of the (resolved) source path."""
    return content_hash("doc", source)


def iter_files(root: Path) -> Iterator[Path]:
    """Yield files under ``root`` (or ``root`` itself), sorted, skipping hidden entries."""
    if root.is_file():
        yield root
        return
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if p.is_file():
            yield p


def _looks_binary(data: bytes) -> bool:
    sample = data[:8192]
    if b"\x00" in sample:
        return True
    if not sample:
        return False
    control = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13))
    return control / len(sample) > 0.10


def decode_text(data: bytes, path: Path, fallback: str | None) -> tuple[str, list[str]]:
    """Decode bytes as UTF-8 (BOM-aware), else ``fallback``; reject binaries."""
    warnings: list[str] = []
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16"), warnings
    if _looks_binary(data):
        raise LoadError(path, "looks like a binary file (NUL/control bytes), not text; "
                              "remove it or give it the right extension")
    try:
        return data.decode("utf-8-sig"), warnings
    except UnicodeDecodeError as exc:
        if not fallback:
            raise LoadError(path, f"not valid UTF-8 (byte {exc.start}); re-save it as UTF-8") from None
        text = data.decode(fallback, errors="replace")
        warnings.append(f"not valid UTF-8 (byte {exc.start}); decoded as {fallback}")
        return text, warnings


def _title_from_markdown(text: str) -> str:
    m = re.search(r"^\s{0,3}#\s+(.+?)\s*#*\s*$", text, flags=re.MULTILINE)
    return m.group(1).strip() if m else ""


class DocumentLoader:
    """Load one file into documents.

    Args:
        max_file_mb: files larger than this are refused with a clear error.
        encoding_fallback: codec for text files that are not UTF-8 (``None`` makes
            them an error instead); the fallback is reported as a warning.

    Example:
        >>> DocumentLoader(max_file_mb=0)
        Traceback (most recent call last):
        ...
        ValueError: max_file_mb must be > 0, got 0
    """

    def __init__(self, max_file_mb: float = DEFAULT_MAX_FILE_MB,
                 encoding_fallback: str | None = "cp1252") -> None:
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
        self._readers: dict[str, Callable[[Path, bytes], tuple[list[tuple[int | None, str]], str, list[str]]]] = {
            ".txt": self._read_text, ".md": self._read_markdown, ".markdown": self._read_markdown,
            ".pdf": self._read_pdf, ".html": self._read_html, ".htm": self._read_html,
            ".docx": self._read_docx,
        }

    def load(self, path: str | Path) -> LoadedFile:
        """Load ``path``; raise :class:`LoadError` with a one-line reason on any problem."""
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
        if not data.strip():
            raise LoadError(path, "file is empty; nothing to index")
        pages, title, warnings = self._readers[ext](path, data)
        pages = [(page, text) for page, text in pages if text.strip()]
        if not pages:
            hint = " (scanned PDF? it needs OCR first)" if ext == ".pdf" else ""
            raise LoadError(path, f"no extractable text{hint}")
        title = title or path.stem
        docs = tuple(Document.from_text(text, source=source, page=page, title=title,
                                        format=ext) for page, text in pages)
        return LoadedFile(source=source, doc_id=doc_id_for(source),
                          file_hash=hashlib.sha256(data).hexdigest(), documents=docs,
                          warnings=tuple(warnings))

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
                try:
                    reader.decrypt("")
                except Exception:  # noqa: BLE001 - pypdf raises several types here
                    raise LoadError(path, "PDF is password-protected; decrypt it first") from None
            pages = [(i + 1, page.extract_text() or "") for i, page in enumerate(reader.pages)]
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

    def _read_html(self, path: Path, data: bytes) -> tuple[list[tuple[int | None, str]], str, list[str]]:
        from bs4 import BeautifulSoup

        html, warnings = decode_text(data, path, self.encoding_fallback)
        soup = BeautifulSoup(html, "html.parser")
        for tag in soup(["script", "style", "noscript", "template", "svg"]):
            tag.decompose()
        title = soup.title.get_text(strip=True) if soup.title else ""
        if soup.title:
            soup.title.decompose()
        text = soup.get_text("\n")
        text = re.sub(r"[ \t\r\f\v]+", " ", text)
        text = re.sub(r"\n\s*\n\s*(\n\s*)+", "\n\n", text).strip()
        return [(None, text)], title, warnings

    def _read_docx(self, path: Path, data: bytes) -> tuple[list[tuple[int | None, str]], str, list[str]]:
        import io
        import zipfile

        import docx

        try:
            d = docx.Document(io.BytesIO(data))
        except (zipfile.BadZipFile, KeyError, ValueError) as exc:
            raise LoadError(path, f"corrupt or unreadable .docx ({type(exc).__name__}: {exc})") from None
        except Exception as exc:  # noqa: BLE001 - python-docx raises package-specific errors
            raise LoadError(path, f"corrupt or unreadable .docx ({type(exc).__name__}: {exc})") from None
        parts = [p.text for p in d.paragraphs if p.text.strip()]
        for table in d.tables:
            for row in table.rows:
                cells = [c.text.strip() for c in row.cells if c.text.strip()]
                if cells:
                    parts.append(" | ".join(cells))
        title = (d.core_properties.title or "").strip()
        return [(None, "\n\n".join(parts))], title, []
