"""Grounded, cited answers: plan (route -> rewrite -> retrieve -> gate), then answer with a strategy.

:class:`Answerer` composes the pieces, each a stage of its own:

* :class:`~rag.answer.planner.QueryPlanner`: the router, the query rewriter, retrieval over the
  routed collection and the relevance gate, recorded in a :class:`~rag.answer.trace.Trace`;
* an answer strategy (:mod:`rag.answer.strategies`): generative (cited prompt, generation,
  citation and support check) or extractive (quotes, no LLM);
* :class:`~rag.answer.strategies.DirectStrategy` for a direct route (small talk);
* the fixed "not in your documents" reply when no hit passes the gate (the LLM is not called).

Build one with :func:`rag.pipeline.build`, which reads a :class:`~rag.pipeline.PipelineConfig`.
"""

from __future__ import annotations

import logging
from typing import Collection

from rag.answer.planner import History, QueryPlanner
from rag.answer.strategies import AnswerStrategy, DirectStrategy, not_found
from rag.answer.stream import AnswerStream, single
from rag.types import Answer

logger = logging.getLogger(__name__)


class Answerer:
    """Answer questions from an index with numbered, checked citations.

    Args:
        planner: routes, rewrites, retrieves and gates (:class:`~rag.answer.planner.QueryPlanner`).
        strategy: answers from the relevant hits (:class:`~rag.answer.strategies.GenerativeStrategy`
            or :class:`~rag.answer.strategies.ExtractiveStrategy`).
        direct: answers a direct route (default: the fixed reply, no LLM).

    Example (runs the real models)::

        from rag.index.store import IndexStore
        from rag.pipeline import PipelineConfig, build
        with build(PipelineConfig(index="docs"), IndexStore()) as pipeline:
            stream = pipeline.answerer.stream("How do I prime the pump?")
            for piece in stream:
                print(piece, end="", flush=True)
            for c in stream.answer.citations:
                print(f"[{c.number}] {c.chunk.location}")
    """

    def __init__(self, planner: QueryPlanner, strategy: AnswerStrategy, direct: DirectStrategy | None = None) -> None:
        if not hasattr(planner, "plan"):
            raise ValueError(f"planner must have a plan(question, history) method, got {planner!r}")
        if not hasattr(strategy, "stream"):
            raise ValueError(f"strategy must have a stream(plan, history) method, got {strategy!r}")
        self.planner = planner
        self.strategy = strategy
        self.direct = direct or DirectStrategy()

    def answer(self, question: str, history: History = (), *, documents: Collection[str] | None = None) -> Answer:
        """The complete answer (generation not streamed); ``documents`` as in :meth:`stream`."""
        return self.stream(question, history, documents=documents).answer

    def stream(self, question: str, history: History = (), *,
               documents: Collection[str] | None = None) -> AnswerStream:
        """Retrieve now, then stream the answer text; ``.answer`` holds the final :class:`~rag.types.Answer`.

        ``documents`` answers from those documents of the collection only (source paths, as the
        index records them or relative to its common folder; None: every document); an unknown
        one is a ValueError naming it.
        """
        plan = self.planner.plan(question, history, documents=documents)
        if plan.direct:
            return self.direct.stream(plan, history)
        if not plan.relevant:
            return single(not_found(plan, self.strategy.mode), plan.query)
        return self.strategy.stream(plan, history)
