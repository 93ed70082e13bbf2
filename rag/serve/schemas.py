"""The HTTP API's wire format: OpenAI's chat, embeddings and models objects, plus the ``rag`` extension.

Responses follow OpenAI's shapes so the official ``openai`` client parses them unchanged; what
this app adds sits in one extension field, ``rag`` (:class:`RagExtension`), on a chat completion
and on the last streamed chunk.  Clients that do not know it ignore it; the ``openai`` client
keeps it as an extra attribute (``completion.rag``, a dict).

Every response of the API is built from these models (the server fails, not the client, when a
body does not match the schema); optional fields that OpenAI leaves out rather than send as null
(``usage`` and ``rag`` on a chunk, a delta's ``role`` and ``content``) are left out when None.

Request models carry the server's limits (``max_tokens``, message count and length, embedding
inputs), so they are made per app by :func:`request_models` and the OpenAPI schema states them;
the fields that mirror pipeline settings take their defaults from the pipeline's
:class:`~rag.pipeline.GenerationConfig` (the server's) and :class:`~rag.pipeline.RetrievalConfig`.

Example:
    >>> req = request_models(Limits(max_tokens=64), generation=GenerationConfig(max_tokens=32)).ChatRequest
    >>> chat = req.model_validate({"model": "rag:docs", "messages": [{"role": "user", "content": "hi"}]})
    >>> chat.stream, chat.max_tokens, chat.temperature
    (False, 32, 0.0)
    >>> req.model_validate({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 65})
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for ChatRequest
    max_tokens
      Input should be less than or equal to 64 [type=less_than_equal, input_value=65, input_type=int]
    ...
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from rag.pipeline import GenerationConfig, RetrievalConfig
from rag.types import Fusion, RetrievalMode


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; larger requests get a 400 (or 413 for the body size)."""

    max_body_bytes: int = 1 << 20
    max_tokens: int = 1024
    max_messages: int = 64
    max_message_chars: int = 16_000
    max_embedding_inputs: int = 128
    max_k: int = 100
    max_candidates: int = 1000

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _utf8(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (it contains a lone surrogate)") from None
    return text


def _text(max_chars: int, min_chars: int = 0) -> Any:
    return Annotated[str, Field(min_length=min_chars, max_length=max_chars), AfterValidator(_utf8)]


def _omitted_if_none(description: str | None = None) -> Any:
    """An optional field left out of the JSON, rather than sent as null, when it is None (as OpenAI does)."""
    return Field(default=None, exclude_if=lambda value: value is None, description=description)


# -- responses (no limits in them) --------------------------------------------------------------------

class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """OpenAI's error object: every 4xx and 5xx of this API has this body."""

    error: ErrorBody


class ModelInfo(BaseModel):
    """``kind`` says what the id selects: a collection (``rag:NAME``), the chat model, or the embedder."""

    kind: Literal["collection", "chat", "embedding"]
    collection: str | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    rag: ModelInfo


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class SourceRef(BaseModel):
    """A numbered source: ``[number]`` in the answer text is this chunk."""

    number: int
    chunk_id: str
    source: str = Field(description="document path relative to the collection's common folder")
    title: str
    page: int | None = Field(description="1-based page for paged formats (PDF), else null")
    start: int = Field(description="character offset of the chunk in the document (or page) text")
    end: int
    score: float
    text: str
    quote_start: int = Field(description="character offset of the cited sentence(s) in the document (or page) "
                                         "text: where the answer rests; the chunk's own start without evidence")
    quote_end: int
    quote: str = Field(description="the cited sentence(s): document text from quote_start to quote_end")


class WithheldRef(BaseModel):
    """A retrieved passage kept out of the answer: flagged at ingest as instruction-like or
    credential-seeking text. Suspicious, not used; its ``text`` is untrusted, show it as plain text."""

    chunk_id: str
    source: str = Field(description="document path relative to the collection's common folder")
    title: str
    page: int | None
    start: int
    end: int
    rank: int = Field(description="1-based rank among the retrieved hits")
    score: float
    text: str


class SupportMark(BaseModel):
    """One sentence of the answer and the source that best supports it."""

    sentence: str
    citation: int | None
    similarity: float
    supported: bool


class RagDiagnostics(BaseModel):
    retrieved: int
    relevant: int
    reason: str
    rewrite_method: str
    explicit_citations: list[int]
    inferred_citations: list[int]
    invalid_citations: list[int]
    foreign_urls: list[str]
    suspicious_sources: list[int]
    prompt_tokens: int
    decision: str = Field(description="answer, contradicted (a yes/no premise the sources contradict), "
                                      "not found, or empty when no decision ran")
    decision_score: float | None = Field(description="the decision's log-odds that the evidence answers the question")
    decision_threshold: float | None
    decision_rule: str
    answer_check: float | None = Field(description="the model's calibrated Y/N log-odds, one of the decision's inputs")
    timings: dict[str, float]


class RagExtension(BaseModel):
    """What this app adds to a chat completion: the checked answer, its sources and the support marks.

    ``text`` is the final answer after the citation fixes (streamed pieces are the raw model output);
    ``citations`` the sources the answer relies on, ``sources`` every source given to the model,
    ``withheld`` the relevant passages flagged suspicious at ingest and kept out of the answer.
    """

    collection: str
    text: str
    mode: str
    standalone_query: str
    grounded: bool
    declined: bool
    citations: list[SourceRef]
    sources: list[SourceRef]
    support: list[SupportMark]
    withheld: list[WithheldRef] = Field(default_factory=list,
                                        description="suspicious, not used: relevant passages flagged at ingest as "
                                                    "instruction-like or credential-seeking, kept out of the answer")
    diagnostics: RagDiagnostics
    chat_id: str | None = _omitted_if_none("the saved chat this turn was appended to (the request's rag.chat_id, "
                                           "or the new chat of rag.save); left out when the turn was not saved")
    warnings: list[str] | None = _omitted_if_none("what went wrong beside the answer, e.g. that the turn could "
                                                  "not be saved (a damaged chat history); left out when none")


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class CompletionChoice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    # field order = the JSON's key order, unchanged since the API answered with dicts: id, created, model, object
    id: str
    created: int
    model: str
    object: Literal["chat.completion"] = "chat.completion"
    choices: list[CompletionChoice]
    usage: Usage
    rag: RagExtension


class Delta(BaseModel):
    """What a chunk adds: the role on the first chunk, a piece of text, or nothing (the last chunk)."""

    role: Literal["assistant"] | None = _omitted_if_none()
    content: str | None = _omitted_if_none()


class ChunkChoice(BaseModel):
    index: int
    delta: Delta
    finish_reason: Literal["stop", "length"] | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    """One ``data:`` event of a streamed completion; the last one with a ``finish_reason`` carries ``rag``."""

    id: str
    created: int
    model: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    choices: list[ChunkChoice]
    usage: Usage | None = _omitted_if_none("only on the last chunk, with stream_options.include_usage")
    rag: RagExtension | None = _omitted_if_none("only on the chunk with the finish_reason")


class EmbeddingItem(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="floats, or base64 of little-endian float32")


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingItem]
    model: str
    usage: EmbeddingUsage


