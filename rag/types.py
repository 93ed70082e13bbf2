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
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:  # pragma: no cover
    from rag.answer.trace import Trace


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

    ``page`` is 1-based for paged formats and ``None`` otherwise; ``format`` is the file
    extension it was read from (``.pdf``, ``.md``; empty for text made in code).
    """

    id: str
    text: str
    source: str
    page: int | None = None
    title: str = ""
    format: str = ""

    @classmethod
    def from_text(
        cls,
        text: str,
        source: str,
        page: int | None = None,
        title: str = "",
        format: str = "",
    ) -> "Document":
        doc_id = content_hash(source, str(page), text)
        return cls(id=doc_id, text=text, source=source, page=page, title=title, format=format)


@dataclass(frozen=True)
class Chunk:
    """A window of a document's text with full provenance.

    ``start``/``end`` are character offsets into the *document's* text (for a PDF,
    the page's text), so ``doc.text[chunk.start:chunk.end] == chunk.text``.
    ``doc_id`` names the source file (stable across pages), ``index`` is the
    chunk's position within that file.  ``suspicious`` is set at ingest when the text asks the
    reader for credentials or gives the assistant instructions (:func:`rag.answer.safety.is_suspicious`):
    such a chunk is kept out of prompts and quotes and shown as "suspicious, not used".  Indexes
    written before the flag existed load with it unset.  ``context`` is text the chunk needs to be
    read that lies elsewhere in its document: a table's header rows for a group of its rows (the
    chunk itself stays an exact substring). What reads a chunk for meaning (the indexed text, the
    prompt, evidence, the app) reads :attr:`full_text`; indexes written before it load it as ``""``.

    Example:
        >>> from dataclasses import replace
        >>> c = Chunk.from_dict({"id": "c", "text": "x", "doc_id": "d", "source": "a.md", "page": None,
        ...                      "start": 0, "end": 1, "index": 0})
        >>> c.suspicious, Chunk.from_dict(replace(c, suspicious=True).to_dict()).suspicious
        (False, True)
        >>> rows = replace(c, text="| Fee | 45 |", context="| Item | Price |\\n| --- | --- |")
        >>> print(Chunk.from_dict(rows.to_dict()).full_text)
        | Item | Price |
        | --- | --- |
        | Fee | 45 |
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
    suspicious: bool = False
    context: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "text": self.text, "doc_id": self.doc_id, "source": self.source,
            "page": self.page, "start": self.start, "end": self.end, "index": self.index,
            "title": self.title, "suspicious": self.suspicious, "context": self.context,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Chunk":
        return cls(
            id=str(d["id"]), text=str(d["text"]), doc_id=str(d["doc_id"]),
            source=str(d["source"]), page=d.get("page"), start=int(d["start"]),
            end=int(d["end"]), index=int(d["index"]), title=str(d.get("title", "")),
            suspicious=d.get("suspicious") is True, context=str(d.get("context") or ""),
        )

    @property
    def full_text(self) -> str:
        """The chunk as read for meaning: its :attr:`context` (when any) on the lines before its text."""
        return f"{self.context}\n{self.text}" if self.context else self.text

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
    """A numbered source in an answer: ``[n]`` in the text maps to ``chunk``, and, when the answer was
    made from selected evidence, to the sentence(s) at ``start:end`` (character offsets into the
    document, like the chunk's own) that the app highlights.

    Example:
        >>> c = Chunk("c", "Open the valve. Fill the casing.", "d", "pump.md", None, 100, 132, 0)
        >>> Citation(1, c, 0.5, 116, 132).quote, Citation(1, c, 0.5).quote
        ('Fill the casing.', 'Open the valve. Fill the casing.')
    """

    number: int
    chunk: Chunk
    score: float
    start: int | None = None
    end: int | None = None

    def __post_init__(self) -> None:
        if (self.start is None) != (self.end is None):
            raise ValueError("a citation's start and end are both set or both None")
        if self.start is not None and not self.chunk.start <= self.start < self.end <= self.chunk.end:  # type: ignore[operator]
            raise ValueError(f"citation span {self.start}:{self.end} is not inside its chunk "
                             f"{self.chunk.start}:{self.chunk.end}")

    @property
    def span(self) -> tuple[int, int]:
        """The cited characters in the document: the sentence(s), or the whole chunk."""
        if self.start is None or self.end is None:
            return self.chunk.start, self.chunk.end
        return self.start, self.end

    @property
    def quote(self) -> str:
        """The cited text: the sentence(s) the answer rests on, or the whole chunk."""
        a, b = self.span
        return self.chunk.text[a - self.chunk.start:b - self.chunk.start]


@dataclass(frozen=True)
class SentenceSupport:
    """One answer sentence and the chunk that best supports it (if any)."""

    sentence: str
    citation: int | None
    similarity: float
    supported: bool


class Choice(StrEnum):
    """A string enum whose :meth:`parse` names the valid choices on a bad value.

    Members are ``str`` (``RetrievalMode.HYBRID == "hybrid"``) and print as their value.
    """

    def __repr__(self) -> str:
        return repr(self.value)

    @classmethod
    def parse(cls, value: "str | Choice") -> Any:
        try:
            return cls(value)
        except ValueError:
            choices = ", ".join(m.value for m in cls)
            raise ValueError(f"{cls.label()} must be one of {choices}; got {value!r}") from None

    @classmethod
    def label(cls) -> str:
        """What the choice is called in messages: ``RetrievalMode`` -> ``retrieval mode``."""
        return "".join(f" {c.lower()}" if c.isupper() else c for c in cls.__name__).strip()


