"""``rag watch DIR --index NAME``: keep a collection in step with a folder (re-index changed files as they change).

The folder is synced once (an incremental ``rag ingest``), then every change is re-indexed after
``--debounce`` seconds of quiet, once the changed file's size and modification time have stayed the
same for ``--settle`` seconds (a file still being copied waits), through the same ingestor and index
writer lock as ``rag ingest`` (:class:`rag.ingest.watcher.FolderWatcher`). Each batch prints its
summary line; a failed one (a full disk) one warning line, and it is retried later. Ctrl-C or SIGTERM stops.

Example:
    >>> import argparse
    >>> sub = argparse.ArgumentParser(prog="rag").add_subparsers(dest="command")
    >>> add_commands(sub)
    >>> args = sub.choices["watch"].parse_args(["notes/", "--index", "notes"])
    >>> args.debounce, args.settle, args.index
    (1.0, 2.0, 'notes')
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

from rag.cli.common import (CommandError, add_index_args, add_ocr_arg, add_pdf_password_arg, pdf_password,
                            positive_float, store)


def cmd_watch(args: argparse.Namespace) -> int:
    from rag.embedding import Embedder
    from rag.ingest.ingestor import Ingestor
    from rag.ingest.watcher import FolderWatcher

    folder = Path(args.folder).expanduser()
    if not folder.is_dir():
        raise CommandError(f"{args.folder} is not a folder; give the folder to watch, e.g. `rag watch ~/notes "
                           f"--index {args.index}`", code=2)
    ing = Ingestor(args.index, store=store(args), embedder=Embedder(args.embedder), show_progress=not args.quiet,
                   lock_timeout=args.wait, pdf_password=pdf_password(args), ocr=args.ocr)

    def report(r: Any) -> None:
        print(r.summary(), flush=True)

    watcher = FolderWatcher(ing, folder, debounce=args.debounce, settle=args.settle, on_report=report)
    # Ctrl-C and a service manager's SIGTERM both end the watch cleanly (the index writes are atomic),
    # also when SIGINT was inherited as ignored (a shell without job control starts `... &` so)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.default_int_handler)
    try:
        watcher.run(ready=lambda: print(f"watching {watcher.folder} for changes (index {args.index!r}); "
                                        "Ctrl-C stops", flush=True))
    except KeyboardInterrupt:  # the normal way to stop watching, not an error
        pass
    print(f"stopped watching {watcher.folder}", file=sys.stderr)
    return 0


def add_commands(sub: Any) -> None:
    """Add ``watch`` to an argparse ``add_subparsers()`` object."""
    from rag.cli.index import non_negative_float
    from rag.index.store import DEFAULT_LOCK_TIMEOUT
    from rag.ingest.watcher import DEFAULT_DEBOUNCE, DEFAULT_SETTLE

    p = sub.add_parser("watch", help="re-index a folder's files as they change")
    p.add_argument("folder", help="the folder to watch (recursive)")
    add_index_args(p, required=True)
    p.add_argument("--debounce", type=positive_float, default=DEFAULT_DEBOUNCE, metavar="SECONDS",
                   help="seconds of quiet before a batch of changes is indexed (default %(default)s)")
    p.add_argument("--settle", type=non_negative_float, default=DEFAULT_SETTLE, metavar="SECONDS",
                   help="seconds a changed file's size and modification time must stay the same before it is "
                        "indexed, so a file still being copied or downloaded is not indexed half-written "
                        "(default %(default)s)")
    p.add_argument("--embedder", default="default", help="sentence-transformers model name or path (as for ingest)")
    add_pdf_password_arg(p)
    add_ocr_arg(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("--wait", type=non_negative_float, default=DEFAULT_LOCK_TIMEOUT, metavar="SECONDS",
                   help="seconds to wait while another writer holds the index, then skip that batch "
                        "(default %(default)s)")
    p.set_defaults(func=cmd_watch)
