"""Upload names from the browser are untrusted: no traversal, no collisions, no lost extensions."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from rag.ui.uploads import MAX_NAME_BYTES, UploadError, check_upload, safe_filename, safe_upload_path, save_uploads


def _saved(paths: list[Path]) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in paths}


def test_unicode_names_keep_their_letters_and_never_collide(tmp_path: Path) -> None:
    names = ["報告.txt", "議事録.txt", "Отчёт.md", "تقرير.md", "हिन्दी.txt"]
    saved, errors = save_uploads([(n, n.encode()) for n in names], tmp_path)
    assert errors == []
    assert sorted(_saved(saved)) == sorted(unicodedata.normalize("NFC", n) for n in names)
    assert all(p.read_bytes() == p.name.encode() for p in saved)


def test_names_are_normalised_nfkc(tmp_path: Path) -> None:
    decomposed = unicodedata.normalize("NFD", "café.txt")
    assert safe_filename(decomposed) == "café.txt"
    assert safe_filename("ｒｅｐｏｒｔ．ｔｘｔ") == "report.txt"  # full-width letters and dot
    saved, errors = save_uploads([("ｒｅｐｏｒｔ．ｔｘｔ", b"wide")], tmp_path)
    assert errors == [] and [p.name for p in saved] == ["report.txt"]
    check_upload("ｎｏｔｅｓ．ｍｄ", 3)  # the normalised extension is what counts


def test_control_and_direction_characters_are_replaced() -> None:
    assert safe_filename("evil\u202etxt.md") == "evil_txt.md"   # right-to-left override
    assert safe_filename("a\x00b\nc.txt") == "a_b_c.txt"
    assert safe_filename("what?*<>|.md") == "what_.md"


def test_names_differing_only_in_dots_and_spaces_get_unique_names(tmp_path: Path) -> None:
    names = ["report.txt", "report .txt", ".report.txt", "report..txt", "report.txt.", " report.txt "]
    saved, errors = save_uploads([(n, f"content of {n!r}".encode()) for n in names], tmp_path)
    assert errors == []
    files = _saved(saved)
    assert len(files) == len(names) == len(set(saved))
    assert all(name.endswith(".txt") and not name.startswith(".") for name in files)
    assert sorted(files.values()) == sorted(f"content of {n!r}".encode() for n in names)
    assert [p.name for p in saved][:2] == ["report.txt", "report-2.txt"]


def test_a_different_upload_is_never_overwritten(tmp_path: Path) -> None:
    first, _ = save_uploads([("notes.md", b"version one")], tmp_path)
    again, _ = save_uploads([("notes.md", b"version one")], tmp_path)       # same bytes: same file
    assert again == first and len(list(tmp_path.iterdir())) == 1
    other, _ = save_uploads([("notes.md", b"version two")], tmp_path)       # different bytes: new name
    assert other[0].name == "notes-2.md"
    assert first[0].read_bytes() == b"version one" and other[0].read_bytes() == b"version two"
    assert not list(tmp_path.glob(".*"))  # no temp or reservation files left behind


def test_replace_overwrites_only_the_exact_same_name(tmp_path: Path) -> None:
    save_uploads([("notes.md", b"old"), ("a b?.md", b"old")], tmp_path)
    saved, errors = save_uploads([("notes.md", b"new"), ("a b*.md", b"other"), ("notes.md", b"newer")],
                                 tmp_path, replace=True)
    assert errors == []
    assert [p.name for p in saved] == ["notes.md", "a b_-2.md", "notes-2.md"]
    assert (tmp_path / "notes.md").read_bytes() == b"new"          # replaced on request
    assert (tmp_path / "a b_.md").read_bytes() == b"old"           # a different original name: kept
    assert (tmp_path / "notes-2.md").read_bytes() == b"newer"      # same batch: never overwritten


@pytest.mark.parametrize("stem", ["x" * 296, "報" * 300, "é" * 299])
def test_long_names_keep_their_extension_and_fit_the_file_system(tmp_path: Path, stem: str) -> None:
    assert len(stem + ".txt") >= 300
    name = safe_filename(stem + ".txt")
    assert name.endswith(".txt") and len(name.encode()) <= MAX_NAME_BYTES
    saved, errors = save_uploads([(stem + ".txt", b"one"), (stem + "-other.txt", b"two")], tmp_path)
    assert errors == []
    assert len(set(saved)) == 2 and all(p.name.endswith(".txt") for p in saved)
    assert all(len(p.name.encode()) <= MAX_NAME_BYTES for p in saved)
    assert sorted(p.read_bytes() for p in saved) == [b"one", b"two"]


def test_traversal_is_still_refused(tmp_path: Path) -> None:
    up = tmp_path / "up"
    saved, errors = save_uploads([("../../escape.txt", b"a"), ("..\\..\\win.txt", b"b"), ("/abs/x.md", b"c")],
                                 up, max_mb=1)
    assert errors == []
    assert all(p.parent == up.absolute() for p in saved)
    assert sorted(p.name for p in saved) == ["escape.txt", "win.txt", "x.md"]
    assert [p.name for p in tmp_path.iterdir()] == ["up"]
    for bad in ("..", ".", "   ", "/", "...."):
        with pytest.raises(UploadError, match="not usable"):
            safe_filename(bad)


def test_without_hard_links_the_name_is_reserved_then_filled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import os

    def no_links(src: object, dst: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    saved, errors = save_uploads([("a.md", b"one"), ("a.md", b"two"), ("a.md", b"one")], tmp_path)
    assert errors == [] and [p.name for p in saved] == ["a.md", "a-2.md"]
    assert [p.read_bytes() for p in saved] == [b"one", b"two"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-2.md", "a.md"]


def test_a_name_of_only_dots_and_spaces_is_an_empty_name_not_an_unsupported_type(tmp_path: Path) -> None:
    for bare, safe in ((" .txt", "upload.txt"), (".md", "upload.md"), ("..txt", "upload.txt"),
                       (" . .pdf ", "upload.pdf")):
        check_upload(bare, 10)  # the extension is there: the upload is accepted, renamed
        assert safe_filename(bare) == safe
    for empty in ("...", " . ", "", "dir/.. "):
        for refuse in (lambda n: check_upload(n, 10), safe_filename):
            with pytest.raises(UploadError) as err:
                refuse(empty)
            assert "empty file name" in str(err.value) and "unsupported" not in str(err.value)
    saved, errors = save_uploads([(" .txt", b"one"), ("...", b"two"), (".txt", b"three")], tmp_path)
    assert [(p.name, p.read_bytes()) for p in saved] == [("upload.txt", b"one"), ("upload-2.txt", b"three")]
    assert [n for n, _ in errors] == ["..."] and "empty file name '...'" in errors[0][1]


def test_upload_safety(tmp_path: Path) -> None:
    up = tmp_path / "up"
    assert safe_upload_path(up, "../../etc/passwd.md") == (up / "passwd.md").absolute()
    assert safe_upload_path(up, "C:\\Users\\x\\notes.txt").name == "notes.txt"
    with pytest.raises(UploadError, match="not usable"):
        safe_upload_path(up, "..")
    with pytest.raises(UploadError, match="unsupported file type '.exe'"):
        check_upload("virus.exe", 10)
    with pytest.raises(UploadError, match="over the 1 MB upload limit"):
        check_upload("big.pdf", 2 * 1024 * 1024, max_mb=1)
    saved, errors = save_uploads([("good.txt", b"hello"), ("../bad.exe", b"x"), ("empty.md", b""),
                                  ("../../sneaky.txt", b"still fine")], up)
    assert sorted(p.name for p in saved) == ["good.txt", "sneaky.txt"]
    assert all(p.parent == up.absolute() for p in saved)
    assert [n for n, _ in errors] == ["../bad.exe", "empty.md"]
    assert not list(tmp_path.glob("sneaky.txt"))
