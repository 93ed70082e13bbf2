"""The streaming contract every answer strategy shares: text pieces, then the final :class:`~rag.types.Answer`.

A caller can also listen to what happens between the pieces (:meth:`AnswerStream.on`):
``decided`` (the answer decision ran; its :class:`~rag.answer.decision.Decision`) and
``text_end`` (the model's text has ended; the citation and support checks run next).  The app
says "Checking sources…" on ``text_end``.

Example:
    >>> from rag.types import Answer
    >>> s = single(Answer(question="q", text="Hello"), "q")
    >>> seen = []
    >>> s.on("text_end", lambda: seen.append("end"))
    >>> list(s), s.answer.text, seen
    (['Hello'], 'Hello', ['end'])
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from rag.types import Answer

EVENTS = ("decided", "text_end")


class StreamEvents:
    """Listeners for an answer stream's events (shared by a stream and one that wraps it)."""

    def __init__(self) -> None:
        self._listeners: dict[str, list[Callable[..., None]]] = {}
        self.fired: set[str] = set()

    def on(self, event: str, listener: Callable[..., None]) -> None:
        if event not in EVENTS:
            raise ValueError(f"event must be one of {EVENTS}, got {event!r}")
        self._listeners.setdefault(event, []).append(listener)

    def emit(self, event: str, *args: Any) -> None:
        self.fired.add(event)
        for listener in self._listeners.get(event, ()):
            listener(*args)


class AnswerStream:
    """Iterator of answer text pieces; :attr:`answer` is the final :class:`Answer` once it ends.

    Reading :attr:`answer` before the end consumes the rest of the stream.  ``events`` is shared
    with an inner stream this one wraps (a chat turn around an answer), so listeners see both.
    """

    def __init__(self, pieces: Iterator[str], finish: Callable[[str], Answer], standalone_query: str = "",
                 events: StreamEvents | None = None) -> None:
        self._pieces = pieces
        self._finish = finish
        self._parts: list[str] = []
        self._answer: Answer | None = None
        self.standalone_query = standalone_query
        self.events = events or StreamEvents()

    def on(self, event: str, listener: Callable[..., None]) -> None:
        """Call ``listener`` on ``event`` (:data:`EVENTS`)."""
        self.events.on(event, listener)

    def __iter__(self) -> "AnswerStream":
        return self

    def __next__(self) -> str:
        if self._answer is not None:
            raise StopIteration
        try:
            piece = next(self._pieces)
        except StopIteration:
            if "text_end" not in self.events.fired:  # once, also when a wrapping stream ends after it
                self.events.emit("text_end")
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


def catch_up(shown: str, answer: Answer) -> str:
    """What to write after the streamed text ``shown`` so that a reader of the text alone gets the final answer.

    The checks run after the model's text has streamed, and may change it: a replaced answer (the
    quoted fallback) and a withdrawn one (the decline) follow the streamed text with their note;
    echoed prompt text cut from the answer, the clean answer.  Otherwise the final text is the
    streamed one with ``[n]`` markers the support check added after sentences
    (:func:`~rag.answer.strategies.mark_supported`), which cannot be put back into text already
    sent: the rest of the final text when the streamed text is its beginning, else the markers the
    streamed text lacks, appended (`` [1][2]``).  ``rag ask`` writes it after the pieces, and the
    API sends it as one more content delta before the chunk with the ``finish_reason``; so the
    streamed text holds every source the answer rests on, while ``answer.text`` (the non-streamed
    content, the ``rag`` field's ``text``) has the markers after each sentence.

    Example:
        >>> from rag.types import Answer
        >>> catch_up("Open the valve. Fill it.", Answer(question="q", text="Open the valve [2]. Fill it [1]."))
        ' [2][1]'
        >>> catch_up("Open the valve", Answer(question="q", text="Open the valve [1]."))
        ' [1].'
        >>> catch_up("Open the valve [1].", Answer(question="q", text="Open the valve [1]."))
        ''
    """
    from rag.text import cited_numbers

    text, d = answer.text, answer.diagnostics
    if d.fallback:
        return f"\n\n{d.fallback}\n{text}"
    if shown.strip() == text.strip():
        return ""
    if answer.declined:
        return f"\n\n{text}"
    if d.scaffolding_removed:
        return f"\n(cut {d.scaffolding_removed} characters of echoed prompt text; the answer is:)\n{text}"
    if shown and text.startswith(shown):
        return text[len(shown):]
    had = set(cited_numbers(shown))
    missing = [n for n in dict.fromkeys(cited_numbers(text)) if n not in had]
    return " " + "".join(f"[{n}]" for n in missing) if missing else ""


def single(answer: Answer, query: str) -> AnswerStream:
    """A stream of one piece (the whole text) for an answer that is already complete."""
    return AnswerStream(iter([answer.text]), lambda _text: answer, query)
