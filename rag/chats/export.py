"""A saved chat as Markdown (to read) or JSON (everything that was saved).

Markdown: each question, its answer, and its numbered sources with file, page and the quoted
passage (the cited sentences, or the whole passage).  Document and model text is quoted as it is;
a Markdown viewer may style it, so read an export of untrusted documents as plain text.

Example:
    >>> from rag.chats.store import Chat, Turn
    >>> from rag.types import Answer, Chunk, Citation
    >>> c = Chunk("c1", "Open the valve. Fill the casing.", "d", "/docs/pump.pdf", 2, 0, 32, 0)
    >>> a = Answer(question="How?", text="Fill the casing [1].", citations=(Citation(1, c, 0.5, 16, 32),))
    >>> print(to_markdown(Chat("ab12", "How?", "manuals", turns=(Turn(1, "How?", a),))))
    # How?
    <BLANKLINE>
    Collection: manuals · chat ab12
    <BLANKLINE>
    ## Question 1
    <BLANKLINE>
    How?
    <BLANKLINE>
    **Answer**
    <BLANKLINE>
    Fill the casing [1].
    <BLANKLINE>
    **Sources**
    <BLANKLINE>
    1. pump.pdf, page 2 (/docs/pump.pdf)
    <BLANKLINE>
       > Fill the casing.
    <BLANKLINE>
"""

from __future__ import annotations

import json
from pathlib import PurePath
from typing import Any, Sequence

from rag.chats.codec import answer_to_dict
from rag.chats.store import SCHEMA_VERSION, Chat
from rag.types import Citation


def _source(c: Citation) -> list[str]:
    page = f", page {c.chunk.page}" if c.chunk.page is not None else ""
    lines = [f"{c.number}. {PurePath(c.chunk.source).name}{page} ({c.chunk.source})", ""]
    lines += ["   > " + line if line.strip() else "   >" for line in c.quote.strip().splitlines()]
    return lines + [""]


def to_markdown(chat: Chat) -> str:
    """The chat as Markdown: title, then per turn the question, the answer and its numbered sources."""
    out = [f"# {chat.title}", "", f"Collection: {chat.collection} · chat {chat.id}", ""]
    if chat.documents:
        out += ["Documents: " + ", ".join(chat.documents), ""]
    for t in chat.turns:
        a = t.answer
        out += [f"## Question {t.position}", "", t.question.strip(), "", "**Answer**", "", a.text.strip(), ""]
        sources, title = (a.citations, "Sources") if a.citations else (a.sources, "Sources given to the model")
        if sources:
            out += [f"**{title}**", ""]
            for c in sorted(sources, key=lambda c: c.number):  # a Markdown list renumbers from its first item
                out += _source(c)
    return "\n".join(out)


def to_json(chat: Chat, raw_answers: Sequence[dict[str, Any]] | None = None) -> str:
    """Everything saved: the chat, and per turn the whole answer (citations, diagnostics, trace), model, timings."""
    answers = list(raw_answers) if raw_answers is not None else [answer_to_dict(t.answer) for t in chat.turns]
    doc = {"schema": SCHEMA_VERSION, "id": chat.id, "title": chat.title, "collection": chat.collection,
           "documents": list(chat.documents), "created": chat.created, "updated": chat.updated,
           "turns": [{"position": t.position, "question": t.question, "model": t.model, "timings": dict(t.timings),
                      "meta": dict(t.meta), "created": t.created, "answer": a}
                     for t, a in zip(chat.turns, answers)]}
    return json.dumps(doc, ensure_ascii=False, indent=2)
