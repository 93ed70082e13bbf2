"""What an index records about itself: ``manifest.json``, the per-file records and the settings.

Both backends (the in-process :class:`~rag.index.memory.Index` and the Milvus-backed
:class:`~rag.index.milvus.MilvusIndex`) write the same manifest and ``documents.json`` under the
same versioned directory (:mod:`rag.index.store`), so the code that reads and checks them lives
here, importing neither backend: that keeps the store and the backends free of import cycles.

Example:
    >>> validate_name("notes-2024")
    'notes-2024'
    >>> IndexSettings(embedder_id="e", dim=0, chunker={})
    Traceback (most recent call last):
    ...
    ValueError: dim must be > 0, got 0
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from rag.fs import file_sha256
from rag.index.dense import INDEX_KINDS, validate_kind
from rag.index.errors import IndexCorruptError, IndexMismatchError
from rag.index.sparse import Analyzer
from rag.types import Chunk

logger = logging.getLogger(__name__)

#: written by this version: immutable version directories named by ``parts_dir`` in manifest.json
FORMAT_VERSION = 2
#: the flat layout of older versions (parts next to manifest.json): read, upgraded on the next write
FLAT_FORMAT_VERSION = 1
READABLE_FORMAT_VERSIONS: tuple[int, ...] = (FLAT_FORMAT_VERSION, FORMAT_VERSION)
MANIFEST = "manifest.json"
VERSION_PREFIX = "v-"
VERSION_RE = re.compile(r"^v-\d{8}-\d{6}-[0-9a-f]{8}$")
PARTS: dict[str, str] = {
    "documents": "documents.json", "chunks": "chunks.jsonl", "embeddings": "embeddings.npy",
    "dense": "dense.faiss", "bm25": "bm25.json",
}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEFAULT_INDEX_ROOT = "indexes"
#: distributions whose versions go into the manifest
LIBRARIES: tuple[str, ...] = ("rag-local", "faiss-cpu", "rank-bm25", "sentence-transformers", "numpy")
#: the manifest field holding the sha256 (hex) of each local part by file name, recorded when the version
#: is written and checked when it is read; absent in versions written before rag recorded them
DIGESTS = "sha256"
_PART_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
#: the only server backend a manifest can name (``backend.kind``); absent means the in-process index
REMOTE_BACKENDS: tuple[str, ...] = ("milvus",)

_REBUILD = "rebuild it with `rag ingest DIR --index {name} --rebuild`"

# (dotted key, expected type) of every manifest field the code reads
_MANIFEST_FIELDS: tuple[tuple[str, str], ...] = (
    ("embedder.id", "str"), ("embedder.dim", "int"), ("chunker", "object"), ("title_prefix", "bool"),
    ("bm25.k1", "number"), ("bm25.b", "number"), ("bm25.analyzer", "object"), ("faiss.kind", "str"),
    ("counts.chunks", "int"), ("counts.documents", "int"),
)


def rebuild_hint(name: str) -> str:
    """The advice every "cannot read this index" message ends with."""
    return _REBUILD.format(name=name)


def default_index_root() -> Path:
    """``$RAG_INDEX_DIR`` if set, else ``./indexes``."""
    return Path(os.environ.get("RAG_INDEX_DIR", DEFAULT_INDEX_ROOT))


def validate_name(name: str) -> str:
    """``name`` if it is safe as a directory name (no path separators, no leading dot), else ValueError."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValueError(f"index name must be 1-64 characters of letters, digits, '_', '-', '.' "
                         f"and not start with '.' or '-', got {name!r}")
    return name


def _json_type(value: Any) -> str:
    return {dict: "object", list: "list", str: "str", bool: "bool", int: "int", float: "number",
            type(None): "null"}.get(type(value), type(value).__name__)


def _has_type(value: Any, expected: str) -> bool:
    if expected == "number":
        return type(value) in (int, float) and math.isfinite(value)
    return _json_type(value) == expected


def _lookup(manifest: Mapping[str, Any], dotted: str) -> tuple[bool, Any]:
    node: Any = manifest
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return False, None
        node = node[key]
    return True, node


