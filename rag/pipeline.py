"""The one pipeline builder: a frozen :class:`PipelineConfig` in, a ready :class:`Pipeline` out.

The CLI (``rag search / ask / chat``), the Streamlit app, the evaluation harness and the HTTP API
all assemble retrieval and answering here, so a setting added once reaches every one of them.

* :func:`build_retriever`: the :class:`~rag.retrieval.retriever.Retriever` for a
  :class:`RetrievalConfig` (also what ``rag search`` and ``rag eval retrieval`` use).
* :func:`make_llm`: the chat model a :class:`GenerationConfig` names (every front end gets it here).
* :func:`build`: the whole answer pipeline — retriever, router and rewriter plugins, relevance
  gate, answer strategy, chat model — as a :class:`Pipeline` (close it, or use ``with``).

Example:
    >>> cfg = PipelineConfig(index="manuals", retrieval=RetrievalConfig(mode="bm25", k=3))
    >>> cfg.retrieval.mode, cfg.generation.mode, cfg.plugins.rewriter
    ('bm25', 'generative', 'condense')
    >>> RetrievalConfig(k=0)
    Traceback (most recent call last):
    ...
    ValueError: k must be a positive integer, got 0

Example (runs the real models)::

    from rag.index.store import IndexStore
    from rag.pipeline import PipelineConfig, build
    with build(PipelineConfig(index="docs"), IndexStore()) as pipeline:
        print(pipeline.answerer.answer("How do I prime the pump?").text)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from rag.answer.answerer import Answerer
from rag.answer.chat import ChatSession
from rag.answer.citecheck import DEFAULT_SUPPORT_THRESHOLD
from rag.answer.decision import Decider
from rag.answer.evidence import DEFAULT_BUDGET, DEFAULT_POOL, EvidenceSelector
from rag.answer.extractive import ExtractiveStrategy
from rag.answer.gate import DEFAULT_MIN_DENSE, AnswerCheck, RelevanceGate
from rag.answer.generative import GenerativeStrategy
from rag.answer.planner import QueryPlanner
from rag.answer.strategies import DEFAULT_FALLBACK_SHARE, DIRECT_MAX_TOKENS, DirectStrategy
from rag.embedding import DEFAULT_EMBEDDER, Embedder
from rag.generation.llm import ChatModel, LlamaCppLLM
from rag.generation.memory import MEMORY_TYPES, Memory, make_memory
from rag.generation.models import DEFAULT_MODEL, calibrated_answer_check, model_key
from rag.index.store import Index, IndexStore
from rag.plugins.base import PluginContext, make_rewriter
from rag.retrieval.fusion import DEFAULT_RRF_K
from rag.retrieval.rerank import LLMReranker, Reranker
from rag.retrieval.retriever import Retriever
from rag.types import AnswerMode, ContextMode, Fusion, RetrievalMode
from rag.validate import in_range, non_negative_int, positive_int

logger = logging.getLogger(__name__)

AUTO_RERANKER = "auto"
#: ``RetrievalConfig.reranker`` value for the chat model as a pointwise reranker
LLM_RERANKER = "llm"
AUTO = "auto"  # a setting resolved from the model (GenerationConfig.answer_check)


@dataclass(frozen=True)
class RetrievalConfig:
    """How to retrieve: mode, fusion, candidates, an optional reranker, and ``k`` hits kept.

    ``reranker`` is None (no second stage), ``"auto"`` (the index's own reranker from
    ``rag reranker train``), ``"llm"`` (the chat model's Yes/No log-odds per candidate:
    :class:`~rag.retrieval.rerank.LLMReranker`) or a CrossEncoder name or path.
    """

    mode: RetrievalMode = RetrievalMode.HYBRID
    fusion: Fusion = Fusion.ZSCORE
    rrf_k: int = DEFAULT_RRF_K
    alpha: float = 0.5
    candidates: int = 100
    reranker: str | None = None
    rerank_candidates: int = 50
    k: int = 5

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", RetrievalMode.parse(self.mode))
        object.__setattr__(self, "fusion", Fusion.parse(self.fusion))
        for name in ("candidates", "rerank_candidates", "k"):
            positive_int(name, getattr(self, name))
        non_negative_int("rrf_k", self.rrf_k)
        in_range("alpha", self.alpha, 0, 1)
        if self.reranker is not None and not str(self.reranker).strip():
            object.__setattr__(self, "reranker", None)


@dataclass(frozen=True)
class GenerationConfig:
    """How to answer: ``generative`` (the chat model) or ``extractive`` (quotes, no model), and sampling."""

    mode: AnswerMode = AnswerMode.GENERATIVE
    model: str = DEFAULT_MODEL
    models_dir: str | None = None
    n_ctx: int | None = None
    n_gpu_layers: int | str = "auto"
    temperature: float = 0.0
    seed: int = 0
    max_tokens: int = 256
    min_relevance: float = DEFAULT_MIN_DENSE
    support_threshold: float = DEFAULT_SUPPORT_THRESHOLD
    max_quotes: int = 3
    fallback_share: float | None = DEFAULT_FALLBACK_SHARE
    #: the answer decision's threshold: ``"auto"`` = the trained decision's own (or, for a model
    #: without one, its calibrated answer check's), a number = that threshold on the decision's
    #: log-odds, None = no decision (answer whenever a hit passes the relevance gate)
    answer_check: float | str | None = AUTO
    #: answer from selected evidence sentences (the default) or from the ``k`` relevant chunks
    context: ContextMode = ContextMode.EVIDENCE
    #: retrieved chunks whose sentences the evidence stage ranks
    evidence_pool: int = DEFAULT_POOL
    #: tokens of evidence in the prompt at most
    evidence_budget: int = DEFAULT_BUDGET

    def __post_init__(self) -> None:
        object.__setattr__(self, "context", ContextMode.parse(self.context))
        positive_int("evidence_pool", self.evidence_pool)
        positive_int("evidence_budget", self.evidence_budget)
        if isinstance(self.answer_check, str):
            if self.answer_check != AUTO:
                raise ValueError(f"answer_check must be 'auto', a number or None, got {self.answer_check!r}")
        elif self.answer_check is not None:
            AnswerCheck(self.answer_check)  # validates
        mode = AnswerMode.parse(self.mode)
        if mode is AnswerMode.DIRECT:
            raise ValueError("generation mode must be generative or extractive; direct answers come from a router")
        object.__setattr__(self, "mode", mode)
        positive_int("max_tokens", self.max_tokens)
        positive_int("max_quotes", self.max_quotes)
        in_range("temperature", self.temperature, 0, 2)
        if not -1.0 <= self.min_relevance <= 1.0:
            raise ValueError(f"min_relevance must be a cosine similarity in [-1, 1], got {self.min_relevance!r}")

    @property
    def extractive(self) -> bool:
        return self.mode is AnswerMode.EXTRACTIVE

    def answer_check_threshold(self) -> float | None:
        """The check's threshold: the set one, or with ``"auto"`` the model's calibrated one."""
        if self.answer_check == AUTO:
            return calibrated_answer_check(self.model)
        return None if self.answer_check is None else float(self.answer_check)

    def decider(self) -> Decider:
        """The answer decision these settings ask for (:mod:`rag.answer.decision`)."""
        if self.answer_check is None:
            return Decider(None, note="switched off")
        override = None if self.answer_check == AUTO else float(self.answer_check)
        threshold = self.answer_check_threshold()
        check = AnswerCheck(threshold) if threshold is not None and not self.extractive else None
        if self.context is ContextMode.CHUNKS:  # the trained decision reads evidence; over chunks the check decides
            return Decider(None, check=check, note="answers from whole chunks")
        return Decider.for_model(None if self.extractive else model_key(self.model), check=check, threshold=override)


@dataclass(frozen=True)
class MemoryConfig:
    """Chat memory: ``buffer`` (every turn), ``window`` (the last ``window`` turns) or ``summary`` (LLM)."""

    kind: str = "buffer"
    window: int = 3

    def __post_init__(self) -> None:
        if self.kind not in MEMORY_TYPES:
            raise ValueError(f"memory must be one of {MEMORY_TYPES}, got {self.kind!r}")
        positive_int("window", self.window)


@dataclass(frozen=True)
class PluginConfig:
    """Query rewriter and router by name (built-ins or entry points), with their JSON options.

    ``router`` is None (always the configured index) or a name or comma-separated chain
    (``"chitchat,rules"``); the collections a router may pick are every index in the store.
    """

    rewriter: str = "condense"
    router: str | None = None
    rewriter_options: Mapping[str, Any] = field(default_factory=dict)
    router_options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PipelineConfig:
    """Everything :func:`build` needs besides the store: which index, and how to retrieve and answer."""

    index: str = "default"
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    plugins: PluginConfig = field(default_factory=PluginConfig)


#: the :class:`GenerationConfig` fields :func:`make_llm` reads: configs equal on these share one model
LLM_FIELDS = ("model", "n_ctx", "n_gpu_layers", "seed", "models_dir")


def make_llm(config: GenerationConfig) -> LlamaCppLLM:
    """The chat model ``config`` names, not loaded yet (cheap: the model file is resolved, so a bad name fails here).

    The one way a front end gets its :class:`~rag.generation.llm.LlamaCppLLM` from a config; call
    ``.load()`` (or let :func:`build` do it) before the first answer.

    Example:
        >>> make_llm(GenerationConfig(model="smollm2-135m", n_gpu_layers=0)).model
        'smollm2-135m'
    """
    return LlamaCppLLM(config.model, n_ctx=config.n_ctx, n_gpu_layers=config.n_gpu_layers, seed=config.seed,
                       models_dir=config.models_dir)


def resolve_reranker(spec: str | None, index_dir: Path | None = None, llm: ChatModel | None = None
                     ) -> Reranker | LLMReranker | None:
    """The reranker a :attr:`RetrievalConfig.reranker` names: None, the index's trained one (``auto``),
    the chat model ``llm`` (``llm``), or a CrossEncoder."""
    if not spec:
        return None
    if spec == LLM_RERANKER:
        if llm is None:
            raise ValueError("--reranker llm needs the chat model; it is not loaded in this setting")
        return LLMReranker(llm)
    if spec == AUTO_RERANKER:
        from rag.retrieval.rerank_training.store import load_index_reranker

        reranker = load_index_reranker(index_dir) if index_dir is not None else None
        if reranker is None:
            name = index_dir.name if index_dir is not None else "this index"
            raise ValueError(f"index {name!r} has no trained reranker; train one with "
                             f"`rag reranker train --index {name}` or pass a CrossEncoder path")
        return reranker
    return Reranker(spec)


def build_retriever(config: RetrievalConfig, index: Index, embedder: Embedder | None = None,
                    reranker: Reranker | LLMReranker | None = None) -> Retriever:
    """The :class:`~rag.retrieval.retriever.Retriever` for ``config`` over ``index``.

    ``reranker`` overrides ``config.reranker`` (pass a loaded, shared one); otherwise
    ``config.reranker`` is resolved next to the index only when ``index`` came from a store
    (use :func:`resolve_reranker`).
    """
    return Retriever(index, mode=config.mode, embedder=embedder, fusion=config.fusion, rrf_k=config.rrf_k,
                     alpha=config.alpha, candidates=config.candidates, reranker=reranker,
                     rerank_candidates=config.rerank_candidates)


class Collections:
    """Retrievers for every index in a store, loaded on first use: the collections a router may pick."""

    def __init__(self, store: IndexStore, first: Retriever, config: RetrievalConfig,
                 load_index: Callable[[str], Index] | None = None) -> None:
        self.store = store
        self.config = config
        self.load_index = load_index or store.load
        self.loaded = {first.index.name: first}
        self.embedder = first.embedder
        self.reranker = first.reranker

    def __call__(self, name: str) -> Retriever:
        if name not in self.loaded:
            if name not in self.store.names():
                raise KeyError(name)
            self.loaded[name] = build_retriever(self.config, self.load_index(name), self.embedder, self.reranker)
        return self.loaded[name]

    def describe(self) -> dict[str, str]:
        """``{name: description}`` from each collection's document titles (for routers)."""
        from rag.plugins.routers import describe_collection

        out = {}
        for name in self.store.names():
            docs = self(name).index.documents.values()
            out[name] = describe_collection(name, [d.title or Path(d.source).stem for d in docs])
        return out


