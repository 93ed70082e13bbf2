"""``rag ingest``, ``rag remove``, ``rag docs``, ``rag indexes``, ``rag delete-index``: building and inspecting indexes.

``rag delete-index NAME`` asks whether to delete the index's saved chats too (``--with-chats``,
``--keep-chats`` answer ahead; not on a terminal they are kept, and it says how to delete them).

Example:
    >>> import argparse
    >>> sub = argparse.ArgumentParser(prog="rag").add_subparsers(dest="command")
    >>> add_commands(sub)
    >>> sub.choices["ingest"].parse_args(["notes/", "--index", "notes"]).chunk_size
    200
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from rag.cli.common import (CommandError, add_index_args, add_index_dir_arg, add_ocr_arg, add_pdf_password_arg,
                            pdf_password, positive_float, positive_int, store)
from rag.index.store import IndexError_

logger = logging.getLogger(__name__)


def non_negative_float(value: str) -> float:
    """``--wait`` seconds: a number >= 0.

    Example:
        >>> non_negative_float("0"), non_negative_float("2.5")
        (0.0, 2.5)
    """
    try:
        x = float(value)
    except ValueError:
        x = float("nan")
    if not x >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {value!r}")
    return x


def cmd_ingest(args: argparse.Namespace) -> int:
    from rag.embedding import Embedder
    from rag.ingest.ingestor import Ingestor

    milvus = None
    if args.backend == "milvus":
        from rag.index.milvus import MilvusConfig

        if not args.uri:
            raise CommandError("--backend milvus needs the server: --uri http://HOST:19530", code=2)
        milvus = MilvusConfig(uri=args.uri, collection=args.collection or "", index_type=args.milvus_index,
                              token=args.token)
    elif args.uri or args.token or args.collection:
        raise CommandError("--uri, --token and --collection are for --backend milvus", code=2)
    ing = Ingestor(args.index, store=store(args), embedder=Embedder(args.embedder),
                   chunk_size=args.chunk_size, chunk_overlap=args.chunk_overlap,
                   title_prefix=not args.no_title_prefix, faiss_kind=args.faiss, stemmer=args.stemmer,
                   max_file_mb=args.max_file_mb, show_progress=not args.quiet, lock_timeout=args.wait,
                   backend=args.backend, milvus=milvus, pdf_password=pdf_password(args), ocr=args.ocr)
    report = ing.ingest(args.paths, rebuild=args.rebuild, prune=not args.no_prune)
    print(report.summary())
    return 0 if report.ok else 1


def cmd_remove(args: argparse.Namespace) -> int:
    from rag.ingest.ingestor import Ingestor

    ing = Ingestor(args.index, store=store(args), lock_timeout=args.wait)
    failed = 0
    for p in args.paths:
        if ing.remove(p):
            print(f"removed {Path(p).expanduser().resolve()} from index {args.index!r}")
        else:
            print(f"error: {p} is not in index {args.index!r} (see `rag docs --index {args.index}`)",
                  file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def cmd_docs(args: argparse.Namespace) -> int:
    index = store(args).load(args.index)
    for r in sorted(index.documents.values(), key=lambda r: r.source):
        pages = f", {r.pages} pages" if r.pages else ""
        print(f"{r.source}  ({r.n_chunks} chunks{pages})")
    print(f"{len(index.documents)} documents, {len(index)} chunks in index {args.index!r}")
    return 0


def cmd_indexes(args: argparse.Namespace) -> int:
    s = store(args)
    names = s.names()
    if not names:
        print(f"no indexes under {s.root}/ yet; create one with `rag ingest DIR --index NAME`")
        return 0
    for name in names:
        try:
            m = s.read_manifest(name)
        except IndexError_ as exc:
            print(f"{name}: unreadable ({exc})")
            continue
        c = m["counts"]
        where = (f"milvus {m['backend']['collection']} at {m['backend']['uri']}" if "backend" in m
                 else f"faiss {m['faiss']['kind']}"
                 + "".join(f" {k}={v}" for k, v in sorted(_dict(m["faiss"].get("params")).items())))
        print(f"{name}: {c['documents']} documents, {c['chunks']} chunks, embedder {m['embedder']['id']}, {where}")
    return 0


def cmd_delete_index(args: argparse.Namespace) -> int:
    s = store(args)
    if not s.exists(args.name):
        raise CommandError(f"no index named {args.name!r} under {s.root}/ (see `rag indexes`)", code=2)
    backend = s.read_manifest(args.name).get("backend")
    s.delete(args.name)
    print(f"deleted index {args.name!r}")
    if backend:
        print(f"its Milvus collection {backend['collection']!r} at {backend['uri']} is kept; drop it on the server "
              f"if no one else uses it")
    _index_chats(args, s.root)
    return 0


def _index_chats(args: argparse.Namespace, root: Path) -> None:
    """Delete or keep the deleted index's saved chats: ``--with-chats``, ``--keep-chats``, else ask on a TTY (y/N);
    not on a TTY they are kept, with one line saying how to delete them."""
    from rag.chats import ChatHistoryError, chat_store

    chats = chat_store(root)
    try:
        n = chats.count(args.name)
    except ChatHistoryError as exc:
        print(f"its saved chats were not checked: {exc}", file=sys.stderr)
        return
    if n == 0:
        return
    them = f"{n} saved chat{'s' if n != 1 else ''}"
    delete = args.chats
    if delete is None and sys.stdin.isatty() and sys.stdout.isatty():
        try:
            reply = input(f"delete its {them} too? [y/N] ")
        except EOFError:
            reply = ""
        delete = reply.strip().lower() in ("y", "yes")
    if delete:
        n = chats.delete_all(args.name)
        print(f"deleted its {n} saved chat{'s' if n != 1 else ''}")
    else:
        print(f"kept its {them}; delete them with `rag chats delete --all --index {args.name}`")


def add_commands(sub: Any) -> None:
    """Add the index commands to an argparse ``add_subparsers()`` object."""
    from rag.index.dense import INDEX_KINDS
    from rag.index.milvus import INDEX_TYPES as MILVUS_INDEX_TYPES, TOKEN_ENV
    from rag.index.store import DEFAULT_LOCK_TIMEOUT
    from rag.ingest.chunking import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE
    from rag.ingest.loaders import DEFAULT_MAX_FILE_MB

    wait_help = ("seconds to wait while another ingest, remove or the app writes this index, then fail "
                 "(default %(default)s)")

    p = sub.add_parser("ingest", help="index files and folders (incremental)")
    p.add_argument("paths", nargs="+", help="files or directories (recursive)")
    add_index_args(p)
    p.add_argument("--chunk-size", type=positive_int, default=DEFAULT_CHUNK_SIZE,
                   help="tokens per chunk (default %(default)s)")
    p.add_argument("--chunk-overlap", type=int, default=DEFAULT_CHUNK_OVERLAP,
                   help="tokens shared by neighbouring chunks (default %(default)s)")
    p.add_argument("--no-title-prefix", action="store_true", help="do not prefix chunks with the document title")
    p.add_argument("--faiss", choices=INDEX_KINDS, default="flat", help="FAISS index kind (default %(default)s)")
    p.add_argument("--stemmer", choices=("english", "none"), default="english", help="BM25 stemmer")
    p.add_argument("--embedder", default="default", help="sentence-transformers model name or path")
    p.add_argument("--max-file-mb", type=positive_float, default=DEFAULT_MAX_FILE_MB, help="skip larger files")
    add_pdf_password_arg(p)
    add_ocr_arg(p)
    p.add_argument("--rebuild", action="store_true", help="re-create the index from scratch")
    p.add_argument("--no-prune", action="store_true", help="keep documents whose files were deleted")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("--wait", type=non_negative_float, default=DEFAULT_LOCK_TIMEOUT, metavar="SECONDS", help=wait_help)
    g = p.add_argument_group("backend (where the chunks live; recorded in the index's manifest)")
    g.add_argument("--backend", choices=("local", "milvus"), default=None,
                   help="local: FAISS + BM25 files (the default for a new index); milvus: a Milvus server "
                        "(default: what the index was built with)")
    g.add_argument("--uri", default=None, help="Milvus server, e.g. http://127.0.0.1:19530")
    g.add_argument("--token", default=None,
                   help=f"Milvus token (user:password or API key); prefer ${TOKEN_ENV}: arguments are visible "
                        f"to other users. Never written to the manifest")
    g.add_argument("--collection", default=None, help="Milvus collection (default: rag_ + the index name)")
    g.add_argument("--milvus-index", choices=MILVUS_INDEX_TYPES, default="FLAT",
                   help="Milvus dense index type (default %(default)s: exact; HNSW for large collections)")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("remove", help="remove documents from an index")
    p.add_argument("paths", nargs="+")
    add_index_args(p)
    p.add_argument("--wait", type=non_negative_float, default=DEFAULT_LOCK_TIMEOUT, metavar="SECONDS", help=wait_help)
    p.set_defaults(func=cmd_remove)

    p = sub.add_parser("docs", help="list the documents in an index")
    add_index_args(p)
    p.set_defaults(func=cmd_docs)

    p = sub.add_parser("indexes", help="list indexes")
    add_index_dir_arg(p)
    p.set_defaults(func=cmd_indexes)

    p = sub.add_parser("delete-index", help="delete a whole index")
    p.add_argument("name")
    add_index_dir_arg(p)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--with-chats", dest="chats", action="store_const", const=True, default=None,
                   help="also delete the index's saved chats (default: ask on a terminal, else keep them)")
    g.add_argument("--keep-chats", dest="chats", action="store_const", const=False,
                   help="keep the index's saved chats (`rag chats delete --all --index NAME` deletes them later)")
    p.set_defaults(func=cmd_delete_index)


def _dict(value: object) -> dict:
    return value if isinstance(value, dict) else {}
