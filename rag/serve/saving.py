"""Saving API answers to the chat history (``<index root>/chats.sqlite3``, shared with the app and ``rag chat``).

Only on request: ``"rag": {"chat_id": ID}`` appends the completed turn to that saved chat,
``"rag": {"save": true}`` starts a new one (titled with the question) and the response's ``rag.chat_id``
names it.  Without either nothing is saved: API clients such as Open WebUI keep their own history.
A turn is saved once its answer is complete; a cancelled or failed answer saves nothing.  A history
that cannot be written (damaged, newer, busy) never costs the answer: it comes back with a
``rag.warnings`` line saying it was not saved.

Example:
    >>> SaveRequest.of(None) is None, SaveRequest.of(SimpleNamespace(chat_id=None, save=False)) is None
    (True, True)
    >>> SaveRequest.of(SimpleNamespace(chat_id="ab12", save=False, documents=None))
    SaveRequest(chat_id='ab12', documents=())
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import SimpleNamespace  # noqa: F401 - the doctest's
from typing import Any, Callable, Mapping

from rag.chats import ChatHistoryError, ChatStore
from rag.serve.errors import ApiError
from rag.types import Answer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Saved:
    """What the response's ``rag`` says about saving: the chat's id, or why the turn was not saved."""

    chat_id: str | None = None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class SaveRequest:
    """A request's ``rag.chat_id`` (append to it) or ``rag.save`` (``chat_id`` None: a new chat)."""

    chat_id: str | None
    documents: tuple[str, ...] = ()

    @classmethod
    def of(cls, options: Any) -> "SaveRequest | None":
        """The saving a request's ``rag`` options ask for; None when they ask for none."""
        if options is None or (options.chat_id is None and not options.save):
            return None
        return cls(options.chat_id, tuple(getattr(options, "documents", None) or ()))


class ChatSaver:
    """Checks and saves the turns of the requests that ask for it, in one :class:`~rag.chats.ChatStore`.

    Args:
        chats: the chat history.
        public: an exception's message as an API client may read it (no server paths).

    Methods block on SQLite (up to the store's ``busy_timeout``): call them on a worker thread.
    """

    def __init__(self, chats: ChatStore, public: Callable[[BaseException], str] = str) -> None:
        self.chats = chats
        self.public = public

    def _not_saved(self, exc: BaseException) -> Saved:
        if not isinstance(exc, ChatHistoryError):
            logger.error("saving an API answer failed", exc_info=exc)
        else:
            logger.warning("API answer not saved: %s", exc)
        return Saved(warnings=(f"not saved: {self.public(exc)}",))

    def check(self, request: SaveRequest) -> Saved | None:
        """Before answering: a 404 for an unknown ``chat_id``; a history that cannot be read gives the
        :class:`Saved` to answer with (unsaved, with its warning); None when all is well."""
        if request.chat_id is None:
            return None
        try:
            found = self.chats.exists(request.chat_id)
        except Exception as exc:  # noqa: BLE001 - the answer is still given, unsaved
            return self._not_saved(exc)
        if not found:
            raise ApiError(404, f"no saved chat {request.chat_id!r}; give the chat_id a response's rag.chat_id "
                                "returned, or \"save\": true to start a new chat", code="chat_not_found",
                           param="rag.chat_id")
        return None

    def save(self, request: SaveRequest, collection: str, answer: Answer, model: str,
             timings: Mapping[str, float]) -> Saved:
        """Append the completed turn (creating the chat for ``save``); never raises."""
        chat_id = request.chat_id
        try:
            if chat_id is None:
                chat_id = self.chats.create(answer.question, collection, request.documents)
            self.chats.append(chat_id, answer, model=model, timings=timings, meta={"via": "api"})
        except Exception as exc:  # noqa: BLE001 - never a 500 for the history: the answer is still given
            return self._not_saved(exc)
        return Saved(chat_id=chat_id)
