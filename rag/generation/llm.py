"""Chat model backend: llama.cpp (``llama-cpp-python``), plus a scripted stand-in for tests.

Only this module imports ``llama_cpp``.  Every call into one ``Llama`` object holds a lock,
because llama.cpp contexts are not thread-safe (two generations at once on one object crash).

Example:
    >>> llm = ScriptedLLM(["Open the bleed valve [1]."])
    >>> llm.chat([{"role": "user", "content": "How do I prime the pump?"}])
    'Open the bleed valve [1].'
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence, runtime_checkable

from rag.generation.models import DEFAULT_MODEL, REGISTRY, ModelSpec, resolve_model, spec_for_path
from rag.validate import in_range, positive_int

logger = logging.getLogger(__name__)

# torch's idle OpenMP workers busy-wait and starve llama.cpp on a small CPU (docs/design.md#running-on-a-small-cpu)
if "torch" not in sys.modules:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

Message = Mapping[str, str]
DEFAULT_N_CTX = 4096
_MESSAGE_OVERHEAD = 8  # tokens per message for role markers when no template is available


THREADS_ENV = "RAG_LLM_THREADS"


def default_threads() -> int:
    """CPU threads for llama.cpp: ``$RAG_LLM_THREADS``, else the CPUs this process may run on.

    llama-cpp-python's own default picked 1 thread on a 2-core machine (half the speed).
    """
    env = os.environ.get(THREADS_ENV, "").strip()
    if env:
        if not env.isdigit() or int(env) <= 0:
            raise ValueError(f"{THREADS_ENV} must be a positive integer, got {env!r}")
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class ContextOverflowError(ValueError):
    """The prompt does not fit in the model's context window (raised before calling llama.cpp)."""


@runtime_checkable
class ChatModel(Protocol):
    """What the answer pipeline needs from a chat model.

    ``first_token_logprobs`` and ``hidden_state`` are optional abilities: a model that cannot
    score its first token, or show its last hidden state, returns None, and what needed them
    (the answer decision) says it could not use them.  A wrapper around a model passes them on.
    """

    @property
    def n_ctx(self) -> int: ...

    def count_tokens(self, text: str) -> int: ...

    def count_message_tokens(self, messages: Sequence[Message]) -> int: ...

    def chat(self, messages: Sequence[Message], max_tokens: int = 256, temperature: float = 0.0,
             seed: int | None = None, grammar: str | None = None, stop: Sequence[str] = ()) -> str: ...

    def stream(self, messages: Sequence[Message], max_tokens: int = 256, temperature: float = 0.0,
               seed: int | None = None, grammar: str | None = None, stop: Sequence[str] = ()) -> Iterator[str]: ...

    def first_token_logprobs(self, messages: Sequence[Message], choices: Sequence[str]) -> dict[str, float] | None: ...

    def hidden_state(self, messages: Sequence[Message]) -> Any | None: ...


def _validate_generation(max_tokens: int, temperature: float) -> None:
    positive_int("max_tokens", max_tokens)
    in_range("temperature", temperature, 0, 2)


def _plain_messages(messages: Sequence[Message]) -> list[dict[str, str]]:
    out = []
    for m in messages:
        role, content = m.get("role"), m.get("content")
        if role not in ("system", "user", "assistant"):
            raise ValueError(f"message role must be one of ('system', 'user', 'assistant'), got {role!r}")
        out.append({"role": str(role), "content": str(content or "")})
    return out


def auto_gpu_layers() -> int:
    """-1 (offload every layer) when llama.cpp was built with GPU support, else 0."""
    import llama_cpp  # noqa: PLC0415

    return -1 if bool(llama_cpp.llama_supports_gpu_offload()) else 0


# 1.0 (llama.cpp's neutral value) lets SmolLM2 loop ("a combination of a combination of ...");
# 1.15 stopped the loops on the bundled samples, 1.3 made it drift off-topic.
DEFAULT_REPEAT_PENALTY = 1.15


