"""The streaming contract every answer strategy shares: text pieces, then the final :class:`~rag.types.Answer`.

Example:
    >>> from rag.types import Answer
    >>> s = single(Answer(question="q", text="Hello"), "q")
    >>> list(s), s.answer.text
    (['Hello'], 'Hello')
"""

from __future__ import annotations

from typing import Callable, Iterator

from rag.types import Answer


class AnswerStream:
    """Iterator of answer text pieces; :attr:`answer` is the final :class:`Answer` once it ends.

    Reading :attr:`answer` before the end consumes the rest of the stream.
    """

    def __init__(self, pieces: Iterator[str], finish: Callable[[str], Answer], standalone_query: str = "") -> None:
        self._pieces = pieces
        self._finish = finish
        self._parts: list[str] = []
        self._answer: Answer | None = None
        self.standalone_query = standalone_query

    def __iter__(self) -> "AnswerStream":
        return self

    def __next__(self) -> str:
        if self._answer is not None:
            raise StopIteration
        try:
            piece = next(self._pieces)
        except StopIteration:
            self._answer = self._finish("".join(self._parts))
            raise
        self._parts.append(piece)
        return piece

    @property
    def answer(self) -> Answer:
        for _ in self:
            pass
        if self._answer is None:  # pragma: no cover - __next__ always sets it at the end
            raise RuntimeError("stream ended without an answer")
        return self._answer

    def close(self) -> None:
        close = getattr(self._pieces, "close", None)
        if close is not None:
            close()


def single(answer: Answer, query: str) -> AnswerStream:
    """A stream of one piece (the whole text) for an answer that is already complete."""
    return AnswerStream(iter([answer.text]), lambda _text: answer, query)
