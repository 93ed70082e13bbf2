"""Scoping a search to chosen documents of a collection: the names a user gives, as the index records them.

A document is named by its source path.  The index records each ingested file by the path it
was ingested as (absolute after ``rag ingest DIR``); a user may give that path, the path as
typed in the shell (resolved against the working directory), the path relative to the
collection's common folder (what ``rag search`` shows and the API returns), or any unambiguous
tail of it (``guide/faq.md``, ``faq.md``).  Anything else is an error naming the document and
a few valid ones.  :meth:`Retriever.retrieve <rag.retrieval.retriever.Retriever.retrieve>` takes
the names as ``documents=`` and filters before ranking.

Example:
    >>> recorded = ["/srv/docs/faq.md", "/srv/docs/guide/setup.md", "/srv/docs/guide/faq.md", "/srv/docs/x/setup.md"]
    >>> sorted(resolve_documents(recorded, ["faq.md", "guide/setup.md", "/srv/docs/guide/faq.md"]))
    ['/srv/docs/faq.md', '/srv/docs/guide/faq.md', '/srv/docs/guide/setup.md']
    >>> resolve_documents(recorded, ["setup.md"])
    Traceback (most recent call last):
    ...
    ValueError: document 'setup.md' is ambiguous: it could be guide/setup.md or x/setup.md; give more of its path
    >>> resolve_documents(recorded, ["notes.md"], index="docs")
    Traceback (most recent call last):
    ...
    ValueError: unknown document 'notes.md' in index 'docs'; its documents include faq.md, guide/faq.md, guide/setup.md, x/setup.md
"""

from __future__ import annotations

import os
from pathlib import PurePath
from typing import Collection, Iterable

#: how many valid documents an unknown-document error lists
SHOWN = 5


def common_folder(sources: Iterable[str]) -> str | None:
    """The deepest folder holding every absolute source (None when there is none)."""
    folders = [os.path.dirname(s) for s in sources if os.path.isabs(s)]
    if not folders:
        return None
    try:
        return os.path.commonpath(folders)
    except ValueError:  # different drives (Windows)
        return None


def shown_name(source: str, root: str | None) -> str:
    """``source`` relative to the common folder ``root``, with ``/`` separators (as listings show it)."""
    if root is None or not os.path.isabs(source):
        return source
    try:
        rel = os.path.relpath(source, root)
    except ValueError:
        return source
    return source if rel.startswith("..") else PurePath(rel).as_posix()


def _parts(path: str) -> tuple[str, ...]:
    return tuple(p for p in path.replace("\\", "/").split("/") if p not in ("", "."))


def resolve_documents(recorded: Collection[str], names: Iterable[str], *, index: str = "",
                      cwd: str | None = None) -> frozenset[str]:
    """The recorded sources ``names`` denote (see the module docstring for the accepted forms).

    Raises ``ValueError`` for no names, a blank name, an ambiguous tail, or an unknown document.
    """
    names = list(names)
    if not names:
        raise ValueError("documents must name at least one document (leave it out to search them all)")
    recorded = recorded if isinstance(recorded, (set, frozenset, dict)) else frozenset(recorded)
    root: str | None = None
    shown: dict[str, str] | None = None
    by_shown: dict[str, str] = {}
    out = set()
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"a document must be a non-empty path, got {name!r}")
        if name in recorded:
            out.add(name)
            continue
        typed = os.path.realpath(os.path.join(cwd or os.getcwd(), os.path.expanduser(name)))
        if typed in recorded:
            out.add(typed)
            continue
        if shown is None:  # built once, on the first name that is not a recorded path
            root = common_folder(recorded)
            shown = {s: shown_name(s, root) for s in recorded}
            by_shown = {v: s for s, v in shown.items()}
        tail = _parts(name)
        if "/".join(tail) in by_shown:  # relative to the common folder, as listings and the API show it
            out.add(by_shown["/".join(tail)])
            continue
        matches = sorted(s for s in recorded if tail and _parts(s)[-len(tail):] == tail)
        if len(matches) == 1:
            out.add(matches[0])
            continue
        if matches:
            listed = " or ".join(sorted(shown[s] for s in matches)[:SHOWN])
            raise ValueError(f"document {name!r} is ambiguous: it could be {listed}; give more of its path")
        valid = sorted(shown.values())
        where = f" in index {index!r}" if index else ""
        if not valid:
            raise ValueError(f"unknown document {name!r}{where}: the index holds no documents")
        more = f" (and {len(valid) - SHOWN} more)" if len(valid) > SHOWN else ""
        raise ValueError(f"unknown document {name!r}{where}; its documents include "
                         f"{', '.join(valid[:SHOWN])}{more}")
    return frozenset(out)