@dataclass
class Pipeline:
    """A built pipeline: the answerer, its retriever, and the models it holds. Close it when done."""

    config: PipelineConfig
    index: Index
    retriever: Retriever
    answerer: Answerer
    embedder: Embedder
    llm: ChatModel | None = None
    owns_llm: bool = False

    def new_memory(self) -> Memory:
        """A fresh chat memory as configured (``summary`` uses the pipeline's LLM)."""
        return make_memory(self.config.memory.kind, llm=self.llm, k=self.config.memory.window)

    def chat(self, memory: Memory | None = None) -> ChatSession:
        """A multi-turn session over this pipeline (a new memory unless one is given)."""
        return ChatSession(self.answerer, memory if memory is not None else self.new_memory())

    def close(self) -> None:
        """Free the chat model if this pipeline loaded it (a model passed to :func:`build` stays open)."""
        if self.owns_llm and self.llm is not None and hasattr(self.llm, "close"):
            self.llm.close()

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _plugins(plugins: PluginConfig, collection: str, embedder: Embedder, llm: ChatModel | None,
             collections: Collections) -> tuple[Any, Any]:
    """The rewriter and (if one is named) the router ``plugins`` asks for."""
    rewriter = make_rewriter(plugins.rewriter, PluginContext(
        llm=llm, embedder=embedder, default_collection=collection, options=plugins.rewriter_options))
    router = None
    if plugins.router:
        from rag.plugins.routers import build_router

        router = build_router(plugins.router, PluginContext(
            llm=llm, embedder=embedder, collections=collections.describe(),
            default_collection=collection, options=plugins.router_options))
    return rewriter, router