class RetrievalMode(Choice):
    """Which retrievers run: BM25 alone, dense alone, or both fused.

    Example:
        >>> RetrievalMode.parse("hybrid") == "hybrid", [str(m) for m in RetrievalMode]
        (True, ['bm25', 'dense', 'hybrid'])
        >>> RetrievalMode.parse("sparse")
        Traceback (most recent call last):
        ...
        ValueError: retrieval mode must be one of bm25, dense, hybrid; got 'sparse'
    """

    BM25 = "bm25"
    DENSE = "dense"
    HYBRID = "hybrid"


class Fusion(Choice):
    """How hybrid mode merges BM25 and dense: the sum of each list's robust z-scores (the default),
    Reciprocal Rank Fusion with equal weights, RRF with the dense weight set per query by how much
    the two rankings agree, or a weighted sum of min-max normalised scores."""

    ZSCORE = "zscore"
    RRF = "rrf"
    ADAPTIVE = "adaptive"
    WEIGHTED = "weighted"


class ContextMode(Choice):
    """What the answer is made from: the sentences selected as evidence (the default), or whole chunks."""

    EVIDENCE = "evidence"
    CHUNKS = "chunks"


class AnswerMode(Choice):
    """How an answer was made: generated by the LLM, quoted from the sources, or a direct (small-talk) reply."""

    GENERATIVE = "generative"
    EXTRACTIVE = "extractive"
    DIRECT = "direct"


@dataclass(frozen=True)
class Diagnostics:
    """What happened while answering, for the UI, ``--trace`` and the evaluation harness.

    ``reason`` says why an answer is not a grounded generation (``no relevant hit``, ``model
    declined``, ``empty``, ``direct route: ...``); ``explicit_citations`` are the ``[n]`` the model
    wrote, ``inferred_citations`` the sources the support check matched to uncited sentences,
    ``invalid_citations`` the markers that named no source (removed from the text).
    ``foreign_urls`` are URLs in the answer that no cited source contains (a document can make
    the model print a phishing link); ``suspicious_sources`` the numbers of sources the answer
    relies on that hold instruction-like or credential-seeking text ("enter your password");
    ``withheld`` the retrieved hits whose chunks were flagged at ingest (:attr:`Chunk.suspicious`)
    and so were kept out of the prompt and the quotes, for the front ends to list as "suspicious,
    not used".
    ``scaffolding_removed`` counts the characters of echoed prompt text cut from the answer;
    ``repointed_citations`` the ``(cited, supporting)`` source numbers of markers moved to the
    source that supports the sentence; ``unsupported_share`` is the share of answer sentences the support check did not support;
    ``fallback`` says why the generated answer was replaced (e.g. by quoted source sentences).
    ``answer_check`` is the model's log-odds that the sources answer the question (Y vs N
    as the first token of a check prompt), minus the same for a content-free question over the same
    sources (:class:`~rag.answer.gate.AnswerCheck`), when the answerability check ran.
    ``decision`` is what the answer decision said (``answer``, ``contradicted``, ``not found``;
    empty when none ran), ``decision_score`` the log-odds it rests on, held against
    ``decision_threshold``, and ``decision_rule`` which rule decided (a trained decision file, or
    the answer check alone), ``decision_signals`` every signal it read: :mod:`rag.answer.decision`.
    ``timings`` holds seconds per step (``retrieve_s``, ``generate_s``).
    """

    retrieved: int = 0
    relevant: int = 0
    top_dense: float | None = None
    rewrite_method: str = "none"
    reason: str = ""
    explicit_citations: tuple[int, ...] = ()
    inferred_citations: tuple[int, ...] = ()
    invalid_citations: tuple[int, ...] = ()
    prompt_tokens: int = 0
    sources_in_prompt: int = 0
    chunks_dropped: int = 0
    truncated: bool = False
    quote_similarity: tuple[float, ...] = ()
    foreign_urls: tuple[str, ...] = ()
    suspicious_sources: tuple[int, ...] = ()
    withheld: tuple[Hit, ...] = ()
    scaffolding_removed: int = 0
    repointed_citations: tuple[tuple[int, int], ...] = ()
    unsupported_share: float | None = None
    fallback: str = ""
    answer_check: float | None = None
    decision: str = ""
    decision_score: float | None = None
    decision_threshold: float | None = None
    decision_rule: str = ""
    decision_signals: Mapping[str, float] = field(default_factory=dict)
    raw: str = ""
    timings: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    """A grounded answer: its text, the sources it cites, the sources it was given, the support check.

    ``citations`` are the sources the answer relies on (cited by the model or matched by the
    support check); ``sources`` every chunk that was put in the prompt (or quoted from), numbered
    as in the prompt; ``trace`` the pre-generation steps (route, rewrites, hits per query);
    ``diagnostics`` the counts, citation fixes and timings.

    Example:
        >>> a = Answer(question="hi", text="Hello!", mode=AnswerMode.DIRECT, grounded=False)
        >>> a.mode == "direct", a.diagnostics.reason, a.declined
        (True, '', False)
    """

    question: str
    text: str
    citations: tuple[Citation, ...] = ()
    support: tuple[SentenceSupport, ...] = ()
    standalone_query: str = ""
    grounded: bool = True
    mode: AnswerMode = AnswerMode.GENERATIVE
    sources: tuple[Citation, ...] = ()
    trace: "Trace | None" = None
    diagnostics: Diagnostics = field(default_factory=Diagnostics)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", AnswerMode.parse(self.mode))

    @property
    def declined(self) -> bool:
        """True when the answer is the fixed "not in your documents" reply."""
        from rag.generation.prompting import NOT_FOUND

        return self.text == NOT_FOUND
