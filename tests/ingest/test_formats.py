"""The office, e-book and mail formats: real files made here, read by DocumentLoader, indexed and found."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from rag.index.store import IndexStore
from rag.ingest import formats
from rag.ingest.ingestor import Ingestor
from rag.ingest.loaders import SUPPORTED_EXTENSIONS, DocumentLoader, LoadError, scan_files
from rag.retrieval.retriever import Retriever
from tests.formatgen import EPUB_DRM, write_csv, write_eml, write_epub, write_pptx, write_xlsx


@pytest.fixture()
def loader() -> DocumentLoader:
    return DocumentLoader()


def _table_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("|")]


# -- each format -------------------------------------------------------------------------


def test_pptx_a_page_per_slide_with_tables_and_notes(tmp_path: Path, loader: DocumentLoader) -> None:
    f = loader.load(write_pptx(tmp_path / "rota.pptx"))
    assert [d.page for d in f.documents] == [1, 2]
    first, second = (d.text for d in f.documents)
    assert first.startswith("## Watering rota\n\n")
    assert "Beds are watered on Mondays\nand Thursdays" in first
    assert first.endswith("Notes: Remind new members where the hose is.")
    assert _table_lines(second) == ["| Item | Fee |", "| --- | --- |", "| Allotment plot | 45 euros a year |",
                                    "| Tool shed key | 10 euros deposit |"]
    assert {d.title for d in f.documents} == {"Watering rota"}  # no core title: the first slide's
    assert {d.format for d in f.documents} == {".pptx"}


def test_pptx_core_title_wins(tmp_path: Path, loader: DocumentLoader) -> None:
    from pptx import Presentation

    path = write_pptx(tmp_path / "rota.pptx")
    prs = Presentation(str(path))
    prs.core_properties.title = "Committee slides"
    prs.save(str(path))
    assert loader.load(path).documents[0].title == "Committee slides"


def test_xlsx_a_page_per_sheet_with_row_numbers(tmp_path: Path, loader: DocumentLoader) -> None:
    f = loader.load(write_xlsx(tmp_path / "accounts.xlsx"))
    assert [d.page for d in f.documents] == [1, 3]  # sheet 2 is empty
    stock, staff = (d.text for d in f.documents)
    assert stock.startswith("## Sheet: Stock\n\n")
    # the blank first column and the gap row are skipped; rows keep their spreadsheet numbers
    assert _table_lines(stock) == [
        "| Row | Item | Quantity | Delivered |", "| --- | --- | --- | --- |",
        "| 3 | Copper slug tape | 12 | 2024-05-01 |", "| 5 | Seed potatoes | 40 | 2024-03-15T09:30:00 |",
        "| 6 | Total |  |  |"]  # a formula without a cached value (never opened in Excel) reads as empty
    assert _table_lines(staff)[2] == "| 2 | Ada Lovelace | Treasurer |"
    assert {d.title for d in f.documents} == {"Garden accounts"}
    assert not f.warnings


def test_xlsx_formulas_give_their_cached_values(tmp_path: Path, loader: DocumentLoader) -> None:
    path = write_xlsx(tmp_path / "accounts.xlsx")
    sheet = "xl/worksheets/sheet1.xml"
    with zipfile.ZipFile(path) as z:  # what Excel writes when it saves: the formula and its last value
        members = {i.filename: z.read(i) for i in z.infolist()}
    xml = members[sheet].decode()
    assert "<f>C3+C5</f><v></v>" in xml
    members[sheet] = xml.replace("<f>C3+C5</f><v></v>", "<f>C3+C5</f><v>52</v>").encode()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    assert "| 6 | Total | 52 |  |" in loader.load(path).documents[0].text


def test_big_sheets_and_csv_files_are_capped_with_a_warning(tmp_path: Path, loader: DocumentLoader,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formats, "MAX_TABLE_ROWS", 2)
    monkeypatch.setattr(formats, "MAX_TABLE_COLUMNS", 2)
    (tmp_path / "big.csv").write_text("a,b,c\n1,2,3\n4,5,6\n7,8,9\n", encoding="utf-8")
    f = loader.load(tmp_path / "big.csv")
    assert _table_lines(f.documents[0].text) == ["| Row | a | b |", "| --- | --- | --- |", "| 2 | 1 | 2 |",
                                                 "| 3 | 4 | 5 |"]
    assert f.warnings == ("csv: over 2 rows; rows from 4 on are not indexed",
                          "csv: over 2 columns; only the first 2 are indexed")
    g = loader.load(write_xlsx(tmp_path / "accounts.xlsx"))
    assert "sheet 'Stock': over 2 rows; rows from 6 on are not indexed" in g.warnings


def test_csv_sniffs_the_delimiter_and_numbers_records(tmp_path: Path, loader: DocumentLoader) -> None:
    f = loader.load(write_csv(tmp_path / "plots.csv"))
    (doc,) = f.documents
    assert doc.page is None and doc.title == "plots" and doc.format == ".csv"
    assert _table_lines(doc.text) == ["| Row | plot | holder | crop |", "| --- | --- | --- | --- |",
                                      "| 2 | 7 | Grace Hopper | runner beans, sweet peas |",
                                      "| 4 | 12 | Alan Turing | rhubarb |"]


def test_csv_in_a_legacy_encoding_and_with_one_column(tmp_path: Path, loader: DocumentLoader) -> None:
    (tmp_path / "latin.csv").write_bytes("name\tcity\nRené\tNîmes\n".encode("cp1252"))
    f = loader.load(tmp_path / "latin.csv")
    assert "| 2 | René | Nîmes |" in f.documents[0].text
    assert f.warnings and "decoded as cp1252" in f.warnings[0]
    (tmp_path / "one.csv").write_text("crop\nleeks\nkale\n", encoding="utf-8")
    assert _table_lines(loader.load(tmp_path / "one.csv").documents[0].text)[-1] == "| 3 | kale |"


def test_epub_a_page_per_chapter_in_spine_order(tmp_path: Path, loader: DocumentLoader) -> None:
    f = loader.load(write_epub(tmp_path / "book.epub", ["Compost needs air and water.",
                                                        "Slugs will not cross copper tape."]))
    assert [(d.page, d.text) for d in f.documents] == [(1, "Compost needs air and water."),
                                                       (2, "Slugs will not cross copper tape.")]
    assert {d.title for d in f.documents} == {"The Allotment Handbook"}  # the OPF's, not the chapters'


def test_epub_fonts_obfuscated_are_fine_but_drm_is_refused(tmp_path: Path, loader: DocumentLoader) -> None:
    fonts = EPUB_DRM.replace("http://www.w3.org/2001/04/xmlenc#aes128-cbc", "http://www.idpf.org/2008/embedding")
    fonts = fonts.replace("text/chapter%201.xhtml", "fonts/serif.otf")
    assert loader.load(write_epub(tmp_path / "fonts.epub", ["Leeks like lime."], encryption=fonts)).documents
    drm = write_epub(tmp_path / "drm.epub", ["Secret."], encryption=EPUB_DRM)
    with pytest.raises(LoadError) as err:
        loader.load(drm)
    assert str(err.value) == f"{drm}: DRM-protected EPUB (its chapters are encrypted); only DRM-free books can be indexed"


def test_eml_headers_then_the_plain_body_and_attachments_by_name(tmp_path: Path, loader: DocumentLoader) -> None:
    f = loader.load(write_eml(tmp_path / "note.eml"))
    (doc,) = f.documents
    assert doc.text == ("From: Ada Lovelace <ada@example.org>\nTo: committee@example.org\n"
                        "Date: Mon, 06 May 2024 10:00:00 +0200\nSubject: Hose moved to shed 2 – Gießkanne\n\n"
                        "The hose now hangs in shed 2, next to the wheelbarrow.\n\n"
                        "Attachments (not indexed): minutes.pdf")
    assert doc.title == "Hose moved to shed 2 – Gießkanne" and doc.page is None
    assert f.warnings == ("1 attachment(s) not indexed (minutes.pdf); save them as files to index them",)


def test_eml_with_only_an_html_body_is_read_like_html(tmp_path: Path, loader: DocumentLoader) -> None:
    text = loader.load(write_eml(tmp_path / "html.eml", html_only=True)).documents[0].text
    assert "shed 2" in " ".join(text.split()) and "track()" not in text and "<b>" not in text


# -- bad input ---------------------------------------------------------------------------


def _truncated(path: Path) -> bytes:
    data = path.read_bytes()
    return data[: len(data) // 2]


@pytest.mark.parametrize("name,make,message", [
    ("random.pptx", lambda p: os.urandom(4096), "corrupt or unreadable .pptx (BadZipFile"),
    ("random.xlsx", lambda p: os.urandom(4096), "corrupt or unreadable .xlsx (BadZipFile"),
    ("random.epub", lambda p: os.urandom(4096), "corrupt or unreadable .epub (BadZipFile"),
    ("cut.pptx", lambda p: _truncated(write_pptx(p)), "corrupt or unreadable .pptx"),
    ("cut.xlsx", lambda p: _truncated(write_xlsx(p)), "corrupt or unreadable .xlsx"),
    ("cut.epub", lambda p: _truncated(write_epub(p, ["x" * 5000])), "corrupt or unreadable .epub"),
    ("random.eml", lambda p: os.urandom(4096), "not an email message"),
    ("random.csv", lambda p: b"\x00" + os.urandom(4096), "looks like a binary file"),
    ("text.xlsx", lambda p: b"name,role\nAda,Treasurer\n", "corrupt or unreadable .xlsx (BadZipFile"),
])
def test_corrupt_files_are_one_line_naming_the_format(tmp_path: Path, loader: DocumentLoader, name: str,
                                                       make, message: str) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / name
    p.write_bytes(make(tmp_path / f"source-{name}"))
    with pytest.raises(LoadError) as err:
        loader.load(p)
    assert message in str(err.value) and str(p) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("member,garbage", [("xl/worksheets/sheet1.xml", b"<worksheet><sheetData><row"),
                                            ("xl/workbook.xml", b"not xml")])
def test_a_damaged_part_inside_a_good_zip_is_corrupt_too(tmp_path: Path, loader: DocumentLoader, member: str,
                                                         garbage: bytes) -> None:
    path = write_xlsx(tmp_path / "accounts.xlsx")
    with zipfile.ZipFile(path) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    members[member] = garbage
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    with pytest.raises(LoadError, match=r"corrupt or unreadable \.xlsx \("):
        loader.load(path)


def test_empty_presentation_and_workbook_have_no_extractable_text(tmp_path: Path, loader: DocumentLoader) -> None:
    import openpyxl
    from pptx import Presentation

    Presentation().save(str(tmp_path / "empty.pptx"))
    openpyxl.Workbook().save(tmp_path / "empty.xlsx")
    write_epub(tmp_path / "empty.epub", ["   "])
    for name in ("empty.pptx", "empty.xlsx", "empty.epub"):
        with pytest.raises(LoadError, match="no extractable text$"):
            loader.load(tmp_path / name)


def test_zip_bombs_are_not_unpacked(tmp_path: Path, loader: DocumentLoader, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formats, "MAX_UNZIPPED_MB", 1)
    path = write_xlsx(tmp_path / "bomb.xlsx")
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as z:
        z.writestr("xl/media/zeros.bin", b"\x00" * (2 * 1024 * 1024))  # 2 MB that compress to 2 kB
    assert path.stat().st_size < 100_000
    with pytest.raises(LoadError, match=r"\.xlsx unpacks to 2 MB, over the 1 MB limit \(a zip bomb\?\); not read"):
        loader.load(path)


def _lie_about_size(path: Path, member: str, size: int) -> None:
    """Rewrite ``member``'s uncompressed size in the zip's central directory (what zipfile trusts)."""
    import struct

    data = bytearray(path.read_bytes())
    at = data.index(b"PK\x01\x02")  # the first central directory entry
    while True:
        name_len = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46:at + 46 + name_len].decode() == member:
            struct.pack_into("<I", data, at + 24, size)
            break
        at = data.index(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(data))


def test_a_member_that_lies_about_its_size_is_stopped_at_it(tmp_path: Path, loader: DocumentLoader) -> None:
    path = write_pptx(tmp_path / "bomb.pptx")
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as z:
        z.writestr("ppt/media/zeros.bin", b"\x00" * (8 * 1024 * 1024))
    _lie_about_size(path, "ppt/media/zeros.bin", 1000)  # 8 MB that claim to be 1 kB
    with pytest.raises(LoadError, match=r"corrupt or unreadable \.pptx \(BadZipFile: Bad CRC-32"):
        loader.load(path)


def test_other_compression_and_ole_files_are_refused(tmp_path: Path, loader: DocumentLoader) -> None:
    path = write_xlsx(tmp_path / "bz.xlsx")
    with zipfile.ZipFile(path, "a", zipfile.ZIP_BZIP2) as z:
        z.writestr("xl/media/notes.txt", b"x" * 1000)
    with pytest.raises(LoadError, match=r"\.xlsx member 'xl/media/notes.txt' uses an unusual compression method"):
        loader.load(path)
    (tmp_path / "locked.xlsx").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512)
    with pytest.raises(LoadError, match=r"not a \.xlsx zip but an OLE file \(password-protected"):
        loader.load(tmp_path / "locked.xlsx")


def test_an_oversized_epub_chapter_is_skipped_with_a_warning(tmp_path: Path, loader: DocumentLoader,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formats, "MAX_EPUB_MEMBER_MB", 0.01)  # 10 kB
    f = loader.load(write_epub(tmp_path / "book.epub", ["Short chapter.", "long " * 5000]))
    assert [d.page for d in f.documents] == [1]
    assert f.warnings == ("chapter OEBPS/text/chapter 1.xhtml unpacks to over 0.01 MB; skipped",)


def test_missing_epub_parts_say_what_is_wrong(tmp_path: Path, loader: DocumentLoader) -> None:
    with zipfile.ZipFile(tmp_path / "plain.epub", "w") as z:
        z.writestr("chapter.xhtml", "<p>x</p>")
    with pytest.raises(LoadError, match=r"not an EPUB \(no META-INF/container.xml\)"):
        loader.load(tmp_path / "plain.epub")


# -- finding and indexing ----------------------------------------------------------------

_QUERIES = {  # file -> (query, words of the passage it should find, page)
    "rota.pptx": ("what deposit is paid for the tool shed key", "10 euros deposit", 2),
    "accounts.xlsx": ("how many seed potatoes were delivered", "| 5 | Seed potatoes | 40 |", 1),
    "plots.csv": ("which plot grows rhubarb", "| 4 | 12 | Alan Turing | rhubarb |", None),
    "book.epub": ("does copper tape stop slugs", "Slugs will not cross copper tape.", 2),
    "note.eml": ("where does the hose hang now", "next to the wheelbarrow", None),
}


def _write_all(folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    write_pptx(folder / "rota.pptx")
    write_xlsx(folder / "accounts.xlsx")
    write_csv(folder / "plots.csv")
    write_epub(folder / "book.epub", ["Compost needs air and water.", "Slugs will not cross copper tape."])
    write_eml(folder / "note.eml")
    return folder


def test_the_new_types_are_supported_and_found_in_folders(tmp_path: Path) -> None:
    assert {".pptx", ".xlsx", ".csv", ".epub", ".eml"} <= set(SUPPORTED_EXTENSIONS)
    scan = scan_files(_write_all(tmp_path / "docs"))
    assert sorted(p.name for p in scan.files) == sorted(_QUERIES) and not scan.skipped


@pytest.mark.parametrize("name", sorted(_QUERIES))
def test_each_format_is_indexed_and_found_by_its_content(store: IndexStore, embedder, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                         name: str) -> None:
    path = _write_all(tmp_path / "docs") / name
    report = Ingestor("docs", store=store, embedder=embedder, show_progress=False).ingest([path])
    assert report.ok and [Path(p).name for p in report.added] == [name]
    query, passage, page = _QUERIES[name]
    hit = Retriever(store.load("docs"), mode="hybrid", embedder=embedder).retrieve(query, k=1)[0]
    assert Path(hit.chunk.source).name == name and passage in hit.chunk.text and hit.chunk.page == page


def test_the_app_accepts_uploads_of_the_new_types(tmp_path: Path) -> None:
    from rag.ui.uploads import save_uploads

    folder = _write_all(tmp_path / "docs")
    saved, errors = save_uploads([(name, (folder / name).read_bytes()) for name in sorted(_QUERIES)],
                                 tmp_path / "uploads")
    assert not errors and sorted(p.name for p in saved) == sorted(_QUERIES)
