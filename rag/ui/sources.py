"""An answer's sources as the app shows them: grouped by document, with a relevance cue and a label.

:func:`relevance` turns a dense cosine into High/Medium/Low, :func:`group_sources` collapses an
answer's sources by document, and :class:`SourceView` holds what one message's sources are labelled
with (names relative to the collection, cosines, which passages support the answer), so
:func:`group_label`, :func:`passage_heading` and :func:`group_details` write the Markdown the app
draws. Every untrusted string goes through :func:`rag.ui.text.md`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from rag.answer.gate import DEFAULT_MIN_DENSE
from rag.types import Answer, Choice, Chunk, Citation
from rag.ui.text import code, md

HIGH_RELEVANCE = 0.5  # all-MiniLM-L6-v2: a passage that answers the question scores 0.4-0.8 (rag.answer.gate)


class Relevance(Choice):
    """A human cue for how well a passage matches the question, from its dense cosine.

    ``High`` at cosine >= 0.5, ``Medium`` from the relevance gate's 0.3, ``Low`` below (it can
    still be shown: the gate also lets a passage through on the question's terms).
    """

    HIGH = "High"
    MEDIUM = "Medium"
    LOW = "Low"


def relevance(cosine: float | None) -> Relevance | None:
    """The :class:`Relevance` of a dense cosine (None when there is none).

    Example:
        >>> [str(relevance(x)) for x in (0.71, 0.42, 0.12)], relevance(None)
        (['High', 'Medium', 'Low'], None)
    """
    if cosine is None:
        return None
    if cosine >= HIGH_RELEVANCE:
        return Relevance.HIGH
    return Relevance.MEDIUM if cosine >= DEFAULT_MIN_DENSE else Relevance.LOW


def relevance_label(cosine: float | None, supports: bool = False) -> str:
    """The source list's cue: "High relevance" ... from the passage's cosine to the question.

    A passage that the support check matched to an answer sentence is never called "Low" (an FAQ
    chunk that covers several questions scores a low cosine against any one of them, yet holds the
    answer): it reads "Supports the answer".

    Example:
        >>> relevance_label(0.71), relevance_label(0.12), relevance_label(0.12, supports=True), relevance_label(None)
        ('High relevance', 'Low relevance', 'Supports the answer', '')
    """
    cue = relevance(cosine)
    if supports and cue in (None, Relevance.LOW):
        return "Supports the answer"
    return "" if cue is None else f"{cue} relevance"


def passage_cosines(index: object, query_vector: "object", chunk_ids: Iterable[str]) -> dict[str, float]:
    """Dense cosine of each chunk (by id) in ``index`` to a unit query vector (what dense retrieval scores).

    ``index`` is a loaded :class:`~rag.index.store.Index`; ids not in it are left out.
    """
    import numpy as np

    rows = {c.id: i for i, c in enumerate(index.chunks)}  # type: ignore[attr-defined]
    wanted = [cid for cid in dict.fromkeys(chunk_ids) if cid in rows]
    if not wanted:
        return {}
    vectors = index.embeddings[[rows[cid] for cid in wanted]]  # type: ignore[attr-defined]
    sims = vectors @ np.asarray(query_vector, dtype=np.float32)
    return {cid: float(s) for cid, s in zip(wanted, sims)}


@dataclass(frozen=True)
class SourceGroup:
    """An answer's sources from one document: its name relative to the collection and its passages."""

    source: str
    name: str
    citations: tuple[Citation, ...]

    @property
    def numbers(self) -> tuple[int, ...]:
        return tuple(c.number for c in self.citations)

    @property
    def pages(self) -> tuple[int, ...]:
        return tuple(sorted({c.chunk.page for c in self.citations if c.chunk.page is not None}))


def group_sources(citations: Sequence[Citation], relative: "Mapping[str, str] | None" = None) -> list[SourceGroup]:
    """Collapse citations by document, in the order each document first appears.

    ``relative`` maps a source path to the name shown (the path relative to the collection's
    folder, :class:`rag.serve.service.SourcePaths`); by default the file name.

    Example:
        >>> a = Chunk("a", "x", "d1", "/docs/manual.pdf", 3, 0, 1, 4)
        >>> b = Chunk("b", "y", "d2", "/docs/faq.md", None, 0, 1, 0)
        >>> c = Chunk("c", "z", "d1", "/docs/manual.pdf", 1, 0, 1, 0)
        >>> groups = group_sources([Citation(1, a, 0.1), Citation(2, b, 0.1), Citation(3, c, 0.1)])
        >>> [(g.name, g.numbers, g.pages) for g in groups]
        [('manual.pdf', (1, 3), (1, 3)), ('faq.md', (2,), ())]
    """
    groups: dict[str, list[Citation]] = {}
    for c in citations:
        groups.setdefault(c.chunk.source, []).append(c)
    names = relative or {}
    return [SourceGroup(src, names.get(src) or Path(src).name, tuple(cs)) for src, cs in groups.items()]


