"""Named indexes on disk: a directory with ``manifest.json`` plus its parts, in immutable versions.

Layout of ``indexes/NAME/``::

    manifest.json        the current version: format version, embedder id/dim, chunker and BM25
                         params, counts, library versions, and ``parts_dir`` naming the version below
    v-YYYYmmdd-HHMMSS-XXXXXXXX/   one complete version, never modified once written:
        manifest.json    the same manifest (written last: a version without one is incomplete)
        documents.json   one record per ingested file (path, content hash, chunk count)
        chunks.jsonl     one chunk per line, with provenance
        embeddings.npy   float32 (n_chunks, dim), row i = chunks.jsonl line i
        dense.faiss      FAISS index over the embeddings
        bm25.json        analyzed tokens per chunk (read only by writers, to rebuild BM25 after a change)
        bm25.*.npy, bm25.vocab.json   the BM25 score matrix (CSC arrays + terms; ``bm25.matrix`` in
                         the manifest), memory-mapped on load instead of rebuilt
    reranker/            a trained reranker (rag.reranker.store); not part of a version, kept
    .lock                the writers' lock file

With ``backend`` in the manifest (``rag ingest --backend milvus``), a version holds only
``manifest.json`` and ``documents.json``: the chunks live on the server (:mod:`rag.index.milvus`).

Consistency:

* **Writers** (:meth:`IndexStore.writer`, used by :meth:`IndexStore.save`, the ingestor,
  ``rag remove`` and the app) hold an exclusive OS lock on ``NAME/.lock`` (:class:`rag.fs.WriteLock`)
  for their whole read-modify-write; a second writer waits up to ``lock_timeout`` seconds,
  then fails with :class:`IndexLockedError`.  A new version is written to a temporary
  directory, renamed to ``v-...``, and published by replacing ``manifest.json`` with one
  ``os.replace``.
* **Readers** (:meth:`IndexStore.load`) read ``manifest.json`` once, then read the version it
  names while holding a shared lock on that version's directory.  They always get one
  complete version: the one current when they started, or, if it was replaced and removed
  before they could lock it, the newer one (they retry).
* **Old versions** are removed by the writer, under its lock, only when no reader holds them
  (an exclusive lock that does not wait); one a reader holds is removed by a later write.
  Crash leftovers (temporary versions, half-removed ones, files of the flat layout below)
  are removed by the next writer, under its lock.
* Indexes written by older versions of rag (format version 1: the parts directly in
  ``NAME/``) are read as they are and upgraded to this layout by the next write.  A version
  without the BM25 matrix parts (rag before they existed: no ``bm25.matrix`` in the manifest)
  has its BM25 rebuilt in memory from ``bm25.json`` on load; the next write stores the parts.

Loading is cheap at any size: the embeddings, the FAISS vectors and the BM25 arrays are memory-mapped,
``chunks.jsonl`` is memory-mapped and each line parsed when first used, and ``bm25.json``
is parsed only when a writer needs the tokens (:mod:`rag.index.lazy`).

Example:
    >>> import tempfile
    >>> store = IndexStore(tempfile.mkdtemp())
    >>> store.names()
    []
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from rag.fs import (OLD_PREFIX, TMP_PREFIX, LockTimeout, WriteLock, atomic_directory, describe_holder,
                    exclusive_now, fsync_path, library_versions, moved_aside_name, recover, recover_all,
                    remove_tree, shared_lock, write_file_atomic)
from rag.index.dense import INDEX_KINDS, FaissIndex, validate_kind
from rag.index.lazy import JsonlRows, LazyJsonList, as_list
from rag.index.sparse import BM25_PARTS, Analyzer, BM25Index, lucene_idf
from rag.types import Chunk

logger = logging.getLogger(__name__)

#: written by this version: immutable version directories named by ``parts_dir`` in manifest.json
FORMAT_VERSION = 2
#: the flat layout of older versions (parts next to manifest.json): read, upgraded on the next write
FLAT_FORMAT_VERSION = 1
READABLE_FORMAT_VERSIONS: tuple[int, ...] = (FLAT_FORMAT_VERSION, FORMAT_VERSION)
MANIFEST = "manifest.json"
LOCK_FILE = ".lock"
TRASH_PREFIX = ".trash-"
VERSION_PREFIX = "v-"
_VERSION_RE = re.compile(r"^v-\d{8}-\d{6}-[0-9a-f]{8}$")
#: how long a writer waits for another writer of the same index (seconds)
DEFAULT_LOCK_TIMEOUT = 600.0
# a reader retries when the version it picked was replaced and removed before it could lock it
_LOAD_ATTEMPTS = 20
PARTS: dict[str, str] = {
    "documents": "documents.json", "chunks": "chunks.jsonl", "embeddings": "embeddings.npy",
    "dense": "dense.faiss", "bm25": "bm25.json",
}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEFAULT_INDEX_ROOT = "indexes"
# a sub-directory owned by another stage (rag.reranker.store): outside the versions, so it survives re-ingests
KEPT_SUBDIR = "reranker"
#: distributions whose versions go into the manifest
LIBRARIES: tuple[str, ...] = ("rag-local", "faiss-cpu", "rank-bm25", "sentence-transformers", "numpy")


class IndexError_(Exception):
    """Base class for index problems (named to avoid shadowing the builtin)."""


class IndexNotFoundError(IndexError_):
    pass


class IndexMismatchError(IndexError_):
    """The index on disk was built with settings incompatible with the request."""


class IndexCorruptError(IndexError_):
    pass


class IndexLockedError(IndexError_):
    """Another writer held the index for longer than the lock timeout (or this thread already holds it)."""


class IndexWriteError(IndexError_, OSError):
    """The index cannot be written where it should be (not a directory, no permission, disk full)."""


def default_index_root() -> Path:
    """``$RAG_INDEX_DIR`` if set, else ``./indexes``."""
    return Path(os.environ.get("RAG_INDEX_DIR", DEFAULT_INDEX_ROOT))


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"index name must be 1-64 characters of letters, digits, '_', '-', '.' "
                         f"and not start with '.' or '-', got {name!r}")
    return name


_REBUILD = "rebuild it with `rag ingest DIR --index {name} --rebuild`"

# (dotted key, expected type) of every manifest field the code reads
_MANIFEST_FIELDS: tuple[tuple[str, str], ...] = (
    ("embedder.id", "str"), ("embedder.dim", "int"), ("chunker", "object"), ("title_prefix", "bool"),
    ("bm25.k1", "number"), ("bm25.b", "number"), ("bm25.analyzer", "object"), ("faiss.kind", "str"),
    ("counts.chunks", "int"), ("counts.documents", "int"),
)


def _json_type(value: Any) -> str:
    return {dict: "object", list: "list", str: "str", bool: "bool", int: "int", float: "number",
            type(None): "null"}.get(type(value), type(value).__name__)


def _has_type(value: Any, expected: str) -> bool:
    if expected == "number":
        return type(value) in (int, float) and math.isfinite(value)
    return _json_type(value) == expected


def validate_manifest(name: str, manifest: Any) -> dict[str, Any]:
    """Check a parsed ``manifest.json``; return it, or raise a one-line :class:`IndexError_`.

    Example:
        >>> validate_manifest("notes", ["not", "an", "object"])
        Traceback (most recent call last):
        ...
        rag.index.store.IndexCorruptError: index 'notes': manifest.json is a JSON list, not an object; rebuild it with `rag ingest DIR --index notes --rebuild`
        >>> validate_manifest("notes", {"format_version": "2"})
        Traceback (most recent call last):
        ...
        rag.index.store.IndexCorruptError: index 'notes': manifest.json field 'format_version' must be an int, got '2' (str); rebuild it with `rag ingest DIR --index notes --rebuild`
    """
    rebuild = _REBUILD.format(name=name)

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
    remote = _remote_backend(manifest)
    if remote:  # the chunks live on a server (rag.index.milvus): no FAISS part
        fields = tuple(f for f in fields if f[0] != "faiss.kind") + (("backend.uri", "str"),
                                                                     ("backend.collection", "str"))
    for dotted, expected in fields:
        node: Any = manifest
        for key in dotted.split("."):
            if not isinstance(node, dict) or key not in node:
                raise corrupt(f"lacks {dotted!r}")
            node = node[key]
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
    if version >= 2 and not _VERSION_RE.match(manifest["parts_dir"]):
        raise corrupt(f"names parts directory {manifest['parts_dir']!r}, not a version like 'v-YYYYmmdd-HHMMSS-XXXXXXXX'")
    return manifest


def _remote_backend(manifest: Mapping[str, Any]) -> str | None:
    """The server backend a manifest names (``milvus``), or None for the embedded FAISS + BM25 parts."""
    backend = manifest.get("backend")
    if backend is None:
        return None
    if not isinstance(backend, dict) or backend.get("kind") != "milvus":
        raise IndexCorruptError(f"index {manifest.get('name')!r}: manifest.json names backend {backend!r}, "
                                f"not 'milvus'; {_REBUILD.format(name=manifest.get('name'))}")
    return "milvus"


@dataclass(frozen=True)
class DocRecord:
    """One ingested file."""

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


def indexed_text(chunk: Chunk, title_prefix: bool) -> str:
    """The text that BM25 and the embedder see for a chunk (title prefixed if enabled)."""
    if title_prefix and chunk.title:
        title = " ".join(chunk.title.split())
        if title and not " ".join(chunk.text[: len(chunk.title) + 64].split()).startswith(title):
            return f"{title}\n{chunk.text}"
    return chunk.text


class Index:
    """An index loaded in memory: chunks, embeddings, BM25 and FAISS, plus file records.

    Build one with :meth:`build`; read and write it with :class:`IndexStore`.
    """

    def __init__(self, name: str, settings: IndexSettings, chunks: Sequence[Chunk], embeddings: np.ndarray,
                 tokens: Sequence[Sequence[str]], documents: Mapping[str, DocRecord],
                 faiss_index: FaissIndex | None = None, created_at: float | None = None,
                 bm25: BM25Index | None = None) -> None:
        if len(chunks) != embeddings.shape[0] or len(chunks) != len(tokens):
            raise IndexCorruptError(f"index {name!r}: {len(chunks)} chunks, {embeddings.shape[0]} embeddings, "
                                    f"{len(tokens)} token lists; they must match")
        self.name = validate_name(name)
        self.settings = settings
        # the store passes lazy sequences (rag.index.lazy); anything else is copied into a list
        self.chunks: Sequence[Chunk] = chunks if isinstance(chunks, JsonlRows) else list(chunks)
        self.embeddings = np.ascontiguousarray(embeddings, dtype=np.float32).reshape(len(chunks), settings.dim)
        bad = int(np.size(self.embeddings) - np.count_nonzero(np.isfinite(self.embeddings)))
        if bad:
            raise IndexCorruptError(f"index {name!r}: {bad} embedding values are NaN or infinite")
        self.tokens: Sequence[list[str]] = (tokens if isinstance(tokens, LazyJsonList)  # type: ignore[assignment]
                                            else [list(t) for t in tokens])
        self.documents: dict[str, DocRecord] = dict(documents)
        self.created_at = created_at or time.time()
        if bm25 is not None and (bm25.n_docs != len(self.chunks) or bm25.k1 != settings.bm25_k1
                                 or bm25.b != settings.bm25_b):
            raise IndexCorruptError(f"index {name!r}: the BM25 matrix covers {bm25.n_docs} chunks with k1={bm25.k1}, "
                                    f"b={bm25.b}; the index has {len(self.chunks)} with k1={settings.bm25_k1}, "
                                    f"b={settings.bm25_b}")
        self.bm25 = bm25 if bm25 is not None else BM25Index.build(self.tokens, k1=settings.bm25_k1,
                                                                  b=settings.bm25_b)
        self.dense = faiss_index if faiss_index is not None else FaissIndex.build(self.embeddings, settings.faiss_kind)
        self.analyzer = Analyzer(stemmer=settings.analyzer.get("stemmer", "english"),
                                 stopwords=bool(settings.analyzer.get("stopwords", True)))

    @classmethod
    def empty(cls, name: str, settings: IndexSettings) -> "Index":
        return cls(name, settings, [], np.zeros((0, settings.dim), np.float32), [], {})

    def __len__(self) -> int:
        return len(self.chunks)

    def term_idf(self, terms: Sequence[str]) -> dict[str, float]:
        """BM25's (Lucene) IDF of each analysed term in this index; a term no chunk holds gets the highest."""
        n = self.bm25.n_docs
        return {t: lucene_idf(n, self.bm25.document_frequency(t)) for t in terms}

    def manifest(self) -> dict[str, Any]:
        settings = self.settings.to_manifest()
        settings["bm25"]["matrix"] = self.bm25.manifest_entry()
        settings["faiss"]["params"] = self.dense.params
        return {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "created_at": self.created_at,
            "updated_at": time.time(),
            **settings,
            "counts": {"documents": len(self.documents), "chunks": len(self.chunks),
                       "pages": sum(d.pages or 1 for d in self.documents.values())},
            "versions": library_versions(LIBRARIES),
            "parts": {**PARTS, **{f"bm25_{k}": v for k, v in BM25_PARTS.items()}},
        }


