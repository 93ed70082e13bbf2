"""Named indexes on disk: a directory with ``manifest.json`` plus its parts.

Layout of ``indexes/NAME/``::

    manifest.json    format version, embedder id/dim, chunker and BM25 params, counts, versions
    documents.json   one record per ingested file (path, content hash, chunk count)
    chunks.jsonl     one chunk per line, with provenance
    embeddings.npy   float32 (n_chunks, dim), row i = chunks.jsonl line i
    dense.faiss      FAISS index over the embeddings
    bm25.json        analyzed tokens per chunk (the BM25 index is rebuilt from them)

Writes are atomic (:func:`rag.fs.atomic_directory`): the new version is written to a
temporary sibling directory and renamed into place, so a crash leaves the previous index usable.

Example:
    >>> import tempfile
    >>> store = IndexStore(tempfile.mkdtemp())
    >>> store.names()
    []
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from rag.fs import atomic_directory, library_versions, recover, recover_all
from rag.index.dense import FaissIndex, validate_kind
from rag.index.sparse import Analyzer, BM25Index
from rag.types import Chunk

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PARTS: dict[str, str] = {
    "documents": "documents.json", "chunks": "chunks.jsonl", "embeddings": "embeddings.npy",
    "dense": "dense.faiss", "bm25": "bm25.json",
}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEFAULT_INDEX_ROOT = "indexes"
# a sub-directory owned by another stage (rag.reranker.store) that survives re-ingests
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


def default_index_root() -> Path:
    """``$RAG_INDEX_DIR`` if set, else ``./indexes``."""
    return Path(os.environ.get("RAG_INDEX_DIR", DEFAULT_INDEX_ROOT))


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"index name must be 1-64 characters of letters, digits, '_', '-', '.' "
                         f"and not start with '.' or '-', got {name!r}")
    return name


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
            analyzer=m["bm25"]["analyzer"], faiss_kind=m["faiss"]["kind"],
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
                 faiss_index: FaissIndex | None = None, created_at: float | None = None) -> None:
        if len(chunks) != embeddings.shape[0] or len(chunks) != len(tokens):
            raise IndexCorruptError(f"index {name!r}: {len(chunks)} chunks, {embeddings.shape[0]} embeddings, "
                                    f"{len(tokens)} token lists; they must match")
        self.name = validate_name(name)
        self.settings = settings
        self.chunks: list[Chunk] = list(chunks)
        self.embeddings = np.ascontiguousarray(embeddings, dtype=np.float32).reshape(len(chunks), settings.dim)
        self.tokens: list[list[str]] = [list(t) for t in tokens]
        self.documents: dict[str, DocRecord] = dict(documents)
        self.created_at = created_at or time.time()
        self.bm25 = BM25Index.build(self.tokens, k1=settings.bm25_k1, b=settings.bm25_b)
        self.dense = faiss_index if faiss_index is not None else FaissIndex.build(self.embeddings, settings.faiss_kind)
        self.analyzer = Analyzer(stemmer=settings.analyzer.get("stemmer", "english"),
                                 stopwords=bool(settings.analyzer.get("stopwords", True)))

    @classmethod
    def empty(cls, name: str, settings: IndexSettings) -> "Index":
        return cls(name, settings, [], np.zeros((0, settings.dim), np.float32), [], {})

    def __len__(self) -> int:
        return len(self.chunks)

    def manifest(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "created_at": self.created_at,
            "updated_at": time.time(),
            **self.settings.to_manifest(),
            "counts": {"documents": len(self.documents), "chunks": len(self.chunks),
                       "pages": sum(d.pages or 1 for d in self.documents.values())},
            "versions": library_versions(LIBRARIES),
            "parts": dict(PARTS),
        }


class IndexStore:
    """Reads and atomically writes named indexes under a root directory.

    Example:
        >>> IndexStore("indexes").path("bad/name")
        Traceback (most recent call last):
        ...
        ValueError: index name must be 1-64 characters of letters, digits, '_', '-', '.' and not start with '.' or '-', got 'bad/name'
    """

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_index_root()

    def path(self, name: str) -> Path:
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
        self._recover(name)
        path = self.path(name) / MANIFEST
        if not path.exists():
            avail = ", ".join(self.names()) or "none"
            raise IndexNotFoundError(f"no index named {name!r} under {self.root}/ (available: {avail}); "
                                     f"create it with `rag ingest DIR --index {name}`")
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise IndexCorruptError(f"index {name!r}: unreadable manifest.json ({exc})") from None
        version = manifest.get("format_version")
        if version != FORMAT_VERSION:
            raise IndexMismatchError(
                f"index {name!r} has format version {version!r}, this version of rag reads {FORMAT_VERSION}; "
                f"rebuild it with `rag ingest DIR --index {name} --rebuild`")
        return manifest

    def load(self, name: str, expect_embedder: str | None = None) -> Index:
        """Load an index, checking its manifest (format, embedder) and part sizes."""
        manifest = self.read_manifest(name)
        settings = IndexSettings.from_manifest(manifest)
        if expect_embedder is not None and settings.embedder_id != expect_embedder:
            raise IndexMismatchError(
                f"index {name!r} was built with embedder {settings.embedder_id!r} but "
                f"{expect_embedder!r} was requested; use that embedder, or rebuild the index with "
                f"`rag ingest DIR --index {name} --rebuild`")
        d = self.path(name)
        try:
            documents = {r["source"]: DocRecord(**r)
                         for r in json.loads((d / PARTS["documents"]).read_text(encoding="utf-8"))}
            with open(d / PARTS["chunks"], encoding="utf-8") as fh:
                chunks = [Chunk.from_dict(json.loads(line)) for line in fh if line.strip()]
            embeddings = np.load(d / PARTS["embeddings"], allow_pickle=False)
            tokens = json.loads((d / PARTS["bm25"]).read_text(encoding="utf-8"))["tokens"]
            dense = FaissIndex.load(d / PARTS["dense"], settings.faiss_kind)
        except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:  # faiss raises RuntimeError
            raise IndexCorruptError(f"index {name!r} at {d}: missing or unreadable part ({exc}); "
                                    f"rebuild it with `rag ingest DIR --index {name} --rebuild`") from None
        current = Analyzer(stemmer=settings.analyzer.get("stemmer", "english"),
                           stopwords=bool(settings.analyzer.get("stopwords", True)))
        if dict(settings.analyzer) != current.params:
            # built by an older rag (another stop list): re-analyse the stored chunk texts, so queries and
            # documents are tokenized alike; the next write persists it. No re-embedding is needed.
            logger.info("index %r: re-analysing %d chunks for BM25 (analyzer %s -> %s)", name, len(chunks),
                        dict(settings.analyzer), current.params)
            tokens = [current.tokenize(indexed_text(c, settings.title_prefix)) for c in chunks]
            settings = replace(settings, analyzer=current.params)
        expected = manifest["counts"]["chunks"]
        if not (len(chunks) == embeddings.shape[0] == dense.ntotal == len(tokens) == expected):
            raise IndexCorruptError(
                f"index {name!r}: part sizes disagree (manifest {expected}, chunks {len(chunks)}, "
                f"embeddings {embeddings.shape[0]}, faiss {dense.ntotal}, bm25 {len(tokens)}); rebuild it")
        if embeddings.shape[0] and embeddings.shape[1] != settings.dim:
            raise IndexCorruptError(f"index {name!r}: embeddings have dim {embeddings.shape[1]}, "
                                    f"manifest says {settings.dim}")
        return Index(name, settings, chunks, embeddings, tokens, documents, faiss_index=dense,
                     created_at=manifest.get("created_at"))

    def save(self, index: Index) -> Path:
        """Write ``index`` atomically: temp dir, then rename into place."""
        final = self.path(index.name)
        with atomic_directory(final) as tmp:
            (tmp / PARTS["documents"]).write_text(
                json.dumps([asdict(r) for r in index.documents.values()], indent=1), encoding="utf-8")
            with open(tmp / PARTS["chunks"], "w", encoding="utf-8") as fh:
                for c in index.chunks:
                    fh.write(json.dumps(c.to_dict(), ensure_ascii=False) + "\n")
            np.save(tmp / PARTS["embeddings"], index.embeddings, allow_pickle=False)
            (tmp / PARTS["bm25"]).write_text(json.dumps({"tokens": index.tokens}), encoding="utf-8")
            index.dense.save(tmp / PARTS["dense"])
            # the manifest goes last: a directory without one is never loaded
            (tmp / MANIFEST).write_text(json.dumps(index.manifest(), indent=2), encoding="utf-8")
            extra = final / KEPT_SUBDIR
            if extra.is_dir():  # a trained reranker belongs to the collection: carry it over
                shutil.copytree(extra, tmp / KEPT_SUBDIR)
        logger.info("saved index %s (%d chunks) to %s", index.name, len(index), final)
        return final

    def delete(self, name: str) -> None:
        path = self.path(name)
        if not path.exists():
            raise IndexNotFoundError(f"no index named {name!r} under {self.root}/")
        trash = self.root / f".trash-{name}-{uuid.uuid4().hex[:8]}"
        os.replace(path, trash)
        shutil.rmtree(trash, ignore_errors=True)

    # -- crash recovery (see rag.fs) -------------------------------------------------

    def _recover(self, name: str) -> None:
        """Undo a crash between the two renames of an atomic write of index ``name``."""
        recover(self.path(name), MANIFEST)

    def _recover_all(self) -> None:
        recover_all(self.root, MANIFEST, accept=lambda name: bool(_NAME_RE.match(name)))


def iter_chunk_texts(index: Index) -> Iterable[str]:
    for c in index.chunks:
        yield indexed_text(c, index.settings.title_prefix)
