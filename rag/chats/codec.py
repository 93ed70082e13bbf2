"""An :class:`~rag.types.Answer` as a JSON-ready dict and back, for saved chats.

Everything but the trace comes back as it was: the text, citations (chunk, score, cited span),
sources, support marks and :class:`~rag.types.Diagnostics` (withheld hits included).  The trace is
saved as :meth:`~rag.answer.trace.Trace.to_dict` (for the JSON export) and loads as ``None``.

Example:
    >>> from rag.types import Answer, Chunk, Citation
    >>> c = Chunk("c1", "Open the valve. Fill it.", "d", "pump.md", 2, 10, 34, 0)
    >>> a = Answer(question="how?", text="Fill it [1].", citations=(Citation(1, c, 0.5, 26, 34),))
    >>> answer_from_dict(answer_to_dict(a)) == a
    True
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Mapping

from rag.types import Answer, Chunk, Citation, Diagnostics, Hit, SentenceSupport


def _num(x: Any) -> Any:
    """numpy scalars as plain numbers (``json`` cannot write them)."""
    return x.item() if hasattr(x, "item") else x


def citation_to_dict(c: Citation) -> dict[str, Any]:
    return {"number": c.number, "chunk": c.chunk.to_dict(), "score": _num(c.score), "start": c.start, "end": c.end}


def citation_from_dict(d: Mapping[str, Any]) -> Citation:
    return Citation(int(d["number"]), Chunk.from_dict(d["chunk"]), float(d["score"]), d.get("start"), d.get("end"))


def hit_to_dict(h: Hit) -> dict[str, Any]:
    return {"chunk": h.chunk.to_dict(), "score": _num(h.score), "rank": h.rank,
            "scores": {k: _num(v) for k, v in h.scores.items()}}


def hit_from_dict(d: Mapping[str, Any]) -> Hit:
    return Hit(Chunk.from_dict(d["chunk"]), float(d["score"]), int(d["rank"]), dict(d.get("scores", {})))


def diagnostics_to_dict(d: Diagnostics) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(d):
        v = getattr(d, f.name)
        if f.name == "withheld":
            v = [hit_to_dict(h) for h in v]
        elif isinstance(v, tuple):
            v = [list(x) if isinstance(x, tuple) else _num(x) for x in v]
        elif isinstance(v, Mapping):
            v = {k: _num(x) for k, x in v.items()}
        else:
            v = _num(v)
        out[f.name] = v
    return out


def diagnostics_from_dict(d: Mapping[str, Any]) -> Diagnostics:
    """Keys this version does not know (written by a newer one) are ignored."""
    kw: dict[str, Any] = {}
    for f in fields(Diagnostics):
        if f.name not in d:
            continue
        v = d[f.name]
        if f.name == "withheld":
            v = tuple(hit_from_dict(h) for h in v)
        elif isinstance(v, list):
            v = tuple(tuple(x) if isinstance(x, list) else x for x in v)
        elif isinstance(v, Mapping):
            v = dict(v)
        kw[f.name] = v
    return Diagnostics(**kw)


def answer_to_dict(a: Answer) -> dict[str, Any]:
    return {
        "question": a.question, "text": a.text, "mode": str(a.mode), "grounded": a.grounded,
        "standalone_query": a.standalone_query,
        "citations": [citation_to_dict(c) for c in a.citations],
        "sources": [citation_to_dict(c) for c in a.sources],
        "support": [{"sentence": s.sentence, "citation": s.citation, "similarity": _num(s.similarity),
                     "supported": bool(s.supported)} for s in a.support],
        "diagnostics": diagnostics_to_dict(a.diagnostics),
        "trace": a.trace.to_dict() if a.trace is not None else None,
    }


def answer_from_dict(d: Mapping[str, Any]) -> Answer:
    """The saved answer (its trace is not restored: ``trace`` is ``None``)."""
    return Answer(
        question=str(d["question"]), text=str(d["text"]), mode=d.get("mode", "generative"),
        grounded=bool(d.get("grounded", True)), standalone_query=str(d.get("standalone_query", "")),
        citations=tuple(citation_from_dict(c) for c in d.get("citations", [])),
        sources=tuple(citation_from_dict(c) for c in d.get("sources", [])),
        support=tuple(SentenceSupport(str(s["sentence"]), s.get("citation"), float(s["similarity"]),
                                      bool(s["supported"])) for s in d.get("support", [])),
        diagnostics=diagnostics_from_dict(d.get("diagnostics", {})))
