"""Ingestion stage 2: split documents into overlapping, tokenizer-aware windows.

Windows are measured in tokens of the *embedder's* tokenizer, so a chunk never exceeds
what the dense model actually reads (all-MiniLM-L6-v2 truncates at 256 word pieces).
Splitting prefers paragraph, then line, then sentence, then word boundaries
(langchain-text-splitters' ``RecursiveCharacterTextSplitter``).

A Markdown table (:func:`rag.ingest.tables.table_blocks`; the loaders write every table they find
that way) is chunked apart from the text around it: whole when it fits, else in groups of whole rows,
and a row is never cut from its header: the first group holds the header itself, each later one
carries it as its :attr:`~rag.types.Chunk.context`, measured with it.

Every chunk is an exact substring of its document: ``doc.text[c.start:c.end] == c.text``.
A chunk that asks the reader for credentials or gives the assistant instructions is flagged
(``Chunk.suspicious``, :func:`rag.answer.safety.is_suspicious`), so answers can leave it out.

Example:
    >>> from rag.types import Document
    >>> chunker = Chunker(chunk_size=8, chunk_overlap=2, length_function=lambda s: len(s.split()))
    >>> doc = Document.from_text("One two three four. Five six seven eight. Nine ten.", source="a.txt")
    >>> [c.text for c in chunker.split([doc], doc_id="d")]
    ['One two three four. Five six seven eight.', 'Nine ten.']
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Sequence

from rag.answer.safety import is_suspicious
from rag.ingest.tables import TableBlock, table_blocks
from rag.types import Chunk, Document, content_hash
from rag.validate import positive_int

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 200
DEFAULT_CHUNK_OVERLAP = 40
SEPARATORS: tuple[str, ...] = ("\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ", "")


class Chunker:
    """Split documents into overlapping token windows with provenance.

    Args:
        chunk_size: window size in tokens (default 200: fits MiniLM's 256-piece limit
            with room for a title prefix).
        chunk_overlap: tokens shared by neighbouring windows (default 40, 20%).
        tokenizer: a Hugging Face tokenizer; its ``encode`` (no special tokens) defines token length.
        length_function: alternative to ``tokenizer`` (e.g. for tests); one is required.
    """

    def __init__(self, chunk_size: int = DEFAULT_CHUNK_SIZE, chunk_overlap: int = DEFAULT_CHUNK_OVERLAP,
                 tokenizer: Any | None = None,
                 length_function: Callable[[str], int] | None = None) -> None:
        positive_int("chunk_size", chunk_size)
        if not isinstance(chunk_overlap, int) or not 0 <= chunk_overlap < chunk_size:
            raise ValueError(f"chunk_overlap must be an integer in [0, chunk_size={chunk_size}), "
                             f"got {chunk_overlap!r}")
        if tokenizer is None and length_function is None:
            raise ValueError("Chunker needs a tokenizer or a length_function to measure tokens")
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        if length_function is None:
            def length_function(text: str) -> int:
                # verbose=False: measuring a whole document is fine, no "longer than max length" warning
                return len(tokenizer.encode(text, add_special_tokens=False, verbose=False))
        self._length = length_function
        self._splitter: Any | None = None

    @property
    def params(self) -> dict[str, Any]:
        """Parameters recorded in the index manifest."""
        return {"chunk_size": self.chunk_size, "chunk_overlap": self.chunk_overlap,
                "unit": "tokens", "separators": list(SEPARATORS)}

    def _get_splitter(self) -> Any:
        if self._splitter is None:
            from langchain_text_splitters import RecursiveCharacterTextSplitter

            self._splitter = RecursiveCharacterTextSplitter(
                chunk_size=self.chunk_size, chunk_overlap=self.chunk_overlap,
                length_function=self._length, separators=list(SEPARATORS),
                keep_separator="end", add_start_index=False, strip_whitespace=True,
            )
        return self._splitter

    def split(self, documents: Sequence[Document], doc_id: str) -> list[Chunk]:
        """Split the documents (pages) of one file into chunks numbered in reading order; a Markdown
        table is chunked apart from the text around it (:meth:`_table_spans`)."""
        chunks: list[Chunk] = []
        for doc in documents:
            cursor = 0
            for table in table_blocks(doc.text):
                self._text_spans(doc, cursor, table.start, doc_id, chunks)
                for start, end, context in self._table_spans(doc.text, table):
                    chunks.append(self._chunk(doc, doc_id, start, end, len(chunks), context))
                cursor = table.end
            self._text_spans(doc, cursor, len(doc.text), doc_id, chunks)
        return chunks

    def _chunk(self, doc: Document, doc_id: str, start: int, end: int, index: int, context: str = "") -> Chunk:
        piece = doc.text[start:end]
        # the context joins the id only when set: chunks without one keep the ids of older indexes
        return Chunk(
            id=content_hash("chunk", doc_id, str(doc.page), str(start), piece, *([context] if context else [])),
            text=piece, doc_id=doc_id, source=doc.source, page=doc.page, start=start, end=end, index=index,
            title=doc.title, suspicious=is_suspicious(piece), context=context,
        )

    def _windows(self, text: str, start: int, end: int) -> list[tuple[int, int]]:
        """``(start, end)`` in ``text`` of the splitter's overlapping windows of ``text[start:end]``."""
        part = text[start:end]
        out, cursor = [], 0
        for piece in self._get_splitter().split_text(part):
            at = self._locate(part, piece, cursor)
            # the next window overlaps this one, so it starts after this one's start
            cursor = at + 1
            out.append((start + at, start + at + len(piece)))
        return out

    def _text_spans(self, doc: Document, start: int, end: int, doc_id: str, chunks: list[Chunk]) -> None:
        """Append the overlapping windows of ``doc.text[start:end]`` (text outside tables) to ``chunks``."""
        if not doc.text[start:end].strip():
            return
        for a, b in self._windows(doc.text, start, end):
            chunks.append(self._chunk(doc, doc_id, a, b, len(chunks)))

    def _table_spans(self, text: str, table: TableBlock) -> list[tuple[int, int, str]]:
        """``(start, end, context)`` of a table's chunks: the whole table when it fits ``chunk_size``,
        else groups of whole rows, the first under the literal header, each later one with the header as
        its context and measured with it. Rows do not overlap. A row too long for a chunk by itself is
        split by the text splitter, each piece still with the header as context."""
        if self._length(text[table.start:table.end]) <= self.chunk_size or not table.rows:
            return [(table.start, table.end, "")]
        header, header_cost = table.header, self._length(table.header)
        spans: list[tuple[int, int, str]] = []
        group: list[int] | None = None  # [start, end] of the rows gathered; the first group starts at the header
        used = 0

        def close(g: list[int]) -> tuple[int, int, str]:
            return g[0], g[1], "" if g[0] == table.start else header

        for row_start, row_end in table.rows:
            cost = self._length(text[row_start:row_end])  # rows add up: a line break is no token
            if header_cost + cost > self.chunk_size:
                if group is not None:
                    spans.append(close(group))
                    group = None
                # a row too long for a chunk even alone: the splitter's windows, each with the header
                spans.extend((a, b, header) for a, b in self._windows(text, row_start, row_end))
                continue
            if group is not None and used + cost > self.chunk_size:
                spans.append(close(group))
                group = None
            if group is None:
                group, used = [row_start if spans else table.start, row_end], header_cost + cost
            else:
                group[1], used = row_end, used + cost
        if group is not None:
            spans.append(close(group))
        return spans

    @staticmethod
    def _locate(text: str, piece: str, cursor: int) -> int:
        pos = text.find(piece, cursor)
        if pos < 0:  # should not happen: pieces are substrings; search from the start
            pos = text.find(piece)
        if pos < 0:
            raise RuntimeError(f"chunk is not a substring of its document: {piece[:60]!r}")
        return pos
