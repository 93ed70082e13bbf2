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


def clip(text: str, width: int) -> str:
    """``text`` on one line (whitespace runs as one space), cut to ``width`` characters with an ellipsis.

    Example:
        >>> clip("a very\\n long   title", 10), clip("short", 10)
        ('a very lo…', 'short')
    """
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[:width - 1] + "…"


def cited_numbers(text: str) -> list[int]:
    """The source numbers the citation markers of ``text`` name, in order (repeats kept).

    Example:
        >>> cited_numbers("Open it [2]. Fill it [1, 3] and [source 2].")
        [2, 1, 3, 2]
    """
    return [int(n) for m in CITE_RE.finditer(text) for n in re.findall(r"\d+", m.group(1))]


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
_LINE_RE = re.compile(r"[^\n]+")
_NEWLINE_SPACE = re.compile(r"\s*\n\s*")


def _paragraph_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` in ``text`` of each unwrapped line of :func:`unwrap_lines` (stripped)."""
    out: list[list[int]] = []
    joinable = False
    previous_end = 0
    for m in _LINE_RE.finditer(text):
        line = m.group(0).strip()
        if not line or text.count("\n", previous_end, m.start()) > 1:  # a blank line ends a paragraph
            joinable = False
        previous_end = m.end()
        if not line:
            continue
        start = m.start() + (len(m.group(0)) - len(m.group(0).lstrip()))
        end = start + len(line)
        if joinable and not line[0].isupper() and not _BLOCK_START.match(line):
            out[-1][1] = end
        else:
            out.append([start, end])
        last = text[out[-1][0]:out[-1][1]]
        joinable = not (last[-1] in ".!?" or last.startswith(("#", "|")))
    return [(a, b) for a, b in out]


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
    return [flatten(text[a:b]) for a, b in _paragraph_spans(text)]


def flatten(text: str) -> str:
    r"""``text`` with every line break (and the spaces around it) turned into one space.

    Example:
        >>> flatten("Word\n   documents.")
        'Word documents.'
    """
    return _NEWLINE_SPACE.sub(" ", text).strip()


def sentence_spans(text: str) -> list[tuple[int, int]]:
    r"""``(start, end)`` character offsets of the sentences of :func:`split_sentences` in ``text``:
    ``split_sentences(text) == [flatten(text[a:b]) for a, b in sentence_spans(text)]``.

    Example:
        >>> t = "Open the valve [1]. Fill the\ncasing. [2] Done!"
        >>> [t[a:b] for a, b in sentence_spans(t)]
        ['Open the valve [1].', 'Fill the\ncasing. [2]', 'Done!']
    """
    out: list[list[int]] = []
    carry: int | None = None  # where short fragments waiting for the next sentence start
    end = 0
    for p0, p1 in _paragraph_spans(text):
        para = text[p0:p1]
        cuts = list(_SPLIT_RE.finditer(para))
        for s, e in zip([0, *(m.end() for m in cuts)], [*(m.start() for m in cuts), len(para)]):
            part = para[s:e]
            a, b = p0 + s + len(part) - len(part.lstrip()), p0 + s + len(part.rstrip())
            if b <= a:
                continue
            piece, end = text[a:b], b
            if len(_ALNUM.findall(CITE_RE.sub("", piece))) < 2 and not CITE_RE.fullmatch(piece):
                carry = a if carry is None else carry
                continue
            if CITE_RE.fullmatch(piece) and out:  # a bare "[2]" on its own belongs to the previous sentence
                out[-1][1] = b
                continue
            out.append([a if carry is None else carry, b])
            carry = None
    if carry is not None:
        out.append([carry, end])
    return [(a, b) for a, b in out]


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``; citation markers stay with the sentence they follow.

    Splits at ``.``/``!``/``?`` followed by space and at line breaks that end a line of its own
    (:func:`unwrap_lines`: a hard-wrapped sentence stays whole). Fragments without two
    letters or digits (a list bullet ``1.``) are merged into the next sentence.
    """
    return [flatten(text[a:b]) for a, b in sentence_spans(text)]
