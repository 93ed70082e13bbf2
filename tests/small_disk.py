"""A real full disk for tests: a small tmpfs mounted for one test (root only; skipped where mounting is not allowed)."""

from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

FILLER = "filler.bin"


@contextmanager
def small_disk(where: Path, size: str = "1m") -> Iterator[Path]:
    """Mount a ``size`` tmpfs on ``where`` (created) for the ``with`` block; skip the test if that is not permitted."""
    where.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a tmpfs to fill up ({exc}); the full-disk tests need `mount` and root")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill up ({' '.join(done.stderr.split()) or done.returncode}); "
                    "the full-disk tests need root (CAP_SYS_ADMIN)")
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)  # still in use: detach it


def free(disk: Path) -> int:
    st = os.statvfs(disk)
    return st.f_bavail * st.f_frsize


def fill(disk: Path, leave: int = 0) -> Path:
    """Fill ``disk`` until about ``leave`` bytes are free (in whole pages); return the filler file."""
    path = disk / FILLER
    with open(path, "ab") as fh:
        fh.write(b"\0" * max(0, free(disk) - leave))
    return path
