"""Built-in query routers: where a question goes before retrieval (see :mod:`rag.plugins.base`).

* ``none``: always the default collection (today's behaviour).
* ``chitchat``: greetings, thanks, goodbyes -> a direct answer without retrieval.
* ``rules``: regular expressions -> collection (first match wins).
* ``embedding``: zero-shot; the question is embedded with the index's embedder and compared by
  cosine with each collection's description; the best one above ``threshold`` wins.
* ``llm``: the chat model picks a route, constrained to JSON ``{"route": "<name>"}`` by a
  llama.cpp grammar; output that does not parse or names no route falls back to the default.

Several routers chain with a comma (``--router chitchat,rules``): the first one that decides
(a collection or a direct answer) wins (:class:`RouterChain`).

Example:
    >>> r = build_router("chitchat,rules", PluginContext(options={"rules": {r"\\bpump": "manuals"}}))
    >>> r.route("Thanks a lot!").action, r.route("How do I prime the pump?").collection
    ('direct', 'manuals')
    >>> r.route("What is a turbine?").collection is None
    True
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Mapping, Sequence

import numpy as np

from rag.generation.llm import ChatModel, ContextOverflowError, Message
from rag.plugins.base import PluginContext, Route, Router, make_router, plugin_name
from rag.validate import positive_int

logger = logging.getLogger(__name__)

DIRECT = "direct"  #: rule target / LLM route meaning "answer without retrieval"
DEFAULT_EMBEDDING_THRESHOLD = 0.2
_ROUTE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

CHITCHAT_PATTERNS: tuple[str, ...] = (
    r"(hi|hello|hey|hiya|howdy|greetings|good (morning|afternoon|evening|day))( there| all| everyone)?",
    r"(thanks|thank you|thank u|thx|ty|cheers|many thanks)( (a lot|so much|very much|again))?( for (that|this|the help|your help))?",
    r"(bye|goodbye|good bye|see you|see ya|cya|good night)( later| soon)?",
    r"(how are you|how are you doing|how's it going|what's up|whats up)( today)?",
    r"(ok|okay|cool|great|nice|awesome|perfect|got it|i see|sounds good)( thanks| thank you)?",
    r"(who are you|what are you|what can you do)",
)


def _norm(text: str) -> str:
    text = re.sub(r"[^\w\s']", " ", text.lower())
    return " ".join(text.split())


class DefaultRouter:
    """Always the default collection (``--router none``).

    Example:
        >>> DefaultRouter().route("anything").decided
        False
    """

    name = "none"

    @classmethod
    def from_context(cls, context: PluginContext) -> "DefaultRouter":
        return cls()

    def route(self, query: str, history: Sequence[Message] = ()) -> Route:
        return Route.default("no router", router=self.name)


class ChitChatRouter:
    """Greetings, thanks, goodbyes and small talk get a direct answer, without retrieval.

    The whole message (lower-cased, punctuation removed) must match one of ``patterns``, so
    "thanks, and how do I prime the pump?" still goes to retrieval.

    Example:
        >>> r = ChitChatRouter()
        >>> [r.route(q).action for q in ("Hello!", "thanks so much", "Hi, how do I prime the pump?")]
        ['direct', 'direct', 'retrieve']
    """

    name = "chitchat"

    def __init__(self, patterns: Sequence[str] = CHITCHAT_PATTERNS) -> None:
        if isinstance(patterns, str) or not patterns:
            raise ValueError("patterns must be a non-empty sequence of regular expressions")
        self.patterns = tuple(patterns)
        self._any = _compile("(?:" + "|".join(f"(?:{p})" for p in self.patterns) + r")(?=\s|$)")

    @classmethod
    def from_context(cls, context: PluginContext) -> "ChitChatRouter":
        return cls(tuple(context.options.get("chitchat_patterns", CHITCHAT_PATTERNS)))

    def route(self, query: str, history: Sequence[Message] = ()) -> Route:
        text = _norm(query)
        words = text.split()
        if words and self._is_chitchat(words):
            return Route.direct("chit-chat", 1.0, router=self.name)
        return Route.default("not chit-chat", router=self.name)

    def _is_chitchat(self, words: list[str]) -> bool:
        # every piece between the matches must itself be small talk: greedy segmentation
        text = " ".join(words)
        pos = 0
        while pos < len(text):
            m = self._any.match(text, pos)
            if m is None or m.end() == pos:
                return False
            pos = m.end()
            if pos < len(text):
                if text[pos] != " ":
                    return False
                pos += 1
        return True


class RuleRouter:
    """Regular expressions -> collection; the first pattern found in the question wins.

    A rule's target may be :data:`DIRECT` (``"direct"``) for "answer without retrieval".
    From a context without ``options["rules"]``, each collection gets the rule "its name appears
    as a word" (``"in manuals: how do I ..."`` -> ``manuals``).

    Example:
        >>> r = RuleRouter({r"\\b(pump|valve)s?\\b": "manuals", r"^\\s*joke": "direct"})
        >>> r.route("Which valve primes it?").collection, r.route("joke please").action
        ('manuals', 'direct')
        >>> RuleRouter({"(": "x"})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: rule pattern '(' is not a valid regular expression: ...
    """

    name = "rules"

    def __init__(self, rules: Mapping[str, str] | Sequence[tuple[str, str]], default: str | None = None) -> None:
        items = list(rules.items()) if isinstance(rules, Mapping) else list(rules)
        if not items:
            raise ValueError("rules must not be empty: give {pattern: collection}")
        self.rules: list[tuple[re.Pattern[str], str]] = []
        for pattern, target in items:
            if not isinstance(target, str) or not target:
                raise ValueError(f"rule {pattern!r} needs a collection name or {DIRECT!r}, got {target!r}")
            self.rules.append((_compile(pattern), target))
        self.default = default

    @classmethod
    def from_context(cls, context: PluginContext) -> "RuleRouter":
        rules = context.options.get("rules")
        if not rules:
            rules = {rf"(?<![\w.-]){re.escape(name)}(?![\w-])": name for name in context.collections}
        if not rules:
            raise ValueError("the rules router needs rules ({pattern: collection} in the router config) "
                             "or at least one collection")
        return cls(rules, default=context.options.get("default"))

    def route(self, query: str, history: Sequence[Message] = ()) -> Route:
        for pattern, target in self.rules:
            m = pattern.search(query)
            if m:
                reason = f"rule {pattern.pattern!r} matched {m.group(0)!r}"
                if target == DIRECT:
                    return Route.direct(reason, 1.0, router=self.name)
                return Route.to(target, reason, 1.0, router=self.name)
        if self.default:
            return Route.to(self.default, "no rule matched; configured default", router=self.name)
        return Route.default("no rule matched", router=self.name)


class EmbeddingRouter:
    """Zero-shot routing by cosine between the question and each route's description.

    Descriptions are embedded once (lazily) with the same embedder as the index, so a route is
    only a sentence or two ("pump and turbine maintenance manuals").  The best route wins if its
    cosine is at least ``threshold`` (0.2 by default: with all-MiniLM-L6-v2 a related
    question/description pair typically scores 0.25-0.6, an unrelated one below 0.15); otherwise
    ``default`` (None: the default collection).  A route named :data:`DIRECT` whose description
    lists small talk sends matching messages to a direct answer.

    Example (runs the real embedder)::

        r = EmbeddingRouter(Embedder(), {"manuals": "pump and turbine maintenance manuals",
                                         "recipes": "cooking recipes and ingredients"})
        r.route("How do I prime the pump?").collection   # 'manuals'
    """

    name = "embedding"

    def __init__(self, embedder: Any, routes: Mapping[str, str], threshold: float = DEFAULT_EMBEDDING_THRESHOLD,
                 default: str | None = None) -> None:
        if embedder is None or not hasattr(embedder, "encode"):
            raise ValueError(f"embedder must have an encode() method, got {embedder!r}")
        if not routes:
            raise ValueError("routes must not be empty: give {collection: description}")
        bad = [n for n, d in routes.items() if not isinstance(d, str) or not d.strip()]
        if bad:
            raise ValueError(f"route descriptions must be non-empty strings; empty for {bad}")
        if not -1.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be a cosine in [-1, 1], got {threshold!r}")
        self.embedder = embedder
        self.routes = dict(routes)
        self.threshold = float(threshold)
        self.default = default
        self._matrix: np.ndarray | None = None

    @classmethod
    def from_context(cls, context: PluginContext) -> "EmbeddingRouter":
        routes = context.options.get("descriptions") or context.collections
        embedder = context.embedder
        if embedder is None:
            from rag.embedding import Embedder  # noqa: PLC0415

            embedder = Embedder()
        return cls(embedder, routes, float(context.options.get("threshold", DEFAULT_EMBEDDING_THRESHOLD)),
                   context.options.get("default"))

    def route(self, query: str, history: Sequence[Message] = ()) -> Route:
        if self._matrix is None:
            self._matrix = np.asarray(self.embedder.encode(list(self.routes.values())), dtype=np.float32)
        q = np.asarray(self.embedder.encode([query])[0], dtype=np.float32)
        sims = self._matrix @ q
        best = int(np.argmax(sims))
        name, score = list(self.routes)[best], float(sims[best])
        if score >= self.threshold:
            reason = f"closest description (cosine {score:.3f} >= {self.threshold})"
            if name == DIRECT:
                return Route.direct(reason, score, router=self.name)
            return Route.to(name, reason, score, router=self.name)
        reason = f"best cosine {score:.3f} ({name}) below threshold {self.threshold}"
        if self.default:
            return Route.to(self.default, reason, score, router=self.name)
        return Route(action="retrieve", collection=None, reason=reason, score=score, router=self.name)


ROUTER_SYSTEM = ("You route questions to the document collection that can answer them. "
                 "Reply with JSON only.")


def route_grammar(names: Sequence[str]) -> str:
    """GBNF grammar for ``{"route": "<one of names>"}`` (llama.cpp ``grammar=``).

    Example:
        >>> print(route_grammar(["manuals", "direct"]).splitlines()[1])
        route ::= "\\"manuals\\"" | "\\"direct\\""
    """
    bad = [n for n in names if not _ROUTE_NAME.match(n)]
    if not names or bad:
        raise ValueError(f"route names must be letters, digits, '_', '-', '.'; got {bad or names!r}")
    alts = " | ".join('"\\"' + n + '\\""' for n in names)
    return ('root ::= "{" ws "\\"route\\"" ws ":" ws route ws "}"\n'
            f"route ::= {alts}\n"
            'ws ::= " "?\n')


class LLMRouter:
    """The chat model picks a route, as JSON constrained by a llama.cpp grammar.

    Prompted with the routes' descriptions; the reply must be ``{"route": "<name>"}`` with a
    known name (the grammar forces that on llama.cpp; other backends may ignore it, so the reply
    is validated anyway).  Unparseable output or an unknown name falls back to ``default``
    (None: the default collection) with the reason in the route.  ``allow_direct`` adds the
    route ``direct`` (answer without retrieval); off by default because a tiny model over-uses it.

    Example:
        >>> from rag.generation.llm import ScriptedLLM
        >>> routes = {"manuals": "pump manuals", "recipes": "cooking recipes"}
        >>> LLMRouter(ScriptedLLM(['{"route": "recipes"}']), routes).route("How long to boil an egg?").collection
        'recipes'
        >>> r = LLMRouter(ScriptedLLM(["recipes, I think"]), routes).route("How long to boil an egg?")
        >>> r.collection is None, r.reason.startswith("unparseable")
        (True, True)
    """

    name = "llm"

    def __init__(self, llm: ChatModel | None, routes: Mapping[str, str], default: str | None = None,
                 allow_direct: bool = False, max_tokens: int = 24) -> None:
        if llm is None:
            raise ValueError("router 'llm' needs a language model; choose a generative answer mode or "
                             "another router (none, chitchat, rules, embedding)")
        if not routes:
            raise ValueError("routes must not be empty: give {collection: description}")
        if DIRECT in routes:
            raise ValueError(f"{DIRECT!r} is reserved for answers without retrieval; rename that route")
        positive_int("max_tokens", max_tokens)
        self.llm = llm
        self.routes = dict(routes)
        self.default = default
        self.allow_direct = bool(allow_direct)
        self.max_tokens = max_tokens
        self.names = [*self.routes, *([DIRECT] if self.allow_direct else [])]
        self.grammar = route_grammar(self.names)

    @classmethod
    def from_context(cls, context: PluginContext) -> "LLMRouter":
        return cls(context.llm, context.options.get("descriptions") or context.collections,
                   context.options.get("default"), bool(context.options.get("allow_direct", False)))

    def messages(self, query: str) -> list[dict[str, str]]:
        lines = [f"- {n}: {' '.join(d.split())[:300]}" for n, d in self.routes.items()]
        if self.allow_direct:
            lines.append(f"- {DIRECT}: greetings, thanks and small talk that need no documents")
        return [{"role": "system", "content": ROUTER_SYSTEM},
                {"role": "user", "content": "Routes:\n" + "\n".join(lines) +
                 f"\n\nQuestion: {query}\n\nReply as {{\"route\": \"<route name>\"}}."}]

    def route(self, query: str, history: Sequence[Message] = ()) -> Route:
        try:
            raw = self.llm.chat(self.messages(query), max_tokens=self.max_tokens, temperature=0.0,
                                grammar=self.grammar)
        except ContextOverflowError:
            return self._fallback("route descriptions too long for the model's context")
        try:
            choice = json.loads(raw.strip())["route"]
        except (ValueError, KeyError, TypeError):
            logger.info("LLM router output not JSON: %r", raw)
            return self._fallback(f"unparseable router output {raw[:60]!r}")
        if choice not in self.names:
            return self._fallback(f"unknown route {choice!r} (choices: {', '.join(self.names)})")
        if choice == DIRECT:
            return Route.direct("LLM chose direct", router=self.name)
        return Route.to(str(choice), "LLM choice", router=self.name)

    def _fallback(self, reason: str) -> Route:
        if self.default:
            return Route.to(self.default, reason, router=self.name)
        return Route.default(reason, router=self.name)


class RouterChain:
    """Ask routers in order; the first that decides (a collection or direct) wins.

    Example:
        >>> chain = RouterChain([ChitChatRouter(), RuleRouter({"pump": "manuals"})])
        >>> chain.route("hello").router, chain.route("pump?").router, chain.route("other").reason
        ('chitchat', 'rules', 'no router decided')
    """

    def __init__(self, routers: Sequence[Router]) -> None:
        if not routers:
            raise ValueError("RouterChain needs at least one router")
        self.routers = list(routers)
        self.name = ",".join(plugin_name(r) for r in self.routers)

    def route(self, query: str, history: Sequence[Message] = ()) -> Route:
        for router in self.routers:
            route = router.route(query, history)
            if route.decided:
                return route
        return Route.default("no router decided", router=self.name)


def build_router(spec: str, context: PluginContext | None = None) -> Router:
    """``"name"`` or ``"a,b,c"`` (a :class:`RouterChain`) built by :func:`rag.plugins.base.make_router`."""
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        raise ValueError(f"router spec must name at least one router, got {spec!r}")
    routers = [make_router(n, context) for n in names]
    return routers[0] if len(routers) == 1 else RouterChain(routers)


def describe_collection(name: str, titles: Sequence[str], limit: int = 12) -> str:
    """A route description from a collection's name and document titles.

    Example:
        >>> describe_collection("manuals", ["Pump manual", "Turbine care", "Pump manual"])
        'manuals: Pump manual; Turbine care'
    """
    uniq = list(dict.fromkeys(t.strip() for t in titles if t and t.strip()))[:limit]
    return f"{name}: {'; '.join(uniq)}" if uniq else name


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"rule pattern {pattern!r} is not a valid regular expression: {exc}") from None
