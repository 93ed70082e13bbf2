"""``rag chats``: list, export and delete the chats saved by ``rag chat`` and the app.

Chats live in ``<index dir>/chats.sqlite3`` (:mod:`rag.chats`)::

    rag chats                               # id, last updated, collection, title; newest first
    rag chats --search pump                 # chats whose title, questions or answers mention "pump"
    rag chats export 3f2a9c01d4e5 --format md > chat.md
    rag chats delete 3f2a9c01d4e5
    rag chats delete --all                  # every saved chat (--index NAME: that collection's only)
    rag chat --resume                       # continue the latest chat (or --resume ID)

Example:
    >>> import argparse
    >>> sub = argparse.ArgumentParser(prog="rag").add_subparsers(dest="command")
    >>> add_commands(sub)
    >>> a = sub.choices["chats"].parse_args(["export", "ab12", "--format", "json"])
    >>> a.chat_id, a.format, a.index_dir
    ('ab12', 'json', None)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from rag.chats import ChatStore, chat_store, to_json, to_markdown
from rag.cli.answer import plain
from rag.cli.common import CommandError, add_index_dir_arg


def chats_of(args: argparse.Namespace) -> ChatStore:
    """The chat history at ``--index-dir`` (``<root>/chats.sqlite3``)."""
    from rag.index.store import default_index_root

    return chat_store(args.index_dir if args.index_dir is not None else default_index_root())


def when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def cmd_list(args: argparse.Namespace) -> int:
    chats = chats_of(args)
    found = chats.search(args.search, args.index) if args.search else chats.list(args.index)
    if not found:
        print(f"no saved chats in {chats.path}" + (" match" if args.search else ""), file=sys.stderr)
        return 0
    for c in found:
        print(f"{c.id}  {when(c.updated)}  {plain(c.collection)}  {plain(c.title)}  ({c.n_turns} "
              f"turn{'s' if c.n_turns != 1 else ''})")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    chats = chats_of(args)
    chat = chats.load(args.chat_id)
    text = to_markdown(chat) if args.format == "md" else to_json(chat, chats.raw_answers(chat.id))
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    chats = chats_of(args)
    if args.all:
        if args.chat_id:
            raise CommandError("give a chat id or --all, not both", code=2)
        n = chats.delete_all(args.index)
        scope = f" of collection {args.index!r}" if args.index else ""
        print(f"deleted {n} chat{'s' if n != 1 else ''}{scope} from {chats.path}")
        return 0
    if not args.chat_id:
        raise CommandError("name the chat to delete (see `rag chats`), or pass --all", code=2)
    if args.index:
        raise CommandError("--index goes with --all (delete every chat of that collection)", code=2)
    if not chats.delete(args.chat_id):
        raise CommandError(f"no saved chat {args.chat_id!r} in {chats.path}; see `rag chats`", code=2)
    print(f"deleted chat {args.chat_id}")
    return 0


def add_commands(sub: Any) -> None:
    """Add ``chats`` (list; ``export``, ``delete``) to an argparse ``add_subparsers()`` object."""
    chats = sub.add_parser("chats", help="list, export or delete saved chats (list by default)")
    add_index_dir_arg(chats)
    chats.add_argument("--index", default=None, help="only this collection's chats")
    chats.add_argument("--search", default="", metavar="TEXT",
                       help="only chats whose title, questions or answers contain TEXT")
    chats.set_defaults(func=cmd_list)
    csub = chats.add_subparsers(dest="chats_command", metavar="{list,export,delete}")

    def leaf(name: str, help: str) -> argparse.ArgumentParser:
        p = csub.add_parser(name, help=help)
        # SUPPRESS: an option given before the sub-command is kept, not reset by the sub-command's default
        p.add_argument("--index-dir", type=Path, default=argparse.SUPPRESS,
                       help="where indexes live (default: $RAG_INDEX_DIR or ./indexes)")
        return p

    ls = leaf("list", "list saved chats, newest first")
    ls.add_argument("--search", default=argparse.SUPPRESS, metavar="TEXT", help="only chats containing TEXT")
    ls.add_argument("--index", default=argparse.SUPPRESS, help="only this collection's chats")
    ls.set_defaults(func=cmd_list)

    ex = leaf("export", "print one chat as Markdown or JSON")
    ex.add_argument("chat_id", metavar="ID")
    ex.add_argument("--format", choices=("md", "json"), default="md",
                    help="md: questions, answers, numbered sources with the quoted passages; json: everything")
    ex.set_defaults(func=cmd_export)

    de = leaf("delete", "delete one chat, or every chat with --all")
    de.add_argument("chat_id", metavar="ID", nargs="?")
    de.add_argument("--all", action="store_true", help="delete every saved chat (with --index: that collection's)")
    de.add_argument("--index", default=argparse.SUPPRESS, help="with --all: only this collection's chats")
    de.set_defaults(func=cmd_delete)
