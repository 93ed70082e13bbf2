"""Uploads from the browser, made safe: names cleaned, types and sizes checked, files never clobbered.

Upload names come from the browser and are untrusted. :func:`safe_filename` keeps only the
last path component, normalises it (NFKC), keeps letters, marks and digits of any script
plus ``space . _ -``, replaces everything else (controls, bidi overrides, ``/ \\ : * ? < >``)
with ``_``, strips leading and trailing dots and spaces (no hidden files) and shortens the
stem, never the extension, to :data:`MAX_NAME_BYTES` UTF-8 bytes. A name with an extension but
no stem (``" .txt"``) is saved as ``upload.txt``; one of only dots and spaces is refused as an
empty file name. :func:`save_uploads` never
overwrites a different upload: a name already taken by other bytes gets ``-2``, ``-3``, ...

Example:
    >>> from pathlib import Path
    >>> safe_upload_path(Path("/data/uploads"), "../../etc/passwd.txt").as_posix()
    '/data/uploads/passwd.txt'
    >>> safe_filename("議事録 2024?.md")
    '議事録 2024_.md'
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import unicodedata
from pathlib import Path

from rag.ingest.loaders import SUPPORTED_EXTENSIONS
from rag.ingest.ocr import OcrProgress
from rag.ui.text import md

logger = logging.getLogger(__name__)

DEFAULT_UPLOAD_MB = 50
MAX_NAME_BYTES = 200  # file systems allow 255 bytes per name; this leaves room for "-N" suffixes
_EXTENSION = re.compile(r"\.[^\W_]{1,16}")
_KEPT_PUNCTUATION = frozenset(" ._-")


class UploadError(ValueError):
    """An uploaded file that is refused; the message names the file and what to do."""


def _last_component(name: str) -> str:
    """The last path component, NFKC-normalised."""
    return unicodedata.normalize("NFKC", name).replace("\\", "/").split("/")[-1]


def _stem_and_extension(name: str) -> tuple[str, str]:
    """``(stem, extension)`` of an upload's name, each without leading/trailing dots and spaces.

    The extension is read before the stem's dots are stripped, so ``" .txt"`` is an empty stem
    with the extension ``.txt`` (not a file named ``txt``).

    Example:
        >>> _stem_and_extension(" .txt"), _stem_and_extension("..."), _stem_and_extension(".report.md ")
        (('', '.txt'), ('', ''), ('report', '.md'))
    """
    base = _last_component(name).rstrip(" .")
    stem, dot, ext = base.rpartition(".")
    if dot and _EXTENSION.fullmatch(dot + ext):
        return stem.strip(" ."), dot + ext
    return base.strip(" ."), ""


def _empty_name(name: str) -> UploadError:
    return UploadError(f"empty file name {name!r} (only dots and spaces) is not usable; rename the file and "
                       "upload it again")


def _clean(text: str) -> str:
    """Keep letters, marks, digits (any script) and ``space . _ -``; each other run becomes ``_``."""
    marked = "".join(ch if ch in _KEPT_PUNCTUATION or unicodedata.category(ch)[0] in "LMN" else "\0"
                     for ch in text)
    return re.sub("\0+", "_", marked)


def _fit(stem: str, tail: str) -> str:
    """``stem + tail`` with the stem shortened (on a character boundary) to fit MAX_NAME_BYTES."""
    room = MAX_NAME_BYTES - len(tail.encode())
    short = stem.encode()[:room].decode(errors="ignore").rstrip(" .")
    return (short or "upload") + tail


def _split(safe_name: str) -> tuple[str, str]:
    stem, dot, ext = safe_name.rpartition(".")
    return (stem, dot + ext) if dot and stem and _EXTENSION.fullmatch(dot + ext) else (safe_name, "")


def safe_filename(name: str) -> str:
    """A file name with no directory parts, no surprising characters and its extension kept.

    Example:
        >>> safe_filename("C:\\\\Users\\\\me\\\\ｒｅｐｏｒｔ．ｔｘｔ")
        'report.txt'
        >>> long = safe_filename("x" * 300 + ".pdf")
        >>> long.endswith(".pdf"), len(long.encode()) <= MAX_NAME_BYTES
        (True, True)
    """
    stem, ext = _stem_and_extension(name)
    stem = _clean(stem).strip(" .")
    if not stem and not ext:
        raise _empty_name(name)
    return _fit(stem or "upload", ext)


def safe_upload_path(upload_dir: Path, name: str) -> Path:
    """Where an upload is written: always directly inside ``upload_dir`` (no traversal)."""
    root = Path(os.path.abspath(upload_dir))
    path = Path(os.path.abspath(root / safe_filename(name)))
    if path.parent != root:
        raise UploadError(f"file name {name!r} escapes the upload folder")
    return path


def check_upload(name: str, size: int, max_mb: float = DEFAULT_UPLOAD_MB) -> None:
    """Raise :class:`UploadError` for an empty name, an unsupported type or an oversized file."""
    stem, ext = _stem_and_extension(name)
    ext = ext.lower()
    if not stem and not ext:
        raise _empty_name(name)
    if ext not in SUPPORTED_EXTENSIONS:
        raise UploadError(f"{name}: unsupported file type {ext or '(none)'!r}; "
                          f"supported: {', '.join(SUPPORTED_EXTENSIONS)}")
    if size > max_mb * 1024 * 1024:
        raise UploadError(f"{name}: {size / 1048576:.1f} MB is over the {max_mb:g} MB upload limit; "
                          "split the file or ingest it with `rag ingest` (limit --max-file-mb)")
    if size == 0:
        raise UploadError(f"{name}: the file is empty")


def save_uploads(files: "list[tuple[str, bytes]]", upload_dir: Path, max_mb: float = DEFAULT_UPLOAD_MB,
                 replace: bool = False) -> "tuple[list[Path], list[tuple[str, str]]]":
    """Write accepted uploads under ``upload_dir``; return ``(saved paths, (name, error) pairs)``.

    A refused file never stops the others. Each file is written to a temporary name and
    renamed, so a failure never leaves a half-written document behind. A different upload is
    never overwritten: identical bytes reuse the existing file, other bytes get a numbered
    name (``notes-2.md``). ``replace=True`` overwrites an existing file only when the upload's
    name is exactly that file's name and no upload in this batch wrote it.

    Example:
        >>> d = Path(tempfile.mkdtemp())
        >>> saved, errors = save_uploads([("報告.txt", b"a"), ("報告.txt", b"b"), ("x.exe", b"c")], d)
        >>> [p.name for p in saved], [n for n, _ in errors]
        (['報告.txt', '報告-2.txt'], ['x.exe'])
    """
    upload_dir.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []
    errors: list[tuple[str, str]] = []
    for name, data in files:
        try:
            check_upload(name, len(data), max_mb)
            base = safe_upload_path(upload_dir, name)
            may_replace = replace and base not in saved and _same_name(name, base.name)
            path = _store(data, base, may_replace)
            if path not in saved:
                saved.append(path)
        except UploadError as exc:
            errors.append((name, str(exc)))
        except OSError as exc:
            errors.append((name, f"{name}: could not be saved ({exc.strerror or exc})"))
    return saved, errors


def ocr_progress_text(p: OcrProgress) -> str:
    """The upload progress line while a scanned file is OCRed (about 2.5 s a page), its name escaped.

    Example:
        >>> print(ocr_progress_text(OcrProgress("/up/manual_v2.pdf", page=3, done=3, total=20)))
        Reading scanned pages: manual\\_v2\\.pdf, page 3 of 20 read
    """
    return f"Reading scanned pages: {md(Path(p.source).name)}, page {p.done} of {p.total} read"


def _same_name(name: str, safe_name: str) -> bool:
    """True if the upload's own name (last component, NFC) needed no cleaning at all."""
    return unicodedata.normalize("NFC", name.replace("\\", "/").split("/")[-1]) == safe_name