def _new_version_id() -> str:
    return f"{VERSION_PREFIX}{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"


def _faiss_kind(raw: Any) -> str:
    import faiss

    for kind, cls in (("hnsw", faiss.IndexHNSW), ("ivf", faiss.IndexIVF), ("flat", faiss.IndexFlat)):
        if isinstance(raw, cls):
            return kind
    return type(raw).__name__


class IndexStore:
    """Reads and writes named indexes under a root directory (see the module docstring for the guarantees).

    Args:
        root: the directory holding one sub-directory per index (default ``$RAG_INDEX_DIR`` or ``./indexes``).
        lock_timeout: seconds a writer waits for another writer of the same index before failing.

    Example:
        >>> IndexStore("indexes").path("bad/name")
        Traceback (most recent call last):
        ...
        ValueError: index name must be 1-64 characters of letters, digits, '_', '-', '.' and not start with '.' or '-', got 'bad/name'
    """

    def __init__(self, root: str | Path | None = None, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> None:
        if not lock_timeout >= 0:
            raise ValueError(f"lock_timeout must be >= 0 seconds, got {lock_timeout!r}")
        self.root = Path(root) if root is not None else default_index_root()
        self.lock_timeout = float(lock_timeout)

    def path(self, name: str) -> Path:
        """The index's directory (its ``manifest.json`` and ``reranker/`` are directly in it)."""
        return self.root / validate_name(name)

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        self._recover_all()
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST).exists())

    def exists(self, name: str) -> bool:
        self._recover(name)
        return (self.path(name) / MANIFEST).exists()

    def read_manifest(self, name: str) -> dict[str, Any]:
        """The current version's manifest, checked (:func:`validate_manifest`)."""
        self._recover(name)
        path = self.path(name) / MANIFEST
        if not path.exists():
            avail = ", ".join(self.names()) or "none"
            raise IndexNotFoundError(f"no index named {name!r} under {self.root}/ (available: {avail}); "
                                     f"create it with `rag ingest DIR --index {name}`")
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:  # ValueError: bad JSON or bad UTF-8
            raise IndexCorruptError(f"index {name!r}: unreadable manifest.json ({' '.join(str(exc).split())}); "
                                    f"{_REBUILD.format(name=name)}") from None
        return validate_manifest(name, manifest)

    def version_path(self, name: str) -> Path:
        """The directory holding the current version's parts (the index directory itself for the flat layout)."""
        return self._parts_dir(name, self.read_manifest(name))

    def load(self, name: str, expect_embedder: str | None = None) -> Index:
        """Load the current version of an index, checking its manifest (format, embedder) and parts.

        Always one complete version, even while a writer replaces it (see the module docstring).
        An index whose manifest names a server backend is a :class:`rag.index.milvus.MilvusIndex`.
        """
        parts = self.path(name)
        for attempt in range(_LOAD_ATTEMPTS):
            manifest = self.read_manifest(name)
            settings = IndexSettings.from_manifest(manifest)
            if expect_embedder is not None and settings.embedder_id != expect_embedder:
                raise IndexMismatchError(
                    f"index {name!r} was built with embedder {settings.embedder_id!r} but "
                    f"{expect_embedder!r} was requested; use that embedder, or rebuild the index with "
                    f"`rag ingest DIR --index {name} --rebuild`")
            parts = self._parts_dir(name, manifest)
            with ExitStack() as stack:
                try:
                    stack.enter_context(shared_lock(parts))
                except (FileNotFoundError, NotADirectoryError):
                    continue  # replaced and removed after we read the manifest: read the new one
                if self._intact(manifest, parts):
                    if _remote_backend(manifest):
                        return self._open_remote(name, manifest, settings, parts)
                    return self._read_parts(name, manifest, settings, parts)
            logger.debug("index %r: version %s was replaced while loading (attempt %d)", name, parts.name,
                         attempt + 1)
        raise IndexCorruptError(f"index {name!r}: the version named by manifest.json ({parts}) is missing or "
                                f"incomplete; {_REBUILD.format(name=name)}")

    def writer(self, name: str, timeout: float | None = None, create: bool = True) -> "IndexWriter":
        """Exclusive write access to index ``name`` for a ``with`` block (see :class:`IndexWriter`)."""
        return IndexWriter(self, name, self.lock_timeout if timeout is None else timeout, create=create)

    def save(self, index: Index) -> Path:
        """Write ``index`` as a new version under the index's write lock; return the index directory.

        For a read-modify-write (load, change, save) hold :meth:`writer` around all of it instead.
        """
        with self.writer(index.name) as w:
            return w.save(index)

    def delete(self, name: str) -> None:
        """Remove an index (waits for a writer of it to finish; readers loading it at that moment fail)."""
        with self.writer(name, create=False):
            remove_tree(self.path(name), TRASH_PREFIX)

    # -- reading one version -------------------------------------------------------------

    def _parts_dir(self, name: str, manifest: Mapping[str, Any]) -> Path:
        if manifest["format_version"] == FLAT_FORMAT_VERSION:
            return self.path(name)
        return self.path(name) / manifest["parts_dir"]

    @staticmethod
    def _intact(manifest: Mapping[str, Any], parts: Path) -> bool:
        """Whether version ``parts`` still exists (checked while holding its shared lock)."""
        if manifest["format_version"] == FLAT_FORMAT_VERSION:
            return all((parts / f).is_file() for f in PARTS.values())
        return (parts / MANIFEST).is_file()

    def _read_documents(self, name: str, d: Path) -> dict[str, DocRecord]:
        try:
            return {r["source"]: DocRecord(**r)
                    for r in json.loads((d / PARTS["documents"]).read_text(encoding="utf-8"))}
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise IndexCorruptError(f"index {name!r} at {d}: missing or unreadable {PARTS['documents']} "
                                    f"({' '.join(str(exc).split())[:300]}); {_REBUILD.format(name=name)}") from None

    def _open_remote(self, name: str, manifest: Mapping[str, Any], settings: IndexSettings, d: Path) -> Any:
        """A Milvus-backed index: the file records from ``d``, the chunks on the server the manifest names."""
        from rag.index.milvus import MilvusIndex

        return MilvusIndex.open(name, settings, manifest, self._read_documents(name, d))

    def _read_parts(self, name: str, manifest: Mapping[str, Any], settings: IndexSettings, d: Path) -> Index:
        import faiss

        rebuild = _REBUILD.format(name=name)
        expected = manifest["counts"]["chunks"]
        try:
            documents = {r["source"]: DocRecord(**r)
                         for r in json.loads((d / PARTS["documents"]).read_text(encoding="utf-8"))}
            chunks = JsonlRows(d / PARTS["chunks"], Chunk.from_dict, label=f"index {name!r}: {PARTS['chunks']}")
            embeddings = np.load(d / PARTS["embeddings"], mmap_mode="r", allow_pickle=False)
            tokens: Sequence[Sequence[str]] = LazyJsonList(d / PARTS["bm25"], "tokens", expected,
                                                           label=f"index {name!r}: {PARTS['bm25']}")
            # the vectors memory-mapped, not copied (faiss >= 1.10; the graph of an HNSW index is read)
            raw = faiss.read_index(str(d / PARTS["dense"]), getattr(faiss, "IO_FLAG_MMAP_IFC", 0))
        except (OSError, KeyError, ValueError, TypeError, AttributeError, RuntimeError) as exc:  # faiss: RuntimeError
            raise IndexCorruptError(f"index {name!r} at {d}: missing or unreadable part "
                                    f"({' '.join(str(exc).split())[:300]}); {rebuild}") from None
        kind = _faiss_kind(raw)
        if kind != settings.faiss_kind or raw.metric_type != faiss.METRIC_INNER_PRODUCT or raw.d != settings.dim:
            raise IndexCorruptError(
                f"index {name!r}: {PARTS['dense']} is a {kind} index of dim {raw.d}, but manifest.json says "
                f"{settings.faiss_kind} (inner product) of dim {settings.dim}; {rebuild}")
        if embeddings.ndim != 2 or embeddings.dtype.kind != "f":
            raise IndexCorruptError(f"index {name!r}: {PARTS['embeddings']} holds a {embeddings.dtype} array of "
                                    f"shape {embeddings.shape}, expected float (n, {settings.dim}); {rebuild}")
        if embeddings.dtype != np.float32:
            embeddings = np.asarray(embeddings, dtype=np.float32)
        if not (len(chunks) == embeddings.shape[0] == raw.ntotal == len(tokens) == expected):
            raise IndexCorruptError(
                f"index {name!r}: part sizes disagree (manifest {expected}, chunks {len(chunks)}, "
                f"embeddings {embeddings.shape[0]}, faiss {raw.ntotal}); {rebuild}")
        if embeddings.shape[0] and embeddings.shape[1] != settings.dim:
            raise IndexCorruptError(f"index {name!r}: embeddings have dim {embeddings.shape[1]}, "
                                    f"manifest says {settings.dim}; {rebuild}")
        bad = int(embeddings.size - np.count_nonzero(np.isfinite(embeddings)))
        if bad:
            raise IndexCorruptError(f"index {name!r}: {PARTS['embeddings']} contains {bad} NaN or infinite "
                                    f"values; {rebuild}")
        current = Analyzer(stemmer=settings.analyzer.get("stemmer", "english"),
                           stopwords=bool(settings.analyzer.get("stopwords", True)))
        bm25: BM25Index | None = None
        if dict(settings.analyzer) != current.params:
            # built by an older rag (another stop list): re-analyse the stored chunk texts, so queries and
            # documents are tokenized alike; the next write persists it. No re-embedding is needed.
            logger.info("index %r: re-analysing %d chunks for BM25 (analyzer %s -> %s)", name, len(chunks),
                        dict(settings.analyzer), current.params)
            tokens = [current.tokenize(indexed_text(c, settings.title_prefix)) for c in chunks]
            settings = replace(settings, analyzer=current.params)
        elif "matrix" not in manifest["bm25"] or manifest["format_version"] == FLAT_FORMAT_VERSION:
            logger.info("index %r: no stored BM25 matrix (written by an older rag); building it from %s, "
                        "the next write stores it", name, PARTS["bm25"])
        else:
            try:
                bm25 = BM25Index.load(d, manifest["bm25"]["matrix"], k1=settings.bm25_k1, b=settings.bm25_b,
                                      n_docs=expected)
            except ValueError as exc:
                raise IndexCorruptError(f"index {name!r} at {d}: BM25 matrix: {exc}; {rebuild}") from None
        try:
            return Index(name, settings, chunks, embeddings, tokens, documents,
                         faiss_index=FaissIndex(raw, kind, int(raw.d)), created_at=manifest.get("created_at"),
                         bm25=bm25)
        except ValueError as exc:  # a token list unreadable while building BM25 (rag.index.lazy.LazyPartError)
            raise IndexCorruptError(f"{exc}; {rebuild}") from None

    # -- crash recovery of the flat layout's two-rename swap (see rag.fs) ------------------

    def _recover(self, name: str) -> None:
        """Undo a crash between the two renames of an older rag's atomic write of index ``name``."""
        recover(self.path(name), MANIFEST)

    def _recover_all(self) -> None:
        recover_all(self.root, MANIFEST, accept=lambda name: bool(_NAME_RE.match(name)))


