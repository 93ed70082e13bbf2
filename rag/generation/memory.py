"""Chat memory: what of the conversation is passed back to the model.

* ``buffer``: every turn.
* ``window``: the last ``k`` turns.
* ``summary``: a running summary written by the LLM after each turn, plus the latest turn
  verbatim (when the model returns nothing useful, the old summary plus "User asked: <question>";
  the summary is clipped to its last ``max_chars`` characters).

Example:
    >>> mem = make_memory("window", k=1)
    >>> mem.add("How do I prime the pump?", "Open the bleed valve [1].")
    >>> mem.add("And the turbine?", "Inspect blades every 500 hours [1].")
    >>> [m["content"] for m in mem.messages()]
    ['And the turbine?', 'Inspect blades every 500 hours [1].']
    >>> make_memory("forever")
    Traceback (most recent call last):
    ...
    ValueError: memory must be one of ('buffer', 'window', 'summary'), got 'forever'
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from rag.generation.llm import ChatModel
from rag.generation.prompting import NOT_FOUND
from rag.validate import positive_int

logger = logging.getLogger(__name__)

MEMORY_TYPES: tuple[str, ...] = ("buffer", "window", "summary")
SUMMARY_PROMPT = ("Update the summary of a conversation between a user and an assistant. "
                  "Keep the topics, names and facts that later questions may refer to. "
                  "Reply with the new summary only, in at most three sentences.")


@dataclass(frozen=True)
class Turn:
    """One question and the answer given to it."""

    question: str
    answer: str


@runtime_checkable
class Memory(Protocol):
    """Conversation state: record turns, render them as chat messages, forget."""

    def add(self, question: str, answer: str) -> None: ...

    def messages(self) -> list[dict[str, str]]: ...

    def reset(self) -> None: ...


def _turn_messages(turns: list[Turn]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for t in turns:
        out += [{"role": "user", "content": t.question}, {"role": "assistant", "content": t.answer}]
    return out


class BufferMemory:
    """Keeps every turn.

    Example:
        >>> m = BufferMemory(); m.add("q", "a"); len(m.messages())
        2
    """

    def __init__(self) -> None:
        self.turns: list[Turn] = []

    def add(self, question: str, answer: str) -> None:
        self.turns.append(Turn(question, answer))

    def messages(self) -> list[dict[str, str]]:
        return _turn_messages(self.turns)

    def reset(self) -> None:
        self.turns = []


class WindowMemory(BufferMemory):
    """Keeps the last ``k`` turns.

    Example:
        >>> m = WindowMemory(k=2)
        >>> for i in range(3): m.add(f"q{i}", f"a{i}")
        >>> [t.question for t in m.turns]
        ['q1', 'q2']
    """

    def __init__(self, k: int = 3) -> None:
        positive_int("k (turns kept)", k)
        super().__init__()
        self.k = k

    def add(self, question: str, answer: str) -> None:
        super().add(question, answer)
        self.turns = self.turns[-self.k:]


class SummaryMemory:
    """A running summary rewritten by the LLM after every turn, plus the latest turn verbatim.

    Example:
        >>> from rag.generation.llm import ScriptedLLM
        >>> m = SummaryMemory(ScriptedLLM(["The user asked about priming the pump."]))
        >>> m.add("How do I prime the pump?", "Open the bleed valve [1].")
        >>> m.summary
        'The user asked about priming the pump.'
    """

    def __init__(self, llm: ChatModel, max_tokens: int = 96, max_chars: int = 800) -> None:
        positive_int("max_tokens", max_tokens)
        if not isinstance(max_chars, int) or max_chars < 80:
            raise ValueError(f"max_chars must be an integer >= 80, got {max_chars!r}")
        self.llm = llm
        self.max_tokens = max_tokens
        self.max_chars = max_chars
        self.summary = ""
        self.last: Turn | None = None

    def add(self, question: str, answer: str) -> None:
        turn = Turn(question, answer)
        transcript = f"User: {question}\nAssistant: {answer}"
        prompt = [{"role": "system", "content": SUMMARY_PROMPT},
                  {"role": "user", "content": f"Current summary: {self.summary or '(empty)'}\n\n"
                                              f"New exchange:\n{transcript}\n\nNew summary:"}]
        try:
            new = self.llm.chat(prompt, max_tokens=self.max_tokens, temperature=0.0).strip()
        except ValueError as exc:  # e.g. context overflow on a huge answer
            logger.warning("summary update failed (%s); keeping the old summary plus the question", exc)
            new = ""
        if len(new.split()) < 3 or NOT_FOUND in new:
            new = f"{self.summary} User asked: {question}".strip()
        self.summary = new[-self.max_chars:] if len(new) > self.max_chars else new
        self.last = turn

    def messages(self) -> list[dict[str, str]]:
        if self.last is None:
            return []
        return [{"role": "system", "content": f"Summary of the conversation so far: {self.summary}"},
                *_turn_messages([self.last])]

    def reset(self) -> None:
        self.summary = ""
        self.last = None


def make_memory(kind: str, llm: ChatModel | None = None, k: int = 3) -> Memory:
    """A memory by name: ``buffer``, ``window`` (last ``k`` turns) or ``summary`` (needs ``llm``)."""
    if kind not in MEMORY_TYPES:
        raise ValueError(f"memory must be one of {MEMORY_TYPES}, got {kind!r}")
    if kind == "buffer":
        return BufferMemory()
    if kind == "window":
        return WindowMemory(k)
    if llm is None:
        raise ValueError("memory 'summary' needs an llm to write the summary; use 'buffer' or 'window' without one")
    return SummaryMemory(llm)
