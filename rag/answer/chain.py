"""The answer pipeline as a LangChain ``Runnable``.

Input: ``{"question": str, "history": [{"role": "user"|"assistant", "content": str}, ...]}``
(``history`` optional; ``(role, content)`` pairs and LangChain messages are accepted too).
Output: a :class:`rag.types.Answer`.

Example (runs the real models)::

    from rag.answer.chain import answer_runnable
    from rag.index.store import IndexStore
    from rag.pipeline import PipelineConfig, build
    pipeline = build(PipelineConfig(index="docs"), IndexStore())
    chain = answer_runnable(pipeline.answerer)
    answer = chain.invoke({"question": "How do I prime the pump?", "history": []})
    print(answer.text, [c.chunk.location for c in answer.citations])
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from langchain_core.runnables import Runnable, RunnableLambda

from rag.answer.answerer import Answerer
from rag.types import Answer

_LC_ROLES = {"human": "user", "ai": "assistant", "system": "system", "user": "user", "assistant": "assistant"}


def normalize_history(history: Sequence[Any]) -> list[dict[str, str]]:
    """Dicts, ``(role, content)`` pairs or LangChain messages -> ``[{"role", "content"}]``.

    Example:
        >>> normalize_history([("human", "hi"), {"role": "assistant", "content": "hello"}])
        [{'role': 'user', 'content': 'hi'}, {'role': 'assistant', 'content': 'hello'}]
    """
    out = []
    for item in history:
        if isinstance(item, Mapping):
            role, content = item.get("role"), item.get("content")
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            role, content = item
        elif hasattr(item, "type") and hasattr(item, "content"):
            role, content = item.type, item.content
        else:
            raise ValueError(f"history items must be {{'role', 'content'}} dicts, (role, content) pairs or "
                             f"LangChain messages, got {item!r}")
        if role not in _LC_ROLES:
            raise ValueError(f"history role must be one of {tuple(_LC_ROLES)}, got {role!r}")
        out.append({"role": _LC_ROLES[str(role)], "content": str(content)})
    return out


def answer_runnable(answerer: Answerer) -> Runnable[dict[str, Any], Answer]:
    """A ``Runnable`` mapping ``{"question", "history"}`` to an :class:`Answer`."""

    def run(inputs: Mapping[str, Any]) -> Answer:
        if not isinstance(inputs, Mapping) or not isinstance(inputs.get("question"), str):
            raise ValueError(f"input must be a mapping with a 'question' string, got {inputs!r}")
        return answerer.answer(inputs["question"], normalize_history(inputs.get("history") or ()))

    return RunnableLambda(run, name="rag_answer")