class LlamaCppLLM:
    """A GGUF chat model run by llama.cpp; one instance can be shared across threads.

    Args:
        model: registry name (default ``smollm2-135m``, packaged) or a path to a ``.gguf`` file.
        n_ctx: context window in tokens; default: the registry entry's (SmolLM2 2048,
            Phi-3-mini 4096), else 4096.
        n_gpu_layers: ``"auto"`` (all layers if llama.cpp has GPU support, else 0) or an int
            (-1 = all).
        seed: default sampling seed (calls may override it).
        n_threads: CPU threads for prompt and generation (default :func:`default_threads`).
        chat_format: a llama-cpp-python chat format name; default: the registry entry's, else the
            template embedded in the GGUF file.
        models_dir: where pulled models live (default ``$RAG_MODELS_DIR`` or ``~/.cache/rag-local/models``).
        repeat_penalty: llama.cpp's repetition penalty (1.0 = off); 1.15 stops small models looping.

    Example::

        with LlamaCppLLM() as llm:                       # packaged SmolLM2
            print(llm.count_tokens("hello world"))
            print(llm.chat([{"role": "user", "content": "Say hi."}], max_tokens=16))
            for piece in llm.stream([{"role": "user", "content": "Count to 3."}], max_tokens=16):
                print(piece, end="", flush=True)
    """

    def __init__(self, model: str = DEFAULT_MODEL, n_ctx: int | None = None, n_gpu_layers: int | str = "auto",
                 seed: int = 0, n_threads: int | None = None, chat_format: str | None = None,
                 models_dir: str | None = None, verbose: bool = False,
                 repeat_penalty: float = DEFAULT_REPEAT_PENALTY) -> None:
        if not 1.0 <= repeat_penalty <= 2.0:
            raise ValueError(f"repeat_penalty must be in [1, 2], got {repeat_penalty!r}")
        self.repeat_penalty = float(repeat_penalty)
        if n_ctx is not None and (not isinstance(n_ctx, int) or n_ctx < 128):
            raise ValueError(f"n_ctx must be an integer >= 128 or None, got {n_ctx!r}")
        if not (n_gpu_layers == "auto" or (isinstance(n_gpu_layers, int) and n_gpu_layers >= -1)):
            raise ValueError(f"n_gpu_layers must be 'auto' or an integer >= -1, got {n_gpu_layers!r}")
        if not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        positive_int("n_threads", n_threads, optional=True)
        self.path = resolve_model(model, models_dir)  # cheap: a file lookup; fails fast
        self.spec: ModelSpec | None = REGISTRY.get(model) or spec_for_path(self.path)
        self.model = model
        self._n_ctx = n_ctx or (self.spec.n_ctx if self.spec else DEFAULT_N_CTX)
        self.n_gpu_layers = n_gpu_layers
        self.seed = seed
        self.n_threads = n_threads or default_threads()
        self.chat_format = chat_format or (self.spec.chat_format if self.spec else None)
        self.verbose = verbose
        self._llama: Any | None = None
        self._formatter: Any | None = None
        self._lock = threading.RLock()

    # -- lifecycle -------------------------------------------------------------------------
    def load(self) -> "LlamaCppLLM":
        """Load the weights (idempotent, thread-safe)."""
        with self._lock:
            if self._llama is None:
                import llama_cpp  # noqa: PLC0415

                layers = auto_gpu_layers() if self.n_gpu_layers == "auto" else int(self.n_gpu_layers)
                logger.info("loading %s (n_ctx=%d, n_gpu_layers=%d, n_threads=%d)", self.path, self._n_ctx, layers,
                            self.n_threads)
                kwargs: dict[str, Any] = {"n_ctx": self._n_ctx, "n_gpu_layers": layers, "seed": self.seed,
                                          "verbose": self.verbose, "chat_format": self.chat_format,
                                          "n_threads": self.n_threads, "n_threads_batch": self.n_threads}
                self._llama = llama_cpp.Llama(str(self.path), **kwargs)
                self._formatter = self._make_formatter(self._llama)
        return self

    @staticmethod
    def _make_formatter(llama: Any) -> Any | None:
        """The GGUF's own chat template renderer, used to count prompt tokens exactly."""
        template = llama.metadata.get("tokenizer.chat_template")
        if not template or llama.chat_format != "chat_template.default":
            return None
        from llama_cpp import llama_chat_format  # noqa: PLC0415

        def text(token_id: int) -> str:
            return llama._model.token_get_text(token_id) if token_id != -1 else ""

        return llama_chat_format.Jinja2ChatFormatter(template=template, eos_token=text(llama.token_eos()),
                                                     bos_token=text(llama.token_bos()))

    def close(self) -> None:
        """Free the model now (avoids llama.cpp's noisy ``__del__`` at interpreter exit)."""
        with self._lock:
            if self._llama is not None:
                self._llama.close()
                self._llama = None
                self._formatter = None

    def __enter__(self) -> "LlamaCppLLM":
        return self.load()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def loaded(self) -> bool:
        return self._llama is not None

    @property
    def llama(self) -> Any:
        """The underlying ``llama_cpp.Llama`` (loads it); hold :attr:`lock` while using it."""
        return self.load()._llama

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    # -- tokens ----------------------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` by the model's own tokenizer (no BOS)."""
        with self._lock:
            return len(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def count_message_tokens(self, messages: Sequence[Message]) -> int:
        """Prompt tokens for a chat, rendered with the model's chat template when known."""
        msgs = _plain_messages(messages)
        with self._lock:
            llama = self.llama
            if self._formatter is not None:
                prompt = self._formatter(messages=msgs).prompt
                return len(llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True))
            body = sum(len(llama.tokenize(m["content"].encode("utf-8"), add_bos=False, special=True))
                       for m in msgs)
        return body + _MESSAGE_OVERHEAD * (len(msgs) + 1)

    # -- generation ------------------------------------------------------------------------
    def _request(self, messages: Sequence[Message], max_tokens: int, temperature: float, seed: int | None,
                 grammar: str | None, stop: Sequence[str]) -> dict[str, Any]:
        _validate_generation(max_tokens, temperature)
        msgs = _plain_messages(messages)
        prompt_tokens = self.count_message_tokens(msgs)
        room = self._n_ctx - prompt_tokens
        if room < 1:
            raise ContextOverflowError(f"prompt is {prompt_tokens} tokens but the context window is "
                                       f"{self._n_ctx}; shorten the prompt or raise n_ctx")
        if max_tokens > room:
            logger.warning("max_tokens %d cut to %d to fit the %d-token context", max_tokens, room, self._n_ctx)
            max_tokens = room
        req: dict[str, Any] = {"messages": msgs, "max_tokens": max_tokens, "temperature": float(temperature),
                               "seed": self.seed if seed is None else seed, "stop": list(stop) or None,
                               "repeat_penalty": self.repeat_penalty}
        if grammar is not None:
            from llama_cpp import LlamaGrammar  # noqa: PLC0415

            req["grammar"] = LlamaGrammar.from_string(grammar, verbose=self.verbose)
        return req

    def chat(self, messages: Sequence[Message], max_tokens: int = 256, temperature: float = 0.0,
             seed: int | None = None, grammar: str | None = None, stop: Sequence[str] = ()) -> str:
        """One chat completion; ``grammar`` is an optional GBNF grammar (e.g. to force JSON)."""
        with self._lock:
            req = self._request(messages, max_tokens, temperature, seed, grammar, stop)
            t0 = time.perf_counter()
            out = self.llama.create_chat_completion(**req)
        usage = out.get("usage", {})
        logger.debug("chat: %s prompt + %s completion tokens in %.2fs", usage.get("prompt_tokens"),
                     usage.get("completion_tokens"), time.perf_counter() - t0)
        return str(out["choices"][0]["message"].get("content") or "")

    def first_token_logprobs(self, messages: Sequence[Message], choices: Sequence[str]) -> dict[str, float] | None:
        """Log-probability of each of ``choices`` as the first token of the assistant's reply.

        Evaluates the prompt without sampling and reuses the KV cache of the longest common token
        prefix with the previous call (llama-cpp-python's own reuse rule), so a later
        :meth:`stream` of a prompt that shares the same sources re-evaluates only the tail.
        Each choice is scored by its first token (``"yes"``, ``"Yes"`` ...).  None when the GGUF has
        no chat template to render the prompt exactly (the caller then skips what needed the score).
        """
        if not choices:
            raise ValueError("choices must name at least one reply, e.g. ('yes', 'no')")
        import numpy as np  # noqa: PLC0415

        with self._lock:
            llama = self.llama
            if not self._evaluate(messages, hidden=False):
                return None
            logits = np.ctypeslib.as_array(llama._ctx.get_logits_ith(-1), shape=(llama.n_vocab(),)).astype(np.float64)
            top = float(logits.max())
            log_norm = top + float(np.log(np.exp(logits - top).sum()))
            out = {}
            for choice in choices:
                ids = llama.tokenize(choice.encode("utf-8"), add_bos=False, special=False)
                if not ids:
                    raise ValueError(f"choice {choice!r} has no tokens")
                out[choice] = float(logits[ids[0]] - log_norm)
        return out

    def hidden_state(self, messages: Sequence[Message]) -> "Any | None":
        """The model's last hidden state (after the final norm) at the end of the rendered prompt,
        where the reply's first token is decided: a float32 vector of the model's width.

        What a linear probe of answerability reads (Slobodkin et al., "The Curious Case of
        Hallucinatory (Un)answerability", EMNLP 2023).  Shares the KV cache like
        :meth:`first_token_logprobs`: after that call on the same messages it costs one token.
        None when the GGUF has no chat template.
        """
        import numpy as np  # noqa: PLC0415

        with self._lock:
            llama = self.llama
            if not self._evaluate(messages, hidden=True):
                return None
            import llama_cpp  # noqa: PLC0415

            width = int(llama_cpp.llama_n_embd(llama._model.model))
            return np.ctypeslib.as_array(llama_cpp.llama_get_embeddings_ith(llama._ctx.ctx, -1),
                                         shape=(width,)).astype(np.float32)

    def _evaluate(self, messages: Sequence[Message], hidden: bool) -> bool:
        """Evaluate the rendered prompt (lock held), reusing the cached prefix; the last token is
        always evaluated again, with embeddings on when ``hidden`` (only that token: with them on,
        llama.cpp computes every evaluated token's logits). False without a chat template."""
        if self._formatter is None:
            return False
        import llama_cpp  # noqa: PLC0415

        llama = self._llama
        prompt = self._formatter(messages=_plain_messages(messages)).prompt
        tokens = llama.tokenize(prompt.encode("utf-8"), special=True)
        if len(tokens) >= self._n_ctx:
            raise ContextOverflowError(f"prompt is {len(tokens)} tokens but the context window is {self._n_ctx}")
        same = min(llama.longest_token_prefix(llama._input_ids, tokens), len(tokens) - 1)
        llama.n_tokens = same  # eval() drops the KV cache after n_tokens and appends the rest
        if same < len(tokens) - 1:
            llama.eval(tokens[same:-1])
        if hidden:
            llama_cpp.llama_set_embeddings(llama._ctx.ctx, True)
        try:
            llama.eval(tokens[-1:])
        finally:
            if hidden:
                llama_cpp.llama_set_embeddings(llama._ctx.ctx, False)
        return True

    def stream(self, messages: Sequence[Message], max_tokens: int = 256, temperature: float = 0.0,
               seed: int | None = None, grammar: str | None = None, stop: Sequence[str] = ()) -> Iterator[str]:
        """Yield the answer as text pieces; the model stays locked until the iterator ends or is closed."""
        with self._lock:
            req = self._request(messages, max_tokens, temperature, seed, grammar, stop)
            chunks = self.llama.create_chat_completion(stream=True, **req)
            try:
                for chunk in chunks:
                    piece = chunk["choices"][0].get("delta", {}).get("content")
                    if piece:
                        yield piece
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()


