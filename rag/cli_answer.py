"""CLI commands for answers: ``rag ask``, ``rag chat`` and ``rag models list|pull``.

Wire them into the main parser with :func:`add_commands`::

    parser = argparse.ArgumentParser(prog="rag")
    sub = parser.add_subparsers(dest="command", required=True)
    add_commands(sub)
    args = parser.parse_args(["ask", "How do I prime the pump?", "--index", "docs"])
    raise SystemExit(args.func(args))

Routing and rewriting plugins are picked by name (built-ins and ``rag.routers`` /
``rag.rewriters`` entry points)::

    rag ask "thanks!" --index docs --router chitchat --trace
    rag ask "in manuals: how do I prime the pump?" --router chitchat,rules --rewriter multi-query --trace
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, TextIO

from .answer import Answerer, AnswerStream, RelevanceGate, DEFAULT_MIN_DENSE
from .index import IndexError_, IndexStore, default_index_root
from .memory import MEMORY_TYPES
from .models import DEFAULT_MODEL, ModelError, default_models_dir, get_spec, local_path, names, pull
from .prompting import NOT_FOUND
from .retrieval import MODES
from .types import Answer

logger = logging.getLogger(__name__)


def _gpu_layers(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        n = int(value)
    except ValueError:
        n = -2
    if n < -1:
        raise argparse.ArgumentTypeError(f"must be 'auto' or an integer >= -1, got {value!r}")
    return n


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value!r}")
    return n


def _temperature(value: str) -> float:
    try:
        t = float(value)
    except ValueError:
        t = -1.0
    if not 0.0 <= t <= 2.0:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 2], got {value!r}")
    return t


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", default="default", help="index name (default: %(default)s)")
    p.add_argument("--index-dir", type=Path, default=None,
                   help="directory holding the indexes (default: $RAG_INDEX_DIR or ./indexes)")
    p.add_argument("--mode", choices=MODES, default="hybrid", help="retrieval mode (default: %(default)s)")
    p.add_argument("-k", type=_positive_int, default=5, help="chunks retrieved (default: %(default)s)")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"registry name ({', '.join(names())}) or path to a .gguf file (default: %(default)s)")
    p.add_argument("--models-dir", type=Path, default=None, help="where pulled models live")
    p.add_argument("--temperature", type=_temperature, default=0.0, help="sampling temperature (default: 0)")
    p.add_argument("--max-tokens", type=_positive_int, default=256, help="answer length budget in tokens")
    p.add_argument("--n-ctx", type=_positive_int, default=None, help="context window (default: the model's)")
    p.add_argument("--n-gpu-layers", type=_gpu_layers, default="auto",
                   help="layers offloaded to the GPU: 'auto' (all if supported), -1 (all) or N")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    p.add_argument("--min-relevance", type=float, default=DEFAULT_MIN_DENSE,
                   help="minimum dense cosine of the best hit to answer at all (default: %(default)s)")
    p.add_argument("--extractive", action="store_true", help="quote the best sentences; no LLM")
    p.add_argument("--rewriter", default=None,
                   help="query rewriter (default: condense follow-ups); built-in: none, condense, keyword, "
                        "multi-query, hyde, decompose, or a 'rag.rewriters' entry point")
    p.add_argument("--router", default=None,
                   help="router, or a comma-separated chain (default: none); built-in: chitchat, rules, "
                        "embedding, llm, or a 'rag.routers' entry point. Collections: all indexes in --index-dir")
    p.add_argument("--router-config", type=Path, default=None,
                   help='JSON options for the router, e.g. {"rules": {"pump|valve": "manuals"}, "threshold": 0.3}')
    p.add_argument("--rewriter-config", type=Path, default=None, help="JSON options for the rewriter")
    p.add_argument("--trace", action="store_true",
                   help="print the trace after each answer: rewrites, route, hits per query, timings")


def add_commands(subparsers: Any) -> None:
    """Add ``ask``, ``chat`` and ``models`` to an argparse ``add_subparsers()`` object."""
    ask = subparsers.add_parser("ask", help="answer one question from an index, with citations")
    ask.add_argument("question", help="the question")
    _add_common(ask)
    ask.set_defaults(func=cmd_ask)

    chat = subparsers.add_parser("chat", help="interactive chat over an index (/reset, /quit)")
    _add_common(chat)
    chat.add_argument("--memory", choices=MEMORY_TYPES, default="buffer", help="chat memory (default: %(default)s)")
    chat.add_argument("--window", type=_positive_int, default=3, help="turns kept by --memory window")
    chat.add_argument("--no-condense", action="store_true",
                      help="do not rewrite follow-up questions into standalone queries")
    chat.set_defaults(func=cmd_chat)

    models = subparsers.add_parser("models", help="list or download chat models")
    msub = models.add_subparsers(dest="models_command", required=True)
    mlist = msub.add_parser("list", help="registered models and whether they are available")
    mlist.add_argument("--models-dir", type=Path, default=None)
    mlist.set_defaults(func=cmd_models_list)
    mpull = msub.add_parser("pull", help="download a registered model")
    mpull.add_argument("name", help=f"one of: {', '.join(names())}")
    mpull.add_argument("--models-dir", type=Path, default=None)
    mpull.set_defaults(func=cmd_models_pull)


def _error(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def _options(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object of options, got {type(data).__name__}")
    return data


class _Collections:
    """Retrievers for every index in a store, loaded on first use (what a router may pick)."""

    def __init__(self, store: IndexStore, first: Any, mode: str) -> None:
        self.store = store
        self.mode = mode
        self.loaded = {first.index.name: first}
        self.embedder = first.embedder

    def __call__(self, name: str) -> Any:
        from .retrieval import Retriever  # noqa: PLC0415

        if name not in self.loaded:
            self.loaded[name] = Retriever(self.store.load(name), mode=self.mode, embedder=self.embedder)
        return self.loaded[name]

    def describe(self) -> dict[str, str]:
        from .routing import describe_collection  # noqa: PLC0415

        out = {}
        for name in self.store.names():
            docs = self(name).index.documents.values()
            out[name] = describe_collection(name, [d.title or Path(d.source).stem for d in docs])
        return out


def _build(args: argparse.Namespace, condense: bool = True) -> tuple[Answerer, Any | None]:
    """Load the index and (unless extractive) the model; errors propagate to the caller."""
    from .llm import LlamaCppLLM  # noqa: PLC0415 - keep `rag --help` fast
    from .plugins import PluginContext, make_rewriter  # noqa: PLC0415
    from .retrieval import Retriever  # noqa: PLC0415
    from .routing import build_router  # noqa: PLC0415

    store = IndexStore(args.index_dir if args.index_dir is not None else default_index_root())
    index = store.load(args.index)
    retriever = Retriever(index, mode=args.mode)
    collections = _Collections(store, retriever, args.mode)
    router_options, rewriter_options = _options(args.router_config), _options(args.rewriter_config)
    llm = None
    if not args.extractive:
        llm = LlamaCppLLM(args.model, n_ctx=args.n_ctx, n_gpu_layers=args.n_gpu_layers, seed=args.seed,
                          models_dir=str(args.models_dir) if args.models_dir else None)
    try:
        rewriter = router = None
        if args.rewriter:
            rewriter = make_rewriter(args.rewriter, PluginContext(llm=llm, embedder=retriever.embedder,
                                                                  default_collection=args.index,
                                                                  options=rewriter_options))
        if args.router:
            router = build_router(args.router, PluginContext(llm=llm, embedder=retriever.embedder,
                                                             collections=collections.describe(),
                                                             default_collection=args.index,
                                                             options=router_options))
        answerer = Answerer(retriever, llm, k=args.k, max_tokens=args.max_tokens, temperature=args.temperature,
                            seed=args.seed, gate=RelevanceGate(min_dense=args.min_relevance),
                            extractive=args.extractive, condense=condense, rewriter=rewriter, router=router,
                            retrievers=collections)
        if llm is not None:
            llm.load()
    except Exception:
        if llm is not None:
            llm.close()
        raise
    return answerer, llm


def print_stream(stream: AnswerStream, out: TextIO, trace: bool = False) -> Answer:
    """Write the streamed pieces as they come, then the sources, the support check and (if asked) the trace."""
    for piece in stream:
        out.write(piece)
        out.flush()
    out.write("\n")
    answer = stream.answer
    out.write(format_sources(answer))
    if trace and answer.metadata.get("trace") is not None:
        out.write("Trace:\n" + "\n".join("  " + line for line in answer.metadata["trace"].format().splitlines())
                  + "\n")
    out.flush()
    return answer


def format_sources(answer: Answer) -> str:
    """Numbered sources, removed citations and unsupported sentences, as plain text."""
    if answer.text == NOT_FOUND:
        return ""
    lines: list[str] = []
    if answer.citations:
        lines.append("Sources:")
        lines += [f"  [{c.number}] {c.chunk.location}" for c in answer.citations]
    elif answer.metadata.get("sources"):
        lines.append("Sources given to the model (none of them supports the answer):")
        lines += [f"  [{c.number}] {c.chunk.location}" for c in answer.metadata["sources"]]
    invalid = answer.metadata.get("invalid_citations") or ()
    if invalid:
        lines.append("Removed citations to sources that do not exist: " + ", ".join(f"[{n}]" for n in invalid))
    unsupported = [s for s in answer.support if not s.supported]
    if unsupported:
        lines.append("Not supported by the sources (check before trusting):")
        for s in unsupported:
            best = f"closest [{s.citation}], " if s.citation is not None else ""
            lines.append(f"  ! {s.sentence}  ({best}similarity {s.similarity:.2f})")
    return "\n".join(lines) + ("\n" if lines else "")


def cmd_ask(args: argparse.Namespace) -> int:
    try:
        answerer, llm = _build(args)
    except (IndexError_, ModelError, ValueError, OSError) as exc:
        return _error(str(exc))
    try:
        print_stream(answerer.stream(args.question), sys.stdout, trace=args.trace)
    except ValueError as exc:
        return _error(str(exc))
    finally:
        if llm is not None:
            llm.close()
    return 0


def cmd_chat(args: argparse.Namespace, stdin: TextIO | None = None) -> int:
    from .chat import ChatSession  # noqa: PLC0415

    stdin = stdin or sys.stdin
    try:
        answerer, llm = _build(args, condense=not args.no_condense)
        session = ChatSession(answerer, memory=args.memory, window=args.window)
    except (IndexError_, ModelError, ValueError, OSError) as exc:
        return _error(str(exc))
    interactive = stdin.isatty()
    out = sys.stdout
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
                stream = session.stream(question)
                if stream.standalone_query and stream.standalone_query != question:
                    out.write(f"(searching for: {stream.standalone_query})\n")
                print_stream(stream, out, trace=args.trace)
            except ValueError as exc:
                print(f"error: {exc}", file=sys.stderr)
            out.write("\n")
    except KeyboardInterrupt:
        out.write("\n")
    finally:
        if llm is not None:
            llm.close()
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    rows = []
    for name in names():
        spec = get_spec(name)
        where = local_path(spec, args.models_dir)
        status = ("packaged" if spec.package and where else "downloaded" if where else "not downloaded")
        rows.append((name, status, str(spec.n_ctx), spec.description, str(where or spec.url)))
    width = max(len(r[0]) for r in rows)
    print(f"{'name':<{width}}  {'status':<14}  n_ctx  description")
    for name, status, n_ctx, desc, where in rows:
        print(f"{name:<{width}}  {status:<14}  {n_ctx:>5}  {desc}\n{'':<{width}}  {where}")
    print(f"models dir: {args.models_dir or default_models_dir()}")
    return 0


def cmd_models_pull(args: argparse.Namespace) -> int:
    try:
        path = pull(args.name, args.models_dir)
    except (ModelError, ValueError, OSError) as exc:
        return _error(str(exc))
    print(path)
    return 0
