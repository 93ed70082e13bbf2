"""Example plugins for rag: a router and a query rewriter registered as entry points.

Each entry point names a factory taking a :class:`rag.plugins.base.PluginContext`.

Example:
    >>> PrefixRouter().route("@manuals how do I prime the pump?").collection
    'manuals'
    >>> [q.text for q in SynonymRewriter().rewrite("How to fix the car?").queries]
    ['How to fix the car?', 'How to fix the car? automobile vehicle repair']
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

from rag.plugins import PluginContext, Rewrite, Route, SearchQuery

__all__ = ["PrefixRouter", "SynonymRewriter"]

_PREFIX = re.compile(r"^\s*@([A-Za-z0-9_][A-Za-z0-9_.-]{0,63})\b")
SYNONYMS: Mapping[str, tuple[str, ...]] = {
    "car": ("automobile", "vehicle"),
    "fix": ("repair",),
    "pump": ("impeller",),
    "start": ("prime",),
}


class PrefixRouter:
    """``@collection question`` -> that collection; otherwise no preference."""

    name = "example-prefix"

    @classmethod
    def from_context(cls, context: PluginContext) -> "PrefixRouter":
        return cls()

    def route(self, query: str, history: Sequence[Mapping[str, str]] = ()) -> Route:
        m = _PREFIX.match(query)
        if m is None:
            return Route.default("no @collection prefix", router=self.name)
        return Route.to(m.group(1), f"prefix @{m.group(1)}", 1.0, router=self.name)


class SynonymRewriter:
    """The question, plus (if any word has synonyms) the question with its synonyms appended."""

    name = "example-synonyms"

    def __init__(self, synonyms: Mapping[str, Sequence[str]] | None = None) -> None:
        table = SYNONYMS if synonyms is None else synonyms
        if not all(isinstance(v, (list, tuple)) for v in table.values()):
            raise ValueError("synonyms must map a word to a list of synonyms")
        self.synonyms = {k.lower(): tuple(v) for k, v in table.items()}

    @classmethod
    def from_context(cls, context: PluginContext) -> "SynonymRewriter":
        return cls(context.options.get("synonyms"))

    def rewrite(self, query: str, history: Sequence[Mapping[str, str]] = ()) -> Rewrite:
        text = _PREFIX.sub("", query).strip() or query
        extra = [s for w in re.findall(r"[a-z]+", text.lower()) for s in self.synonyms.get(w, ())]
        queries = [SearchQuery(text)]
        if extra:
            queries.append(SearchQuery(f"{text} {' '.join(dict.fromkeys(extra))}", kind="synonyms"))
        return Rewrite(queries=tuple(queries), method="example-synonyms", standalone=text)
