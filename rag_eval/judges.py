"""Judge backends for answer evaluation: text in, text out, bounded by a deadline (no ragas here).

A judge is a :class:`JudgeBackend`: a local llama.cpp chat model (:class:`LlamaCppJudge`) or an
OpenAI-compatible endpoint (:class:`OpenAICompatibleJudge`); :func:`make_judge` builds one from a
command-line spec.  Every call gives up with :class:`JudgeTimeout` once the deadline set by
:func:`judge_deadline` has passed: the llama.cpp stream stops between tokens, an endpoint request
times out at the deadline.  A llama.cpp judge's output is constrained by a GBNF grammar built from
the JSON schema ragas puts in its prompt (:func:`schema_grammar`), so a small local judge (see
``../shared/MODELS.md``) closes its JSON instead of rambling.

Example:
    >>> from rag.generation.llm import ScriptedLLM
    >>> judge = make_judge("none")
    >>> judge is None
    True
    >>> with judge_deadline(60.0):
    ...     LlamaCppJudge(ScriptedLLM(['{"verdict": 1}'])).complete("Answer in JSON.")
    '{"verdict": 1}'
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import math
import re
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Protocol

from rag.validate import positive_int

logger = logging.getLogger(__name__)

DEFAULT_JUDGE_MAX_TOKENS = 256
_SCHEMA_MARKER = "as specified in JSON Schema:\n"
_DEADLINE: contextvars.ContextVar[float] = contextvars.ContextVar("judge_deadline", default=math.inf)


class JudgeTimeout(TimeoutError):
    """The judge ran past the (sample, metric) deadline."""


@contextlib.contextmanager
def judge_deadline(seconds: float) -> Iterator[None]:
    """Judge calls made inside the block (and in tasks / threads started from it, which copy the
    context) raise :class:`JudgeTimeout` once ``seconds`` have passed.

    Example:
        >>> from rag.generation.llm import ScriptedLLM
        >>> with judge_deadline(0.0):
        ...     LlamaCppJudge(ScriptedLLM(["x"])).complete("hi")
        Traceback (most recent call last):
        ...
        rag_eval.judges.JudgeTimeout: judge deadline passed before the call
    """
    token = _DEADLINE.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _remaining() -> float:
    return _DEADLINE.get() - time.monotonic()


class JudgeBackend(Protocol):
    """Text in, text out; must give up (raise :class:`JudgeTimeout`) once the deadline has passed."""

    @property
    def name(self) -> str: ...

    def complete(self, prompt: str, temperature: float = 0.0) -> str: ...


def bound_schema(schema: Any, max_length: int = 200, max_items: int = 6) -> Any:
    """Copy of a JSON schema where every string has a ``maxLength`` and every array a ``maxItems``.

    A small judge at temperature 0 can repeat itself until the token budget runs out, leaving
    truncated JSON; with bounded strings and arrays the grammar forces it to close the object.

    Example:
        >>> bound_schema({"type": "array", "items": {"type": "string"}}, 50, 3)
        {'type': 'array', 'items': {'type': 'string', 'maxLength': 50}, 'maxItems': 3}
    """
    if isinstance(schema, list):
        return [bound_schema(s, max_length, max_items) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: bound_schema(v, max_length, max_items) for k, v in schema.items()}
    if out.get("type") == "string" and "enum" not in out and "const" not in out:
        out.setdefault("maxLength", max_length)
    if out.get("type") == "array":
        out.setdefault("maxItems", max_items)
    return out


def schema_grammar(prompt: str, max_length: int = 200, max_items: int = 6) -> str | None:
    """GBNF grammar for the JSON schema ragas embeds in a prompt (None if there is none);
    strings and arrays are bounded (:func:`bound_schema`).

    Example:
        >>> p = 'Do it. ' + _SCHEMA_MARKER + '{"type": "object", "properties": {"a": {"type": "integer"}}}Then.'
        >>> "root ::=" in schema_grammar(p)
        True
        >>> schema_grammar("no schema here") is None
        True
    """
    start = prompt.find(_SCHEMA_MARKER)
    if start < 0:
        return None
    try:
        schema, _ = json.JSONDecoder().raw_decode(prompt, start + len(_SCHEMA_MARKER))
        from llama_cpp.llama_grammar import json_schema_to_gbnf

        return json_schema_to_gbnf(json.dumps(bound_schema(schema, max_length, max_items)))
    except Exception as exc:  # an unusual schema: generate unconstrained rather than fail
        logger.debug("no grammar for the prompt's schema: %s", exc)
        return None


class LlamaCppJudge:
    """A judge on a local chat model (:class:`rag.generation.llm.LlamaCppLLM` or any ``rag.generation.llm.ChatModel``).

    Output is streamed so the deadline can stop it between tokens; with ``constrain_json`` the
    output is forced to match the JSON schema in the ragas prompt.

    Example:
        >>> from rag.generation.llm import ScriptedLLM
        >>> LlamaCppJudge(ScriptedLLM(['{"a": 1}'])).complete("Answer in JSON.")
        '{"a": 1}'
    """

    def __init__(self, llm: Any, max_tokens: int = DEFAULT_JUDGE_MAX_TOKENS, constrain_json: bool = True,
                 seed: int = 0) -> None:
        positive_int("max_tokens", max_tokens)
        if not hasattr(llm, "stream"):
            raise ValueError(f"llm must be a rag.generation.llm.ChatModel (with .stream), got {type(llm).__name__}")
        self.llm = llm
        self.max_tokens = max_tokens
        self.constrain_json = constrain_json
        self.seed = seed

    @property
    def name(self) -> str:
        return f"llama.cpp:{getattr(self.llm, 'model', type(self.llm).__name__)}"

    def complete(self, prompt: str, temperature: float = 0.0) -> str:
        if _remaining() <= 0:
            raise JudgeTimeout("judge deadline passed before the call")
        grammar = schema_grammar(prompt) if self.constrain_json else None
        pieces: list[str] = []
        stream = self.llm.stream([{"role": "user", "content": prompt}], max_tokens=self.max_tokens,
                                 temperature=min(max(float(temperature), 0.0), 2.0), seed=self.seed,
                                 grammar=grammar)
        try:
            for piece in stream:
                pieces.append(piece)
                if _remaining() <= 0:
                    raise JudgeTimeout(f"judge stopped at the deadline after {len(pieces)} pieces")
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        return "".join(pieces)


class OpenAICompatibleJudge:
    """A judge behind an OpenAI-compatible ``/v1/chat/completions`` endpoint (llama.cpp server,
    vLLM, Ollama, OpenAI).  No client retries; each request times out at the deadline.

    Example:
        >>> OpenAICompatibleJudge("ftp://host", model="m")
        Traceback (most recent call last):
        ...
        ValueError: judge endpoint must be an http(s) URL, got 'ftp://host'
    """

    def __init__(self, base_url: str, model: str = "default", api_key: str | None = None,
                 max_tokens: int = DEFAULT_JUDGE_MAX_TOKENS, client: Any | None = None) -> None:
        if not re.match(r"^https?://", base_url or ""):
            raise ValueError(f"judge endpoint must be an http(s) URL, got {base_url!r}")
        if not model:
            raise ValueError("judge model name must be non-empty")
        positive_int("max_tokens", max_tokens)
        self.base_url = base_url
        self.model = model
        self.api_key = api_key
        self.max_tokens = max_tokens
        self._client = client
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return f"{self.base_url} ({self.model})"

    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                from openai import OpenAI

                self._client = OpenAI(base_url=self.base_url, api_key=self.api_key or "not-needed", max_retries=0)
        return self._client

    def complete(self, prompt: str, temperature: float = 0.0) -> str:
        remaining = _remaining()
        if remaining <= 0:
            raise JudgeTimeout("judge deadline passed before the call")
        import openai

        try:
            out = self._get_client().chat.completions.create(
                model=self.model, messages=[{"role": "user", "content": prompt}], max_tokens=self.max_tokens,
                temperature=float(temperature), timeout=min(remaining, 600.0))
        except openai.APITimeoutError:
            raise JudgeTimeout("judge endpoint did not answer before the deadline") from None
        return str(out.choices[0].message.content or "")


def make_judge(spec: str, model: str | None = None, api_key: str | None = None,
               max_tokens: int = DEFAULT_JUDGE_MAX_TOKENS, shared_llm: Any | None = None) -> JudgeBackend | None:
    """Judge from a command-line spec: ``none``; an ``http(s)://`` endpoint (``model`` names the
    served model); or a llama.cpp registry name / ``.gguf`` path (``shared_llm`` is reused when it
    is that same model, so generator and judge share one loaded copy).

    Example:
        >>> make_judge("http://localhost:8080/v1", model="qwen").name
        'http://localhost:8080/v1 (qwen)'
    """
    if not spec or spec.lower() == "none":
        return None
    if re.match(r"^https?://", spec):
        return OpenAICompatibleJudge(spec, model=model or "default", api_key=api_key, max_tokens=max_tokens)
    from rag.generation.llm import LlamaCppLLM
    from rag.generation.models import resolve_model

    path = resolve_model(spec)
    if shared_llm is not None and Path(getattr(shared_llm, "path", "")) == path:
        return LlamaCppJudge(shared_llm, max_tokens=max_tokens)
    return LlamaCppJudge(LlamaCppLLM(spec), max_tokens=max_tokens)


__all__ = ["DEFAULT_JUDGE_MAX_TOKENS", "JudgeBackend", "JudgeTimeout", "LlamaCppJudge", "OpenAICompatibleJudge",
           "bound_schema", "judge_deadline", "make_judge", "schema_grammar"]
