"""Saved chats: every question and its answer (citations, diagnostics, timings) in one SQLite file per index root.

:mod:`rag.chats.store` holds :class:`ChatStore` (``<index root>/chats.sqlite3``), :mod:`rag.chats.codec`
turns an :class:`~rag.types.Answer` into JSON and back, :mod:`rag.chats.export` writes a chat as
Markdown or JSON.  ``rag chats``, ``rag chat`` and the app use them.
"""

from rag.chats.codec import answer_from_dict, answer_to_dict
from rag.chats.export import to_json, to_markdown
from rag.chats.store import CHATS_FILE, SCHEMA_VERSION, Chat, ChatHistoryError, ChatStore, Turn, chat_store

__all__ = ["CHATS_FILE", "SCHEMA_VERSION", "Chat", "ChatHistoryError", "ChatStore", "Turn", "answer_from_dict",
           "answer_to_dict", "chat_store", "to_json", "to_markdown"]