def build(config: PipelineConfig, store: IndexStore, *, index: Index | None = None,
          embedder: Embedder | None = None, llm: ChatModel | None = None,
          reranker: Reranker | LLMReranker | None = None,
          load_index: Callable[[str], Index] | None = None) -> Pipeline:
    """Assemble the answer pipeline for ``config``.

    Shared resources can be passed in (the app caches them across sessions): a loaded ``index``
    (default: ``store.load(config.index)``), the ``embedder``, the chat model ``llm`` (default:
    a :class:`~rag.generation.llm.LlamaCppLLM` for ``config.generation``, loaded now so a bad
    model fails here), a ``reranker`` (default: resolved from ``config.retrieval.reranker``) and
    ``load_index`` for the other collections a router may pick.
    """
    load = load_index or store.load
    index = index if index is not None else load(config.index)
    embedder = embedder or Embedder(DEFAULT_EMBEDDER)
    gen = config.generation
    owns_llm = False
    if llm is None and (not gen.extractive or config.retrieval.reranker == LLM_RERANKER):
        llm = make_llm(gen)
        owns_llm = True
    answer_llm = None if gen.extractive else llm
    try:
        if reranker is None and config.retrieval.reranker:
            reranker = resolve_reranker(config.retrieval.reranker,
                                        store.path(index.name) if store.exists(index.name) else None, llm)
        retriever = build_retriever(config.retrieval, index, embedder, reranker)
        collections = Collections(store, retriever, config.retrieval, load)
        rewriter, router = _plugins(config.plugins, index.name, embedder, answer_llm, collections)
        selector = None
        if gen.context is ContextMode.EVIDENCE:
            selector = EvidenceSelector(embedder, budget=gen.evidence_budget,
                                        count_tokens=answer_llm.count_tokens if answer_llm is not None else None)
        planner = QueryPlanner(retriever, k=config.retrieval.k, gate=RelevanceGate(min_dense=gen.min_relevance),
                               rewriter=rewriter, router=router, retrievers=collections, evidence=selector,
                               pool=gen.evidence_pool)
        if gen.extractive:
            strategy: Any = ExtractiveStrategy(embedder, max_quotes=gen.max_quotes, min_similarity=gen.min_relevance,
                                               decider=gen.decider())
        else:
            strategy = GenerativeStrategy(answer_llm, embedder, max_tokens=gen.max_tokens,  # type: ignore[arg-type]
                                          temperature=gen.temperature, seed=gen.seed,
                                          support_threshold=gen.support_threshold,
                                          fallback_share=gen.fallback_share, max_quotes=gen.max_quotes,
                                          decider=gen.decider())
        direct = DirectStrategy(answer_llm, max_tokens=min(gen.max_tokens, DIRECT_MAX_TOKENS),
                                temperature=gen.temperature, seed=gen.seed)
        answerer = Answerer(planner, strategy, direct)
        if owns_llm and llm is not None and hasattr(llm, "load"):
            llm.load()
    except Exception:
        if owns_llm and llm is not None and hasattr(llm, "close"):
            llm.close()
        raise
    return Pipeline(config, index, retriever, answerer, embedder, llm, owns_llm)
