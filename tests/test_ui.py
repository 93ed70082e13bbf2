"""The Streamlit app through Streamlit's AppTest (real embedder, real index, real LLM where marked)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.serve.webapp import UploadError, check_upload, escape_markdown, safe_upload_path, save_uploads

APP = str(Path(__file__).resolve().parent.parent / "ui" / "app.py")


@pytest.fixture()
def app_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "idx"))
    monkeypatch.setenv("RAG_UPLOAD_DIR", str(tmp_path / "up"))
    return tmp_path


def _app():  # type: ignore[no-untyped-def]
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(APP, default_timeout=600)


def _index_samples(at):  # type: ignore[no-untyped-def]
    at.run()
    assert not at.exception
    assert "no collection yet" in at.info[0].value
    at.button(key="index_samples").click().run()
    assert not at.exception
    return at


def test_empty_state_offers_and_indexes_the_samples(app_env: Path) -> None:
    at = _index_samples(_app())
    assert "3 added" in at.sidebar.success[0].value
    listed = " ".join(m.value for m in at.sidebar.markdown)
    for name in ("faq", "glossary", "user\\-guide"):
        assert name in listed
    assert (app_env / "idx" / "samples" / "manifest.json").exists()


def test_ask_shows_cited_sources_extractive(app_env: Path) -> None:
    at = _index_samples(_app())
    at.radio[0].set_value("extractive").run()
    at.chat_input[0].set_value("What happens if ingestion is interrupted?").run()
    assert not at.exception
    assistant = [m for m in at.chat_message if m.name == "assistant"][0]
    assert "\\[1\\]" in assistant.markdown[0].value  # a cited answer, escaped for Markdown
    labels = [e.label for e in at.expander if e.label.startswith("[")]
    assert labels and labels[0].startswith("[1] ")
    assert any("faq.md" in label for label in labels)


def test_delete_a_document(app_env: Path) -> None:
    at = _index_samples(_app())
    at.button(key="delete_0").click().run()  # documents are sorted: faq.md first
    assert not at.exception
    from rag.index.store import IndexStore

    names = {Path(s).name for s in IndexStore(app_env / "idx").load("samples").documents}
    assert names == {"glossary.md", "user-guide.md"}
    assert "Removed faq.md" in at.sidebar.success[0].value


def test_document_text_cannot_inject_markup(app_env: Path) -> None:
    from rag.ingest.ingestor import Ingestor
    from rag.index.store import IndexStore

    docs = app_env / "evil"
    docs.mkdir()
    (docs / "evil.md").write_text(
        "Pump priming: open the valve. <img src=x onerror=alert(1)> ![leak](http://attacker.example/x.png) "
        "<script>alert('pwned')</script>", encoding="utf-8")
    Ingestor("evil", store=IndexStore(app_env / "idx"), show_progress=False).ingest([docs])
    at = _app()
    at.run()
    at.radio[0].set_value("extractive").run()
    at.chat_input[0].set_value("pump priming valve").run()
    assert not at.exception
    rendered = " ".join(m.value for m in at.markdown)
    assert "<img" not in rendered and "](http" not in rendered and "<script" not in rendered
    # the chunk itself is shown as plain text, not markdown
    assert any("<img src=x" in t.value for t in at.text)


@pytest.mark.slow
def test_generative_answer_with_the_real_model(app_env: Path) -> None:
    at = _index_samples(_app())
    at.chat_input[0].set_value("Which formats can I upload?").run()
    assert not at.exception
    assistant = [m for m in at.chat_message if m.name == "assistant"][0]
    assert assistant.markdown[0].value.strip()
    assert any(e.label.startswith("[1] ") for e in at.expander)


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


def test_escape_markdown_neutralises_links_and_html() -> None:
    out = escape_markdown("![x](http://evil/a.png) <b>hi</b> :red[alert] $x$")
    assert "![" not in out and "<b>" not in out and ":red[" not in out and "$x$" not in out
