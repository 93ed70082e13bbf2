#!/usr/bin/env python
"""Embedding speed: the old path (torch) against the new one (the default backend), same run.

Measures, on real Cranfield chunks (default chunking, title prefix, as ``rag ingest`` makes them):

1. raw encode rate: ``Embedder.encode`` on the same chunk texts, chunks/s;
2. the ingest pipeline's rate: ``Ingestor.ingest_loaded`` (chunk, embed, BM25 tokenize, build
   BM25 + FAISS, save atomically) on the same documents into a temporary store, chunks/s;
3. query encoding: one short query per call (the small-batch, single-thread path), ms p50.

Every repeat runs old, then new, back to back, and the speed-ups are the medians of the
per-repeat ratios, so a busy machine slows both sides of each ratio alike.  Absolute rates
on a shared 2-core machine are noisy; the ratios are what to read.  Model loading (and the
one-time ONNX export of a fresh cache) is timed separately and not part of any rate.

Also reports how close the new vectors are to the old ones (cosine, same texts).

Usage (from the repository root)::

    .venv/bin/python bench/embedding.py                  # ~1-2 minutes on 2 busy cores
    .venv/bin/python bench/embedding.py --json           # one JSON object (with encode_speedup) on stdout
    .venv/bin/python bench/embedding.py --chunks 256 --repeats 5 --new onnx
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from rag.embedding import BACKENDS, Embedder, physical_cores  # noqa: E402
from rag.index.store import IndexStore, indexed_text  # noqa: E402
from rag.ingest.chunking import Chunker  # noqa: E402
from rag.ingest.ingestor import Ingestor  # noqa: E402
from rag.ingest.loaders import LoadedFile, doc_id_for  # noqa: E402
from rag.types import Document  # noqa: E402
from rag_eval.datasets import load_cranfield  # noqa: E402

DEFAULT_CRANFIELD = REPO.parent / "shared" / "data" / "cranfield"
QUERIES = ["what is the boundary layer thickness on a flat plate", "heat transfer in hypersonic flow",
           "buckling of thin cylindrical shells", "shock wave interaction with a laminar boundary layer",
           "flutter of a wing in supersonic flow", "prime the pump", "effect of sweep on lift",
           "transition to turbulence at high mach numbers"]


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def timeit(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def corpus(path: Path, n_chunks: int, tokenizer: Any) -> tuple[list[LoadedFile], list[str]]:
    """The first Cranfield documents that give >= ``n_chunks`` default chunks, and those chunks' texts."""
    files: list[LoadedFile] = []
    texts: list[str] = []
    chunker = Chunker(tokenizer=tokenizer)
    for d in load_cranfield(path).documents:
        source = f"cranfield/{d.doc_id}.txt"
        doc = Document.from_text(d.text, source=source, title=d.title, format=".txt")
        loaded = LoadedFile(source=source, doc_id=doc_id_for(source),
                            file_hash=hashlib.sha256(f"{d.title}\n{d.text}".encode()).hexdigest(),
                            documents=(doc,))
        files.append(loaded)
        texts.extend(indexed_text(c, True) for c in chunker.split(loaded.documents, doc_id=loaded.doc_id))
        if len(texts) >= n_chunks:
            break
    return files, texts


def pipeline_rate(embedder: Embedder, files: Sequence[LoadedFile], root: Path, name: str) -> float:
    """Chunks/s of a full ``Ingestor.ingest_loaded`` into a fresh store under ``root``."""
    store = IndexStore(root / name)
    ing = Ingestor("bench", store=store, embedder=embedder, show_progress=False)
    seconds, report = timeit(lambda: ing.ingest_loaded(files, rebuild=True))
    if not report.ok:
        raise RuntimeError(f"ingest failed:\n{report.summary()}")
    return report.chunks_added / seconds


def query_p50_ms(embedder: Embedder, rounds: int = 3) -> float:
    times = []
    for _ in range(rounds):
        for q in QUERIES:
            t, _ = timeit(lambda: embedder.encode([q]))
            times.append(t)
    return statistics.median(times) * 1000


