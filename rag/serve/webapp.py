"""Framework-free helpers for the Streamlit app (``ui/app.py``): upload safety and escaping.

Kept out of the app script so they are unit-tested without a browser.

Example:
    >>> from pathlib import Path
    >>> safe_upload_path(Path("/data/uploads"), "../../etc/passwd.txt").as_posix()
    '/data/uploads/passwd.txt'
    >>> print(escape_markdown("**bold** <b>x</b>"))
    \\*\\*bold\\*\\* &lt;b&gt;x&lt;/b&gt;
"""

from __future__ import annotations

import html
import os
import re
import unicodedata
from pathlib import Path

from rag.ingest.loaders import SUPPORTED_EXTENSIONS

DEFAULT_UPLOAD_MB = 50
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~$:])")
_SAFE_CHARS = re.compile(r"[^A-Za-z0-9._ -]+")


class UploadError(ValueError):
    """An uploaded file that is refused; the message names the file and what to do."""


def safe_filename(name: str) -> str:
    """A file name with no directory parts and no surprising characters."""
    base = name.replace("\\", "/").split("/")[-1]
    base = unicodedata.normalize("NFKC", base)
    base = _SAFE_CHARS.sub("_", base).strip(" .")
    if not base or base in (".", ".."):
        raise UploadError(f"file name {name!r} is not usable; rename the file and upload it again")
    return base[:150]


def safe_upload_path(upload_dir: Path, name: str) -> Path:
    """Where an upload is written: always directly inside ``upload_dir`` (no traversal)."""
    root = Path(os.path.abspath(upload_dir))
    path = Path(os.path.abspath(root / safe_filename(name)))
    if path.parent != root:
        raise UploadError(f"file name {name!r} escapes the upload folder")
    return path


def check_upload(name: str, size: int, max_mb: float = DEFAULT_UPLOAD_MB) -> None:
    """Raise :class:`UploadError` for an unsupported type or an oversized file."""
    ext = Path(name).suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        raise UploadError(f"{name}: unsupported file type {ext or '(none)'!r}; "
                          f"supported: {', '.join(SUPPORTED_EXTENSIONS)}")
    if size > max_mb * 1024 * 1024:
        raise UploadError(f"{name}: {size / 1048576:.1f} MB is over the {max_mb:g} MB upload limit; "
                          "split the file or ingest it with `rag ingest` (limit --max-file-mb)")
    if size == 0:
        raise UploadError(f"{name}: the file is empty")


def escape_markdown(text: str) -> str:
    """Render untrusted text (documents, model output) literally in Markdown.

    HTML is entity-escaped and Markdown syntax backslash-escaped, so a document cannot
    inject links, images (which could leak data to a remote server) or HTML.
    """
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def save_uploads(files: "list[tuple[str, bytes]]", upload_dir: Path,
                 max_mb: float = DEFAULT_UPLOAD_MB) -> "tuple[list[Path], list[tuple[str, str]]]":
    """Write accepted uploads under ``upload_dir``; return ``(saved paths, (name, error) pairs)``.

    A refused file never stops the others. Each file is written to a temporary name and
    renamed, so a failure never leaves a half-written document behind.
    """
    upload_dir.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []
    errors: list[tuple[str, str]] = []
    for name, data in files:
        try:
            check_upload(name, len(data), max_mb)
            path = safe_upload_path(upload_dir, name)
            tmp = path.with_name(f".{path.name}.part")
            tmp.write_bytes(data)
            os.replace(tmp, path)
            saved.append(path)
        except UploadError as exc:
            errors.append((name, str(exc)))
        except OSError as exc:
            errors.append((name, f"{name}: could not be saved ({exc.strerror or exc})"))
    return saved, errors
