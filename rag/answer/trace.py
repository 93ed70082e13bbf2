"""What happened to a question before generation: rewrites, route, per-query hits, timings.

A :class:`Trace` travels on ``Answer.trace``; ``rag ask --trace`` prints
:meth:`Trace.format`, the UI shows :meth:`Trace.to_dict` in a "Trace" expander, and
``rag eval retrieval --rewriters ... --out DIR`` writes one per query to ``traces.jsonl``.

Example:
    >>> from rag.plugins.base import Route, SearchQuery
    >>> t = Trace(query="hi there", rewriter="none", rewrite_method="none", queries=(SearchQuery("hi there"),),
    ...           router="chitchat", route=Route.direct("greeting"), timings={"route_s": 0.001})
    >>> print(t.format())  # doctest: +NORMALIZE_WHITESPACE
    query: hi there
    router chitchat -> direct (greeting)
    rewriter none (none): 1 query
      q1 [original] hi there
    timings: route 1.0 ms
    >>> t.to_dict()["route"]["action"]
    'direct'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

from rag.plugins.base import Route, RouteAction, SearchQuery
from rag.retrieval.multi_query import QueryTrace, TraceHit


@dataclass(frozen=True)
class Trace:
    """Every pre-generation step of one question (frozen; change with ``dataclasses.replace``).

    ``retrievals`` has one entry per search query (per-retriever hits with all scores);
    ``fused`` is the merged list (RRF over the queries when there are several);
    ``timings`` holds seconds per step (``route_s``, ``rewrite_s``, ``retrieve_s``, ``fuse_s``,
    ``generate_s``); ``notes`` records fallbacks (bad LLM output, unknown collection).
    """

    query: str
    rewriter: str
    rewrite_method: str
    queries: tuple[SearchQuery, ...]
    router: str | None = None
    route: Route | None = None
    collection: str = ""
    retrievals: tuple[QueryTrace, ...] = ()
    fused: tuple[TraceHit, ...] = ()
    timings: Mapping[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    raw: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (floats rounded)."""
        d = asdict(self)
        d["timings"] = {k: round(float(v), 4) for k, v in self.timings.items()}
        return d

    def format(self, max_hits: int = 3) -> str:
        """Human-readable lines for the terminal."""
        lines = [f"query: {self.query}"]
        if self.router is not None and self.route is not None:
            target = "direct" if self.route.action is RouteAction.DIRECT else (self.route.collection or "default collection")
            score = f", score {self.route.score:.3f}" if self.route.score is not None else ""
            who = f" [{self.route.router}]" if self.route.router and self.route.router != self.router else ""
            lines.append(f"router {self.router}{who} -> {target} ({self.route.reason}{score})")
        n = len(self.queries)
        lines.append(f"rewriter {self.rewriter} ({self.rewrite_method}): {n} quer{'y' if n == 1 else 'ies'}")
        for i, q in enumerate(self.queries, 1):
            lines.append(f"  q{i} [{q.kind}] {_one_line(q.text)}" + (f"  | dense: {_one_line(q.dense)}"
                                                                      if q.dense else ""))
        for i, r in enumerate(self.retrievals, 1):
            lines.append(f"retrieval q{i} on {r.collection} ({r.retriever}, {1000 * r.seconds:.1f} ms):")
            lines += [f"    {h.rank:>2}. {h.score:.4f} {h.location}  {_scores(h.scores)}" for h in r.hits[:max_hits]]
        if len(self.retrievals) > 1 and self.fused:
            lines.append("fused (RRF over queries):")
            lines += [f"    {h.rank:>2}. {h.score:.4f} {h.location}" for h in self.fused[:max_hits]]
        lines += [f"note: {n}" for n in self.notes]
        if self.timings:
            lines.append("timings: " + ", ".join(f"{k.removesuffix('_s')} {1000 * v:.1f} ms"
                                                 for k, v in self.timings.items()))
        return "\n".join(lines)


def _one_line(text: str, n: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= n else flat[:n] + "…"


def _scores(scores: Mapping[str, float]) -> str:
    return " ".join(f"{k}={v:.4f}" for k, v in scores.items())
