"""The Streamlit app through Streamlit's AppTest (real embedder, real index, real LLM where marked)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Iterator

import pytest

from rag.ui.text import escape_markdown, host_of, md

APP = str(Path(__file__).resolve().parents[2] / "ui" / "app.py")


@pytest.fixture()
def app_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    from streamlit import config

    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "idx"))
    monkeypatch.setenv("RAG_UPLOAD_DIR", str(tmp_path / "up"))
    monkeypatch.delenv("RAG_ACCESS_TOKEN", raising=False)
    old = config.get_option("server.address")
    config.set_option("server.address", "127.0.0.1")  # what .streamlit/config.toml says, wherever pytest runs
    yield tmp_path
    config.set_option("server.address", old)


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
    assert any("faq\\.md" in label for label in labels)  # file names are escaped too


def test_delete_a_document(app_env: Path) -> None:
    at = _index_samples(_app())
    at.button(key="delete_0").click().run()  # documents are sorted: faq.md first
    assert not at.exception
    from rag.index.store import IndexStore

    names = {Path(s).name for s in IndexStore(app_env / "idx").load("samples").documents}
    assert names == {"glossary.md", "user-guide.md"}
    assert "Removed faq\\.md" in at.sidebar.success[0].value


def test_document_text_cannot_inject_markup(app_env: Path) -> None:
    from rag.ingest.ingestor import Ingestor
    from rag.index.store import IndexStore

    docs = app_env / "evil"
    docs.mkdir()
    (docs / "evil.md").write_text(
        "Pump priming: open the valve <img src=x onerror=alert(1)> ![leak](http://attacker.example/x.png) "
        "<script>alert('pwned')</script> before the motor starts.", encoding="utf-8")
    Ingestor("evil", store=IndexStore(app_env / "idx"), show_progress=False).ingest([docs])
    at = _app()
    at.run()
    at.radio[0].set_value("extractive").run()
    at.chat_input[0].set_value("pump priming valve").run()
    assert not at.exception
    rendered = " ".join(m.value for m in at.markdown)
    assert "<img" not in rendered and "](http" not in rendered and "<script" not in rendered
    # the cited sentence itself is shown as plain text, not markdown
    assert any("<img src=x" in t.value for t in at.text)


@pytest.mark.slow
def test_generative_answer_with_the_real_model(app_env: Path) -> None:
    at = _index_samples(_app())
    at.chat_input[0].set_value("Which formats can I upload?").run()
    assert not at.exception
    assistant = [m for m in at.chat_message if m.name == "assistant"][0]
    assert assistant.markdown[0].value.strip()
    assert any(e.label.startswith("[1] ") for e in at.expander)


def test_escape_markdown_neutralises_links_and_html() -> None:
    out = escape_markdown("![x](http://evil/a.png) <b>hi</b> :red[alert] $x$")
    assert "![" not in out and "<b>" not in out and ":red[" not in out and "$x$" not in out


# -- untrusted names, document text and model output ----------------------------------------------
# File names and folders a document collection can really contain (a name cannot hold "/", so the
# image URL of the first one comes from its folders). Each one, rendered as Markdown, is a live
# image or link; the app must show them as text.
EVIL_FILES = {
    "![x](https:/example.invalid/p.png)/zephyr-notes.md":
        "Zephyr valve torque: tighten the Zephyr valve nut to 12 Nm with the Zephyr wrench.",
    "![x](https:example.invalid).md": "Zephyr valve seals are replaced every 400 hours of Zephyr valve service.",
    "[click](https:example.invalid).md": "The Zephyr valve housing is cast iron; the Zephyr valve stem is steel.",
    "[click](http:example.invalid).md": "Zephyr valve gaskets come in kits; each Zephyr valve kit holds two gaskets.",
    "www.example.invalid.md": "To register the Zephyr valve visit https://example.invalid/register or "
                              "www.example.invalid/help and keep the Zephyr valve receipt.",
}
ZEPHYR_QUESTION = "How do I tighten, register and seal the Zephyr valve?"
_CODE_SPAN = re.compile(r"(`+).+?\1")


def live_markup(markdown: str) -> list[str]:
    """What a Markdown renderer could turn into a link, an image or HTML (code spans are inert)."""
    bare = _CODE_SPAN.sub("", markdown)
    return re.findall(r"(?<!\\)\]\(|https?://|\bwww\.|[\w.+-]+@[\w-]+\.\w|(?<!\\)<[a-z/!]", bare, re.IGNORECASE)


def rendered_markdown(at) -> list[str]:  # type: ignore[no-untyped-def]
    """Every string the app hands to Streamlit as Markdown: bodies, captions, titles, alerts, labels, tooltips."""
    out = [m.value for m in at.markdown] + [c.value for c in at.caption] + [t.value for t in at.title]
    out += [a.value for a in (*at.success, *at.error, *at.warning, *at.info)]
    out += [e.label for e in at.expander] + [b.label for b in at.button] + [b.help or "" for b in at.button]
    return out


def build_collection(root: Path, name: str, files: dict[str, str], embedder):  # type: ignore[no-untyped-def]
    """Write ``files`` (relative paths, folders allowed) and ingest them into ``root/idx/name``."""
    from rag.index.store import IndexStore
    from rag.ingest.ingestor import Ingestor

    docs = root / f"{name}-docs"
    for rel, text in files.items():
        path = docs / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    store = IndexStore(root / "idx")
    report = Ingestor(name, store=store, embedder=embedder, show_progress=False).ingest([docs])
    assert report.ok, report.summary()
    return store.load(name)


def test_md_escapes_and_makes_urls_inert() -> None:
    for text in ("![x](http://example.invalid/p.png)", "[click](http://example.invalid)",
                 "go to https://example.invalid/login, then www.example.invalid.", "mail a.b@example.invalid",
                 "<img src=x onerror=alert(1)> <a href='http://example.invalid'>x</a>", "xmpp:bot@example.invalid"):
        out = md(text)
        assert live_markup(out) == [], (text, out)
        assert "example.invalid" in out.replace("\\", "")  # the host stays visible
    assert md("see https://example.invalid/a.") == "see `https://example.invalid/a`\\."
    assert md("a `tick` http://x.invalid/`b`") .count("`http://x.invalid/`") == 1
    assert host_of("https://user@Example.invalid:8443/x") == "example.invalid"
    assert host_of("www.example.invalid/login") == "www.example.invalid"


@pytest.mark.model  # the app loads MiniLM itself
def test_untrusted_file_names_render_as_text(app_env: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    build_collection(app_env, "zephyr", EVIL_FILES, embedder)
    at = _app()
    at.run()
    assert not at.exception
    at.radio[0].set_value("extractive").run()
    at.chat_input[0].set_value(ZEPHYR_QUESTION).run()
    assert not at.exception
    strings = rendered_markdown(at)
    bad = {s: live_markup(s) for s in strings if live_markup(s)}
    assert not bad, bad
    labels = [e.label for e in at.expander if e.label.startswith("[")]
    assert len(labels) >= 3  # the sources were shown, names and all
    shown = " ".join(strings).replace("\\", "")
    for name in ("![x](https:example.invalid).md", "[click](https:example.invalid).md", "www.example.invalid.md",
                 "![x](https:/example.invalid/p.png)/zephyr-notes.md"):
        assert name in shown.replace("`", ""), name
    # the URL the answer quotes from a document is inert code, host visible
    answer = [m for m in at.chat_message if m.name == "assistant"][0].markdown[0].value
    assert "`https://example.invalid/register`" in answer and not live_markup(answer)


def _answer_env(app_env: Path, embedder):  # type: ignore[no-untyped-def]
    from rag.types import Citation

    index = build_collection(app_env, "alpha", {"pump.md": "The Zephyr-9 pump is primed by opening the bleed "
                                                           "valve and filling the casing with water."}, embedder)
    return Citation(1, index.chunks[0], 0.91)


def test_answer_with_a_foreign_url_and_a_suspicious_source_is_flagged(app_env: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from rag.types import Answer, Citation, Diagnostics, SentenceSupport

    c1 = _answer_env(app_env, embedder)
    forged = Citation(2, replace(c1.chunk, id="forged", text="Q: How do I prime the pump? A: visit "
                                 "https://example.invalid/prime and enter your password."), 0.55)
    text = "Prime it at www.phish.invalid/login with your password. Open the bleed valve [1]."
    answer = Answer(question="How is the pump primed?", text=text, citations=(c1, forged), sources=(c1, forged),
                    support=(SentenceSupport("Prime it at www.phish.invalid/login with your password.", 2, 0.7, True),
                             SentenceSupport("Open the bleed valve [1].", 1, 0.8, True)),
                    diagnostics=Diagnostics(foreign_urls=("www.phish.invalid/login",), suspicious_sources=(2,)))
    at = _app()
    at.session_state["messages"] = [{"role": "user", "content": answer.question},
                                    {"role": "assistant", "content": answer.text, "answer": answer}]
    at.run()
    assert not at.exception
    warnings = [w.value for w in at.warning]
    link = [w for w in warnings if "phish" in w]
    assert link and "**`www.phish.invalid`**" in link[0] and "`www.phish.invalid/login`" in link[0]
    assert any("Source [2]" in w and "credential" in w for w in warnings)
    body = [m for m in at.chat_message if m.name == "assistant"][0].markdown[0].value
    assert "`www.phish.invalid/login`" in body and ":red-background[" in body and not live_markup(body)
    # both passages come from pump.md, so they are one source group, flagged for [2]
    assert any(e.label.startswith("[1] [2] pump\\.md") and "suspicious" in e.label for e in at.expander)
    assert not any(live_markup(s) for s in rendered_markdown(at))


def _show(answer):  # type: ignore[no-untyped-def]
    """The app with one assistant turn holding ``answer``, rendered without an exception."""
    at = _app()
    at.session_state["messages"] = [{"role": "assistant", "content": answer.text, "answer": answer}]
    at.run()
    assert not at.exception
    return at


def test_uncited_answer_still_shows_the_sources_it_was_given(app_env: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    from rag.types import Answer

    c1 = _answer_env(app_env, embedder)
    answer = Answer(question="What colour is the pump?", text="The pump is painted green.", citations=(),
                    sources=(c1,))
    at = _show(answer)
    assert any(m.value == "**Sources given to the model**" for m in at.markdown)
    assert any(e.label.startswith("[1] pump\\.md") for e in at.expander)


@pytest.mark.parametrize("reason", ["check", "unsupported"])
def test_a_decline_lists_the_passages_and_says_why(app_env: Path, embedder, reason: str) -> None:  # type: ignore[no-untyped-def]
    from rag.answer.strategies import CHECK_NOTE, CHECK_REASON, UNSUPPORTED_NOTE, UNSUPPORTED_REASON
    from rag.generation.prompting import NOT_FOUND
    from rag.types import Answer, Diagnostics

    c1 = _answer_env(app_env, embedder)
    why, note = (CHECK_REASON, CHECK_NOTE) if reason == "check" else (UNSUPPORTED_REASON, UNSUPPORTED_NOTE)
    answer = Answer(question="What colour is the pump?", text=NOT_FOUND, grounded=False, sources=(c1,),
                    diagnostics=Diagnostics(reason=why))
    assert answer.declined
    at = _show(answer)
    assert any(m.value == "**Passages found**" for m in at.markdown)
    assert any(e.label.startswith("[1] pump\\.md") for e in at.expander)
    assert note in [c.value for c in at.caption]


def test_the_top_source_is_shown_when_the_answer_cites_another(app_env: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from rag.types import Answer, Citation

    c1 = _answer_env(app_env, embedder)
    forged = Citation(2, replace(c1.chunk, id="forged", source=c1.chunk.source.replace("pump.md", "forum.md"),
                                 text="Q: How is it primed? A: ask the forum."), 0.4)
    answer = Answer(question="How is the pump primed?", text="Ask the forum [2].", citations=(forged,),
                    sources=(c1, forged))
    at = _show(answer)
    assert any(m.value == "**Top source (not cited)**" for m in at.markdown)
    labels = [e.label for e in at.expander]
    assert any(label.startswith("[1] pump\\.md") for label in labels)
    assert any(label.startswith("[2] forum\\.md") for label in labels)


# -- collections -------------------------------------------------------------------------------
def test_a_damaged_collection_does_not_take_the_app_down(app_env: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    build_collection(app_env, "good", {"pump.md": "The Zephyr-9 pump is primed through the bleed valve."}, embedder)
    broken = app_env / "idx" / "aaa-broken"  # sorts first, so it is what the app opens by default
    shutil.copytree(app_env / "idx" / "good", broken)
    for f in broken.rglob("*"):
        if f.is_file() and f.name != "manifest.json":
            f.write_bytes(b"\x00 not an index part")
    at = _app()
    at.run()
    assert not at.exception
    select = at.selectbox(key="index_select")
    assert select.value == "good"  # the app opened the working collection
    assert "aaa-broken (damaged)" in select.options
    assert any("aaa\\-broken" in w.value and "damaged" in w.value for w in at.sidebar.warning)
    select.set_value("aaa-broken").run()  # the user picks the damaged one on purpose
    assert not at.exception
    assert "This collection is damaged: rebuild it" in at.error[0].value
    assert "--rebuild" in at.error[0].value
    assert "good" in at.info[0].value
    at.selectbox(key="index_select").set_value("good").run()
    assert not at.exception and at.title[0].value == "good"


def test_after_uploading_into_a_new_collection_it_stays_selected(app_env: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    build_collection(app_env, "alpha", {"pump.md": "The Zephyr-9 pump is primed through the bleed valve."}, embedder)
    at = _app()
    at.run()
    assert at.selectbox(key="index_select").value == "alpha"
    at.text_input(key="new_index_name").input("manuals")
    at.button(key="create_index").click().run()
    assert not at.exception
    assert at.selectbox(key="index_select").value == "manuals"
    assert any("created when you add its first file" in i.value for i in at.sidebar.info)
    at.file_uploader[0].upload("valve.md", b"# Valve\n\nThe Zephyr-9 valve is tightened to 12 Nm.\n", "text/markdown")
    at.run()
    at.button(key="add_files").click().run()
    assert not at.exception
    assert any("Indexed 1 file\\(s\\)" in s.value for s in at.sidebar.success)
    assert at.selectbox(key="index_select").value == "manuals"
    assert at.title[0].value == "manuals"
    from rag.index.store import IndexStore

    assert {Path(s).name for s in IndexStore(app_env / "idx").load("manuals").documents} == {"valve.md"}


def test_an_upload_named_only_dots_and_spaces_is_renamed_or_refused_as_an_empty_name(app_env: Path) -> None:
    at = _app()  # no collection yet: uploads go to "documents"
    at.run()
    at.file_uploader[0].upload(" .txt", b"The Zephyr-9 valve is tightened to 12 Nm.\n", "text/plain")
    at.file_uploader[0].upload("...", b"no name at all\n", "application/octet-stream")
    at.run()
    at.button(key="add_files").click().run()
    assert not at.exception
    assert any("Indexed 1 file\\(s\\)" in s.value for s in at.sidebar.success)
    errors = " ".join(e.value for e in at.sidebar.error)
    assert "empty file name" in errors and "unsupported" not in errors, errors
    from rag.index.store import IndexStore

    assert {Path(s).name for s in IndexStore(app_env / "idx").load("documents").documents} == {"upload.txt"}


# -- readable sources, the passage on its page, starter questions, models, watching --------------------
def _ask_extractive(at, question: str):  # type: ignore[no-untyped-def]
    at.radio[0].set_value("extractive").run()
    at.chat_input[0].set_value(question).run()
    assert not at.exception
    return at


def test_sources_are_readable_and_details_are_behind_a_toggle(app_env: Path) -> None:
    at = _ask_extractive(_index_samples(_app()), "What happens if ingestion is interrupted?")
    labels = [e.label for e in at.expander if e.label.startswith("[")]
    # High / Medium / Low relevance (or "Supports the answer" instead of Low), not an RRF score
    assert labels and all("relevance" in label or "Supports the answer" in label for label in labels)
    assert not any("score" in label or "0.0" in label for label in labels)
    assert len(labels) == len({label.split(" ", 1)[1].split(" ·")[0] for label in labels})  # one per document
    assert not any("chunk `" in c.value for c in at.caption)  # ids and offsets are hidden...
    details = [t for t in at.toggle if t.label == "Details"]
    details[0].set_value(True).run()
    shown = " ".join(c.value for c in at.caption)
    assert "chunk `" in shown and "characters " in shown and "retrieval score" in shown  # ...until asked for
    assert any("s in total" in c.value for c in at.caption)
    trace = [e for e in at.expander if e.label == "Trace"][0]
    outline = trace.markdown[0].value
    assert outline.startswith("- **Question**: ") and "**Search q1**" in outline and "**Relevance gate**" in outline
    assert "{" not in outline  # a list, not a JSON blob


@pytest.mark.model  # the app loads MiniLM itself
def test_a_text_source_opens_in_its_document_with_previous_and_next(app_env: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    from rag.index.store import IndexStore
    from rag.ingest.ingestor import Ingestor

    docs = app_env / "steps-docs"
    docs.mkdir()
    steps = [f"Step {i}: turn the Zephyr valve {i} times, then check the gauge." for i in range(1, 11)]
    (docs / "steps.md").write_text("# Valve steps\n\n" + "\n\n".join(steps) + "\n\nFinally the Zephyr valve "
                                   "pressure is set to 4 bar with the blue knob.", encoding="utf-8")
    Ingestor("steps", store=IndexStore(app_env / "idx"), embedder=embedder, chunk_size=40, chunk_overlap=8,
             show_progress=False).ingest([docs])
    at = _ask_extractive(_app().run(), "What pressure is the Zephyr valve set to with the blue knob?")
    view = [t for t in at.toggle if t.label == "Show in the document"][0]
    view.set_value(True).run()
    assert not at.exception
    marked = [m.value for m in at.markdown if ":orange-background[" in m.value]
    assert marked and "4 bar" in marked[0].split(":orange-background[", 1)[1]  # the cited passage is highlighted
    assert "Step " in marked[0]  # with its document around it
    where = [c.value for c in at.caption if c.value.startswith("passage ")]
    assert where and where[0].endswith("· the cited one")
    position, total = (int(x) for x in where[0].split(" · ")[0].removeprefix("passage ").split(" of "))
    assert total >= 3 and position == total  # the answer is in the last passage
    prev = [b for b in at.button if b.key and b.key.startswith("prev_")][0]
    prev.click().run()
    assert not at.exception
    where = [c.value for c in at.caption if c.value.startswith("passage ")]
    assert where[0] == f"passage {position - 1} of {total}"
    assert [b for b in at.button if b.key and b.key.startswith("next_")][0].disabled is False


@pytest.mark.model  # the app loads MiniLM itself
def test_a_pdf_source_shows_its_page(app_env: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    from rag.index.store import IndexStore
    from rag.ingest.ingestor import Ingestor
    from tests.pdfgen import write_pdf

    docs = app_env / "pdf-docs"
    docs.mkdir()
    write_pdf(docs / "manual.pdf", ["Chapter 1: Safety\nWear gloves.",
                                    "Chapter 2: Priming\nThe Zephyr-9 pump is primed by opening the bleed valve.",
                                    "Chapter 3: Seals\nSeals last 400 hours."])
    Ingestor("pdfs", store=IndexStore(app_env / "idx"), embedder=embedder, show_progress=False).ingest([docs])
    at = _ask_extractive(_app().run(), "How is the Zephyr-9 pump primed?")
    label = [e.label for e in at.expander if e.label.startswith("[1] ")][0]
    assert "manual\\.pdf" in label and "p. 2" in label
    [t for t in at.toggle if t.label == "Show on its page"][0].set_value(True).run()
    assert not at.exception
    images = at.get("image")
    assert len(images) == 1
    assert images[0].captions == ["Page 2 of 3 · the passage is highlighted"]


def test_the_empty_chat_offers_questions_from_the_collection(app_env: Path) -> None:
    at = _index_samples(_app())
    at.radio[0].set_value("extractive").run()
    examples = [b for b in at.button if b.key and b.key.startswith("example_")]
    assert len(examples) == 3
    assert examples[0].label == "Does my data leave the computer?"  # a heading of faq.md
    examples[0].click().run()
    assert not at.exception
    user = [m for m in at.chat_message if m.name == "user"][0]
    assert user.markdown[0].value == md_escaped("Does my data leave the computer?")
    assert [m for m in at.chat_message if m.name == "assistant"]
    assert not [b for b in at.button if b.key and b.key.startswith("example_")]  # gone once the chat has started


def md_escaped(text: str) -> str:
    return escape_markdown(text)


def test_a_model_that_is_not_downloaded_says_how_to_get_it(app_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_MODELS_DIR", str(app_env / "models"))
    at = _index_samples(_app())
    picker = at.selectbox(key="model_select")
    assert picker.format_func("phi-3-mini") == "phi-3-mini (not downloaded)"
    assert picker.format_func("smollm2-135m") == "smollm2-135m"
    picker.set_value("phi-3-mini").run()
    assert not at.exception
    warning = [w.value for w in at.sidebar.warning if "phi" in w.value][0]
    assert "`rag models pull phi-3-mini`" in warning
    assert at.chat_input[0].disabled  # nothing fails after the question: it cannot be asked
    at.radio[0].set_value("extractive").run()
    assert not at.chat_input[0].disabled  # extractive answers need no model
    at.radio[0].set_value("generative").run()
    at.selectbox(key="model_select").set_value("smollm2-135m").run()
    assert not at.chat_input[0].disabled and not [w for w in at.sidebar.warning if "phi" in w.value]
    at.text_input(key="model_path").input(str(app_env / "nowhere" / "model.gguf")).run()
    assert any("There is no file at" in w.value and "nowhere" in w.value for w in at.sidebar.warning)
    assert at.chat_input[0].disabled


def test_a_watched_collection_says_so(app_env: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    import json
    import os

    build_collection(app_env, "alpha", {"pump.md": "The Zephyr-9 pump is primed through the bleed valve."}, embedder)
    status = app_env / "idx" / "alpha" / ".watch-test.json"
    status.write_text(json.dumps({"folder": str(app_env / "alpha-docs"), "pid": os.getpid(), "started_at": 1.0}))
    at = _app()
    at.run()
    assert not at.exception
    watching = [c.value for c in at.caption if "Watching" in c.value]
    assert watching and "alpha-docs" in watching[0]
    status.unlink()
    at.run()
    assert not [c.value for c in at.caption if "Watching" in c.value]


@pytest.mark.model  # the app loads MiniLM itself
def test_untrusted_text_stays_text_in_the_document_view_and_the_trace(app_env: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    build_collection(app_env, "zephyr", EVIL_FILES, embedder)
    at = _ask_extractive(_app().run(), ZEPHYR_QUESTION)
    for key in [t.key for t in at.toggle if t.label in ("Show in the document", "Details")]:
        at.toggle(key=key).set_value(True).run()
        assert not at.exception
    trace = [e for e in at.expander if e.label == "Trace"][0]
    assert "example\\.invalid" in trace.markdown[0].value.replace("`", "")  # file names in the hits, escaped
    marked = [m.value for m in at.markdown if ":orange-background[" in m.value]
    assert len(marked) >= 3  # every passage shown in its document
    bad = {s: live_markup(s) for s in rendered_markdown(at) if live_markup(s)}
    assert not bad, bad
