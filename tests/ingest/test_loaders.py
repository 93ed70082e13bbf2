"""Loaders: every supported format, and a clear one-line error for every kind of bad input."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rag.ingest.loaders import DocumentLoader, LoadError, iter_files, scan_files
from tests.pdfgen import encrypt_pdf, write_pdf


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


def test_encrypted_pdf_needs_its_password_and_opens_with_it(tmp_path: Path) -> None:
    pdf = encrypt_pdf(write_pdf(tmp_path / "locked.pdf", ["Pumps are primed first."]), "s3cret")
    with pytest.raises(LoadError) as err:
        DocumentLoader().load(pdf)
    assert str(err.value) == f"{pdf}: encrypted PDF: needs a password; give it with --pdf-password"
    with pytest.raises(LoadError, match="encrypted PDF: wrong password") as err:
        DocumentLoader(pdf_password="guess").load(pdf)
    assert "guess" not in str(err.value) and "\n" not in str(err.value)
    assert "Pumps are primed" in DocumentLoader(pdf_password="s3cret").load(pdf).documents[0].text


def test_pdf_with_only_an_owner_password_loads_as_is(tmp_path: Path) -> None:
    pdf = encrypt_pdf(write_pdf(tmp_path / "owner.pdf", ["Valves are checked weekly."]), "")
    assert "Valves are checked" in DocumentLoader().load(pdf).documents[0].text
    assert "Valves are checked" in DocumentLoader(pdf_password="unrelated").load(pdf).documents[0].text


def test_cli_pdf_password_opens_the_pdf_and_is_never_logged_or_stored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    import argparse
    import logging

    from rag.cli import watch
    from rag.cli.main import main
    from rag.index.store import IndexStore

    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "idx"))
    monkeypatch.delenv("RAG_PDF_PASSWORD", raising=False)
    docs = tmp_path / "docs"
    docs.mkdir()
    pdf = encrypt_pdf(write_pdf(docs / "locked.pdf", ["Pumps are primed first."]), "Pa55-unique-word")
    assert main(["ingest", str(docs), "--index", "t", "-q"]) == 1
    out = capsys.readouterr().out
    assert f"  error: {pdf}: encrypted PDF: needs a password; give it with --pdf-password\n" in out + "\n", out
    assert "corrupt" not in out and "FileNotDecryptedError" not in out

    caplog.set_level(logging.DEBUG)
    assert main(["ingest", str(docs), "--index", "t", "-q", "--pdf-password", "Pa55-unique-word"]) == 0
    out = capsys.readouterr().out
    assert "1 added" in out and "0 failed" in out, out
    assert any("Pumps are primed" in c.text for c in IndexStore(tmp_path / "idx").load("t").chunks)
    assert "Pa55-unique-word" not in out + caplog.text
    stored = [p for p in (tmp_path / "idx").rglob("*") if p.is_file()]
    assert stored and not any(b"Pa55-unique-word" in p.read_bytes() for p in stored)

    monkeypatch.setenv("RAG_PDF_PASSWORD", "Pa55-unique-word")  # the environment serves as well, also for watch
    assert main(["ingest", str(docs), "--index", "t2", "-q"]) == 0
    sub = argparse.ArgumentParser(prog="rag").add_subparsers()
    watch.add_commands(sub)
    assert sub.choices["watch"].parse_args([str(docs), "--index", "t", "--pdf-password", "x"]).pdf_password == "x"


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


# -- symlinks, unsupported types and text detection (issue 11) ---------------------------------


def _tree_with_symlinks(tmp_path: Path) -> Path:
    """docs/ with good files, links inside it, links escaping it, a loop and a broken link."""
    outside = tmp_path / "outside"
    (outside / "private").mkdir(parents=True)
    (outside / "secret.txt").write_text("outside secret: the vault code is 4711", encoding="utf-8")
    (outside / "private" / "diary.md").write_text("outside diary", encoding="utf-8")
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "good.txt").write_text("Pumps need priming before start.", encoding="utf-8")
    (docs / "sub" / "deep.md").write_text("# Deep\n\nValves close slowly.", encoding="utf-8")
    os.symlink(outside / "secret.txt", docs / "leak.txt")             # file link escaping the folder
    os.symlink("../../outside/private", docs / "sub" / "escape")      # relative dir link escaping it
    os.symlink(".", docs / "sub" / "again")                           # dir link to its own folder: a loop
    os.symlink(docs, docs / "sub" / "root")                           # dir link to the ingested folder: a loop
    os.symlink("b.txt", docs / "a.txt")                               # file links pointing at each other
    os.symlink("a.txt", docs / "b.txt")
    os.symlink("missing.txt", docs / "broken.txt")                    # dangling link
    os.symlink("good.txt", docs / "alias.txt")                        # file link inside: followed
    os.symlink("sub", docs / "linked-sub")                            # dir link inside: followed once
    return docs


def test_symlinks_never_escape_the_folder_and_loops_are_reported(tmp_path: Path) -> None:
    docs = _tree_with_symlinks(tmp_path)
    scan = scan_files(docs)
    assert {p.resolve() for p in scan.files} == {(docs / "good.txt").resolve(),
                                                 (docs / "sub" / "deep.md").resolve()}
    assert all("outside" not in str(p.resolve()) for p in scan.files)
    reasons = {Path(p).relative_to(docs).as_posix(): r for p, r in scan.skipped}
    assert set(reasons) == {"leak.txt", "sub/escape", "sub/again", "sub/root", "a.txt", "b.txt", "broken.txt"}
    assert "outside the folder" in reasons["leak.txt"] and "outside the folder" in reasons["sub/escape"]
    for loop in ("sub/again", "sub/root", "a.txt", "b.txt"):
        assert "symlink loop" in reasons[loop], reasons[loop]
    assert "broken symlink" in reasons["broken.txt"]
    assert all("\n" not in r for r in reasons.values())
    assert list(iter_files(docs)) == list(scan.files)


def test_symlinked_root_and_explicit_files_are_allowed(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "a.txt").write_text("x", encoding="utf-8")
    os.symlink(real, tmp_path / "link")
    assert [p.name for p in scan_files(tmp_path / "link").files] == ["a.txt"]
    os.symlink(real / "a.txt", tmp_path / "named.txt")
    assert scan_files(tmp_path / "named.txt").files == (tmp_path / "named.txt",)


def test_unsupported_types_in_a_folder_are_skipped_not_failed(tmp_path: Path) -> None:
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0 jpeg")
    (tmp_path / "app.conf").write_text("key=value", encoding="utf-8")
    (tmp_path / "letter.rtf").write_text("{\\rtf1 hi}", encoding="utf-8")
    (tmp_path / "README").write_text("no extension", encoding="utf-8")
    (tmp_path / "ok.md").write_text("fine", encoding="utf-8")
    scan = scan_files(tmp_path)
    assert [p.name for p in scan.files] == ["ok.md"]
    reasons = {Path(p).name: r for p, r in scan.skipped}
    assert reasons == {"photo.jpg": "unsupported file type '.jpg'", "app.conf": "unsupported file type '.conf'",
                       "letter.rtf": "unsupported file type '.rtf'",
                       "README": "unsupported file type '(no extension)'"}


def test_cli_ingest_skips_unsupported_files_and_escaping_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from rag.cli.main import main
    from rag.index.store import IndexStore

    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "idx"))
    docs = _tree_with_symlinks(tmp_path)
    (docs / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0 jpeg")
    (docs / "app.conf").write_text("key=value", encoding="utf-8")
    (docs / "letter.rtf").write_text("{\\rtf1 hi}", encoding="utf-8")
    assert main(["ingest", str(docs), "--index", "t", "-q"]) == 0
    out = capsys.readouterr().out
    assert "2 added" in out and "0 failed" in out and "10 skipped" in out, out
    assert "skipped: " in out and "letter.rtf" in out and "leak.txt" in out
    index = IndexStore(tmp_path / "idx").load("t")
    assert not any("vault code" in c.text or "diary" in c.text for c in index.chunks)

    (docs / "broken.pdf").write_bytes(b"%PDF-1.7 truncated")  # a supported file that fails: exit 1
    assert main(["ingest", str(docs), "--index", "t", "-q"]) == 1
    out = capsys.readouterr().out
    assert "1 failed" in out and "10 skipped" in out and "error: " in out and "broken.pdf" in out


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_without_bom_is_decoded(tmp_path: Path, loader: DocumentLoader, codec: str) -> None:
    text = "Pumps need priming before start.\nÜber-Druck: 6 bar, 温度 40 °C.\n" * 3
    p = tmp_path / "wide.txt"
    p.write_bytes(text.encode(codec))
    f = loader.load(p)
    assert f.documents[0].text == text
    assert any("UTF-16" in w for w in f.warnings)


def test_utf16_that_decodes_to_control_characters_is_still_binary(tmp_path: Path, loader: DocumentLoader) -> None:
    p = tmp_path / "table.txt"
    p.write_bytes(bytes(b for i in range(2000) for b in (i % 31 + 1, 0)))  # uint16 counters, not text
    with pytest.raises(LoadError, match="binary"):
        loader.load(p)


def test_a_nul_byte_anywhere_marks_the_file_binary(tmp_path: Path, loader: DocumentLoader) -> None:
    p = tmp_path / "late.txt"
    p.write_bytes(b"plain words " * 1000 + b"\x00tail")  # the NUL is past 10 KB
    assert p.stat().st_size > 10 * 1024
    with pytest.raises(LoadError, match=r"binary file \(NUL byte at offset 12000\)") as info:
        loader.load(p)
    assert "\n" not in str(info.value)
    bom = tmp_path / "bom.txt"
    bom.write_bytes("ok\x00".encode("utf-16"))
    with pytest.raises(LoadError, match="binary"):
        loader.load(bom)


def test_an_unreadable_subfolder_is_an_error_not_a_skip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "locked").mkdir()
    (tmp_path / "ok.txt").write_text("fine", encoding="utf-8")
    real = os.scandir

    def scandir(path: object) -> object:
        if Path(str(path)).name == "locked":
            raise PermissionError(13, "Permission denied")
        return real(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "scandir", scandir)
    scan = scan_files(tmp_path)
    assert [p.name for p in scan.files] == ["ok.txt"] and scan.skipped == ()
    assert scan.errors == ((str(tmp_path / "locked"), "cannot list the folder: Permission denied; "
                                                      "check its permissions"),)
