"""Index parts read on demand: memory-mapped JSON files parsed when (and as far as) they are used.

Opening a 100k-chunk index must not parse 100k JSON lines it will mostly never show.  The
store therefore hands :class:`~rag.index.store.Index` two lazy sequences:

* :class:`JsonlRows` -- the lines of ``chunks.jsonl``: the file is memory-mapped, line offsets
  are found with one numpy scan, and a line is parsed (and cached) when it is first read;
* :class:`LazyJsonList` -- the token lists of ``bm25.json``, parsed in one go on first use
  (only writers need them, to rebuild BM25 after a change).

Both map the file when they are created (while the reader holds the version's lock), so they
stay readable after a later writer removes that version (POSIX keeps unlinked mapped files).
They compare equal to lists with the same items.

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "rows.jsonl"
    >>> _ = p.write_text('{"a": 1}\\n{"a": 2}\\n')
    >>> rows = JsonlRows(p, lambda d: d["a"], label="rows.jsonl")
    >>> len(rows), rows[1], list(rows)
    (2, 2, [1, 2])
"""

from __future__ import annotations

import json
import mmap
from pathlib import Path
from typing import Any, Callable, Generic, Iterator, Sequence, TypeVar, overload

import numpy as np

T = TypeVar("T")


class LazyPartError(ValueError):
    """A part turned out to be unreadable when it was first used (names the file and line)."""


def map_file(path: Path) -> mmap.mmap | bytes:
    """The bytes of the file at ``path``, memory-mapped (still readable after the file is removed)."""
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        if size == 0:
            return b""
        return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)


class _ListLike(Sequence[T]):
    def __eq__(self, other: object) -> bool:
        if isinstance(other, (list, tuple, _ListLike)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} items)"


class JsonlRows(_ListLike[T], Generic[T]):
    """The non-empty lines of a JSONL file as a read-only sequence, each parsed by ``convert`` on first access."""

    def __init__(self, path: Path, convert: Callable[[Any], T], label: str) -> None:
        self._buf = map_file(path)
        self._convert = convert
        self._label = label
        raw = np.frombuffer(self._buf, dtype=np.uint8) if len(self._buf) else np.zeros(0, np.uint8)
        ends = np.flatnonzero(raw == 0x0A)
        if raw.size and (not ends.size or ends[-1] != raw.size - 1):
            ends = np.append(ends, raw.size)  # a last line without its newline
        starts = np.concatenate([[0], ends[:-1] + 1]) if ends.size else ends
        keep = ends > starts
        self._starts = starts[keep].astype(np.int64)
        self._ends = ends[keep].astype(np.int64)
        self._cache: dict[int, T] = {}

    def __len__(self) -> int:
        return int(self._starts.size)

    @overload
    def __getitem__(self, i: int) -> T: ...

    @overload
    def __getitem__(self, i: slice) -> list[T]: ...

    def __getitem__(self, i: int | slice) -> T | list[T]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"{self._label}: row {i} out of range (0..{n - 1})")
        i %= n
        hit = self._cache.get(i)
        if hit is None:
            line = bytes(self._buf[int(self._starts[i]):int(self._ends[i])])
            try:
                hit = self._convert(json.loads(line))
            except (ValueError, KeyError, TypeError) as exc:
                raise LazyPartError(f"{self._label} line {i + 1} is unreadable "
                                    f"({' '.join(str(exc).split())[:200]})") from None
            self._cache[i] = hit
        return hit

    def __iter__(self) -> Iterator[T]:
        for i in range(len(self)):
            yield self[i]


class LazyJsonList(_ListLike[T], Generic[T]):
    """``json.load(path)[key]``, a list of ``length`` items, parsed on first access.

    ``length`` comes from the manifest, so ``len()`` needs no parsing; a file whose list has
    another length raises :class:`LazyPartError` when it is first read.  ``check``, if given, is
    called with the file's bytes before they are parsed (the sha256 check of
    :func:`rag.index.manifest.digest_check`) and raises if they are not the ones written.
    """

    def __init__(self, path: Path, key: str, length: int, label: str,
                 check: Callable[[Any], None] | None = None) -> None:
        self._buf = map_file(path)
        self._key = key
        self._length = length
        self._label = label
        self._check = check
        self._items: list[T] | None = None

    def _load(self) -> list[T]:
        if self._items is None:
            if self._check is not None:
                self._check(self._buf)  # the file's bytes, before they are parsed (raises if they are not)
            try:
                items = json.loads(bytes(self._buf))[self._key]
            except (ValueError, KeyError, TypeError) as exc:
                raise LazyPartError(f"{self._label} is unreadable ({' '.join(str(exc).split())[:200]})") from None
            if not isinstance(items, list) or len(items) != self._length:
                got = len(items) if isinstance(items, list) else type(items).__name__
                raise LazyPartError(f"{self._label} holds {got} entries, expected {self._length}")
            self._items = items
            self._buf = b""
        return self._items

    @property
    def loaded(self) -> bool:
        return self._items is not None

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, i: Any) -> Any:
        return self._load()[i]

    def __iter__(self) -> Iterator[T]:
        return iter(self._load())


def as_list(items: Sequence[T]) -> list[T]:
    """A plain list of ``items`` (no copy for a plain list)."""
    return items if isinstance(items, list) else list(items)
