"""Starter questions for an empty chat, written from a collection's own headings, terms and titles."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping, Sequence

from rag.types import Chunk

_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$", re.MULTILINE)
_TERM = re.compile(r"^\s{0,3}\*\*([^*\n]{2,40})\*\*\s*[:\u2014-]", re.MULTILINE)
MAX_QUESTION_CHARS = 90


def _plain(text: str) -> str:
    return " ".join(re.sub(r"[*_`]+", "", text).split()).strip(" :.-")


def _lower_first(text: str) -> str:
    """``Adding documents`` -> ``adding documents``; ``FAISS index`` and ``PDF`` stay as they are."""
    return text if len(text) > 1 and text[1].isupper() else text[:1].lower() + text[1:]


def _doc_title(source: str, doc_chunks: Sequence[Chunk], titles: Mapping[str, str]) -> str:
    """A document's title, else its first line when that reads like one (short, no full stop), else its file stem."""
    title = _plain(titles.get(source) or (doc_chunks[0].title if doc_chunks else ""))
    stem = Path(source).stem
    if title and title != stem:
        return title
    first = min(doc_chunks, key=lambda c: c.index).text.strip().split("\n", 1)[0] if doc_chunks else ""
    first = _plain(first)
    if 3 <= len(first) <= 60 and not first.endswith((".", ",", ";")):
        return first
    return title or stem


def example_questions(chunks: Sequence[Chunk], titles: Mapping[str, str] | None = None, n: int = 3) -> list[str]:
    """Up to ``n`` starter questions written from a collection's own headings, terms and titles.

    Markdown headings that are questions are kept as they are; other sub-headings become "What
    should I know about …?", bold glossary terms (``**Term**:``) "What does “Term” mean?", and a
    document with nothing else its title or title-like first line ("What does “Title” cover?").
    Documents take turns, so the questions come from different documents; the order is deterministic.

    Example:
        >>> c1 = Chunk("1", "# Guide\\n\\n## Adding documents\\nText.", "d1", "/g.md", None, 0, 30, 0)
        >>> c2 = Chunk("2", "## How large can a file be?\\n50 MB.", "d2", "/faq.md", None, 0, 30, 0)
        >>> c3 = Chunk("3", "**BM25**: a ranking function.", "d3", "/gloss.md", None, 0, 30, 0)
        >>> example_questions([c1, c2, c3])
        ['How large can a file be?', 'What should I know about adding documents?', 'What does “BM25” mean?']
    """
    per_doc: dict[str, list[str]] = {}
    for c in sorted(chunks, key=lambda c: (c.source, c.index)):
        found = per_doc.setdefault(c.source, [])
        for m in _HEADING.finditer(c.text):
            level, heading = len(m.group(1)), _plain(m.group(2))
            if not heading:
                continue
            if heading.endswith("?"):
                found.append(heading)
            elif level > 1:
                found.append(f"What should I know about {_lower_first(heading)}?")
        for m in _TERM.finditer(c.text):
            term = _plain(m.group(1))
            if term:
                found.append(f"What does “{term}” mean?")
    for source, found in per_doc.items():
        if not found:
            title = _doc_title(source, [c for c in chunks if c.source == source], titles or {})
            if title:
                found.append(f"What does “{title}” cover?")
    queues = [list(dict.fromkeys(q for q in qs if len(q) <= MAX_QUESTION_CHARS)) for qs in per_doc.values()]
    out: list[str] = []
    while len(out) < n and any(queues):
        for q in queues:
            if q and len(out) < n:
                question = q.pop(0)
                if question not in out:
                    out.append(question)
    return out
