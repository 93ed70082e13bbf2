"""The app's saved chats: the sidebar list (search, New chat, open), the open chat's rename, delete and download,
and the conversation rebuilt from a saved chat.

Chats are :class:`rag.chats.ChatStore` records in ``<index root>/chats.sqlite3``, shared with ``rag chat``
and ``rag chats``.  The open chat's id is in the URL (``?chat=ID``), so a reload, or a restart of
the server, opens it again.  A history that cannot be used (damaged, newer) is one sidebar line and
the app answers without saving.  Titles and collection names are untrusted: drawn through
:func:`rag.ui.text.md`.

Example:
    >>> from rag.chats import Chat, Turn
    >>> from rag.types import Answer
    >>> chat = Chat("ab12", "q", "docs", turns=(Turn(1, "q", Answer(question="q", text="a"), meta={"timing": {}}),))
    >>> [(m["role"], m["content"]) for m in messages_of(chat)]
    [('user', 'q'), ('assistant', 'a')]
    >>> short("a very long title " * 10, 20)
    'a very long title a…'
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from rag.chats import Chat, ChatHistoryError, ChatStore, to_json, to_markdown
from rag.generation.memory import Memory
from rag.text import clip
from rag.ui.text import md

logger = logging.getLogger(__name__)

QUERY_KEY = "chat"  # ?chat=ID in the URL
LISTED = 30  # chats shown in the sidebar (search finds older ones)
UNSAVED = "; the app answers without saving"


def short(title: str, width: int = 48) -> str:
    return clip(title, width)


def messages_of(chat: Chat) -> list[dict[str, Any]]:
    """The app's conversation (``st.session_state["messages"]``) of a saved chat."""
    out: list[dict[str, Any]] = []
    for t in chat.turns:
        out.append({"role": "user", "content": t.question})
        out.append({"role": "assistant", "content": t.answer.text, "answer": t.answer, "meta": dict(t.meta)})
    return out


def replay(memory: Memory, messages: list[dict[str, Any]]) -> Memory:
    """Add every answered turn of ``messages`` to ``memory`` (a question still waiting for its answer is left out)."""
    for q, a in zip(messages, messages[1:]):
        if q["role"] == "user" and a["role"] == "assistant" and a.get("answer") is not None:
            memory.add(q["content"], a["answer"].text)
    return memory


def sidebar_chats(st: Any, chats: ChatStore, ss: Any, open_chat: Callable[[str | None], None]) -> None:
    """The "Chats" section: New chat, search, the chats newest first, and the open chat's actions."""
    st.sidebar.header("Chats")
    if st.sidebar.button("New chat", key="new_chat", icon=":material/add:"):
        open_chat(None)
    query = st.sidebar.text_input("Search chats", key="chat_search", placeholder="words from a title, question "
                                  "or answer")
    try:
        found = chats.search(query, limit=LISTED) if query.strip() else chats.list(limit=LISTED)
    except ChatHistoryError as exc:
        ss["history_problem"] = str(exc)
        found = []
    if ss.get("history_problem"):
        st.sidebar.warning(md(ss["history_problem"] + UNSAVED))
    elif not found:
        st.sidebar.caption("No chats match." if query.strip() else "Your chats are saved here as you ask.")
    current = ss.get("chat_id")
    for c in found:
        label = f"{short(c.title)} · {c.collection}"
        if st.sidebar.button(md(label), key=f"chat_{c.id}", type="primary" if c.id == current else "tertiary",
                             help=md(f"{c.title} ({c.collection}, {c.n_turns} questions)")):
            open_chat(c.id)
    if current and not ss.get("history_problem"):
        current_chat_actions(st, chats, ss, current, open_chat)


def current_chat_actions(st: Any, chats: ChatStore, ss: Any, chat_id: str,
                         open_chat: Callable[[str | None], None]) -> None:
    """Rename, delete (after a confirm step) and download (Markdown, JSON) the open chat."""
    try:
        chat = chats.load(chat_id)
    except ChatHistoryError as exc:
        st.sidebar.warning(md(str(exc)))
        return
    with st.sidebar.expander("This chat"):
        title = st.text_input("Title", value=chat.title, key=f"title_{chat.id}")
        if st.button("Rename", key="rename_chat") and title.strip() and title != chat.title:
            try:
                chats.rename(chat.id, title)
            except (ChatHistoryError, ValueError) as exc:
                st.error(md(str(exc)))
            else:
                st.rerun()
        cols = st.columns(2)
        cols[0].download_button("Markdown", to_markdown(chat), file_name=f"chat-{chat.id}.md", mime="text/markdown",
                                key="download_md", icon=":material/download:", on_click="ignore")
        cols[1].download_button("JSON", to_json(chat, chats.raw_answers(chat.id)), file_name=f"chat-{chat.id}.json",
                                mime="application/json", key="download_json", icon=":material/download:",
                                on_click="ignore")
        if ss.get("confirm_delete") != chat.id:
            if st.button("Delete this chat", key="delete_chat", icon=":material/delete:"):
                ss["confirm_delete"] = chat.id
                st.rerun()
        else:
            st.warning(f"Delete “{md(short(chat.title))}” and its {chat.n_turns} questions? This cannot be undone.")
            yes, no = st.columns(2)
            if yes.button("Delete", key="confirm_delete_chat", type="primary"):
                ss.pop("confirm_delete", None)
                try:
                    chats.delete(chat.id)
                except ChatHistoryError as exc:
                    st.error(md(str(exc)))
                else:
                    open_chat(None)
            if no.button("Cancel", key="cancel_delete_chat"):
                ss.pop("confirm_delete", None)
                st.rerun()
