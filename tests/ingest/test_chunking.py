"""Chunker: exact offsets, token limits with the real tokenizer, overlap, stable ids."""

from __future__ import annotations

import pytest

from rag.ingest.chunking import Chunker
from rag.types import Document


def _doc(text: str, page: int | None = None) -> Document:
    return Document.from_text(text, source="/docs/x.txt", page=page, title="X")


def test_offsets_are_exact_and_overlap_exists(embedder) -> None:  # type: ignore[no-untyped-def]
    text = " ".join(f"Sentence number {i} talks about valve {i % 7} and pump {i % 5}." for i in range(120))
    chunker = Chunker(chunk_size=60, chunk_overlap=15, tokenizer=embedder.tokenizer)
    chunks = chunker.split([_doc(text)], doc_id="d1")
    assert len(chunks) > 5
    for c in chunks:
        assert text[c.start:c.end] == c.text
        assert len(embedder.tokenizer.tokenize(c.text)) <= 60
    # consecutive windows overlap in characters, and move forward
    for a, b in zip(chunks, chunks[1:]):
        assert b.start > a.start
        assert b.start < a.end
    assert [c.index for c in chunks] == list(range(len(chunks)))


def test_prefers_paragraph_boundaries(embedder) -> None:  # type: ignore[no-untyped-def]
    para = "The pump must be primed before start. " * 6
    text = para.strip() + "\n\n" + ("Turbines need inspection. " * 6).strip()
    chunks = Chunker(chunk_size=70, chunk_overlap=0, tokenizer=embedder.tokenizer).split([_doc(text)], "d")
    assert len(chunks) == 2
    assert chunks[0].text.endswith("start.") and chunks[1].text.startswith("Turbines")


def test_pages_keep_their_numbers_and_ids_are_stable(embedder) -> None:  # type: ignore[no-untyped-def]
    docs = [_doc("Page one text about pumps.", page=1), _doc("Page two text about turbines.", page=2)]
    chunker = Chunker(chunk_size=50, chunk_overlap=10, tokenizer=embedder.tokenizer)
    a = chunker.split(docs, doc_id="d")
    b = chunker.split(docs, doc_id="d")
    assert [c.page for c in a] == [1, 2]
    assert [c.id for c in a] == [c.id for c in b]
    assert len({c.id for c in a}) == 2
    assert all(c.source == "/docs/x.txt" and c.doc_id == "d" and c.title == "X" for c in a)


@pytest.mark.parametrize("kwargs,message", [
    ({"chunk_size": 0}, "chunk_size must be a positive integer"),
    ({"chunk_size": 10, "chunk_overlap": 10}, r"chunk_overlap must be an integer in \[0, chunk_size=10\)"),
    ({"chunk_size": 10, "chunk_overlap": -1}, "chunk_overlap"),
])
def test_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Chunker(length_function=len, **kwargs)


def test_needs_a_way_to_count_tokens() -> None:
    with pytest.raises(ValueError, match="tokenizer or a length_function"):
        Chunker()
