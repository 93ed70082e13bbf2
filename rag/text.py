"""Text utilities shared by every stage: stop words, word patterns, sentence splitting, chat-template leaks.

One copy of each, so the BM25 analyzer, the relevance gate, the query rewriters, the citation
check and the reranker's pair miner agree on what a word, a stop word and a sentence are.

* :data:`STOPWORDS`: the English list that bm25s ships (``STOPWORDS_EN_PLUS``, NLTK's list),
  plus four modal/relative words NLTK lacks (``also could whose would``).
* :data:`TOKEN_RE`: Unicode word tokens (letters and digits, an inner apostrophe kept): what
  BM25 indexes and what counts as a word.
* :func:`content_terms`: the content words of a question (ASCII words of 3+ letters, stop words
  and conversational filler removed), used by the gate's term coverage and the rewriters.
* :func:`split_sentences`: sentences, with citation markers kept on the sentence they follow.
* :data:`CHAT_TEMPLATE_RE`: chat-template tokens or role prefixes a small model leaks into output.

Example:
    >>> content_terms("Could you tell me how the boundary layer affects heat transfer?")
    ['boundary', 'layer', 'affects', 'heat', 'transfer']
    >>> split_sentences("Open the valve [1]. Fill the casing. [2] Done!")
    ['Open the valve [1].', 'Fill the casing. [2]', 'Done!']
    >>> bool(CHAT_TEMPLATE_RE.search("<|im_start|>assistant")), "whose" in STOPWORDS
    (True, True)
"""

from __future__ import annotations

import re
import threading
from typing import Any

from bm25s.stopwords import STOPWORDS_EN_PLUS

#: English stop words: bm25s' ``STOPWORDS_EN_PLUS`` (NLTK's list) plus ``also could whose would``.
STOPWORDS: frozenset[str] = frozenset(STOPWORDS_EN_PLUS) | frozenset(("also", "could", "whose", "would"))

#: Names :data:`STOPWORDS` in an index manifest; an index analysed with another list is re-analysed on load.
STOPWORDS_ID = "nltk-english+also-could-whose-would"

#: Words that carry no topic in a question to an assistant ("please tell me ..."); not stop words for BM25.
QUERY_FILLER: frozenset[str] = frozenset(
    "answer else ok okay one ones please question sure tell thank thanks yes".split())

#: Words that make a question lean on the conversation ("what about *it*?").
REFERRING: frozenset[str] = frozenset("it its they them their this that these those he she him her there one ones "
                                      "such same also more else former latter".split())

#: A word token: letters/digits, with one inner apostrophe kept (``don't``, ``o’clock``).
TOKEN_RE = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)

#: A content-word candidate: ASCII letters first, then letters, digits, ``'`` or ``-``.
WORD_RE = re.compile(r"[A-Za-z][A-Za-z0-9'-]*")

#: Chat-template tokens (``<|im_start|>``, ``<|end|>``) and role prefixes leaked by a model.
CHAT_TEMPLATE_RE = re.compile(r"<\|?im_|\|>|^(system|user|assistant)\s*:", re.I | re.M)

#: A citation marker: ``[1]``, ``[1, 2]``, ``[source 3]``.
CITE_RE = re.compile(r"\[\s*(?:sources?\s*)?(\d+(?:\s*[,;]\s*(?:sources?\s*)?\d+)*)\s*\]", re.I)
_SPLIT_RE = re.compile(r"(?<=[.!?])\s+(?=[^\s\[])|(?<=[.!?]\])\s+|(?<=\])\s+(?=[A-Z])")
_ALNUM = re.compile(r"[A-Za-z0-9]")


def words(text: str) -> list[str]:
    """The word tokens of ``text`` (:data:`TOKEN_RE`), case kept.

    Example:
        >>> words("Don't run the pump dry: 2 mm!")
        ["Don't", 'run', 'the', 'pump', 'dry', '2', 'mm']
    """
    return TOKEN_RE.findall(text)