def validate_manifest(name: str, manifest: Any) -> dict[str, Any]:
    """Check a parsed ``manifest.json``; return it, or raise a one-line :class:`IndexError_`.

    Example:
        >>> validate_manifest("notes", ["not", "an", "object"])
        Traceback (most recent call last):
        ...
        rag.index.errors.IndexCorruptError: index 'notes': manifest.json is a JSON list, not an object; rebuild it with `rag ingest DIR --index notes --rebuild`
        >>> validate_manifest("notes", {"format_version": "2"})
        Traceback (most recent call last):
        ...
        rag.index.errors.IndexCorruptError: index 'notes': manifest.json field 'format_version' must be an int, got '2' (str); rebuild it with `rag ingest DIR --index notes --rebuild`
    """
    rebuild = rebuild_hint(name)

    def corrupt(problem: str) -> IndexCorruptError:
        return IndexCorruptError(f"index {name!r}: manifest.json {problem}; {rebuild}")

    if not isinstance(manifest, dict):
        raise corrupt(f"is a JSON {_json_type(manifest)}, not an object")
    if "format_version" not in manifest:
        raise corrupt("lacks 'format_version'")
    version = manifest["format_version"]
    if not _has_type(version, "int"):
        raise corrupt(f"field 'format_version' must be an int, got {version!r} ({_json_type(version)})")
    if version not in READABLE_FORMAT_VERSIONS:
        raise IndexMismatchError(
            f"index {name!r} has format version {version!r}, this version of rag reads "
            f"{' and '.join(map(str, READABLE_FORMAT_VERSIONS))}; {rebuild}")
    fields = _MANIFEST_FIELDS + ((("parts_dir", "str"),) if version >= 2 else ())
    remote = backend_kind(manifest)
    if remote:  # the chunks live on a server (rag.index.milvus): no FAISS part
        fields = tuple(f for f in fields if f[0] != "faiss.kind") + (("backend.uri", "str"),
                                                                     ("backend.collection", "str"))
    for dotted, expected in fields:
        found, node = _lookup(manifest, dotted)
        if not found:
            raise corrupt(f"lacks {dotted!r}")
        if not _has_type(node, expected):
            article = "an" if expected[0] in "aeiou" else "a"
            raise corrupt(f"field {dotted!r} must be {article} {expected}, got {node!r} ({_json_type(node)})")
    if not remote and manifest["faiss"]["kind"] not in INDEX_KINDS:
        raise corrupt(f"names FAISS kind {manifest['faiss']['kind']!r}, not one of {INDEX_KINDS}")
    if manifest["embedder"]["dim"] <= 0:
        raise corrupt(f"gives embedder dim {manifest['embedder']['dim']}, which must be > 0")
    for key in ("chunks", "documents"):
        if manifest["counts"][key] < 0:
            raise corrupt(f"gives a negative count of {key} ({manifest['counts'][key]})")
    if version >= 2 and not VERSION_RE.match(manifest["parts_dir"]):
        raise corrupt(f"names parts directory {manifest['parts_dir']!r}, not a version like 'v-YYYYmmdd-HHMMSS-XXXXXXXX'")
    digests = manifest.get(DIGESTS)
    if digests is not None:
        if not isinstance(digests, dict):
            raise corrupt(f"field {DIGESTS!r} must be an object, got {_json_type(digests)}")
        for part, digest in digests.items():
            if not _PART_NAME_RE.match(part) or not isinstance(digest, str) or not _SHA256_RE.match(digest):
                raise corrupt(f"field {DIGESTS!r} has entry {part!r}: {digest!r}, not a part file name and a "
                              f"sha256 of 64 hex digits")
    return manifest


def part_digests(directory: Path) -> dict[str, str]:
    """The sha256 of every part written into version ``directory``, by file name (``manifest.json`` excluded).

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> _ = (d / "chunks.jsonl").write_text("")
        >>> part_digests(d)
        {'chunks.jsonl': 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'}
    """
    return {p.name: file_sha256(p) for p in sorted(directory.iterdir()) if p.name != MANIFEST and p.is_file()}