class SearchHit(BaseModel):
    rank: int
    score: float
    scores: dict[str, float] = Field(description="per-retriever scores (bm25, dense, rrf, rerank)")
    chunk_id: str
    source: str = Field(description="document path relative to the collection's common folder")
    title: str
    page: int | None
    start: int
    end: int
    text: str


class SearchResult(BaseModel):
    object: Literal["list"] = "list"
    collection: str
    query: str
    data: list[SearchHit]


class GenerationStats(BaseModel):
    active: int
    completed: int
    cancelled: int = Field(description="stopped early: the client disconnected")
    failed: int


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    default_collection: str
    chat_model: str | None
    embedding_model: str
    generations: GenerationStats


# -- requests (limits from the server's settings, defaults from the pipeline's) ----------------------

def request_models(limits: Limits, default_collection: str = "default", *,
                   generation: GenerationConfig | None = None,
                   retrieval: RetrievalConfig | None = None) -> SimpleNamespace:
    """The request bodies, with ``limits`` in their field constraints (and so in the OpenAPI schema).

    The fields that mirror pipeline settings default to ``generation`` (the server's answer settings;
    the :class:`~rag.pipeline.GenerationConfig` defaults when None) and ``retrieval`` (``/v1/search``,
    like ``rag search``: the :class:`~rag.pipeline.RetrievalConfig` defaults when None); the
    schema's examples ask ``default_collection``.
    """
    message = _message_model(limits)
    return SimpleNamespace(
        ChatRequest=_chat_request(limits, default_collection, message, generation or GenerationConfig()),
        ChatMessage=message, EmbeddingRequest=_embedding_request(limits),
        SearchRequest=_search_request(limits, retrieval or RetrievalConfig()))