def answer_cosines(answer: Answer) -> dict[str, float]:
    """Dense cosines the retrievers recorded in the trace (chunk id -> cosine), for answers without their own."""
    out: dict[str, float] = {}
    if answer.trace is not None:
        for hit in [*answer.trace.fused, *(h for r in answer.trace.retrievals for h in r.hits)]:
            if "dense" in hit.scores:
                out.setdefault(hit.chunk_id, float(hit.scores["dense"]))
    return out


def supporting_sources(answer: Answer) -> frozenset[int]:
    """The source numbers the support check matched to an answer sentence (never called "Low" relevance)."""
    return frozenset(s.citation for s in answer.support if s.supported and s.citation is not None)


@dataclass(frozen=True)
class SourceView:
    """How one message's sources are labelled and opened.

    ``names`` maps a source path to the name shown (relative to the collection's folder),
    ``chunks`` the index's chunks by id (for the trace and the passage viewer), ``cosines`` each
    chunk's dense cosine to the question, ``supporting`` the source numbers that support an answer
    sentence; ``key`` keeps one message's widgets apart from another's.

    Example:
        >>> a = Chunk("a", "x", "d1", "/docs/faq.md", 2, 0, 1, 0)
        >>> view = SourceView("m0", names={"/docs/faq.md": "docs/faq.md"}, chunks={"a": a})
        >>> view.name("/docs/faq.md"), view.describe("a", "?"), view.describe("gone", "faq.md [0:9]")
        ('docs/faq.md', 'docs/faq.md p. 2', 'faq.md [0:9]')
    """

    key: str
    cosines: Mapping[str, float] = field(default_factory=dict)
    supporting: frozenset[int] = frozenset()
    names: Mapping[str, str] = field(default_factory=dict)
    chunks: Mapping[str, Chunk] = field(default_factory=dict)

    def name(self, source: str) -> str:
        return self.names.get(source) or Path(source).name

    def describe(self, chunk_id: str, location: str) -> str:
        """A trace hit as "faq.md p. 2" (falls back to the recorded location)."""
        c = self.chunks.get(chunk_id)
        if c is None:
            return location
        return self.name(c.source) + (f" p. {c.page}" if c.page is not None else "")

    def cue(self, citation: Citation) -> str:
        """One passage's relevance cue (:func:`relevance_label`)."""
        return relevance_label(self.cosines.get(citation.chunk.id), supports=citation.number in self.supporting)


def group_label(group: SourceGroup, view: SourceView, suspicious: Iterable[int] = ()) -> str:
    """A document's expander label: "[1] [3] name · p. 2 · High relevance", flagged when a passage is suspicious.

    Example:
        >>> a = Chunk("a", "x", "d1", "/docs/faq.md", 2, 0, 1, 0)
        >>> g = group_sources([Citation(1, a, 0.1)])[0]
        >>> group_label(g, SourceView("m0", cosines={"a": 0.7}), suspicious=[1])
        '[1] faq\\\\.md · p. 2 · High relevance · :material/gpp_maybe: suspicious'
    """
    pages = group.pages
    where = f" · p. {pages[0]}" if len(pages) == 1 else f" · pp. {', '.join(map(str, pages))}" if pages else ""
    best = max((view.cosines[c.chunk.id] for c in group.citations if c.chunk.id in view.cosines), default=None)
    text = relevance_label(best, supports=any(n in view.supporting for n in group.numbers))
    cue = f" · {text}" if text else ""
    flag = " · :material/gpp_maybe: suspicious" if set(group.numbers) & set(suspicious) else ""
    numbers = " ".join(f"[{n}]" for n in group.numbers)
    return f"{numbers} {md(group.name)}{where}{cue}{flag}"


def passage_heading(citation: Citation, view: SourceView) -> str:
    """"**[3]** · page 2 · Medium relevance": one passage of a document with several."""
    page = f" · page {citation.chunk.page}" if citation.chunk.page is not None else ""
    cue = view.cue(citation)
    return f"**[{citation.number}]**{page}{' · ' + cue if cue else ''}"


def group_details(group: SourceGroup, view: SourceView) -> str:
    """Chunk ids, offsets and scores of a document's passages (behind the "Details" toggle), then its full path."""
    lines = [f"[{c.number}] {md(view.name(c.chunk.source))} · chunk {code(c.chunk.id)} · passage "
             f"{c.chunk.index + 1} · characters {c.chunk.start}–{c.chunk.end}"
             + (f" of page {c.chunk.page}" if c.chunk.page is not None else "")
             + f" · retrieval score {c.score:.4f}"
             + (f" · dense cosine {view.cosines[c.chunk.id]:.3f}" if c.chunk.id in view.cosines else "")
             for c in group.citations]
    return "  \n".join(lines) + f"  \n{md(group.source)}"
