#!/usr/bin/env python
"""What checking an index's parts on load costs: 100k chunks, with and without the checks, same run.

Builds one synthetic in-process index (``--chunks`` chunks of ``--words`` words drawn from a
Zipf-like vocabulary, unit random vectors of ``--dim``, flat FAISS, the BM25 matrix), saves it
with :class:`rag.index.store.IndexStore` (which records each part's sha256 in the manifest), and
then times ``IndexStore.load`` in this process, alternating:

* ``checked``: the load as shipped: every part's sha256 against the manifest
  (:func:`rag.index.manifest.verify_digests`) and the vectors' unit length
  (:func:`rag.index.parts.check_unit_norm`);
* ``baseline``: the same load with those two checks replaced by no-ops.

Medians of ``--repeats`` loads each (the first load of each kind is a warm-up, so both read
from the page cache); ``extra_s`` is the median of the per-pair differences and ``ratio`` the
median of the per-pair ratios.  Also reports each part's size and how long hashing it takes.

Usage (from the repository root)::

    .venv/bin/python bench/index_load.py              # ~1-2 minutes on 2 busy cores (most of it building)
    .venv/bin/python bench/index_load.py --chunks 10000 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from unittest import mock

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from rag.fs import file_sha256  # noqa: E402
from rag.index import manifest as manifest_mod  # noqa: E402
from rag.index import parts as parts_mod  # noqa: E402
from rag.index.store import DocRecord, Index, IndexSettings, IndexStore  # noqa: E402
from rag.types import Chunk  # noqa: E402


def build(n: int, words: int, dim: int, seed: int = 0) -> Index:
    """A synthetic index of ``n`` chunks, ``words`` words each, unit vectors of ``dim``."""
    rng = np.random.default_rng(seed)
    vocab = [f"term{i}" for i in range(50_000)]
    p = 1.0 / np.arange(1, len(vocab) + 1)
    ids = rng.choice(len(vocab), size=(n, words), p=p / p.sum())
    tokens = [[vocab[j] for j in row] for row in ids.tolist()]  # shared str objects: 10M tokens fit
    per_doc = 100
    chunks = [Chunk(id=f"{i:016x}", text=" ".join(t), doc_id=f"d{i // per_doc}", source=f"/docs/f{i // per_doc}.md",
                    page=None, start=0, end=len(t), index=i % per_doc, title=f"File {i // per_doc}")
              for i, t in enumerate(tokens)]
    docs = {f"/docs/f{j}.md": DocRecord(f"d{j}", f"/docs/f{j}.md", "h", f"File {j}", per_doc, None, 0.0)
            for j in range((n + per_doc - 1) // per_doc)}
    vecs = rng.standard_normal((n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    settings = IndexSettings(embedder_id="bench/synthetic", dim=dim, chunker={"chunk_size": words})
    return Index("bench", settings, chunks, vecs, tokens, docs)


def timed_load(store: IndexStore, checked: bool) -> float:
    with ExitStack() as stack:
        if not checked:
            stack.enter_context(mock.patch.object(parts_mod, "verify_digests", lambda *a, **k: None))
            stack.enter_context(mock.patch.object(parts_mod, "check_unit_norm", lambda *a, **k: None))
        t0 = time.perf_counter()
        index = store.load("bench")
        elapsed = time.perf_counter() - t0
        del index
    return elapsed


def measure(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="rag-bench-load-") as tmp:
        t0 = time.perf_counter()
        index = build(args.chunks, args.words, args.dim)
        store = IndexStore(tmp)
        store.save(index)
        built_s = time.perf_counter() - t0
        del index
        version = store.version_path("bench")
        manifest = store.read_manifest("bench")
        parts: dict[str, dict[str, float]] = {}
        for name in sorted(manifest[manifest_mod.DIGESTS]):
            t = time.perf_counter()
            file_sha256(version / name)
            parts[name] = {"mb": round((version / name).stat().st_size / 1e6, 1),
                           "sha256_s": round(time.perf_counter() - t, 3)}
        timed_load(store, True), timed_load(store, False)  # warm-up: both read from the page cache
        checked, baseline = [], []
        for i in range(args.repeats):
            order = (True, False) if i % 2 == 0 else (False, True)
            for kind in order:
                (checked if kind else baseline).append(timed_load(store, kind))
        loaded = store.load("bench")
        t = time.perf_counter()
        parts_mod.check_unit_norm("bench", loaded.settings, loaded.embeddings)
        norm_s = time.perf_counter() - t
    return {
        "chunks": args.chunks, "words_per_chunk": args.words, "dim": args.dim, "repeats": args.repeats,
        "load_s_checked_p50": round(statistics.median(checked), 3),
        "load_s_baseline_p50": round(statistics.median(baseline), 3),
        "extra_s_p50": round(statistics.median(c - b for c, b in zip(checked, baseline)), 3),
        "ratio_p50": round(statistics.median(c / b for c, b in zip(checked, baseline)), 2),
        "unit_norm_check_s": round(norm_s, 3),
        "parts_mb_total": round(sum(p["mb"] for p in parts.values()), 1),
        "parts": parts, "build_and_save_s": round(built_s, 1),
        "env": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
                "load_average": [round(x, 2) for x in os.getloadavg()]},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--words", type=int, default=100, help="words per chunk (the default chunker gives ~150)")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--repeats", type=int, default=7, help="loads of each kind, alternating")
    args = ap.parse_args()
    for flag in ("chunks", "words", "dim", "repeats"):
        if getattr(args, flag) <= 0:
            raise SystemExit(f"--{flag} must be > 0, got {getattr(args, flag)}")
    print(json.dumps(measure(args), indent=1))


if __name__ == "__main__":
    main()
