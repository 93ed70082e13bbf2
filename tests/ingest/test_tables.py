"""Tables keep their header: PDF, DOCX and HTML tables load as Markdown tables where they stand, the chunker
keeps a table whole or cuts it between rows (later groups carry the header as ``Chunk.context``), and a
question about a cell finds its row through the real search path."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.index.store import IndexStore, indexed_text
from rag.ingest.chunking import Chunker
from rag.ingest.ingestor import Ingestor
from rag.ingest.loaders import DocumentLoader
from rag.ingest.tables import markdown_table, plain_table_text, table_blocks, table_text
from rag.types import Chunk, Document, content_hash
from tests.pdfgen import table_page, write_pdf, write_table_pdf

HEADER = ["Item", "Price", "Unit"]
SMALL = [HEADER, ["Plot fee", "45 EUR", "year"], ["Water", "12 EUR", "m3"], ["Hose", "8 EUR", "piece"]]
MD_HEADER = "| Item | Price | Unit |\n| --- | --- | --- |"


def _words(text: str) -> int:
    return len(text.split())


def _long_rows(n: int = 200) -> list[list[str]]:
    rows = [[f"Spare part {i:03d}", f"{i} EUR", "piece"] for i in range(n)]
    rows[n * 2 // 3] = ["Garden hose", "17.50 EUR", "roll"]
    return [HEADER, *rows]


def _ingest(store: IndexStore, embedder, path: Path):  # type: ignore[no-untyped-def]
    report = Ingestor("docs", store=store, embedder=embedder, show_progress=False).ingest([path])
    assert report.ok, report.summary()
    return store.load("docs")


# -- the chunker ------------------------------------------------------------------------------


def test_a_table_that_fits_is_one_chunk_and_the_text_around_it_is_chunked_as_before() -> None:
    table = markdown_table(SMALL[0], SMALL[1:])
    text = f"Fees of the garden club.\n\n{table}\n\nPay by March."
    doc = Document.from_text(text, source="fees.md")
    chunks = Chunker(chunk_size=50, chunk_overlap=5, length_function=_words).split([doc], doc_id="d")
    assert [c.text for c in chunks] == ["Fees of the garden club.", table, "Pay by March."]
    assert all(text[c.start:c.end] == c.text and c.context == "" for c in chunks)
    assert [c.index for c in chunks] == [0, 1, 2]


def test_a_long_table_is_cut_between_rows_and_every_group_carries_the_header() -> None:
    rows = _long_rows(60)
    table = markdown_table(rows[0], rows[1:])
    text = f"Price list.\n\n{table}\n\nEnd of list."
    doc = Document.from_text(text, source="prices.md")
    chunks = Chunker(chunk_size=40, chunk_overlap=5, length_function=_words).split([doc], doc_id="d")
    parts = [c for c in chunks if c.text.startswith("|")]
    assert len(parts) > 3
    assert parts[0].text.startswith(MD_HEADER) and parts[0].context == ""
    assert all(c.context == MD_HEADER and not c.text.startswith(MD_HEADER) for c in parts[1:])
    lines = [line for c in parts for line in c.text.split("\n")]
    assert lines == table.split("\n")  # every row once, none cut, in order
    for c in chunks:
        assert text[c.start:c.end] == c.text
        assert _words(c.full_text) <= 40
    assert [c.index for c in chunks] == list(range(len(chunks)))


def test_a_row_too_long_for_a_chunk_is_split_with_the_header_as_context() -> None:
    long_cell = " ".join(f"word{i}" for i in range(60))
    table = markdown_table(["Name", "Notes"], [["a", "short"], ["b", long_cell], ["c", "short"]])
    doc = Document.from_text(table, source="notes.md")
    chunks = Chunker(chunk_size=30, chunk_overlap=3, length_function=_words).split([doc], doc_id="d")
    assert all(doc.text[c.start:c.end] == c.text for c in chunks)
    assert chunks[0].text.startswith("| Name | Notes |") and "| a | short |" in chunks[0].text
    pieces = [c for c in chunks if "word" in c.text]
    assert len(pieces) > 1 and all(c.context == "| Name | Notes |\n| --- | --- |" for c in pieces)
    assert chunks[-1].text == "| c | short |" and chunks[-1].context


def test_chunks_without_tables_keep_their_ids() -> None:
    text = "One two three four. Five six seven eight. Nine ten."
    doc = Document.from_text(text, source="a.txt")
    chunks = Chunker(chunk_size=8, chunk_overlap=2, length_function=_words).split([doc], doc_id="d")
    assert [c.id for c in chunks] == [content_hash("chunk", "d", "None", str(c.start), c.text) for c in chunks]


def test_table_blocks_need_the_separator_line() -> None:
    assert table_blocks("| not | a table |\n| just pipes |") == []
    rows = table_blocks("| Fee | 45 |\n| Hose | 8 |", context=MD_HEADER)
    assert [b.header_line for b in rows] == ["| Item | Price | Unit |"] and len(rows[0].rows) == 2
    assert plain_table_text(f"{MD_HEADER}\n| Hose \\| 15 m | 8 | piece |") == "Item  Price  Unit\nHose | 15 m  8  piece"


def test_table_text_drops_empty_rows_and_columns_and_keeps_small_ones_as_text() -> None:
    assert table_text([["A", "", "B"], ["1", None, "2"], ["", "", ""]]) == "| A | B |\n| --- | --- |\n| 1 | 2 |"
    assert table_text([["Boxed note"]]) == "Boxed note"


def test_an_old_chunks_record_without_context_loads() -> None:
    old = {"id": "c", "text": "| Fee | 45 |", "doc_id": "d", "source": "a.md", "page": None, "start": 0, "end": 12,
           "index": 0, "title": "", "suspicious": False}
    chunk = Chunk.from_dict(old)
    assert chunk.context == "" and chunk.full_text == chunk.text
    rows = Chunk.from_dict({**old, "context": MD_HEADER})
    assert Chunk.from_dict(rows.to_dict()) == rows and rows.full_text == f"{MD_HEADER}\n| Fee | 45 |"
    assert indexed_text(rows, title_prefix=False) == rows.full_text


def test_prompts_and_evidence_read_the_header_of_rows_cut_from_it() -> None:
    from rag.answer.evidence import Passage, candidate_sentences, header
    from rag.generation.prompting import format_source

    rows = Chunk("c", "| Hose | 8 EUR | piece |", "d", "/x/prices.pdf", 2, 90, 114, 3, context=MD_HEADER)
    assert format_source(1, rows) == f"[1] prices.pdf p.2\n{MD_HEADER}\n| Hose | 8 EUR | piece |"
    [(a, b, text, heading)] = candidate_sentences(rows)
    assert (rows.text[a:b], heading) == ("| Hose | 8 EUR | piece |", "| Item | Price | Unit |")
    assert text == "Item: Hose; Price: 8 EUR; Unit: piece."  # what the evidence ranker scores
    assert header(1, rows, heading).endswith("— | Item | Price | Unit |")
    passage = Passage(1, rows, a, b, 1.0, heading=heading)
    assert passage.full_text == "Item: Hose; Price: 8 EUR; Unit: piece."  # what the support check reads and quotes


# -- the loaders ------------------------------------------------------------------------------


def test_a_pdf_table_loads_as_a_markdown_table_where_it_stands(tmp_path: Path) -> None:
    pdf = write_table_pdf(tmp_path / "fees.pdf", [
        "Intro page about the garden club.",
        table_page(SMALL, before="Fees 2024\nAll prices include tax.", after="Pay by March."),
    ])
    pages = [d.text for d in DocumentLoader().load(pdf).documents]
    plain = [d.text for d in DocumentLoader().load(write_pdf(tmp_path / "plain.pdf", [
        "Intro page about the garden club."])).documents]
    assert pages[0] == plain[0]  # a page without a table keeps pypdf's text
    table = markdown_table(SMALL[0], SMALL[1:])
    assert pages[1] == f"Fees 2024\nAll prices include tax.\n\n{table}\n\nPay by March."


def test_an_encrypted_pdf_keeps_its_table(tmp_path: Path) -> None:
    from tests.pdfgen import encrypt_pdf

    pdf = encrypt_pdf(write_table_pdf(tmp_path / "fees.pdf", [table_page(SMALL)]), user_password="s3cret")
    [page] = DocumentLoader(pdf_password="s3cret").load(pdf).documents
    assert page.text == markdown_table(SMALL[0], SMALL[1:])


def test_a_docx_table_loads_in_document_order_with_its_header(tmp_path: Path) -> None:
    import docx

    d = docx.Document()
    d.add_paragraph("Fees of the garden club.")
    t = d.add_table(rows=4, cols=3)
    for i, row in enumerate(SMALL):
        for j, value in enumerate(row):
            t.rows[i].cells[j].text = value
    t.cell(3, 1).merge(t.cell(3, 2))  # a merged cell: its text is repeated in each column it spans
    d.add_paragraph("Pay by March.")
    d.save(tmp_path / "fees.docx")
    text = DocumentLoader().load(tmp_path / "fees.docx").documents[0].text
    assert text.startswith("Fees of the garden club.\n\n| Item | Price | Unit |\n| --- | --- | --- |\n")
    assert "| Plot fee | 45 EUR | year |" in text and text.endswith("\n\nPay by March.")
    merged = next(line for line in text.split("\n") if line.startswith("| Hose"))
    assert merged.count("8 EUR") == 2


def test_an_html_table_loads_in_place_with_its_header_and_spans(tmp_path: Path) -> None:
    (tmp_path / "fees.html").write_text(
        "<html><body><p>Fees of the garden club.</p><table>"
        "<tr><td>Plot fee</td><td rowspan='2'>45 EUR</td><td>year</td></tr>"
        "<thead><tr><th>Item</th><th>Price</th><th>Unit</th></tr></thead>"
        "<tr><td>Plot fee, late</td><td>year</td></tr>"
        "<tr><td colspan='2'>Hose</td><td>piece</td></tr></table><p>Pay by March.</p>"
        "<table><tr><td>Note</td></tr></table></body></html>", encoding="utf-8")
    text = DocumentLoader().load(tmp_path / "fees.html").documents[0].text
    table = markdown_table(HEADER, [["Plot fee", "45 EUR", "year"], ["Plot fee, late", "45 EUR", "year"],
                                    ["Hose", "Hose", "piece"]])
    assert text == f"Fees of the garden club.\n\n{table}\n\nPay by March.\n\nNote"


def test_html_without_header_cells_takes_the_first_row(tmp_path: Path) -> None:
    (tmp_path / "t.html").write_text("<table><tr><td>Item</td><td>Price</td></tr><tr><td>Fee</td><td>45</td></tr>"
                                     "</table>", encoding="utf-8")
    text = DocumentLoader().load(tmp_path / "t.html").documents[0].text
    assert text == "| Item | Price |\n| --- | --- |\n| Fee | 45 |"


# -- through the index, the search and the viewer ----------------------------------------------


def test_a_pdf_table_is_one_chunk_with_its_header_and_the_viewer_finds_it(store: IndexStore, embedder,  # type: ignore[no-untyped-def]
                                                                          tmp_path: Path) -> None:
    from rag.ui.viewer import PdfPageRenderer

    pdf = write_table_pdf(tmp_path / "fees.pdf", [table_page(SMALL, before="Fees 2024", after="Pay by March.")])
    index = _ingest(store, embedder, pdf)
    [chunk] = [c for c in index.chunks if c.text.startswith("|")]
    assert chunk.text == markdown_table(SMALL[0], SMALL[1:]) and chunk.context == ""
    image = PdfPageRenderer().render(pdf, 1, chunk.text)
    assert len(image.boxes) >= len(SMALL)  # a box around each row's line


@pytest.mark.slow
def test_a_question_about_a_cell_finds_its_row_in_a_long_pdf_table(store: IndexStore, embedder,  # type: ignore[no-untyped-def]
                                                                   tmp_path: Path) -> None:
    from rag.answer.evidence import EvidenceSelector
    from rag.retrieval.retriever import Retriever
    from rag.ui.viewer import PdfPageRenderer

    rows = _long_rows(200)
    pdf = write_table_pdf(tmp_path / "prices.pdf", ["Price list of the garden club shop.",
                                                    table_page(rows, before="Shop prices")])
    index = _ingest(store, embedder, pdf)
    doc = {d.page: d for d in DocumentLoader().load(pdf).documents}[2]
    parts = [c for c in index.chunks if c.page == 2 and c.text.startswith("|")]
    assert len(parts) > 2
    assert parts[0].text.startswith(MD_HEADER) and all(c.context == MD_HEADER for c in parts[1:])
    assert [line for c in parts for line in c.text.split("\n")] == markdown_table(rows[0], rows[1:]).split("\n")
    tokenizer = embedder.tokenizer
    for c in parts:
        assert doc.text[c.start:c.end] == c.text
        assert len(tokenizer.encode(c.full_text, add_special_tokens=False)) <= 200
    hose = next(c for c in parts if "Garden hose" in c.text)
    assert indexed_text(hose, title_prefix=False).startswith(MD_HEADER)

    question = "What is the price of the garden hose?"
    assert Retriever(index, mode="bm25", embedder=embedder).retrieve(question, k=3)[0].chunk.id == hose.id
    # a group of rows embeds as a blur of them all, so dense ranks it low: the row is retrieved, and
    # evidence selection, which reads each row under its header, puts it first
    hits = Retriever(index, mode="hybrid", embedder=embedder).retrieve(question, k=5)
    assert hose.id in [h.chunk.id for h in hits]
    evidence = EvidenceSelector(embedder).select(question, hits, index, index.analyzer)
    best = evidence.passages[0]
    assert (best.chunk.id, best.text, best.heading) == (hose.id, "| Garden hose | 17.50 EUR | roll |",
                                                        "| Item | Price | Unit |")
    image = PdfPageRenderer().render(pdf, 2, hose.text)  # rows without their header are found on the page too
    assert image.boxes
