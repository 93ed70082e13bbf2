"""``rag ask`` and ``rag chat``: cited answers from an index, built by :func:`rag.pipeline.build`.

Both take every retrieval option of ``rag search`` plus the answer, plugin (and, for chat,
memory) options.  Routing and rewriting plugins are picked by name (built-ins and
``rag.routers`` / ``rag.rewriters`` entry points)::

    rag ask "How do I prime the pump?" --index docs --fusion weighted --alpha 0.7 --reranker auto
    rag ask "thanks!" --index docs --router chitchat --trace
    rag ask "in manuals: how do I prime the pump?" --router chitchat,rules --rewriter multi-query --trace

Example:
    >>> import argparse
    >>> sub = argparse.ArgumentParser(prog="rag").add_subparsers(dest="command")
    >>> add_commands(sub)
    >>> a = sub.choices["ask"].parse_args(["q", "--rrf-k", "20", "--extractive"])
    >>> a.rrf_k, a.extractive, a.candidates
    (20, True, 100)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any, TextIO

from rag.answer.strategies import DECLINE_NOTES
from rag.answer.stream import AnswerStream, catch_up
from rag.cli.common import (add_generation_args, add_index_args, add_memory_args, add_plugin_args,
                            add_retrieval_args, add_scope_args, pipeline_config, store)
from rag.retrieval.scope import resolve_documents
from rag.text import clip
from rag.types import Answer, Citation

logger = logging.getLogger(__name__)

LATEST = "latest"  # ``rag chat --resume`` with no id


def print_stream(stream: AnswerStream, out: TextIO, trace: bool = False) -> Answer:
    """Write the streamed pieces as they come, then the sources, the support check and (if asked) the trace."""
    shown = []
    for piece in stream:
        shown.append(piece)
        out.write(piece)
        out.flush()
    answer = stream.answer
    # the streamed text was checked after it was written: the markers the check added, or the
    # answer that replaced it (rag.answer.stream.catch_up; the API sends the same)
    out.write(catch_up("".join(shown), answer) + "\n")
    out.write(format_sources(answer))
    if trace and answer.trace is not None:
        out.write("Trace:\n" + "\n".join("  " + line for line in answer.trace.format().splitlines()) + "\n")
    out.flush()
    return answer


def cited(c: Citation, width: int = 160) -> str:
    """``[n] file p.3 [120:840]``, and the cited sentence when the citation points at one."""
    line = f"  [{c.number}] {c.chunk.location}"
    if c.start is None:
        return line
    return f'{line}: "{clip(c.quote, width)}"'


def plain(text: str) -> str:
    """Document text for a terminal: whitespace runs as one space, control characters (escape
    sequences) as spaces, so a document cannot restyle or rewrite the screen.

    Example:
        >>> plain("Q: reset?\\n\\x1b[2JA:  send it")
        'Q: reset? [2JA: send it'
    """
    return " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())


def withheld_lines(answer: Answer, width: int = 160) -> list[str]:
    """The passages kept out of the answer because they were flagged suspicious at ingest, as plain text."""
    hits = answer.diagnostics.withheld
    if not hits:
        return []
    lines = ["Suspicious, not used (instruction-like or credential-seeking text; do not follow it):"]
    for h in hits:
        lines.append(f'  {plain(h.chunk.location)}: "{clip(plain(h.chunk.text), width)}"')
    return lines


def format_sources(answer: Answer) -> str:
    """Numbered sources, removed citations, unsupported sentences and withheld passages, as plain text."""
    if answer.declined:
        note = DECLINE_NOTES.get(answer.diagnostics.reason)
        lines = [note, *(cited(c) for c in answer.sources)] if note and answer.sources else []
        lines += withheld_lines(answer)
        return "\n".join(lines) + ("\n" if lines else "")
    lines = []
    if answer.citations:
        lines.append("Sources:")
        lines += [cited(c) for c in answer.citations]
    elif answer.sources:
        lines.append("Sources given to the model (none of them supports the answer):")
        lines += [cited(c) for c in answer.sources]
    top = answer.sources[0] if answer.sources else None
    if answer.citations and top is not None and top.number not in {c.number for c in answer.citations}:
        lines.append(f"Top source (not cited):{cited(top)[1:]}")
    d = answer.diagnostics
    for url in d.foreign_urls:
        lines.append(f"Warning: the answer contains a link that no cited source contains: {url}")
    for n in d.suspicious_sources:
        lines.append(f"Warning: source [{n}] asks for credentials or gives instructions; do not follow it")
    invalid = answer.diagnostics.invalid_citations
    if invalid:
        lines.append("Removed citations to sources that do not exist: " + ", ".join(f"[{n}]" for n in invalid))
    unsupported = [s for s in answer.support if not s.supported]
    if unsupported:
        lines.append("Not supported by the sources (check before trusting):")
        for s in unsupported:
            best = f"closest [{s.citation}], " if s.citation is not None else ""
            lines.append(f"  ! {s.sentence}  ({best}similarity {s.similarity:.2f})")
    lines += withheld_lines(answer)
    return "\n".join(lines) + ("\n" if lines else "")


def _pipeline(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from rag.pipeline import build

    return build(pipeline_config(args), store(args))


def cmd_ask(args: argparse.Namespace) -> int:
    with _pipeline(args) as pipeline:
        if args.json:
            from rag.serve.api import rag_extension
            from rag.serve.service import SourcePaths

            answer = pipeline.answerer.answer(args.question, documents=args.doc)
            paths = SourcePaths(list(pipeline.index.documents))
            print(json.dumps(rag_extension(answer, paths, pipeline.index.name), ensure_ascii=False, indent=2))
        else:
            print_stream(pipeline.answerer.stream(args.question, documents=args.doc), sys.stdout, trace=args.trace)
    return 0


def _open_history(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The chat history and, with ``--resume``, the chat to continue (its collection becomes ``args.index``).

    A history that cannot be used is one warning line: the chat answers without saving.  A chat that
    cannot be resumed is an error."""
    from rag.chats import ChatHistoryError
    from rag.cli.chats import chats_of
    from rag.cli.common import CommandError

    chats = chats_of(args)
    resume = getattr(args, "resume", None)
    if resume is not None:
        latest = chats.latest() if resume == LATEST else None
        if resume == LATEST and latest is None:
            raise CommandError(f"no saved chat to resume in {chats.path}; start one with `rag chat`", code=2)
        chat = chats.load(latest.id if latest is not None else resume)
        args.index = chat.collection
        if chat.documents and hasattr(args, "doc") and not args.doc:
            args.doc = list(chat.documents)  # the chat's document scope
        return chats, chat
    try:
        chats.check()
    except ChatHistoryError as exc:
        print(f"warning: {exc}; answering without saving", file=sys.stderr)
        return None, None
    return chats, None


