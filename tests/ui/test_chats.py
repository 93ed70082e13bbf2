"""The app's saved chats through AppTest: each turn saved with its sources, reopened from ?chat=ID, listed,
renamed, deleted after a confirm step; a damaged history is one line and the app still answers."""

from __future__ import annotations

from pathlib import Path

from rag.chats import CHATS_FILE, ChatStore
from tests.ui.test_app import _app, _ask_extractive, _index_samples, app_env  # noqa: F401  (fixture)

QUESTION = "What happens if ingestion is interrupted?"


def test_a_turn_is_saved_reopened_from_the_url_renamed_and_deleted(app_env: Path) -> None:  # noqa: F811
    at = _ask_extractive(_index_samples(_app()), QUESTION)
    chats = ChatStore(app_env / "idx" / CHATS_FILE)
    [saved] = chats.list()
    assert (saved.title, saved.collection, saved.n_turns) == (QUESTION, "samples", 1)
    assert at.query_params["chat"] == [saved.id] or at.query_params["chat"] == saved.id
    turn = chats.load(saved.id).turns[0]
    assert turn.model == "extractive" and turn.answer.citations and "total_s" in turn.timings

    # a new session (a reload) with ?chat=ID shows the same chat and its sources
    again = _app()
    again.query_params["chat"] = saved.id
    again.run()
    assert not again.exception
    assert [m.name for m in again.chat_message] == ["user", "assistant"]
    assert any(e.label.startswith("[1] ") for e in again.expander)
    assert any(b.key == f"chat_{saved.id}" for b in again.sidebar.button)

    again.text_input(key=f"title_{saved.id}").set_value("Interrupted ingests").run()
    again.button(key="rename_chat").click().run()
    assert chats.load(saved.id).title == "Interrupted ingests"
    again.button(key="delete_chat").click().run()
    assert chats.list()  # not before the confirm step
    again.button(key="confirm_delete_chat").click().run()
    assert not again.exception and chats.list() == [] and not again.chat_message


def test_a_damaged_history_is_one_line_and_the_app_still_answers(app_env: Path) -> None:  # noqa: F811
    (app_env / "idx").mkdir(parents=True)
    (app_env / "idx" / CHATS_FILE).write_bytes(b"not a database" * 500)
    at = _ask_extractive(_index_samples(_app()), QUESTION)
    assert [m.name for m in at.chat_message] == ["user", "assistant"]
    warnings = [w.value for w in at.sidebar.warning]
    assert any("is damaged" in w and "the app answers without saving" in w for w in warnings), warnings


def test_a_chat_scoped_to_a_document_is_stored_restored_and_searched_only_there(app_env: Path) -> None:  # noqa: F811
    from rag.index.store import IndexStore

    at = _index_samples(_app())
    sources = sorted(IndexStore(app_env / "idx").load("samples").documents)
    faq = next(s for s in sources if s.endswith("faq.md"))
    scope = at.multiselect(key="scope_docs")
    assert scope.value == [] and len(scope.options) == 3 and "faq.md" in scope.options
    scope.set_value([faq]).run()
    at = _ask_extractive(at, QUESTION)
    chats = ChatStore(app_env / "idx" / CHATS_FILE)
    [saved] = chats.list()
    assert saved.documents == (faq,)
    answer = chats.load(saved.id).turns[0].answer
    assert answer.sources and {h.chunk.source for h in answer.sources} == {faq}  # passed to the session
    assert any("Searching 1 of 3 documents" in c.value for c in at.caption)

    # reopened from ?chat=ID: the multi-select shows the chat's scope again, and a change is stored
    again = _app()
    again.query_params["chat"] = saved.id
    again.run()
    assert not again.exception
    assert again.multiselect(key="scope_docs").value == [faq]
    assert any("Searching 1 of 3 documents" in c.value for c in again.caption)
    again.multiselect(key="scope_docs").set_value([]).run()
    assert chats.load(saved.id).documents == ()
    # New chat: the whole collection again
    again.multiselect(key="scope_docs").set_value([faq]).run()
    again.button(key="new_chat").click().run()
    assert again.multiselect(key="scope_docs").value == [] and chats.load(saved.id).documents == (faq,)