def tampered(name: str, part: str) -> IndexCorruptError:
    """The error for a part whose bytes are not those its version recorded (edited, damaged, or swapped)."""
    return IndexCorruptError(f"index {name!r}: part {part} does not match the sha256 recorded in manifest.json "
                             f"when the index was written (it was changed or damaged since); {rebuild_hint(name)}")


def _digest_or_error(path: Path) -> str | OSError:
    try:
        return file_sha256(path)
    except OSError as exc:
        return exc


def verify_digests(name: str, manifest: Mapping[str, Any], directory: Path, skip: tuple[str, ...] = ()) -> None:
    """Check the parts in ``directory`` against the sha256s ``manifest`` records; one-line :class:`IndexCorruptError`.

    The files are read in 1 MiB blocks, a few at a time (hashlib releases the GIL).  Parts named
    in ``skip`` are the caller's to check when it first reads them (:func:`digest_check`).  A
    version written before rag recorded digests is not checked (a debug log says so).

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> _ = (d / "chunks.jsonl").write_text("")
        >>> m = {DIGESTS: part_digests(d)}
        >>> verify_digests("notes", m, d)
        >>> _ = (d / "chunks.jsonl").write_text("{}")
        >>> verify_digests("notes", m, d)
        Traceback (most recent call last):
        ...
        rag.index.errors.IndexCorruptError: index 'notes': part chunks.jsonl does not match the sha256 recorded in manifest.json when the index was written (it was changed or damaged since); rebuild it with `rag ingest DIR --index notes --rebuild`
    """
    digests = manifest.get(DIGESTS)
    if digests is None:
        logger.debug("index %r: manifest.json records no part digests (written by an older rag); parts in %s "
                     "not verified", name, directory)
        return
    parts = sorted(p for p in digests if p not in skip)
    if len(parts) > 1:
        with ThreadPoolExecutor(max_workers=min(len(parts), os.cpu_count() or 1, 4)) as pool:
            actual = dict(zip(parts, pool.map(_digest_or_error, [directory / p for p in parts])))
    else:
        actual = {p: _digest_or_error(directory / p) for p in parts}
    for part in parts:
        found = actual[part]
        if isinstance(found, OSError):
            raise IndexCorruptError(f"index {name!r} at {directory}: missing or unreadable part {part} "
                                    f"({' '.join(str(found).split())[:300]}); {rebuild_hint(name)}")
        if found != digests[part]:
            raise tampered(name, part)


def digest_check(name: str, manifest: Mapping[str, Any], part: str) -> Callable[[Any], None] | None:
    """A check of ``part``'s bytes (a buffer) against the recorded sha256, for a part read on first use.

    None when the manifest records no digest for ``part``.

    Example:
        >>> check = digest_check("notes", {DIGESTS: {"bm25.json": hashlib.sha256(b"{}").hexdigest()}}, "bm25.json")
        >>> check(b"{}")
        >>> check(b"[]")
        Traceback (most recent call last):
        ...
        rag.index.errors.IndexCorruptError: index 'notes': part bm25.json does not match the sha256 recorded in manifest.json when the index was written (it was changed or damaged since); rebuild it with `rag ingest DIR --index notes --rebuild`
    """
    expected = (manifest.get(DIGESTS) or {}).get(part)
    if expected is None:
        return None

    def check(buffer: Any) -> None:
        if hashlib.sha256(buffer).hexdigest() != expected:
            raise tampered(name, part)

    return check


def backend_kind(manifest: Mapping[str, Any]) -> str | None:
    """The server backend a manifest names (``milvus``), or None for the in-process FAISS + BM25 parts."""
    backend = manifest.get("backend")
    if backend is None:
        return None
    if not isinstance(backend, dict) or backend.get("kind") not in REMOTE_BACKENDS:
        raise IndexCorruptError(f"index {manifest.get('name')!r}: manifest.json names backend {backend!r}, "
                                f"not 'milvus'; {rebuild_hint(str(manifest.get('name')))}")
    return str(backend["kind"])


