"""An answer's path as readable steps (the app's "Trace" expander) and its timings as one line.

:func:`trace_outline` lays out the question, route, rewrites, hits per retriever, relevance gate,
prompt, answer decision, citations and timings as ``(depth, label, text)``; :func:`trace_markdown`
renders that list inert; :func:`timing_caption` sums up where the seconds went.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from rag.answer.gate import DEFAULT_MIN_DENSE
from rag.ui.text import md

_TIMING_LABELS = {"load_s": "loading models", "route_s": "route", "rewrite_s": "rewrite", "retrieve_s": "search",
                  "fuse_s": "fusion", "evidence_s": "evidence", "answer_check_s": "answer decision",
                  "generate_s": "writing", "check_s": "checking sources", "total_s": "total"}
# listed in this order (the labels' order), whatever order the steps recorded them in
Step = tuple[int, str, str]  # (depth, label, text)


def _ms(seconds: float) -> str:
    return f"{1000 * seconds:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _scores_text(scores: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {v:.3f}" if k == "dense" else f"{k} {v:.4g}" for k, v in scores.items())


def trace_outline(answer: object, describe: "Callable[[str, str], str] | None" = None,
                  app_timings: Mapping[str, float] | None = None) -> list[Step]:
    """An answer's path as ``(depth, label, text)``: query, route, rewrites, hits per retriever, gate, prompt, timings.

    ``label`` is fixed wording; ``text`` holds untrusted strings (the query, file names) and must
    be escaped by whoever renders it. ``describe(chunk_id, location)`` names a hit (default: its
    recorded location); ``app_timings`` adds what the app measured (``load_s``, ``check_s``, ``total_s``).

    Example:
        >>> from rag.types import Answer, Diagnostics
        >>> steps = trace_outline(Answer(question="q?", text="a", diagnostics=Diagnostics(retrieved=5, relevant=2)))
        >>> [label for _, label, _ in steps]
        ['Question', 'Relevance gate']
        >>> steps[1][2]
        '2 of 5 passages are relevant enough to answer from'
    """
    name = describe or (lambda _cid, location: location)
    trace = getattr(answer, "trace", None)
    d = answer.diagnostics  # type: ignore[attr-defined]
    steps: list[Step] = [(0, "Question", answer.question)]  # type: ignore[attr-defined]
    if trace is not None:
        steps += _search_steps(trace, name)
    steps += _answer_steps(d)
    timings = {**(trace.timings if trace is not None else {}), **d.timings, **(app_timings or {})}
    shown = [(k, timings[k]) for k in _TIMING_LABELS if k in timings]
    if shown:
        steps.append((0, "Timings", " · ".join(f"{_TIMING_LABELS[k]} {_ms(float(v))}" for k, v in shown)))
    for note in (trace.notes if trace is not None else ()):
        steps.append((0, "Note", note))
    return steps


def _search_steps(trace: Any, name: Callable[[str, str], str]) -> list[Step]:
    """Route, rewrites, the hits of each search and their fusion."""
    steps: list[Step] = []
    if trace.router is not None and trace.route is not None:
        route = trace.route
        target = "answer directly" if str(route.action) == "direct" else (route.collection or "default collection")
        score = f", score {route.score:.3f}" if route.score is not None else ""
        steps.append((0, "Route", f"{trace.router} → {target} ({route.reason}{score})"))
    n = len(trace.queries)
    steps.append((0, "Rewrite", f"{trace.rewriter} ({trace.rewrite_method}), {n} quer{'y' if n == 1 else 'ies'}"))
    for i, q in enumerate(trace.queries, 1):
        steps.append((1, f"q{i} ({q.kind})", q.text + (f" | dense side: {q.dense}" if q.dense else "")))
    for i, r in enumerate(trace.retrievals, 1):
        steps.append((0, f"Search q{i}", f"{r.retriever} on {r.collection}, {len(r.hits)} hits, {_ms(r.seconds)}"))
        for h in r.hits:
            steps.append((1, f"#{h.rank}", f"{name(h.chunk_id, h.location)} ({_scores_text(h.scores)})"))
    if len(trace.retrievals) > 1 and trace.fused:
        steps.append((0, "Fused over the queries (RRF)", f"{len(trace.fused)} hits"))
        for h in trace.fused:
            steps.append((1, f"#{h.rank}", f"{name(h.chunk_id, h.location)} ({_scores_text(h.scores)})"))
    return steps


def _answer_steps(d: Any) -> list[Step]:
    """Relevance gate, prompt, answer decision and check, citations (from the answer's diagnostics)."""
    steps: list[Step] = []
    if d.retrieved or d.relevant:
        steps.append((0, "Relevance gate",
                      f"{d.relevant} of {d.retrieved} passages are relevant enough to answer from"))
        if d.top_dense is not None:
            steps.append((1, "best dense cosine", f"{d.top_dense:.3f} (gate {DEFAULT_MIN_DENSE:g})"))
    if d.reason:
        steps.append((1, "outcome", d.reason))
    if d.prompt_tokens:
        extra = (f", {d.chunks_dropped} dropped for the token budget" if d.chunks_dropped else "") + \
                (", the last one truncated" if d.truncated else "")
        steps.append((0, "Prompt", f"{d.prompt_tokens} tokens, {d.sources_in_prompt} sources{extra}"))
    if d.decision:
        said = {"answer": "the sources answer the question", "contradicted": "the sources contradict the question's "
                "premise: answered No", "not found": "the sources do not answer the question: declined"}
        score = f" (score {d.decision_score:+.2f}, threshold {d.decision_threshold:+.2f})" \
            if d.decision_score is not None and d.decision_threshold is not None else ""
        steps.append((0, "Answer decision", f"{said.get(d.decision, d.decision)}{score}"))
        steps.append((1, "rule", d.decision_rule))
    if d.answer_check is not None:
        steps.append((1 if d.decision else 0, "Answer check",
                      f"the model's log-odds that the sources answer the question, beyond a content-free one: "
                      f"{d.answer_check:+.2f}"))
    cites = [(label, nums) for label, nums in (("cited by the model", d.explicit_citations),
                                                ("matched by the support check", d.inferred_citations),
                                                ("removed (no such source)", d.invalid_citations)) if nums]
    if cites:
        steps.append((0, "Citations",
                      "; ".join(f"{label} {', '.join(f'[{n}]' for n in nums)}" for label, nums in cites)))
    return steps


def trace_markdown(steps: list[Step]) -> str:
    """The outline as a nested Markdown list: labels bold, every text rendered inert.

    Example:
        >>> print(trace_markdown([(0, "Question", "what is *x*?"), (1, "#1", "faq.md")]))
        - **Question**: what is \\*x\\*?
            - **#1**: faq\\.md
    """
    return "\n".join(f"{'    ' * depth}- **{label}**{': ' + md(text) if text else ''}" for depth, label, text in steps)


def timing_caption(timing: Mapping[str, float]) -> str:
    """"4.2 s in total: loading the model 2.9 s · searching 0.1 s · writing 0.9 s · checking sources 0.3 s".

    Example:
        >>> timing_caption({"total_s": 1.04, "load_s": 0.6, "search_s": 0.01, "write_s": 0.4})
        ':material/timer: 1.0 s in total: loading models 0.6 s · writing 0.4 s'
    """
    steps = [(label, timing[k]) for k, label in (("load_s", "loading models"), ("search_s", "searching"),
                                                 ("write_s", "writing"), ("check_s", "checking sources"))
             if timing.get(k, 0.0) >= 0.05]
    parts = " · ".join(f"{label} {v:.1f} s" for label, v in steps)
    return f":material/timer: {timing['total_s']:.1f} s in total" + (f": {parts}" if parts else "")