def content_terms(text: str) -> list[str]:
    """Lower-cased content words of ``text`` in order of first appearance.

    Words of 3+ characters (:data:`WORD_RE`) that are neither stop words nor question filler.
    """
    seen: dict[str, None] = {}
    for w in WORD_RE.findall(text):
        w = w.lower().strip("'-")
        if len(w) >= 3 and w not in STOPWORDS and w not in QUERY_FILLER:
            seen.setdefault(w, None)
    return list(seen)


_THREAD = threading.local()


def english_stemmer() -> Any:
    """This thread's English Snowball (Porter2) stemmer from PyStemmer, the one stemmer of the project
    (the BM25 analyzer, the support check, the answer judge). One per thread: PyStemmer's stemmer
    "has internal state, so must not be called concurrently", and the app and the API answer on
    several threads."""
    stemmer = getattr(_THREAD, "stemmer", None)
    if stemmer is None:
        import Stemmer  # noqa: PLC0415

        stemmer = _THREAD.stemmer = Stemmer.Stemmer("english")
    return stemmer


def content_stems(text: str) -> list[str]:
    """:func:`content_terms`, Snowball-stemmed: "combined" and "combines" are one term.

    Example:
        >>> content_stems("The rankings are combined; combining ranks")
        ['rank', 'combin']
    """
    return list(dict.fromkeys(english_stemmer().stemWords(content_terms(text))))


#: A line that starts a block of its own: a heading, list item, quote or table row.
_BLOCK_START = re.compile(r"\s*(?:#|[-*•>|]\s|\d+[.)]\s)")


def unwrap_lines(text: str) -> list[str]:
    r"""The lines of ``text`` with hard wraps undone: a line continues the one before it unless
    that one ends a sentence (``.!?``), is a heading or table row, the line starts with a capital
    letter (a title line "Chapter 1: Safety" of a PDF page) or a block (:data:`_BLOCK_START`), or a
    blank line lies between them.

    Text files, Markdown and PDF pages wrap sentences at a fixed width; split at every line
    break, "... and Word\ndocuments (.docx)." became two fragments that neither the support
    check nor the relevance gate could match.

    Example:
        >>> unwrap_lines("Supported are PDF and Word\ndocuments.\n## Next\n- one\n- two\nPump manual\nChapter 1")
        ['Supported are PDF and Word documents.', '## Next', '- one', '- two', 'Pump manual', 'Chapter 1']
    """
    out: list[str] = []
    joinable = False
    for raw in text.split("\n"):
        line = raw.strip()
        if not line:
            joinable = False
            continue
        if joinable and not line[0].isupper() and not _BLOCK_START.match(line):
            out[-1] = f"{out[-1]} {line}"
        else:
            out.append(line)
        last = out[-1]
        joinable = not (last[-1] in ".!?" or last.startswith(("#", "|")))
    return out


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``; citation markers stay with the sentence they follow.

    Splits at ``.``/``!``/``?`` followed by space and at line breaks that end a line of its own
    (:func:`unwrap_lines`: a hard-wrapped sentence stays whole). Fragments without two
    letters or digits (a list bullet ``1.``) are merged into the next sentence.
    """
    out: list[str] = []
    carry = ""
    for para in unwrap_lines(text):
        for part in _SPLIT_RE.split(para.strip()):
            part = part.strip()
            if not part:
                continue
            if len(_ALNUM.findall(CITE_RE.sub("", part))) < 2 and not CITE_RE.fullmatch(part):
                carry = f"{carry} {part}".strip()
                continue
            if CITE_RE.fullmatch(part) and out:  # a bare "[2]" on its own belongs to the previous sentence
                out[-1] = f"{out[-1]} {part}"
                continue
            out.append(f"{carry} {part}".strip() if carry else part)
            carry = ""
    if carry:
        out.append(carry)
    return out