@dataclass(frozen=True)
class DocRecord:
    """One ingested file: what incremental ingest compares (``file_hash``) and what listings show."""

    doc_id: str
    source: str
    file_hash: str
    title: str
    n_chunks: int
    pages: int | None
    ingested_at: float


@dataclass(frozen=True)
class IndexSettings:
    """Everything that must match between an index and the code using it."""

    embedder_id: str
    dim: int
    chunker: Mapping[str, Any]
    analyzer: Mapping[str, Any] = field(default_factory=lambda: Analyzer().params)
    faiss_kind: str = "flat"
    title_prefix: bool = True
    bm25_k1: float = 1.2
    bm25_b: float = 0.75

    def __post_init__(self) -> None:
        validate_kind(self.faiss_kind)
        if self.dim <= 0:
            raise ValueError(f"dim must be > 0, got {self.dim}")

    def to_manifest(self) -> dict[str, Any]:
        return {
            "embedder": {"id": self.embedder_id, "dim": self.dim},
            "chunker": dict(self.chunker),
            "title_prefix": self.title_prefix,
            "bm25": {"k1": self.bm25_k1, "b": self.bm25_b, "analyzer": dict(self.analyzer)},
            "faiss": {"kind": self.faiss_kind, "metric": "inner_product", "normalized": True},
        }

    @classmethod
    def from_manifest(cls, m: Mapping[str, Any]) -> "IndexSettings":
        return cls(
            embedder_id=m["embedder"]["id"], dim=int(m["embedder"]["dim"]), chunker=m["chunker"],
            analyzer=m["bm25"]["analyzer"], faiss_kind=m.get("faiss", {}).get("kind", "flat"),
            title_prefix=bool(m["title_prefix"]), bm25_k1=float(m["bm25"]["k1"]), bm25_b=float(m["bm25"]["b"]),
        )

    def make_analyzer(self) -> Analyzer:
        """The BM25 analyzer these settings name, so queries are tokenized as the chunks were."""
        return Analyzer(stemmer=self.analyzer.get("stemmer", "english"),
                        stopwords=bool(self.analyzer.get("stopwords", True)))


def with_title(title: str, text: str) -> str:
    """``title`` (whitespace squashed) on a line before ``text``, unless ``text`` already begins with it (pure).

    Example:
        >>> with_title("Pumps", "Priming a pump.")
        'Pumps\\nPriming a pump.'
        >>> with_title("Pumps", "Pumps are machines.")
        'Pumps are machines.'
    """
    flat = " ".join(title.split())
    if flat and not " ".join(text[: len(title) + 64].split()).startswith(flat):
        return f"{flat}\n{text}"
    return text


def indexed_text(chunk: Chunk, title_prefix: bool) -> str:
    """The text that BM25 and the embedder see for a chunk: its :attr:`~rag.types.Chunk.full_text`
    (a table's header before its rows), title prefixed if enabled."""
    return with_title(chunk.title, chunk.full_text) if title_prefix else chunk.full_text


def parse_documents(path: Path) -> dict[str, DocRecord]:
    """``documents.json`` as records by source; raises whatever reading or parsing it raises."""
    return {r["source"]: DocRecord(**r) for r in json.loads(path.read_text(encoding="utf-8"))}


def read_documents(name: str, directory: Path) -> dict[str, DocRecord]:
    """The file records of the version in ``directory``, or a one-line :class:`IndexCorruptError`."""
    try:
        return parse_documents(directory / PARTS["documents"])
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise IndexCorruptError(f"index {name!r} at {directory}: missing or unreadable {PARTS['documents']} "
                                f"({' '.join(str(exc).split())[:300]}); {rebuild_hint(name)}") from None


def write_documents(directory: Path, documents: Mapping[str, DocRecord]) -> None:
    """Write ``documents.json`` into a version being built (both backends keep it locally)."""
    (directory / PARTS["documents"]).write_text(
        json.dumps([asdict(r) for r in documents.values()], indent=1), encoding="utf-8")
