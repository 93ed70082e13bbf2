"""``rag search``: ranked chunks for a query, with every retrieval option of the pipeline.

Example:
    >>> import argparse
    >>> sub = argparse.ArgumentParser(prog="rag").add_subparsers(dest="command")
    >>> add_commands(sub)
    >>> a = sub.choices["search"].parse_args(["pump", "--fusion", "weighted", "--alpha", "0.7"])
    >>> a.fusion, a.alpha, a.k, a.doc
    ('weighted', 0.7, 5, None)
    >>> sub.choices["search"].parse_args(["pump", "--doc", "faq.md", "--doc", "guide.md"]).doc
    ['faq.md', 'guide.md']
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rag.cli.common import add_index_args, add_retrieval_args, add_scope_args, retrieval_config, store


def cmd_search(args: argparse.Namespace) -> int:
    from rag.pipeline import build_retriever, resolve_reranker

    s = store(args)
    index = s.load(args.index)
    config = retrieval_config(args)
    retriever = build_retriever(config, index, reranker=resolve_reranker(config.reranker, s.path(args.index)))
    hits = retriever.retrieve(args.query, k=config.k, documents=args.doc)
    if args.format == "json":
        print(json.dumps([{"rank": h.rank, "score": h.score, "scores": dict(h.scores), **h.chunk.to_dict()}
                          for h in hits], indent=2, ensure_ascii=False))
        return 0
    if not hits:
        print("no results")
        return 0
    for h in hits:
        page = f"  page {h.chunk.page}" if h.chunk.page is not None else ""
        print(f"{h.rank:>2}. {h.score:.4f}  {h.chunk.source}{page}  [{h.chunk.start}:{h.chunk.end}]")
        snippet = " ".join(h.chunk.text.split())
        print(f"    {snippet[:200]}{'…' if len(snippet) > 200 else ''}")
    return 0


def add_commands(sub: Any) -> None:
    p = sub.add_parser("search", help="ranked chunks for a query")
    p.add_argument("query")
    add_index_args(p)
    add_retrieval_args(p)
    add_scope_args(p)
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_search)
