"""Questions asked in one's own words over ``samples/``, through the real default pipeline.

COVID-QA's questions were written looking at their article, so they share most of its words; a user
asks in their own ("Is anything sent over the internet?" for a FAQ that says "It sends no
telemetry").  These questions were written for this check, not copied from the documents: the first
group is answered in ``samples/``, the second is not.  Each is asked through ``rag ingest samples`` +
the default :func:`rag.pipeline.build` pipeline (the packaged default model), and the table shows
whether it was answered or declined, why, the best dense cosine among the retrieved chunks, the best
sentence's cosine among them (the relevance gate's second signal) and the answer check's log-odds.

Usage: python bench/own_words.py [--min-relevance X] [--answer-check T]   (~3 min on 2 cores)
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

OWN_WORDS_ANSWERED = (
    "Is anything sent over the internet?", "Can I use the program without a network connection?",
    "What if my computer crashes while adding files?", "Is there a maximum size for uploads?",
    "Which kinds of files can I add?", "Will it re-read files that did not change?",
    "What does the app do when it doesn't know the answer?", "Where are collections kept on disk?",
    "Which model runs by default?", "How are the two search methods combined?", "Does it work with Word files?",
    "What is a faster model for old laptops?", "Are hidden files included?", "What do the numbers in brackets mean?")
OWN_WORDS_NOT_ANSWERED = (
    "Can I index Excel spreadsheets?", "How do I export chats to PDF?", "Does it support voice input?",
    "What is the price of a license?", "Can several users log in with passwords?")


def samples_index(directory: str | Path):  # type: ignore[no-untyped-def]
    """An :class:`~rag.index.store.IndexStore` in ``directory`` holding ``samples/`` as index "samples",
    built the way a user builds it (``rag ingest samples``)."""
    from rag.index.store import IndexStore

    subprocess.run([sys.executable, "-m", "rag", "ingest", str(ROOT / "samples"), "--index", "samples",
                    "--index-dir", str(directory)], check=True, capture_output=True)
    return IndexStore(directory)


def main() -> None:
    from dataclasses import replace

    from rag.answer.gate import best_sentence_cosines
    from rag.pipeline import GenerationConfig, PipelineConfig, build

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--min-relevance", type=float, default=None, help="relevance gate's dense cosine (default: the app's)")
    ap.add_argument("--answer-check", type=float, default=None, help="answer check threshold (default: the model's)")
    args = ap.parse_args()
    generation = GenerationConfig()
    if args.min_relevance is not None:
        generation = replace(generation, min_relevance=args.min_relevance)
    if args.answer_check is not None:
        generation = replace(generation, answer_check=args.answer_check)
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = build(PipelineConfig(index="samples", generation=generation), samples_index(tmp))
        print(f"min_relevance {generation.min_relevance}, answer check {generation.answer_check_threshold()}")
        print("| answered in samples/ | outcome | reason | best dense | best sentence | check | question | answer |")
        print("|---|---|---|---:|---:|---:|---|---|")
        planner = pipeline.answerer.planner
        counts = {True: [0, 0], False: [0, 0]}
        for answerable, questions in ((True, OWN_WORDS_ANSWERED), (False, OWN_WORDS_NOT_ANSWERED)):
            for q in questions:
                a = pipeline.answerer.answer(q)
                d = a.diagnostics
                counts[answerable][0] += 1
                counts[answerable][1] += not a.declined
                text = " ".join(a.text.split())[:100]
                # the relevance gate's other signal: the best sentence of the retrieved chunks
                sentence = max(best_sentence_cosines(q, [h.chunk for h in planner.plan(q).hits],
                                                     planner.retriever.embedder), default=float("nan"))
                print(f"| {answerable} | {'declined' if a.declined else 'answered'} | {d.reason} | "
                      f"{d.top_dense if d.top_dense is not None else float('nan'):.2f} | {sentence:.2f} | "
                      f"{d.answer_check} | {q} | {text} |", flush=True)
        print(f"\nanswered {counts[True][1]} of {counts[True][0]} answerable; "
              f"declined {counts[False][0] - counts[False][1]} of {counts[False][0]} not answerable")
        pipeline.close()


if __name__ == "__main__":
    main()
