"""Ingestion stage 2: split documents into overlapping, tokenizer-aware windows.

Windows are measured in tokens of the *embedder's* tokenizer, so a chunk never exceeds
what the dense model actually reads (all-MiniLM-L6-v2 truncates at 256 word pieces).
Splitting prefers paragraph, then line, then sentence, then word boundaries
(langchain-text-splitters' ``RecursiveCharacterTextSplitter``).

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
        """Split the documents (pages) of one file into chunks numbered in reading order."""
        splitter = self._get_splitter()
        chunks: list[Chunk] = []
        for doc in documents:
            cursor = 0
            for piece in splitter.split_text(doc.text):
                start = self._locate(doc.text, piece, cursor)
                end = start + len(piece)
                # the next chunk overlaps this one, so it starts after this one's start
                cursor = start + 1
                chunks.append(Chunk(
                    id=content_hash("chunk", doc_id, str(doc.page), str(start), piece),
                    text=piece, doc_id=doc_id, source=doc.source, page=doc.page,
                    start=start, end=end, index=len(chunks), title=doc.title,
                    suspicious=is_suspicious(piece),
                ))
        return chunks

    @staticmethod
    def _locate(text: str, piece: str, cursor: int) -> int:
        pos = text.find(piece, cursor)
        if pos < 0:  # should not happen: pieces are substrings; search from the start
            pos = text.find(piece)
        if pos < 0:
            raise RuntimeError(f"chunk is not a substring of its document: {piece[:60]!r}")
        return pos
