"""Loaders: every supported format, and a clear one-line error for every kind of bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.ingest.loaders import DocumentLoader, LoadError, iter_files
from tests.pdfgen import write_pdf


@pytest.fixture()
def loader() -> DocumentLoader:
    return DocumentLoader()


def test_txt_and_markdown_title(tmp_path: Path, loader: DocumentLoader) -> None:
    (tmp_path / "a.txt").write_text("plain text body", encoding="utf-8")
    (tmp_path / "b.md").write_text("intro\n\n# Real Title\n\nbody", encoding="utf-8")
    a = loader.load(tmp_path / "a.txt")
    b = loader.load(tmp_path / "b.md")
    assert a.documents[0].text == "plain text body"
    assert a.documents[0].title == "a"  # falls back to the file stem
    assert a.documents[0].page is None
    assert b.documents[0].title == "Real Title"
    assert a.source == str((tmp_path / "a.txt").resolve())


def test_pdf_pages_are_numbered_from_one(tmp_path: Path, loader: DocumentLoader) -> None:
    write_pdf(tmp_path / "m.pdf", ["Pumps are primed first.", "Turbines are inspected second."])
    f = loader.load(tmp_path / "m.pdf")
    assert [d.page for d in f.documents] == [1, 2]
    assert "Turbines" in f.documents[1].text and "Turbines" not in f.documents[0].text
    assert len({d.id for d in f.documents}) == 2
    assert {d.format for d in f.documents} == {".pdf"}


def test_html_drops_scripts_and_styles(tmp_path: Path, loader: DocumentLoader) -> None:
    (tmp_path / "p.html").write_text(
        "<html><head><title>T</title><style>.x{color:red}</style></head><body><p>Visible words</p>"
        "<script>alert('evil')</script><noscript>no js</noscript></body></html>", encoding="utf-8")
    d = loader.load(tmp_path / "p.html").documents[0]
    assert "Visible words" in d.text
    assert "alert" not in d.text and "color" not in d.text and "no js" not in d.text
    assert d.title == "T"


def test_docx_paragraphs_and_tables(tmp_path: Path, loader: DocumentLoader) -> None:
    import docx

    doc = docx.Document()
    doc.core_properties.title = "Spec sheet"
    doc.add_paragraph("First paragraph about valves.")
    table = doc.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "pressure"
    table.rows[0].cells[1].text = "6 bar"
    doc.save(tmp_path / "s.docx")
    d = loader.load(tmp_path / "s.docx").documents[0]
    assert "First paragraph about valves." in d.text
    assert "pressure | 6 bar" in d.text
    assert d.title == "Spec sheet"


def test_non_utf8_text_is_decoded_with_a_warning(tmp_path: Path, loader: DocumentLoader) -> None:
    (tmp_path / "latin.txt").write_bytes("café au lait".encode("cp1252"))
    f = loader.load(tmp_path / "latin.txt")
    assert f.documents[0].text == "café au lait"
    assert f.warnings and "not valid UTF-8" in f.warnings[0]
    strict = DocumentLoader(encoding_fallback=None)
    with pytest.raises(LoadError, match="not valid UTF-8"):
        strict.load(tmp_path / "latin.txt")


@pytest.mark.parametrize("name,content,message", [
    ("empty.txt", b"", "empty"),
    ("blank.md", b"   \n\n  ", "empty"),
    ("bin.txt", b"\x00\x01\x02binary\x00", "binary"),
    ("corrupt.pdf", b"%PDF-1.4\n1 0 obj garbage", "corrupt"),
    ("notpdf.pdf", b"hello, I am text", "not a PDF"),
    ("bad.docx", b"PK\x03\x04 not really a zip", "corrupt"),
    ("data.xyz", b"some data", "unsupported file type '.xyz'"),
    ("noext", b"some data", "unsupported file type '(no extension)'"),
])
def test_bad_inputs_raise_clear_one_line_errors(tmp_path: Path, loader: DocumentLoader, name: str,
                                                content: bytes, message: str) -> None:
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(LoadError) as info:
        loader.load(p)
    assert message in str(info.value)
    assert str(p) in str(info.value)
    assert "\n" not in str(info.value)


def test_pdf_without_text_says_it_needs_ocr(tmp_path: Path, loader: DocumentLoader) -> None:
    write_pdf(tmp_path / "scan.pdf", [""])
    with pytest.raises(LoadError, match="OCR"):
        loader.load(tmp_path / "scan.pdf")


def test_large_file_is_refused_with_the_limit(tmp_path: Path) -> None:
    p = tmp_path / "big.txt"
    p.write_text("word " * 1000, encoding="utf-8")
    with pytest.raises(LoadError, match="over the 0.001 MB limit"):
        DocumentLoader(max_file_mb=0.001).load(p)


def test_unreadable_file(tmp_path: Path, loader: DocumentLoader, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "secret.txt"
    p.write_text("hidden", encoding="utf-8")
    real = Path.read_bytes

    def deny(self: Path) -> bytes:
        if self.name == "secret.txt":
            raise PermissionError(13, "Permission denied")
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", deny)
    with pytest.raises(LoadError, match="cannot read file: Permission denied"):
        loader.load(p)
    d = tmp_path / "folder.txt"
    d.mkdir()
    with pytest.raises(LoadError, match="cannot read file"):
        loader.load(d)


def test_iter_files_recurses_and_skips_hidden(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "deep.txt").write_text("x", encoding="utf-8")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config.txt").write_text("x", encoding="utf-8")
    (tmp_path / "top.md").write_text("x", encoding="utf-8")
    names = [p.name for p in iter_files(tmp_path)]
    assert names == ["deep.txt", "top.md"]


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="max_file_mb must be > 0"):
        DocumentLoader(max_file_mb=-1)
    with pytest.raises(ValueError, match="unknown encoding_fallback 'nope'"):
        DocumentLoader(encoding_fallback="nope")
