"""Multi-turn chat over an index: an :class:`~rag.answer.answerer.Answerer` plus a memory.

Example (runs the real models)::

    from rag.index.store import IndexStore
    from rag.pipeline import MemoryConfig, PipelineConfig, build
    with build(PipelineConfig(index="docs", memory=MemoryConfig("window")), IndexStore()) as pipeline:
        chat = pipeline.chat()
        print(chat.ask("How do I prime the pump?").text)
        follow = chat.ask("What if it runs dry?")
        print(follow.standalone_query, follow.text)
"""

from __future__ import annotations

import logging
from typing import Collection, Iterator

from rag.answer.answerer import Answerer
from rag.answer.stream import AnswerStream
from rag.generation.llm import ChatModel
from rag.generation.memory import Memory, make_memory
from rag.types import Answer

logger = logging.getLogger(__name__)


class ChatSession:
    """Ask questions in a conversation; follow-ups are condensed using the memory.

    Args:
        answerer: does retrieval, condensation (its rewriter) and generation.
        memory: a :class:`~rag.generation.memory.Memory` or a name (``buffer``, ``window``, ``summary``).
        window: turns kept by ``window`` memory.
        llm: writes the summary of ``summary`` memory.

    Example:
        >>> ChatSession(None, memory="infinite")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: memory must be one of ('buffer', 'window', 'summary'), got 'infinite'
    """

    def __init__(self, answerer: Answerer, memory: str | Memory = "buffer", window: int = 3,
                 llm: ChatModel | None = None) -> None:
        if isinstance(memory, str):
            memory = make_memory(memory, llm=llm, k=window)
        self.answerer = answerer
        self.memory = memory

    def stream(self, question: str, *, documents: Collection[str] | None = None) -> AnswerStream:
        """Stream the answer; the turn is stored in memory when the stream ends.

        ``documents`` scopes this turn's retrieval to those documents of the collection (source
        paths; None: all), e.g. the ones a user picked: see :meth:`Answerer.stream
        <rag.answer.answerer.Answerer.stream>`.  An unknown one is a ValueError, before any memory change.
        """
        inner = self.answerer.stream(question, self.memory.messages(), documents=documents)
        memory = self.memory

        def pieces() -> Iterator[str]:
            yield from inner
            answer = inner.answer
            memory.add(question, answer.text)

        return AnswerStream(pieces(), lambda _text: inner.answer, inner.standalone_query, inner.events)

    def ask(self, question: str, *, documents: Collection[str] | None = None) -> Answer:
        """The complete answer; the turn is stored in memory.  ``documents`` as in :meth:`stream`."""
        return self.stream(question, documents=documents).answer

    def reset(self) -> None:
        self.memory.reset()