def measure(n_chunks: int = 128, repeats: int = 3, new_backend: str = "auto", old_backend: str = "torch",
            cranfield: Path = DEFAULT_CRANFIELD, budget_s: float = 150.0) -> dict[str, Any]:
    """Run the benchmark; returns the JSON-able results (``encode_speedup`` = new/old raw encode rate)."""
    t_start = time.perf_counter()
    paths = {"old": Embedder(backend=old_backend), "new": Embedder(backend=new_backend)}
    load_s = {}
    for label, emb in paths.items():
        load_s[label], _ = timeit(emb.load)
        log(f"{label}: {emb.backend} loaded in {load_s[label]:.1f} s")
    files, texts = corpus(cranfield, n_chunks, paths["old"].tokenizer)
    log(f"{len(texts)} chunks from {len(files)} Cranfield documents; {repeats} repeats")
    for emb in paths.values():  # warm-up (first-call allocations, thread pools)
        emb.encode(texts[:8] + ["warm up"])
    old_v, new_v = paths["old"].encode(texts), paths["new"].encode(texts)
    cos = np.sum(old_v * new_v, axis=1)
    rates: dict[str, dict[str, list[float]]] = {k: {"encode": [], "pipeline": [], "query_ms": []} for k in paths}
    with tempfile.TemporaryDirectory(prefix="rag-bench-emb-") as tmp:
        for rep in range(repeats):
            for label, emb in paths.items():
                t, _ = timeit(lambda: emb.encode(texts))
                rates[label]["encode"].append(len(texts) / t)
                rates[label]["pipeline"].append(pipeline_rate(emb, files, Path(tmp), f"{label}-{rep}"))
                rates[label]["query_ms"].append(query_p50_ms(emb))
            log(f"repeat {rep + 1}: encode {rates['old']['encode'][-1]:.1f} -> {rates['new']['encode'][-1]:.1f} "
                f"chunks/s, pipeline {rates['old']['pipeline'][-1]:.1f} -> {rates['new']['pipeline'][-1]:.1f}")
            if rep + 1 < repeats and time.perf_counter() - t_start > budget_s:
                log(f"time budget of {budget_s:.0f} s reached after {rep + 1} repeats")
                break
    done = len(rates["old"]["encode"])

    def ratio(key: str, invert: bool = False) -> float:
        r = [(o / n) if invert else (n / o) for o, n in zip(rates["old"][key], rates["new"][key])]
        return round(statistics.median(r), 3)

    med = {label: {k: round(statistics.median(v), 2) for k, v in r.items()} for label, r in rates.items()}
    return {
        "encode_speedup": ratio("encode"), "pipeline_speedup": ratio("pipeline"),
        "query_speedup": ratio("query_ms", invert=True),
        "old": {"backend": paths["old"].backend, **med["old"], "load_s": round(load_s["old"], 2)},
        "new": {"backend": paths["new"].backend, **med["new"], "load_s": round(load_s["new"], 2)},
        "cosine_min": round(float(cos.min()), 5), "cosine_mean": round(float(cos.mean()), 5),
        "chunks": len(texts), "documents": len(files), "repeats": done, "model_id": paths["new"].model_id,
        "cpu": f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical / {physical_cores()} physical cores",
        "versions": {p: _version(p) for p in ("torch", "sentence-transformers", "onnxruntime")},
        "seconds": round(time.perf_counter() - t_start, 1),
    }


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def markdown(r: dict[str, Any]) -> str:
    o, n = r["old"], r["new"]
    rows = [("raw encode (chunks/s)", o["encode"], n["encode"], r["encode_speedup"]),
            ("ingest pipeline (chunks/s)", o["pipeline"], n["pipeline"], r["pipeline_speedup"]),
            ("query encode p50 (ms)", o["query_ms"], n["query_ms"], r["query_speedup"])]
    lines = [f"| measure | old: {o['backend']} | new: {n['backend']} | speed-up |", "|---|---:|---:|---:|"]
    lines += [f"| {a} | {b} | {c} | {d:.2f}x |" for a, b, c, d in rows]
    lines.append("")
    lines.append(f"{r['chunks']} Cranfield chunks ({r['documents']} documents), median of {r['repeats']} "
                 f"interleaved repeats; speed-ups are medians of per-repeat ratios. Cosine new vs old: "
                 f"min {r['cosine_min']:.4f}, mean {r['cosine_mean']:.4f}. {r['cpu']}.")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=128, help="chunks to encode per repeat (default 128)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats (default 3)")
    ap.add_argument("--new", default="auto", choices=BACKENDS, help="the new path's backend (default auto)")
    ap.add_argument("--old", default="torch", choices=BACKENDS, help="the old path's backend (default torch)")
    ap.add_argument("--cranfield", type=Path, default=DEFAULT_CRANFIELD)
    ap.add_argument("--budget-s", type=float, default=150.0, help="stop repeating after this many seconds")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args(argv)
    if args.chunks <= 0 or args.repeats <= 0:
        ap.error(f"--chunks and --repeats must be > 0, got {args.chunks} and {args.repeats}")
    result = measure(args.chunks, args.repeats, args.new, args.old, args.cranfield, args.budget_s)
    print(json.dumps(result, indent=1) if args.json else markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
