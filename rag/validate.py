"""The checks every stage's ``__init__`` and config share: one wording, one place.

Each raises :class:`ValueError` naming the setting and the bad value, and returns the value, so
a constructor can check and store in one line. ``bool`` is not an integer here (``True`` is not
a count).

Example:
    >>> positive_int("k", 5)
    5
    >>> positive_int("k", 0)
    Traceback (most recent call last):
    ...
    ValueError: k must be a positive integer, got 0
    >>> positive_int("threads", None, optional=True) is None
    True
    >>> non_negative_int("rrf_k", -1)
    Traceback (most recent call last):
    ...
    ValueError: rrf_k must be a non-negative integer, got -1
    >>> in_range("alpha", 1.5, 0, 1)
    Traceback (most recent call last):
    ...
    ValueError: alpha must be in [0, 1], got 1.5
"""

from __future__ import annotations

from numbers import Real
from typing import TypeVar

T = TypeVar("T")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def positive_int(name: str, value: T, *, optional: bool = False) -> T:
    """``value`` if it is an integer > 0 (or, with ``optional``, None); else a ValueError naming ``name``."""
    if optional and value is None:
        return value
    if not _is_int(value) or value <= 0:  # type: ignore[operator]
        raise ValueError(f"{name} must be a positive integer{' or None' if optional else ''}, got {value!r}")
    return value


def non_negative_int(name: str, value: T) -> T:
    """``value`` if it is an integer >= 0; else a ValueError naming ``name``."""
    if not _is_int(value) or value < 0:  # type: ignore[operator]
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return value


def in_range(name: str, value: T, low: float, high: float) -> T:
    """``value`` if it is a number in ``[low, high]``; else a ValueError naming ``name`` and the interval."""
    if not isinstance(value, Real) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{name} must be in [{low:g}, {high:g}], got {value!r}")
    return value