def _numbered(base: Path, n: int) -> Path:
    if n == 1:
        return base
    stem, ext = _split(base.name)
    return base.with_name(_fit(stem, f"-{n}{ext}"))


def _holds(path: Path, data: bytes) -> bool:
    try:
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False


def _store(data: bytes, base: Path, may_replace: bool) -> Path:
    """Write ``data`` at ``base`` or the first free numbered name; never clobber other bytes."""
    fd, tmp_name = tempfile.mkstemp(dir=base.parent, prefix=".upload-", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        n = 0
        while True:
            n += 1
            path = _numbered(base, n)
            if _holds(path, data):
                return path
            if n == 1 and may_replace:
                os.replace(tmp, path)
                logger.info("replaced upload %s", path)
                return path
            if _publish(tmp, path):
                if n > 1:
                    logger.info("%s is taken by another upload; saved as %s", base.name, path.name)
                return path
    finally:
        tmp.unlink(missing_ok=True)


def _publish(tmp: Path, path: Path) -> bool:
    """Give the complete ``tmp`` the name ``path`` only if that name is free (atomic); else False."""
    try:
        os.link(tmp, path)  # fails if path exists, and never shows a half-written file
        return True
    except FileExistsError:
        return False
    except OSError:  # no hard links on this file system: reserve the name, then rename over it
        pass
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return False
    try:
        os.replace(tmp, path)
    except OSError:
        path.unlink(missing_ok=True)
        raise
    return True
