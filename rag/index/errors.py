"""The index stage's exceptions, in one module so every backend raises the same types.

Callers catch :class:`IndexError_` for any index problem; the subclasses say which one, so a
front end can tell "no such index" from "rebuild it" from "another writer holds it".

Example:
    >>> issubclass(IndexCorruptError, IndexError_), issubclass(IndexWriteError, OSError)
    (True, True)
"""

from __future__ import annotations


class IndexError_(Exception):
    """Base class for index problems (named to avoid shadowing the builtin)."""


class IndexNotFoundError(IndexError_):
    """No index of that name under the store's root."""


class IndexMismatchError(IndexError_):
    """The index on disk was built with settings incompatible with the request."""


class IndexCorruptError(IndexError_):
    """A manifest or part that cannot be read as written; the message says how to rebuild."""


class IndexLockedError(IndexError_):
    """Another writer held the index for longer than the lock timeout (or this thread already holds it)."""


class IndexWriteError(IndexError_, OSError):
    """The index cannot be written where it should be (not a directory, no permission, disk full)."""
