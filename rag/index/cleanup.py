"""Removing what an index directory no longer needs: old versions, crashed writers' leftovers.

Run by :class:`~rag.index.store.IndexWriter` with the index's write lock held, so no other
writer races it; a version a reader still holds (a shared lock on its directory) is kept and
removed by a later write.

Example:
    >>> import pathlib, tempfile
    >>> d = pathlib.Path(tempfile.mkdtemp()) / "notes"
    >>> (d / ".tmp-v-20240101-000000-0123abcd").mkdir(parents=True)
    >>> remove_stale(d, d.parent, "notes", readable=True, current=None)
    ['.tmp-v-20240101-000000-0123abcd']
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from rag.fs import OLD_PREFIX, TMP_PREFIX, moved_aside_name, remove_tree
from rag.locks import exclusive_now
from rag.index.manifest import MANIFEST, PARTS, VERSION_PREFIX, VERSION_RE

logger = logging.getLogger(__name__)

TRASH_PREFIX = ".trash-"


def remove_stale(directory: Path, root: Path, name: str, readable: bool, current: str | None) -> list[str]:
    """Remove crash leftovers and versions other than ``current`` that no reader holds; return their names.

    ``readable`` False (a damaged ``manifest.json``) keeps every version until a save replaces
    the pointer; ``current`` None means the flat layout, or no index yet.
    """
    removed = _remove_versions(directory, name, readable, current)
    if readable and current is not None:
        removed += _remove_flat_parts(directory)
    if root.is_dir():
        removed += _remove_moved_aside(root, name)
    return removed


def _remove_versions(directory: Path, name: str, readable: bool, current: str | None) -> list[str]:
    removed: list[str] = []
    for entry in sorted(directory.iterdir()):
        n = entry.name
        if n.startswith((f"{TMP_PREFIX}{VERSION_PREFIX}", f"{TMP_PREFIX}{MANIFEST}-",
                         f"{TRASH_PREFIX}{VERSION_PREFIX}")):
            remove_any(entry)
            removed.append(n)
        elif readable and VERSION_RE.match(n) and n != current:
            with exclusive_now(entry) as free:
                if free:  # no reader holds it (readers arriving now wait, then find it gone)
                    remove_tree(entry, TRASH_PREFIX)
                    removed.append(n)
                else:
                    logger.debug("index %r: keeping %s, a reader holds it", name, n)
    return removed


def _remove_flat_parts(directory: Path) -> list[str]:
    """The flat layout's parts, superseded by the version the pointer names (once no reader holds them)."""
    flat = [directory / f for f in PARTS.values() if (directory / f).exists()]
    if not flat:
        return []
    with exclusive_now(directory) as free:
        if not free:
            return []
        for f in flat:
            remove_any(f)
    return [f.name for f in flat]


def _remove_moved_aside(root: Path, name: str) -> list[str]:
    """The flat layout's crash leftovers next to the index directory (``.tmp-NAME-...`` and the like)."""
    removed: list[str] = []
    for entry in sorted(root.iterdir()):
        if any(moved_aside_name(entry.name, p) == name for p in (TMP_PREFIX, OLD_PREFIX, TRASH_PREFIX)):
            remove_any(entry)
            removed.append(entry.name)
    return removed


def remove_any(path: Path) -> None:
    """Remove a file or a directory tree, whichever ``path`` is (a missing one is fine)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