class IndexWriter:
    """Exclusive write access to one index, across processes and threads; a context manager.

    Entering takes the index's OS lock (waiting up to ``timeout`` seconds for another writer,
    then :class:`IndexLockedError`), checks that a version can be written there
    (:class:`IndexWriteError`, before any expensive work) and removes stale leftovers of
    crashed writers.  Inside, :meth:`load` sees every earlier writer's changes and
    :meth:`save` publishes a new version.  ``create=False`` refuses an index that does not exist.

    Example:
        >>> import tempfile
        >>> store = IndexStore(tempfile.mkdtemp())
        >>> settings = IndexSettings(embedder_id="e", dim=4, chunker={})
        >>> with store.writer("notes") as w:
        ...     before = w.exists()
        ...     _ = w.save(Index.empty("notes", settings))
        >>> before, store.exists("notes"), len(store.load("notes"))
        (False, True, 0)
    """

    def __init__(self, store: IndexStore, name: str, timeout: float, create: bool = True) -> None:
        if not timeout >= 0:
            raise ValueError(f"timeout must be >= 0 seconds, got {timeout!r}")
        self.store = store
        self.name = validate_name(name)
        self.dir = store.path(name)
        self.timeout = float(timeout)
        self.create = create
        self._lock: WriteLock | None = None

    # -- the lock -------------------------------------------------------------------------

    def __enter__(self) -> "IndexWriter":
        self._lock = self._acquire()
        try:
            self._probe()
            self._clean()
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._drop_if_empty()
        finally:
            self._release()

    def _acquire(self) -> WriteLock:
        for _ in range(5):  # the directory can vanish while we wait (the index was deleted): start over
            if self.create:
                self.store._recover(self.name)  # before mkdir, which would hide a version to recover
                try:
                    self.dir.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise IndexWriteError(self._cannot(exc)) from None
            elif not (self.dir / MANIFEST).is_file():
                self.store.read_manifest(self.name)  # raises IndexNotFoundError naming the available ones
            lock = WriteLock(self.dir / LOCK_FILE, timeout=self.timeout)
            try:
                lock.acquire()
            except (FileNotFoundError, NotADirectoryError):
                continue
            except LockTimeout as exc:
                if exc.own:
                    raise IndexLockedError(
                        f"index {self.name!r} is already being written by this thread; save through the "
                        f"IndexWriter it holds") from None
                raise IndexLockedError(
                    f"index {self.name!r} is being written by {describe_holder(exc.holder)}, which did not finish "
                    f"within {exc.waited:g} s; try again when it is done (or wait longer: --wait SECONDS)") from None
            except OSError as exc:
                raise IndexWriteError(self._cannot(exc)) from None
            if self.create or (self.dir / MANIFEST).is_file():
                return lock
            lock.release()
            self.store.read_manifest(self.name)  # deleted while we waited: IndexNotFoundError
        raise IndexWriteError(f"cannot lock index {self.name!r} in {self.dir}: its directory keeps disappearing")

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _require_lock(self) -> None:
        if self._lock is None:
            raise RuntimeError(f"use IndexWriter for index {self.name!r} in a `with` block")

    def _cannot(self, exc: OSError) -> str:
        where = self.dir
        while not where.exists() and where != where.parent:
            where = where.parent
        if where.exists() and not where.is_dir():
            reason = f"{where} is a file, not a directory"
        elif isinstance(exc, PermissionError):
            reason = f"permission denied on {exc.filename or where}"
        else:
            reason = " ".join((exc.strerror or str(exc)).split())
            if exc.filename:
                reason = f"{exc.filename}: {reason}"
        return (f"cannot write index {self.name!r} under {self.store.root}: {reason}; "
                f"choose a writable --index-dir (or $RAG_INDEX_DIR)")

    def _probe(self) -> None:
        """Fail now, not after the embedding, if a version cannot be created in the index directory."""
        try:
            os.rmdir(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{VERSION_PREFIX}probe-", dir=self.dir))
        except OSError as exc:
            raise IndexWriteError(self._cannot(exc)) from None

    # -- reading and writing under the lock ---------------------------------------------

    def exists(self) -> bool:
        return (self.dir / MANIFEST).is_file()

    def load(self, expect_embedder: str | None = None) -> Index:
        """The current version, including everything earlier writers saved."""
        self._require_lock()
        return self.store.load(self.name, expect_embedder=expect_embedder)

    def save(self, index: Index) -> Path:
        """Publish ``index`` as the new current version; return the index directory.

        The version is written to ``.tmp-v-...``, renamed to ``v-...`` and made current by
        replacing ``manifest.json`` (one ``os.replace``); then versions no reader holds are
        removed.  On an error the current version is unchanged.
        """
        self._require_lock()
        if index.name != self.name:
            raise ValueError(f"this writer holds index {self.name!r}, not {index.name!r}")
        version = _new_version_id()
        manifest = {**index.manifest(), "parts_dir": version}
        text = json.dumps(manifest, indent=2)
        if _remote_backend(manifest):
            return self._save_records(index, version, text)
        try:
            with atomic_directory(self.dir / version) as tmp:
                (tmp / PARTS["documents"]).write_text(
                    json.dumps([asdict(r) for r in index.documents.values()], indent=1), encoding="utf-8")
                with open(tmp / PARTS["chunks"], "w", encoding="utf-8") as fh:
                    for c in index.chunks:
                        fh.write(json.dumps(c.to_dict(), ensure_ascii=False) + "\n")
                np.save(tmp / PARTS["embeddings"], index.embeddings, allow_pickle=False)
                (tmp / PARTS["bm25"]).write_text(json.dumps({"tokens": as_list(index.tokens)}), encoding="utf-8")
                index.bm25.save(tmp)
                index.dense.save(tmp / PARTS["dense"])
                # the manifest goes last: a version directory without one is incomplete
                (tmp / MANIFEST).write_text(text, encoding="utf-8")
            fsync_path(self.dir)
            write_file_atomic(self.dir / MANIFEST, text)  # the switch: readers now get this version
        except OSError as exc:
            reason = " ".join((exc.strerror or str(exc) or type(exc).__name__).split())
            raise IndexWriteError(f"could not write index {self.name!r} to {self.dir} ({reason}); "
                                  f"the previous version is unchanged") from exc
        logger.info("saved index %s (%d chunks) as %s", index.name, len(index), self.dir / version)
        self._clean()
        return self.dir

    def _save_records(self, index: Any, version: str, text: str) -> Path:
        """Publish a server-backed index (rag.index.milvus): only its file records and manifest are local."""
        try:
            with atomic_directory(self.dir / version) as tmp:
                (tmp / PARTS["documents"]).write_text(
                    json.dumps([asdict(r) for r in index.documents.values()], indent=1), encoding="utf-8")
                (tmp / MANIFEST).write_text(text, encoding="utf-8")
            fsync_path(self.dir)
            write_file_atomic(self.dir / MANIFEST, text)
        except OSError as exc:
            reason = " ".join((exc.strerror or str(exc) or type(exc).__name__).split())
            raise IndexWriteError(f"could not write index {self.name!r} to {self.dir} ({reason}); "
                                  f"the previous version is unchanged") from exc
        logger.info("saved index %s (%d chunks on %s) as %s", index.name, len(index), index.config.uri,
                    self.dir / version)
        self._clean()
        return self.dir

    # -- cleaning up ----------------------------------------------------------------------

    def _current_version(self) -> tuple[bool, str | None]:
        """(readable, parts_dir): the pointer's version, None for the flat layout or no index yet."""
        if not (self.dir / MANIFEST).exists():
            return True, None
        try:
            manifest = self.store.read_manifest(self.name)
        except IndexError_:
            return False, None  # a damaged pointer: keep every version until a save replaces it
        return True, manifest.get("parts_dir") if manifest["format_version"] != FLAT_FORMAT_VERSION else None

    def _clean(self) -> None:
        """Remove what crashed writers left and versions no reader holds (call with the lock held)."""
        readable, current = self._current_version()
        removed: list[str] = []
        for entry in sorted(self.dir.iterdir()):
            n = entry.name
            if n.startswith((f"{TMP_PREFIX}{VERSION_PREFIX}", f"{TMP_PREFIX}{MANIFEST}-",
                             f"{TRASH_PREFIX}{VERSION_PREFIX}")):
                _remove_any(entry)
                removed.append(n)
            elif readable and _VERSION_RE.match(n) and n != current:
                with exclusive_now(entry) as free:
                    if free:  # no reader holds it (readers arriving now wait, then find it gone)
                        remove_tree(entry, TRASH_PREFIX)
                        removed.append(n)
                    else:
                        logger.debug("index %r: keeping %s, a reader holds it", self.name, n)
        if readable and current is not None:
            flat = [self.dir / f for f in PARTS.values() if (self.dir / f).exists()]
            if flat:  # the flat layout's parts, superseded by the version the pointer names
                with exclusive_now(self.dir) as free:
                    if free:
                        for f in flat:
                            _remove_any(f)
                        removed.extend(f.name for f in flat)
        if self.store.root.is_dir():  # the flat layout's crash leftovers next to the index directory
            for entry in sorted(self.store.root.iterdir()):
                if any(moved_aside_name(entry.name, p) == self.name for p in (TMP_PREFIX, OLD_PREFIX, TRASH_PREFIX)):
                    _remove_any(entry)
                    removed.append(entry.name)
        if removed:
            logger.info("index %r: removed %d stale entries (%s)", self.name, len(removed), ", ".join(removed[:5]))

    def _drop_if_empty(self) -> None:
        """Remove the directory made for the lock if nothing was saved into it."""
        if self._lock is None or not self.dir.is_dir() or (self.dir / MANIFEST).exists():
            return
        try:
            if [p.name for p in self.dir.iterdir()] == [LOCK_FILE]:
                (self.dir / LOCK_FILE).unlink()
                self.dir.rmdir()
        except OSError:
            pass


def _remove_any(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def iter_chunk_texts(index: Index) -> Iterable[str]:
    for c in index.chunks:
        yield indexed_text(c, index.settings.title_prefix)
