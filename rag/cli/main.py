"""The ``rag`` command line: the parser of every command group, and the one place errors become exit codes.

Command groups, one module each: :mod:`rag.cli.index` (ingest, remove, docs, indexes,
delete-index), :mod:`rag.cli.search`, :mod:`rag.cli.answer` (ask, chat), :mod:`rag.cli.chats` (saved chats), :mod:`rag.cli.models`,
:mod:`rag.cli.reranker`, :mod:`rag.cli.serve` (the HTTP API), :mod:`rag.cli.watch`, and ``rag eval`` from the evaluation harness (:mod:`rag_eval.cli`,
imported only when the parser is built, so ``import rag`` never imports the harness).

Examples::

    rag ingest ~/Documents/manuals --index manuals
    rag search "how do I prime the pump?" --index manuals --mode hybrid -k 5
    rag ask "how do I prime the pump?" --index manuals --fusion weighted --alpha 0.7
    rag docs --index manuals
    rag remove ~/Documents/manuals/old.pdf --index manuals
    rag indexes
    rag chats                          # saved chats; `rag chats export ID`, `rag chat --resume`
    rag watch ~/Documents/manuals --index manuals   # re-index files as they change
    rag serve --index manuals          # OpenAI-compatible API on http://127.0.0.1:8000/v1
    rag eval retrieval --dataset cranfield --path ../shared/data/cranfield --configs bm25,dense,hybrid

Exit codes: 0 success, 1 partial failure (some files failed, nothing found), 2 a bad input
(one ``error: ...`` line on stderr naming it and the fix), 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, Sequence

from rag.cli.common import CommandError

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    from rag.cli import answer, chats, index, models, reranker, search, serve, watch

    parser = argparse.ArgumentParser(prog="rag", description="Local, private question answering over your documents.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    index.add_commands(sub)
    search.add_commands(sub)
    answer.add_commands(sub)
    chats.add_commands(sub)
    models.add_commands(sub)
    reranker.add_commands(sub)
    serve.add_commands(sub)
    watch.add_commands(sub)
    from rag_eval.cli import add_commands as add_eval_commands  # the harness depends on rag, not the reverse

    add_eval_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)  # logs every failed RPC with a traceback; we print one line
    func: Callable[[argparse.Namespace], int] = args.func
    from rag.generation.models import ModelError
    from rag.index.store import IndexError_
    from rag.ingest.loaders import LoadError

    try:
        return func(args)
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except (ValueError, IndexError_, LoadError, ModelError, OSError) as exc:
        from rag.fs import error_line

        print(f"error: {error_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the index on disk is unchanged unless a save had completed", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
