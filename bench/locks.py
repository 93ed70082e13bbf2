"""Lock cost: rag.locks' fcntl locks against fasteners' ``InterProcessReaderWriterLock``, same run.

Times one uncontended acquire + release, in microseconds, for each kind of lock the index store
takes: *shared* (a reader's :func:`rag.locks.shared_lock` on a version directory; fasteners'
``acquire_read_lock`` / ``release_read_lock``) and *exclusive* (the writer's
:class:`rag.locks.WriteLock`, which also writes its holder record; fasteners' ``acquire_write_lock``
/ ``release_write_lock``), plus the writer's non-waiting :func:`rag.locks.exclusive_now` check.
The implementations take turns in each round, so a busy machine slows them alike; the table
gives the median over all rounds.  Each lock is made anew per acquire, as the store does.

Whether fasteners could replace rag.locks is decided by the lock tests, not by this
table: its POSIX ``lockf`` locks belong to the process, so the threads of one process (the
app's sessions) do not exclude each other, and it cannot lock a directory.

Needs fasteners (a benchmark-only requirement: ``pip install fasteners==0.20``).

Usage: python bench/locks.py [--rounds 2000] [--json]   (a few seconds)
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag.locks import WriteLock, exclusive_now, shared_lock  # noqa: E402

try:
    import fasteners  # noqa: E402
except ImportError:  # pragma: no cover - a clear message instead of a traceback
    raise SystemExit("bench/locks.py needs fasteners: pip install fasteners==0.20") from None


def cases(d: Path) -> dict[str, dict[str, Callable[[], None]]]:
    """One acquire + release per call, by lock kind and implementation."""
    lock_file, fast_file = d / ".lock", d / ".fasteners.lock"

    def ours_shared() -> None:
        with shared_lock(d):
            pass

    def ours_exclusive() -> None:
        WriteLock(lock_file, timeout=0).acquire().release()

    def ours_exclusive_now() -> None:
        with exclusive_now(d):
            pass

    def fast_shared() -> None:
        lock = fasteners.InterProcessReaderWriterLock(fast_file)
        lock.acquire_read_lock()
        lock.release_read_lock()

    def fast_exclusive() -> None:
        lock = fasteners.InterProcessReaderWriterLock(fast_file)
        lock.acquire_write_lock()
        lock.release_write_lock()

    def fast_exclusive_now() -> None:
        lock = fasteners.InterProcessReaderWriterLock(fast_file)
        if lock.acquire_write_lock(blocking=False):
            lock.release_write_lock()

    return {"shared": {"ours": ours_shared, "fasteners": fast_shared},
            "exclusive": {"ours": ours_exclusive, "fasteners": fast_exclusive},
            "exclusive, no wait": {"ours": ours_exclusive_now, "fasteners": fast_exclusive_now}}


def measure(rounds: int) -> dict[str, dict[str, float]]:
    """Median microseconds per acquire + release, by lock kind and implementation."""
    with tempfile.TemporaryDirectory() as tmp:
        table = cases(Path(tmp))
        samples: dict[str, dict[str, list[float]]] = {k: {impl: [] for impl in v} for k, v in table.items()}
        for fn in (f for v in table.values() for f in v.values()):
            fn()  # warm-up: files created, code paths loaded
        for _ in range(rounds):
            for kind, impls in table.items():
                for impl, fn in impls.items():
                    t0 = time.perf_counter_ns()
                    fn()
                    samples[kind][impl].append((time.perf_counter_ns() - t0) / 1000)
    return {kind: {impl: round(statistics.median(v), 1) for impl, v in impls.items()}
            for kind, impls in samples.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2000, help="acquire + release pairs per lock and implementation")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args()
    if args.rounds <= 0:
        raise SystemExit(f"--rounds must be > 0, got {args.rounds}")
    result = measure(args.rounds)
    env = {"python": platform.python_version(), "fasteners": metadata.version("fasteners"),
           "platform": platform.platform(), "rounds": args.rounds}
    if args.json:
        print(json.dumps({"env": env, "median_us": result}))
        return
    print(f"median µs per acquire + release, {args.rounds} rounds, uncontended "
          f"(Python {env['python']}, fasteners {env['fasteners']}, {env['platform']})\n")
    print("| lock | rag.locks (ours) | fasteners | fasteners / ours |")
    print("|---|---:|---:|---:|")
    for kind, r in result.items():
        print(f"| {kind} | {r['ours']:.1f} | {r['fasteners']:.1f} | {r['fasteners'] / r['ours']:.2f}x |")


if __name__ == "__main__":
    main()