def _name() -> Any:
    return Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_utf8)]


#: the most documents one request may scope a search or an answer to
MAX_DOCUMENTS = 1000


class RagOptions(BaseModel):
    """The request's ``rag`` extension (rag's own options, e.g. the ``openai`` client's ``extra_body``).

    Example:
        >>> RagOptions.model_validate({"documents": ["faq.md"]}).documents
        ['faq.md']
    """

    model_config = ConfigDict(extra="forbid")
    documents: list[_text(4096, 1)] | None = Field(  # type: ignore[valid-type]
        default=None, min_length=1, max_length=MAX_DOCUMENTS,
        description="search (or answer from) only these documents of the collection: paths as the sources "
                    "show them (relative to the collection's common folder) or as ingested; null: all. "
                    "An unknown document is a 400")


class ChatRagOptions(RagOptions):
    """A chat request's ``rag`` extension: the scope, and whether to save the turn to the chat history.

    Example:
        >>> ChatRagOptions.model_validate({"save": True}).save, ChatRagOptions().chat_id
        (True, None)
    """

    chat_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")] | None = Field(
        default=None, description="append this turn to the saved chat with this id (a 404 when "
                                  "there is none); without chat_id or save nothing is saved")
    save: bool = Field(default=False, description="save this turn as a new chat (titled with "
                                                  "the question); the response's rag.chat_id names it")


def _message_model(limits: Limits) -> type[BaseModel]:
    Message = _text(limits.max_message_chars)

    class TextPart(BaseModel):
        model_config = ConfigDict(extra="ignore")
        type: Literal["text"]
        text: Message  # type: ignore[valid-type]

    class ChatMessage(BaseModel):
        """A message of the conversation; only text content is read (``system`` messages are ignored:
        the grounded prompt is the server's)."""

        model_config = ConfigDict(extra="ignore")
        role: Literal["system", "developer", "user", "assistant"]
        content: Message | Annotated[list[TextPart], Field(max_length=64)] | None = None  # type: ignore[valid-type]
        name: str | None = None

        def text(self) -> str:
            if self.content is None:
                return ""
            if isinstance(self.content, str):
                return self.content
            return "".join(part.text for part in self.content)

    return ChatMessage


