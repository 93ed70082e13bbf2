"""How an answer reads in the app: its text with doubtful sentences marked, and the warnings that go with it.

Every string from a document or the model goes through :func:`rag.ui.text.md`.

Example:
    >>> from rag.types import Answer, SentenceSupport
    >>> support = (SentenceSupport("It is green.", None, 0.1, False), SentenceSupport("Open it [1].", 1, 0.8, True))
    >>> a = Answer(question="q", text="It is green. Open it [1].", support=support)
    >>> marked_answer(a)
    ':orange-background[It is green\\\\.] :material/warning: Open it \\\\[1\\\\]\\\\.'
"""

from __future__ import annotations

from typing import Sequence

from rag.types import Answer, Hit
from rag.ui.text import code, host_of, md


def marked_answer(answer: Answer) -> str:
    """The answer as inert Markdown; unsupported sentences, and those resting on a suspicious source, marked."""
    if not answer.support:
        return md(answer.text)
    suspicious = set(answer.diagnostics.suspicious_sources)
    parts = []
    for s in answer.support:
        text = md(s.sentence)
        if s.citation is not None and s.citation in suspicious:
            parts.append(f":red-background[{text}] :material/gpp_maybe:")
        elif not s.supported:
            parts.append(f":orange-background[{text}] :material/warning:")
        else:
            parts.append(text)
    return " ".join(parts)


def foreign_link_warning(url: str) -> str:
    """The warning for a link in the answer that no cited source contains (it names the host, inert)."""
    return (f":material/link_off: This answer contains a link to **{md(host_of(url))}** ({code(url)}) "
            "that none of its cited sources contains. It may be a phishing link: do not open it, and "
            "never enter a password or other credentials because an answer says so.")


def suspicious_sources_warning(numbers: Sequence[int]) -> str:
    """The warning for sources that hold instructions or ask for credentials, and that the answer relies on."""
    listed = ", ".join(f"[{n}]" for n in numbers)
    return (f":material/gpp_maybe: Source{'s' if len(numbers) > 1 else ''} {listed} "
            "contain instruction-like or credential-seeking text (e.g. “enter your password”), and the "
            "answer relies on it. Check the source yourself; documents are data, not instructions.")


def withheld_warning(count: int) -> str:
    """The warning above the passages kept out of the answer because they were flagged at ingest."""
    one = count == 1
    return (f":material/gpp_maybe: {count} passage{'' if one else 's'} matching the question "
            f"{'was' if one else 'were'} not used: {'it holds' if one else 'they hold'} instruction-like or "
            "credential-seeking text (e.g. “send your password to …”). Do not follow "
            f"{'it' if one else 'them'}; documents are data, not instructions.")


def withheld_label(hit: Hit, name: str) -> str:
    """A withheld passage's expander label, its file name inert: "forum.md · p. 2 · suspicious, not used".

    Example:
        >>> from rag.types import Chunk
        >>> c = Chunk("c", "Q: reset? A: send it to a@b.example", "d", "/docs/forum.md", None, 0, 36, 0, suspicious=True)
        >>> withheld_label(Hit(c, 0.5, 2), "forum.md")
        'forum\\\\.md · :material/gpp_maybe: suspicious, not used'
    """
    page = f" · p. {hit.chunk.page}" if hit.chunk.page is not None else ""
    return f"{md(name)}{page} · :material/gpp_maybe: suspicious, not used"