class ScriptedLLM:
    """A deterministic stand-in chat model for tests and demos: replies from a script.

    ``replies`` is a list (used in order, the last one repeats) or a function of the
    messages.  Tokens are counted as whitespace-separated words.  Calls are recorded in
    :attr:`calls`.  ``logprobs`` (a function of the messages returning a log-probability per
    reply such as ``"yes"``) scripts :meth:`first_token_logprobs`; scored prompts go to :attr:`scored`;
    ``hidden`` (a function of the messages returning a vector) scripts :meth:`hidden_state`.

    Example:
        >>> llm = ScriptedLLM(lambda msgs: msgs[-1]["content"].upper(), n_ctx=512)
        >>> "".join(llm.stream([{"role": "user", "content": "hi there"}]))
        'HI THERE'
    """

    def __init__(self, replies: Sequence[str] | Callable[[Sequence[Message]], str], n_ctx: int = 2048,
                 logprobs: Callable[[Sequence[Message]], Mapping[str, float]] | None = None,
                 hidden: Callable[[Sequence[Message]], Sequence[float]] | None = None) -> None:
        if not callable(replies) and (isinstance(replies, str) or len(replies) == 0):
            raise ValueError("replies must be a non-empty list of strings or a callable")
        if not isinstance(n_ctx, int) or n_ctx < 16:
            raise ValueError(f"n_ctx must be an integer >= 16, got {n_ctx!r}")
        self._replies = replies if callable(replies) else list(replies)
        self._n_ctx = n_ctx
        self._logprobs = logprobs
        self._hidden = hidden
        self.calls: list[list[dict[str, str]]] = []
        self.scored: list[list[dict[str, str]]] = []
        self._lock = threading.Lock()

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def count_message_tokens(self, messages: Sequence[Message]) -> int:
        msgs = _plain_messages(messages)
        return sum(self.count_tokens(m["content"]) + 4 for m in msgs) + 2

    def chat(self, messages: Sequence[Message], max_tokens: int = 256, temperature: float = 0.0,
             seed: int | None = None, grammar: str | None = None, stop: Sequence[str] = ()) -> str:
        _validate_generation(max_tokens, temperature)
        msgs = _plain_messages(messages)
        if self.count_message_tokens(msgs) > self._n_ctx:
            raise ContextOverflowError(f"prompt is {self.count_message_tokens(msgs)} tokens, "
                                       f"context is {self._n_ctx}")
        with self._lock:
            self.calls.append(msgs)
            if callable(self._replies):
                return self._replies(msgs)
            return self._replies[min(len(self.calls), len(self._replies)) - 1]

    def first_token_logprobs(self, messages: Sequence[Message], choices: Sequence[str]) -> dict[str, float] | None:
        """The scripted ``logprobs(messages)`` for ``choices`` (None without a script: cannot score)."""
        if self._logprobs is None:
            return None
        msgs = _plain_messages(messages)
        self.scored.append(msgs)
        scores = self._logprobs(msgs)
        return {c: float(scores[c]) for c in choices}

    def hidden_state(self, messages: Sequence[Message]) -> Any | None:
        """The scripted ``hidden(messages)`` vector (None without a script: cannot show one)."""
        if self._hidden is None:
            return None
        import numpy as np  # noqa: PLC0415

        return np.asarray(self._hidden(_plain_messages(messages)), dtype=np.float32)

    def stream(self, messages: Sequence[Message], max_tokens: int = 256, temperature: float = 0.0,
               seed: int | None = None, grammar: str | None = None, stop: Sequence[str] = ()) -> Iterator[str]:
        text = self.chat(messages, max_tokens, temperature, seed, grammar, stop)
        for i, word in enumerate(text.split(" ")):
            yield word if i == 0 else " " + word
