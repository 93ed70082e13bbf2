"""HTTP API benchmark: ``rag serve`` on loopback vs the same calls in process, in one run.

* search: ``POST /v1/search`` (httpx, keep-alive) vs ``RagService.search`` — requests/s, p50/p95 latency.
* chat: ``POST /v1/chat/completions`` streamed with the ``openai`` client vs ``Answerer.stream`` of the same
  pipeline — time to the first streamed token (p50/p95) and answers/s.

Each cell runs 1 and 4 concurrent clients (threads) in a bounded loop: at most ``--requests``
(``--chat-requests``) calls a side or ``--seconds`` (``--chat-seconds``), whichever comes first; the
server is a subprocess (``--port 0``) that is stopped at the end.  Blocks of in-process and API calls
alternate (4 searches or 2 answers per client a block), and the server idles while the in-process
side runs, so both see the same load.  The same questions go in the same order on both sides
(llama.cpp reuses a cached prompt prefix alike).  Prints a Markdown table; ``--json PATH`` writes
the numbers.

Usage::

    python bench/api.py [--corpus samples] [--seconds 40] [--chat-seconds 150] [--requests 200]
                        [--chat-requests 24] [--max-tokens 16] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see rag/generation/llm.py
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
import openai  # noqa: E402

from rag.index.store import IndexStore  # noqa: E402
from rag.ingest.ingestor import Ingestor  # noqa: E402
from rag.pipeline import GenerationConfig, PipelineConfig, RetrievalConfig  # noqa: E402
from rag.serve.service import RagService  # noqa: E402

QUESTIONS = [
    "Does my data leave the computer?", "How large can a file be?", "Which language model is used?",
    "How does search work?", "What happens if ingestion is interrupted?", "What is a chunk?",
    "How do I delete a document?", "What is hybrid retrieval?",
]


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


def run_block(call: Callable[[int], float], clients: int, start: int, count: int) -> tuple[list[float], float]:
    """``count`` calls of ``call(i)`` (each returns its measured seconds) from ``clients`` threads; (times, wall)."""
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        times = list(pool.map(call, range(start, start + count)))
    return times, time.perf_counter() - t0


def run_pair(local: Callable[[int], float], api: Callable[[int], float], clients: int, max_requests: int,
             seconds: float, block: int) -> tuple[dict[str, float], dict[str, float]]:
    """Alternate blocks of in-process and API calls (so both see the same load on a shared machine)
    until ``max_requests`` calls a side or ``seconds`` in all; requests/s and p50/p95 for each side."""
    sides: dict[str, dict[str, Any]] = {"local": {"times": [], "wall": 0.0}, "api": {"times": [], "wall": 0.0}}
    deadline = time.perf_counter() + seconds
    done = 0
    while done < max_requests and time.perf_counter() < deadline:
        count = min(block, max_requests - done)
        for name, call in (("local", local), ("api", api)):
            times, wall = run_block(call, clients, done, count)
            sides[name]["times"] += times
            sides[name]["wall"] += wall
        done += count

    def stats(side: dict[str, Any]) -> dict[str, float]:
        ts = side["times"]
        return {"n": len(ts), "rps": len(ts) / side["wall"], "p50_ms": 1000 * statistics.median(ts),
                "p95_ms": 1000 * pct(ts, 0.95), "mean_ms": 1000 * statistics.fmean(ts)}

    return stats(sides["local"]), stats(sides["api"])


def start_server(index_dir: Path, max_tokens: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "rag", "serve", "--index", "bench", "--index-dir", str(index_dir),
                             "--port", "0", "--max-tokens", str(max_tokens)], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    while True:
        try:
            line = lines.get(timeout=180)
        except queue.Empty:
            proc.kill()
            raise SystemExit("the server did not start in 180 s") from None
        if "rag API on " in line:
            return proc, line.split("rag API on ", 1)[1].split()[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=REPO / "samples")
    ap.add_argument("--seconds", type=float, default=40.0, help="time budget of a search cell (both sides)")
    ap.add_argument("--chat-seconds", type=float, default=150.0, help="time budget of a chat cell (both sides)")
    ap.add_argument("--requests", type=int, default=200, help="search calls a side and cell at most")
    ap.add_argument("--chat-requests", type=int, default=24, help="chat calls a side and cell at most")
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="rag-bench-api-"))
    store = IndexStore(tmp / "indexes")
    report = Ingestor("bench", store=store).ingest([args.corpus])
    print(report.summary(), file=sys.stderr)
    config = PipelineConfig(index="bench", generation=GenerationConfig(max_tokens=args.max_tokens))
    service = RagService(store, config).load()
    retrieval = RetrievalConfig()
    pipeline = service.pipeline("bench")
    proc, url = start_server(store.root, args.max_tokens)
    # One client each, thread-safe, made (and connected, by the warm-up) before anything is timed.
    http = httpx.Client(base_url=url.removesuffix("/v1"), timeout=120, limits=httpx.Limits(max_connections=8))
    oai = openai.OpenAI(base_url=url, api_key="local", max_retries=0, timeout=300)

    def local_search(i: int) -> float:
        t0 = time.perf_counter()
        service.search("bench", QUESTIONS[i % len(QUESTIONS)], retrieval)
        return time.perf_counter() - t0

    def api_search(i: int) -> float:
        t0 = time.perf_counter()
        r = http.post("/v1/search", json={"query": QUESTIONS[i % len(QUESTIONS)]})
        r.raise_for_status()
        return time.perf_counter() - t0

    def local_ttft(i: int) -> float:
        t0 = time.perf_counter()
        stream = pipeline.answerer.stream(QUESTIONS[i % len(QUESTIONS)])
        first = None
        for _piece in stream:
            first = first or time.perf_counter() - t0
        stream.answer  # noqa: B018 - the support check, as the server does
        return first if first is not None else time.perf_counter() - t0

    def api_ttft(i: int) -> float:
        t0 = time.perf_counter()
        first = None
        for chunk in oai.chat.completions.create(model="rag:bench", stream=True, max_tokens=args.max_tokens,
                                                 messages=[{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}]):
            if first is None and chunk.choices and chunk.choices[0].delta.content:
                first = time.perf_counter() - t0
        return first if first is not None else time.perf_counter() - t0

    rows: list[dict[str, Any]] = []
    try:
        with ThreadPoolExecutor(4) as pool:  # warm up both sides, and open the clients' connections
            for fn in (local_search, api_search, local_ttft, api_ttft):
                list(pool.map(fn, range(4)))
        for name, local, api, n, seconds, per_client in (
                ("search", local_search, api_search, args.requests, args.seconds, 4),
                ("chat TTFT", local_ttft, api_ttft, args.chat_requests, args.chat_seconds, 2)):
            for clients in (1, 4):
                cell_local, cell_api = run_pair(local, api, clients, n, seconds, block=per_client * clients)
                rows.append({"endpoint": name, "clients": clients, "in_process": cell_local, "api": cell_api,
                             "p50_ratio": cell_api["p50_ms"] / cell_local["p50_ms"],
                             "mean_ratio": cell_api["mean_ms"] / cell_local["mean_ms"],
                             "rps_ratio": cell_api["rps"] / cell_local["rps"]})
                print(f"{name} x{clients}: done", file=sys.stderr)
    finally:
        http.close()
        proc.terminate()
        proc.wait(timeout=30)
        service.close()

    print("| measure | clients | in-process req/s | API req/s | in-process p50 / p95 / mean ms "
          "| API p50 / p95 / mean ms | API / in-process (p50, mean) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        lo, hi = r["in_process"], r["api"]
        print(f"| {r['endpoint']} | {r['clients']} | {lo['rps']:.1f} | {hi['rps']:.1f} | "
              f"{lo['p50_ms']:.0f} / {lo['p95_ms']:.0f} / {lo['mean_ms']:.0f} | "
              f"{hi['p50_ms']:.0f} / {hi['p95_ms']:.0f} / {hi['mean_ms']:.0f} | "
              f"{r['p50_ratio']:.2f}x, {r['mean_ratio']:.2f}x |")
    print(f"(n per cell: {', '.join(str(r['api']['n']) for r in rows)}; chat: {args.max_tokens} new tokens, "
          f"req/s counts whole answers)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
