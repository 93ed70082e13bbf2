"""Plugin API for query routing and query rewriting: protocols, records and discovery by name.

A **router** decides, before retrieval, where a question goes: to a collection (index), to the
default collection, or nowhere (a direct answer without retrieval, e.g. for "thanks!").
A **query rewriter** turns the question (plus chat history) into one or more search queries;
the hits of several queries are merged with Reciprocal Rank Fusion
(:class:`rag.plugins.rewriters.FusionSearcher`).

Both are small protocols, so any object with the right method works::

    class Router(Protocol):
        def route(self, query: str, history: Sequence[Message] = ()) -> Route: ...

    class QueryRewriter(Protocol):
        def rewrite(self, query: str, history: Sequence[Message] = ()) -> Rewrite: ...

**Selection by name.**  Routers and rewriters are created by name with :func:`make_router`
and :func:`make_rewriter` from a :class:`PluginContext` (the chat model, the embedder, the
collections and free-form options).  Names come from Python entry points in the groups
``rag.routers`` and ``rag.rewriters``; each entry point names a *factory*: a callable taking a
:class:`PluginContext` and returning the router/rewriter.  The built-ins are registered in this
package's ``pyproject.toml`` *and* in :data:`BUILTIN_ROUTERS` / :data:`BUILTIN_REWRITERS`, so
they work even when the installed metadata is stale.  A third-party package registers its own::

    # pyproject.toml of your package
    [project.entry-points."rag.rewriters"]
    shout = "my_pkg:ShoutRewriter.from_context"

    # my_pkg/__init__.py
    from rag.plugins.base import PluginContext, Rewrite, SearchQuery

    class ShoutRewriter:
        name = "shout"

        @classmethod
        def from_context(cls, context: PluginContext) -> "ShoutRewriter":
            return cls()

        def rewrite(self, query, history=()):
            return Rewrite(queries=(SearchQuery(query), SearchQuery(query.upper())), method="shout")

then ``rag ask "..." --rewriter shout --trace``.

Example:
    >>> class Upper:
    ...     def rewrite(self, query, history=()):
    ...         return Rewrite(queries=(SearchQuery(query.upper()),), method="upper")
    >>> isinstance(Upper(), QueryRewriter), Upper().rewrite("pump").queries[0].text
    (True, 'PUMP')
    >>> str(Route.direct("greeting").action), Route.to("manuals").collection
    ('direct', 'manuals')
    >>> make_rewriter("nope", PluginContext())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown rewriter 'nope'; available: condense, decompose, hyde, keyword, multi-query, none...
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib import import_module, metadata
from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

from rag.generation.llm import ChatModel, Message
from rag.types import Choice

logger = logging.getLogger(__name__)

ROUTER_GROUP = "rag.routers"
REWRITER_GROUP = "rag.rewriters"


class RouteAction(Choice):
    """What a route does: search a collection, or answer directly without retrieval."""

    RETRIEVE = "retrieve"
    DIRECT = "direct"


class RewriteMethod(Choice):
    """How the built-in rewriters made a query. Third-party rewriters may use their own strings.

    ``LLM`` and ``LLM_TERMS`` (an LLM rewrite with key terms of the conversation added) are both
    LLM condensations: test with :attr:`Rewrite.condensed`, not ``== "llm"``.
    """

    NONE = "none"
    LLM = "llm"
    LLM_TERMS = "llm+terms"
    FALLBACK = "fallback"
    KEYWORD = "keyword"
    MULTI_QUERY = "multi-query"
    HYDE = "hyde"
    DECOMPOSE = "decompose"


ACTIONS: tuple[str, ...] = tuple(a.value for a in RouteAction)

#: Built-in factories (``"module:attribute"``); also declared as entry points in pyproject.toml.
BUILTIN_ROUTERS: Mapping[str, str] = {
    "none": "rag.plugins.routers:DefaultRouter.from_context",
    "chitchat": "rag.plugins.routers:ChitChatRouter.from_context",
    "rules": "rag.plugins.routers:RuleRouter.from_context",
    "embedding": "rag.plugins.routers:EmbeddingRouter.from_context",
    "llm": "rag.plugins.routers:LLMRouter.from_context",
}
BUILTIN_REWRITERS: Mapping[str, str] = {
    "none": "rag.plugins.rewriters:NoRewriter.from_context",
    "condense": "rag.plugins.rewriters:CondenseRewriter.from_context",
    "keyword": "rag.plugins.rewriters:KeywordRewriter.from_context",
    "multi-query": "rag.plugins.rewriters:MultiQueryRewriter.from_context",
    "hyde": "rag.plugins.rewriters:HydeRewriter.from_context",
    "decompose": "rag.plugins.rewriters:DecomposeRewriter.from_context",
}


@dataclass(frozen=True)
class Route:
    """Where a question goes.

    ``action`` is ``retrieve`` (search ``collection``; None means the default collection) or
    ``direct`` (answer without retrieval).  ``reason`` says why, ``score`` is the router's
    confidence when it has one (a cosine, a rule match = 1.0).
    """

    action: RouteAction = RouteAction.RETRIEVE
    collection: str | None = None
    reason: str = ""
    score: float | None = None
    router: str = ""

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"route action must be one of {ACTIONS}, got {self.action!r}")
        object.__setattr__(self, "action", RouteAction(self.action))
        if self.action is RouteAction.DIRECT and self.collection is not None:
            raise ValueError(f"a direct route has no collection, got {self.collection!r}")

    @classmethod
    def default(cls, reason: str = "default", router: str = "") -> "Route":
        return cls(RouteAction.RETRIEVE, None, reason, None, router)

    @classmethod
    def to(cls, collection: str, reason: str = "", score: float | None = None, router: str = "") -> "Route":
        return cls(RouteAction.RETRIEVE, collection, reason, score, router)

    @classmethod
    def direct(cls, reason: str = "", score: float | None = None, router: str = "") -> "Route":
        return cls(RouteAction.DIRECT, None, reason, score, router)

    @property
    def decided(self) -> bool:
        """True when the router expressed a preference (a collection, or a direct answer)."""
        return self.action is RouteAction.DIRECT or self.collection is not None


@dataclass(frozen=True)
class SearchQuery:
    """One query to run: ``text`` feeds BM25 (and the dense side unless ``dense`` is set).

    ``dense`` replaces the text on the dense side only (HyDE's hypothetical passage);
    ``weight`` is this query's weight in the RRF merge; ``kind`` labels it in traces.
    """

    text: str
    dense: str | None = None
    weight: float = 1.0
    kind: str = "original"

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or not self.text.strip():
            raise ValueError(f"query text must be a non-empty string, got {self.text!r}")
        if not self.weight > 0:
            raise ValueError(f"query weight must be > 0, got {self.weight!r}")


@dataclass(frozen=True)
class Rewrite:
    """A rewriter's output: the queries to run (hits merged by RRF) and how they were made.

    ``standalone`` is the single question to show and to put in the prompt (default: the first
    query's text); ``method`` names the step that produced it (``llm`` means an LLM-condensed
    follow-up, used in the answer prompt); ``raw`` keeps the model output; ``fallback`` says
    why a rewriter fell back (empty when it did not).
    """

    queries: tuple[SearchQuery, ...]
    method: RewriteMethod | str = RewriteMethod.NONE
    standalone: str = ""
    raw: str = ""
    fallback: str = ""

    def __post_init__(self) -> None:
        if not self.queries:
            raise ValueError("a rewrite needs at least one query")
        if not self.standalone:
            object.__setattr__(self, "standalone", self.queries[0].text)
        if self.method in RewriteMethod._value2member_map_:
            object.__setattr__(self, "method", RewriteMethod(self.method))

    @classmethod
    def single(cls, query: str, method: RewriteMethod | str = RewriteMethod.NONE, **kw: Any) -> "Rewrite":
        return cls(queries=(SearchQuery(query),), method=method, **kw)

    @property
    def condensed(self) -> bool:
        """True when an LLM rewrote the follow-up into a standalone question (``llm`` or ``llm+terms``)."""
        return self.method in (RewriteMethod.LLM, RewriteMethod.LLM_TERMS)


@runtime_checkable
class Router(Protocol):
    """Decide where a question goes; see :class:`Route`."""

    def route(self, query: str, history: Sequence[Message] = ()) -> Route: ...


@runtime_checkable
class QueryRewriter(Protocol):
    """Turn a question (and the conversation) into one or more search queries."""

    def rewrite(self, query: str, history: Sequence[Message] = ()) -> Rewrite: ...


@dataclass(frozen=True)
class PluginContext:
    """What a factory may use to build a router or rewriter.

    Args:
        llm: the chat model (None in extractive mode: LLM plugins then fall back or refuse).
        embedder: the index's embedder (for embedding routers).
        collections: ``{name: description}`` of the collections a router may pick.
        default_collection: the collection used when a router has no preference.
        options: free-form plugin settings (e.g. ``{"rules": {"pump|valve": "manuals"}}``),
            from ``--router-config`` / ``--rewriter-config`` JSON files.
    """

    llm: ChatModel | None = None
    embedder: Any | None = None
    collections: Mapping[str, str] = field(default_factory=dict)
    default_collection: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


Factory = Callable[[PluginContext], Any]


def _load_target(target: str) -> Factory:
    module, _, attr = target.partition(":")
    obj: Any = import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj  # type: ignore[no-any-return]


def _registry(group: str, builtins: Mapping[str, str]) -> dict[str, Callable[[], Factory]]:
    """``{name: loader}``: built-ins first, then entry points (a clash with a built-in keeps the built-in)."""
    found: dict[str, Callable[[], Factory]] = {name: (lambda t=target: _load_target(t))
                                               for name, target in builtins.items()}
    for ep in metadata.entry_points(group=group):
        if ep.name in builtins:
            if ep.value.replace(" ", "") != builtins[ep.name]:
                logger.warning("entry point %r in %s (%s) shadows a built-in; keeping the built-in",
                               ep.name, group, ep.value)
            continue
        found.setdefault(ep.name, ep.load)
    return found


def available_routers() -> list[str]:
    """Names of every router: built-ins and those registered under the ``rag.routers`` entry point group."""
    return sorted(_registry(ROUTER_GROUP, BUILTIN_ROUTERS))


def available_rewriters() -> list[str]:
    """Names of every rewriter: built-ins and those registered under ``rag.rewriters``."""
    return sorted(_registry(REWRITER_GROUP, BUILTIN_REWRITERS))


def _make(kind: str, group: str, builtins: Mapping[str, str], name: str, context: PluginContext,
          protocol: type) -> Any:
    registry = _registry(group, builtins)
    if name not in registry:
        raise ValueError(f"unknown {kind} {name!r}; available: {', '.join(sorted(registry))} "
                         f"(add more with a {group!r} entry point)")
    obj = registry[name]()(context)
    if not isinstance(obj, protocol):
        method = "route" if kind == "router" else "rewrite"
        raise TypeError(f"{kind} {name!r} ({type(obj).__name__}) has no {method}() method")
    if not getattr(obj, "name", ""):
        try:
            obj.name = name
        except AttributeError:  # pragma: no cover - slotted or frozen third-party objects
            pass
    return obj


def make_router(name: str, context: PluginContext | None = None) -> Router:
    """The router registered as ``name``, built from ``context``; ValueError lists the names."""
    return _make("router", ROUTER_GROUP, BUILTIN_ROUTERS, name, context or PluginContext(), Router)  # type: ignore[no-any-return]


def make_rewriter(name: str, context: PluginContext | None = None) -> QueryRewriter:
    """The rewriter registered as ``name``, built from ``context``; ValueError lists the names."""
    return _make("rewriter", REWRITER_GROUP, BUILTIN_REWRITERS, name, context or PluginContext(),  # type: ignore[no-any-return]
                 QueryRewriter)


def plugin_name(obj: object) -> str:
    """A plugin's ``name`` attribute, else its class name."""
    return str(getattr(obj, "name", "") or type(obj).__name__)
