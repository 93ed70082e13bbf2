"""Generation benchmark: the evidence prompt against the whole-chunk prompt, and the app against bare llama.cpp.

**Evidence vs chunks** (``--questions N``, default 10): N seeded COVID-QA test questions (when
``../shared/data/covid-qa`` is there) answered through the default pipeline twice, from the
selected evidence sentences (``--context evidence``, the default) and from the five relevant
chunks whole (``--context chunks``, the path before evidence), the KV cache reset before each
answer.  Prints the medians of prompt tokens and time to first token (the answer decision
included: it runs before the first token) and their ratios, evidence / chunks.

**App vs bare llama.cpp** (a four-document corpus):

* bare: ``llama_cpp.Llama.create_chat_completion(stream=True)`` on the exact messages the app
  builds; its TTFT is the prompt-evaluation time (plus one token).
* app: ``Answerer.stream(question)`` end to end: query embedding, retrieval, relevance gate,
  evidence selection, token budgeting with the model's tokenizer, the answer decision (the
  model's check and hidden-state probe), then the same generation; "no answer check" is the same
  without the decision.

The KV cache is reset before every run so neither side reuses a cached prompt prefix, except in
the "warm" column: there another question was answered just before, so llama.cpp reuses the KV
cache of the fixed system-prompt prefix (llama-cpp-python keeps the longest common token prefix of
consecutive prompts) and evaluates only the rest.  "bare, 1 thread" is llama-cpp-python's own
thread default on a 2-core machine (``n_threads`` unset), the "before" of setting it explicitly.
Prints a Markdown table (medians over ``--runs``).

Usage::

    python bench/generation.py [--model qwen2.5-coder-1.5b] [--questions 10] [--runs 3] [--max-tokens 64] [--k 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see rag/llm.py: torch's spinning threads starve llama.cpp
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag.answer.answerer import Answerer  # noqa: E402
from rag.embedding import Embedder  # noqa: E402
from rag.index.store import IndexStore  # noqa: E402
from rag.ingest.ingestor import Ingestor  # noqa: E402
from rag.generation.llm import LlamaCppLLM  # noqa: E402
from rag.generation.models import DEFAULT_MODEL  # noqa: E402
from rag.pipeline import GenerationConfig, PipelineConfig, RetrievalConfig, build  # noqa: E402

QUESTION = "How do I prime the centrifugal pump, and what happens if it runs dry?"
OTHER_QUESTION = "How often must the turbine blades be inspected?"
CORPUS = {
    "pump.md": "# Pump manual\n\nTo prime the centrifugal pump, open the bleed valve and fill the casing with "
               "water until no air escapes. Close the bleed valve before starting the motor.\n\nNever run the "
               "pump dry: the mechanical seal overheats within seconds and must then be replaced. If the pump "
               "ran dry, stop the motor, let the casing cool for ten minutes and prime it again.\n",
    "turbine.txt": "Turbine maintenance. The turbine blades must be inspected for cracks every 500 operating "
                   "hours. Replace any blade with erosion deeper than 2 mm. Record every inspection in the "
                   "maintenance log together with the operating hours and the inspector's name.",
    "boiler.txt": "Boiler safety. Check the water level in the sight glass before lighting the burner. The "
                  "pressure relief valve must be tested every month by lifting its lever while the boiler is "
                  "at working pressure. Blow down the boiler daily to remove sludge.",
    "seal.txt": "Mechanical seals. A mechanical seal needs a film of liquid between its faces; without it the "
                "faces heat up, crack and leak. Flush the seal chamber after a dry run and inspect the faces "
                "for heat checking before the pump is started again.",
}


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def bare_run(llama: object, messages: list[dict[str, str]], max_tokens: int) -> tuple[float, float, int]:
    """(ttft_s, total_s, generated_tokens) for one streamed bare llama.cpp call."""
    llama.reset()  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    first = None
    text = []
    for chunk in llama.create_chat_completion(messages=messages, max_tokens=max_tokens,  # type: ignore[attr-defined]
                                              temperature=0.0, seed=0, stream=True):
        piece = chunk["choices"][0].get("delta", {}).get("content")
        if piece:
            if first is None:
                first = time.perf_counter() - t0
            text.append(piece)
    total = time.perf_counter() - t0
    n = len(llama.tokenize("".join(text).encode("utf-8"), add_bos=False))  # type: ignore[attr-defined]
    return first or total, total, n


CHECK_S: list[float] = []


def app_run(answerer: Answerer, llm: LlamaCppLLM, max_tokens: int, warm: bool = False) -> tuple[float, float, int]:
    """(ttft_s, time of the last piece, generated tokens); the post-stream support check is
    recorded separately in CHECK_S.  ``warm``: answer another question first (untimed) instead of
    resetting the KV cache, so only the system-prompt prefix is shared."""
    with llm.lock:
        llm.llama.reset()
    if warm:
        answerer.stream(OTHER_QUESTION).answer
    t0 = time.perf_counter()
    stream = answerer.stream(QUESTION)
    first = last = None
    for _piece in stream:
        last = time.perf_counter() - t0
        if first is None:
            first = last
    end = time.perf_counter() - t0
    CHECK_S.append(end - (last or end))
    answer = stream.answer
    n = llm.count_tokens(answer.diagnostics.raw or answer.text)
    return first or end, last or end, n


COVID_QA = Path(__file__).resolve().parents[2] / "shared" / "data" / "covid-qa"


def evidence_vs_chunks(model: str, n: int, max_tokens: int) -> None:
    """Prompt tokens and TTFT of the evidence path against the whole-chunk path, same questions, one run."""
    from rag_eval.qa import load_qa, select
    from rag_eval.retrieval import EvalSettings, build_index

    ds = load_qa(COVID_QA)
    questions = select(ds, "test", n, seed=0)
    embedder = Embedder().load()
    index = build_index(ds.corpus(), embedder, EvalSettings())
    store = IndexStore(Path(tempfile.mkdtemp()) / "indexes")
    rows: dict[str, list[tuple[int, float]]] = {"chunks": [], "evidence": []}
    with LlamaCppLLM(model, seed=0) as llm:
        answerers = {}
        for context in rows:
            config = PipelineConfig(index=index.name, generation=GenerationConfig(model=model, max_tokens=max_tokens,
                                                                                  context=context))
            answerers[context] = build(config, store, index=index, embedder=embedder, llm=llm).answerer
        answerers["evidence"].answer(questions[0].question)  # warm-up: weights paged in, ONNX session built
        for q in questions:
            for context, answerer in answerers.items():  # the two paths alternate, so load drifts hit both
                with llm.lock:
                    llm.llama.reset()
                t0 = time.perf_counter()
                stream = answerer.stream(q.question)
                first = None
                for _piece in stream:
                    if first is None:
                        first = time.perf_counter() - t0
                answer = stream.answer
                rows[context].append((answer.diagnostics.prompt_tokens, first or time.perf_counter() - t0))
    tokens = {c: median([float(t) for t, _ in r if t]) for c, r in rows.items()}
    ttft = {c: median([s for _, s in r]) for c, r in rows.items()}
    print(f"## Evidence vs whole chunks: {n} COVID-QA test questions (seed 0), {model}, median per question\n")
    print("| path | prompt tokens | time to first token (s) |")
    print("|---|---:|---:|")
    for c in ("chunks", "evidence"):
        print(f"| {c} | {tokens[c]:.0f} | {ttft[c]:.2f} |")
    print(f"| **evidence / chunks** | **{tokens['evidence'] / tokens['chunks']:.2f}** | "
          f"**{ttft['evidence'] / ttft['chunks']:.2f}** |\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--questions", type=int, default=10,
                    help="COVID-QA test questions for evidence vs chunks (0: skip; needs ../shared/data/covid-qa)")
    args = ap.parse_args(argv)
    if args.questions and COVID_QA.is_dir():
        evidence_vs_chunks(args.model, args.questions, args.max_tokens)

    import llama_cpp

    embedder = Embedder().load()
    with tempfile.TemporaryDirectory() as tmp:
        docs = Path(tmp) / "docs"
        docs.mkdir()
        for name, text in CORPUS.items():
            (docs / name).write_text(text, encoding="utf-8")
        store = IndexStore(Path(tmp) / "indexes")
        Ingestor("bench", store=store, embedder=embedder).ingest([docs])
        index = store.load("bench")

    with LlamaCppLLM(args.model, seed=0) as llm:
        config = PipelineConfig(index="bench", retrieval=RetrievalConfig(k=args.k),
                                generation=GenerationConfig(model=args.model, max_tokens=args.max_tokens))
        answerer = build(config, store, index=index, embedder=embedder, llm=llm).answerer
        unchecked = replace(config, generation=replace(config.generation, answer_check=None))
        answerer_unchecked = build(unchecked, store, index=index, embedder=embedder, llm=llm).answerer
        # the exact prompt the app sends (same retrieval, same evidence, same budget)
        plan = answerer.planner.plan(QUESTION)
        prompt = answerer.strategy.evidence_prompts.build(QUESTION, plan.evidence.passages)
        messages = [dict(m) for m in prompt.messages]
        kwargs = {"n_ctx": llm.n_ctx, "n_gpu_layers": 0 if not llama_cpp.llama_supports_gpu_offload() else -1,
                  "seed": 0, "verbose": False}
        bare = llama_cpp.Llama(str(llm.path), n_threads=llm.n_threads, n_threads_batch=llm.n_threads, **kwargs)
        bare1 = llama_cpp.Llama(str(llm.path), **kwargs)  # llama-cpp-python's default threads
        try:
            bare_run(bare, messages, 8)          # warm-up (page in weights)
            bare_run(bare1, messages, 8)
            app_run(answerer, llm, args.max_tokens)
            bare_res, bare1_res, app_res, warm_res, nocheck_res = [], [], [], [], []
            for _ in range(args.runs):
                bare_res.append(bare_run(bare, messages, args.max_tokens))
                bare1_res.append(bare_run(bare1, messages, args.max_tokens))
                app_res.append(app_run(answerer, llm, args.max_tokens))
                warm_res.append(app_run(answerer, llm, args.max_tokens, warm=True))
                nocheck_res.append(app_run(answerer_unchecked, llm, args.max_tokens))
            scored = answerer.stream(QUESTION).answer.diagnostics.answer_check
        finally:
            bare.close()
            bare1.close()

    def decode_rate(res: list[tuple[float, float, int]]) -> float:
        return median([(n - 1) / (total - ttft) for ttft, total, n in res if n > 1 and total > ttft])

    cols = (bare1_res, bare_res, app_res, warm_res, nocheck_res)
    ttfts = [median([r[0] for r in res]) for res in cols]
    b_ttft, a_ttft = ttfts[1], ttfts[2]
    ptoks = prompt.prompt_tokens
    print(f"model: {args.model} ({llm.path.name}), n_ctx {llm.n_ctx}, CPU threads {llm.n_threads} "
          f"(llama-cpp-python's default: {bare1.n_threads if hasattr(bare1, 'n_threads') else '?'}), "
          f"GPU offload {'yes' if kwargs['n_gpu_layers'] else 'no'}")
    print(f"prompt: {ptoks} tokens ({prompt.n_sources} evidence passages), max_tokens {args.max_tokens}, "
          f"median of {args.runs} runs\n")
    print("| measure | bare, default threads | bare llama.cpp | app (Answerer.stream) | app, warm prefix "
          "| app, no answer check |")
    print("|---|---|---|---|---|---|")
    print("| time to first token (s) | " + " | ".join(f"{t:.3f}" for t in ttfts) + " |")
    print("| prompt eval (tokens/s) | " + " | ".join(f"{ptoks / t:.0f}" for t in ttfts) + " |")
    print("| decode (tokens/s) | " + " | ".join(f"{decode_rate(res):.1f}" for res in cols) + " |")
    print("| generated tokens (median) | " + " | ".join(f"{median([r[2] for r in res]):.0f}" for res in cols) + " |")
    print(f"| support check after the stream (s) | - | - | {median(CHECK_S[-3 * args.runs:]):.3f} | | |")
    print(f"\nexplicit threads: TTFT {ttfts[0] / b_ttft:.2f}x faster than llama-cpp-python's default; "
          f"warm system-prompt prefix: app TTFT {a_ttft / ttfts[3]:.2f}x faster than cold")
    print(f"answer check (log-odds {scored}): app TTFT {a_ttft / ttfts[4]:.2f}x of the app without it"
          if scored is not None else "answer check: not calibrated for this model (off)")
    ratio = a_ttft / b_ttft
    print(f"\napp TTFT / bare TTFT = {ratio:.2f}x (goal <= 1.5x): {'OK' if ratio <= 1.5 else 'OVER'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