def _chat_request(limits: Limits, default_collection: str, message: type[BaseModel],
                  gen: GenerationConfig) -> type[BaseModel]:
    class StreamOptions(BaseModel):
        model_config = ConfigDict(extra="ignore")
        include_usage: bool = False

    class ChatRequest(BaseModel):
        """OpenAI's chat completion request; the last message is the question, the earlier turns the history.

        ``model`` is ``rag:COLLECTION`` (see ``GET /v1/models``) or the served chat model (the default
        collection); ``collection`` (extension, e.g. the ``openai`` client's ``extra_body``) overrides it.
        ``max_tokens``, ``temperature`` and ``seed`` default to the server's settings (null: the same).
        Other OpenAI fields (``top_p``, ``user``, ...) are accepted and ignored.
        """

        model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [
            {"model": f"rag:{default_collection}", "max_tokens": min(16, limits.max_tokens),
             "messages": [{"role": "user", "content": "What is in these documents?"}]},
            {"model": f"rag:{default_collection}", "stream": True, "max_tokens": min(8, limits.max_tokens),
             "messages": [{"role": "user", "content": "Summarise the documents."},
                          {"role": "assistant", "content": "They are manuals."},
                          {"role": "user", "content": "Which ones?"}]}]})
        model: _name()  # type: ignore[valid-type]
        messages: list[message] = Field(min_length=1, max_length=limits.max_messages)  # type: ignore[valid-type]
        stream: bool = False
        stream_options: StreamOptions | None = None
        max_tokens: int | None = Field(default=gen.max_tokens, ge=1, le=limits.max_tokens)
        max_completion_tokens: int | None = Field(default=None, ge=1, le=limits.max_tokens,
                                                  description="overrides max_tokens")
        temperature: float | None = Field(default=gen.temperature, ge=0.0, le=2.0)
        seed: int | None = Field(default=gen.seed, ge=0, le=2**31 - 1)
        n: int | None = Field(default=None, ge=1, le=1, description="only 1 is supported")
        collection: _name() | None = None  # type: ignore[valid-type]
        rag: ChatRagOptions | None = None

    return ChatRequest


def _embedding_request(limits: Limits) -> type[BaseModel]:
    class EmbeddingRequest(BaseModel):
        model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [
            {"model": "all-MiniLM-L6-v2", "input": ["first text", "second text"]}]})
        model: _name()  # type: ignore[valid-type]
        input: _text(limits.max_message_chars, 1) | Annotated[  # type: ignore[valid-type]
            list[_text(limits.max_message_chars, 1)],  # type: ignore[misc]
            Field(min_length=1, max_length=limits.max_embedding_inputs)]
        encoding_format: Literal["float", "base64"] = "float"
        dimensions: int | None = Field(default=None, ge=1, description="must equal the embedder's dimension")

        def texts(self) -> list[str]:
            return [self.input] if isinstance(self.input, str) else list(self.input)

    return EmbeddingRequest


def _search_request(limits: Limits, ret: RetrievalConfig) -> type[BaseModel]:
    class SearchRequest(BaseModel):
        """``rag search`` over HTTP: the same retrieval options (and defaults), ``k`` hits back."""

        model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
            {"query": "how do I start?", "k": 3, "mode": "hybrid"}, {"query": "install", "mode": "bm25"}]})
        query: _text(limits.max_message_chars, 1)  # type: ignore[valid-type]
        collection: _name() | None = Field(  # type: ignore[valid-type]
            default=None, description="default: the server's --index")
        k: int = Field(default=ret.k, ge=1, le=limits.max_k)
        mode: Literal[tuple(m.value for m in RetrievalMode)] = ret.mode.value  # type: ignore[valid-type]
        fusion: Literal[tuple(f.value for f in Fusion)] = ret.fusion.value  # type: ignore[valid-type]
        rrf_k: int = Field(default=ret.rrf_k, ge=0, le=10_000)
        alpha: float = Field(default=ret.alpha, ge=0.0, le=1.0)
        candidates: int = Field(default=ret.candidates, ge=1, le=limits.max_candidates)
        reranker: str | None = Field(default=ret.reranker, max_length=500,
                                     description="null, 'auto' (the collection's trained one) or the "
                                                 "server's --reranker")
        rerank_candidates: int = Field(default=ret.rerank_candidates, ge=1, le=limits.max_candidates)
        rag: RagOptions | None = None

    return SearchRequest
