"""Frozen data records shared by every pipeline stage.

Ids are content hashes, so re-indexing the same text keeps chunk ids (and therefore
qrels, citations and caches) valid.  Change a record with :func:`dataclasses.replace`.

Example:
    >>> doc = Document.from_text("Hello world.", source="notes/hello.txt")
    >>> doc.id == Document.from_text("Hello world.", source="notes/hello.txt").id
    True
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Mapping


def content_hash(*parts: str, length: int = 16) -> str:
    """Stable hex id from text parts (sha256, truncated to ``length`` hex chars)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x1f")
    return h.hexdigest()[:length]


@dataclass(frozen=True)
class Document:
    """One loaded unit of text: a whole file, or one page of a PDF.

    ``page`` is 1-based for paged formats and ``None`` otherwise.
    """

    id: str
    text: str
    source: str
    page: int | None = None
    title: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_text(
        cls,
        text: str,
        source: str,
        page: int | None = None,
        title: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> "Document":
        doc_id = content_hash(source, str(page), text)
        return cls(id=doc_id, text=text, source=source, page=page, title=title,
                   metadata=dict(metadata or {}))


@dataclass(frozen=True)
class Chunk:
    """A window of a document's text with full provenance.

    ``start``/``end`` are character offsets into the *document's* text (for a PDF,
    the page's text), so ``doc.text[chunk.start:chunk.end] == chunk.text``.
    ``doc_id`` names the source file (stable across pages), ``index`` is the
    chunk's position within that file.
    """

    id: str
    text: str
    doc_id: str
    source: str
    page: int | None
    start: int
    end: int
    index: int
    title: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "text": self.text, "doc_id": self.doc_id, "source": self.source,
            "page": self.page, "start": self.start, "end": self.end, "index": self.index,
            "title": self.title,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Chunk":
        return cls(
            id=str(d["id"]), text=str(d["text"]), doc_id=str(d["doc_id"]),
            source=str(d["source"]), page=d.get("page"), start=int(d["start"]),
            end=int(d["end"]), index=int(d["index"]), title=str(d.get("title", "")),
        )

    @property
    def location(self) -> str:
        """Human-readable provenance, e.g. ``manual.pdf p.3 [120:840]``."""
        page = f" p.{self.page}" if self.page is not None else ""
        return f"{self.source}{page} [{self.start}:{self.end}]"


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with its score and rank (1-based).

    ``scores`` keeps per-stage scores (e.g. ``{"bm25": 7.1, "dense": 0.62, "rrf": 0.03}``)
    so a user can see why a chunk ranked where it did.
    """

    chunk: Chunk
    score: float
    rank: int
    scores: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Citation:
    """A numbered source in an answer: ``[n]`` in the text maps to ``chunk``."""

    number: int
    chunk: Chunk
    score: float


@dataclass(frozen=True)
class SentenceSupport:
    """One answer sentence and the chunk that best supports it (if any)."""

    sentence: str
    citation: int | None
    similarity: float
    supported: bool


@dataclass(frozen=True)
class Answer:
    """A grounded answer with the sources it was given and its support check."""

    question: str
    text: str
    citations: tuple[Citation, ...] = ()
    support: tuple[SentenceSupport, ...] = ()
    standalone_query: str = ""
    grounded: bool = True
    mode: str = "generative"
    metadata: Mapping[str, Any] = field(default_factory=dict)