def _save_turn(chats, chat_id: str | None, args: argparse.Namespace, answer: Answer,  # type: ignore[no-untyped-def]
               model: str, seconds: float) -> tuple[Any, str | None]:
    """Save one completed turn (creating the chat on its first); ``(None, None)`` once saving failed."""
    from rag.chats import ChatHistoryError

    try:
        if chat_id is None:
            chat_id = chats.create(answer.question, args.index, getattr(args, "doc", None) or ())
        chats.append(chat_id, answer, model=model, timings={**answer.diagnostics.timings, "total_s": seconds})
    except ChatHistoryError as exc:
        print(f"warning: {exc}; answering without saving", file=sys.stderr)
        return None, None
    return chats, chat_id


def cmd_chat(args: argparse.Namespace, stdin: TextIO | None = None) -> int:
    import time

    stdin = stdin or sys.stdin
    chats, resumed = _open_history(args)
    chat_id = resumed.id if resumed is not None else None
    with _pipeline(args) as pipeline:
        session = pipeline.chat()
        if args.doc:  # an unknown document is an error now, not at every question
            resolve_documents(pipeline.index.documents, args.doc, index=pipeline.index.name)
        for turn in resumed.turns if resumed is not None else ():
            session.memory.add(turn.question, turn.answer.text)
        gen = pipeline.config.generation
        model = "extractive" if gen.mode == "extractive" else gen.model
        interactive = stdin.isatty()
        out = sys.stdout
        if resumed is not None:
            out.write(f"resuming chat {resumed.id} ({len(resumed.turns)} turns): {plain(resumed.title)}\n")
        if interactive:
            out.write(f"chatting with index {args.index!r} ({args.memory} memory); /reset to forget, /quit to leave\n")
        try:
            while True:
                if interactive:
                    out.write("> ")
                    out.flush()
                line = stdin.readline()
                if not line:
                    break
                question = line.strip()
                if not question:
                    continue
                if question in ("/quit", "/exit", "/q"):
                    break
                if question == "/reset":
                    session.reset()
                    out.write("(memory cleared)\n")
                    continue
                try:
                    t0 = time.perf_counter()
                    stream = session.stream(question, documents=args.doc)
                    if stream.standalone_query and stream.standalone_query != question:
                        out.write(f"(searching for: {stream.standalone_query})\n")
                    answer = print_stream(stream, out, trace=args.trace)
                except ValueError as exc:
                    print(f"error: {exc}", file=sys.stderr)
                else:
                    if chats is not None:  # saved as soon as the turn completes
                        chats, chat_id = _save_turn(chats, chat_id, args, answer, model, time.perf_counter() - t0)
                out.write("\n")
        except KeyboardInterrupt:
            out.write("\n")
    if chat_id is not None:
        print(f"chat saved as {chat_id}: `rag chats export {chat_id}`, `rag chat --resume {chat_id}`", file=sys.stderr)
    return 0


def _add_answer_args(p: argparse.ArgumentParser) -> None:
    add_index_args(p)
    add_retrieval_args(p)
    add_scope_args(p)
    add_generation_args(p)
    add_plugin_args(p)
    p.add_argument("--trace", action="store_true",
                   help="print the trace after each answer: rewrites, route, hits per query, timings")


def add_commands(sub: Any) -> None:
    """Add ``ask`` and ``chat`` to an argparse ``add_subparsers()`` object."""
    ask = sub.add_parser("ask", help="answer one question from an index, with citations")
    ask.add_argument("question", help="the question")
    ask.add_argument("--json", action="store_true",
                     help="print the whole answer as JSON (text, citations with the cited sentences, sources, "
                          "support marks, the decision): the API's 'rag' field")
    _add_answer_args(ask)
    ask.set_defaults(func=cmd_ask)

    chat = sub.add_parser("chat", help="interactive chat over an index (/reset, /quit)")
    _add_answer_args(chat)
    add_memory_args(chat)
    chat.add_argument("--resume", nargs="?", const=LATEST, default=None, metavar="ID",
                      help="continue a saved chat (default: the latest; ids from `rag chats`); new chats are saved "
                           "to <index dir>/chats.sqlite3")
    chat.set_defaults(func=cmd_chat)
