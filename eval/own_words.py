"""Questions asked in one's own words over ``samples/``, through the real default pipeline.

COVID-QA's questions were written looking at their article, so they share most of its words; a user
asks in their own ("Is anything sent over the internet?" for a FAQ that says "It sends no
telemetry").  These questions were written for this check, not copied from the documents: the first
group is answered in ``samples/``, the second is not.  Each is asked through ``rag ingest samples`` +
the default :func:`rag.pipeline.build` pipeline (the packaged default model), and the table shows
whether it was answered or declined, why, the best dense cosine among the retrieved chunks, the best
sentence's cosine among them (the relevance gate's second signal) and the answer decision's score.
An answered question counts as right when its answer says what the samples say (a pattern per
question, written with the question); an unanswerable one is right when it is declined.

Usage: python eval/own_words.py [--min-relevance X] [--answer-check T] [--context chunks] [--extractive] [--signals]
(~3 min on 2 cores)
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

#: question -> what a right answer says (a regular expression, case-insensitive), from samples/
OWN_WORDS_ANSWERED: dict[str, str] = {
    "Is anything sent over the internet?": r"\bno\b|locally|no telemetry|nothing leaves|does not leave",
    "Can I use the program without a network connection?": r"\byes\b|offline|locally",
    "What if my computer crashes while adding files?": r"nothing is lost|temporary folder|previous version",
    "Is there a maximum size for uploads?": r"100 ?MB",
    "Which kinds of files can I add?": r"(\.txt|plain text).*(\.pdf|PDF)|(\.pdf|PDF).*(\.txt|plain text)",
    "Will it re-read files that did not change?": r"\bno\b|skip|not changed|incremental",
    "What does the app do when it doesn't know the answer?": r"says so|instead of guessing|could not find",
    "Where are collections kept on disk?": r"indexes",
    "Which model runs by default?": r"Qwen2\.5-Coder-1\.5B",
    "How are the two search methods combined?": r"z-score",
    "Does it work with Word files?": r"\byes\b|\.docx",
    "What is a faster model for old laptops?": r"SmolLM2",
    "Are hidden files included?": r"\bno\b|skipped",
    "What do the numbers in brackets mean?": r"source|passage|cite",
    "Can I index Excel spreadsheets?": r"\byes\b|\.xlsx",
}
#: the yes/no questions' right verdict: an answer that opens with the other one is wrong, whatever it quotes
#: ("Yes: ... hidden files are skipped" tells the user the opposite of its source)
OWN_WORDS_POLARITY: dict[str, str] = {
    "Is anything sent over the internet?": "no",
    "Can I use the program without a network connection?": "yes",
    "Is there a maximum size for uploads?": "yes",
    "Will it re-read files that did not change?": "no",
    "Does it work with Word files?": "yes",
    "Are hidden files included?": "no",
    "Can I index Excel spreadsheets?": "yes",
}
OWN_WORDS_NOT_ANSWERED = (
    "Can I index audio recordings?", "How do I export chats to PDF?", "Does it support voice input?",
    "What is the price of a license?", "Can several users log in with passwords?")


def samples_index(directory: str | Path):  # type: ignore[no-untyped-def]
    """An :class:`~rag.index.store.IndexStore` in ``directory`` holding ``samples/`` as index "samples",
    built the way a user builds it (``rag ingest samples``)."""
    from rag.index.store import IndexStore

    subprocess.run([sys.executable, "-m", "rag", "ingest", str(ROOT / "samples"), "--index", "samples",
                    "--index-dir", str(directory)], check=True, capture_output=True)
    return IndexStore(directory)


def right(question: str, answer: object) -> bool:
    """An answerable question answered with what the samples say, or an unanswerable one declined."""
    if question in OWN_WORDS_ANSWERED:
        from rag_eval.qa import opening_verdict

        text = answer.text  # type: ignore[attr-defined]
        opens = opening_verdict(text)
        if opens and question in OWN_WORDS_POLARITY and opens != OWN_WORDS_POLARITY[question]:
            return False
        return not answer.declined and bool(re.search(OWN_WORDS_ANSWERED[question], text, re.I))  # type: ignore[attr-defined]
    return bool(answer.declined)  # type: ignore[attr-defined]


def signals(values: object) -> str:
    """The decision's signals as ``name=value`` pairs (empty when it read none)."""
    return " ".join(f"{k}={v:.2f}" for k, v in dict(values or {}).items())  # type: ignore[call-overload]


def main() -> None:
    from dataclasses import replace

    from rag.answer.gate import best_sentence_cosines
    from rag.pipeline import GenerationConfig, PipelineConfig, build

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--min-relevance", type=float, default=None, help="relevance gate's dense cosine (default: the app's)")
    ap.add_argument("--answer-check", type=float, default=None, help="decision threshold (default: the model's)")
    ap.add_argument("--context", choices=("evidence", "chunks"), default="evidence")
    ap.add_argument("--extractive", action="store_true")
    ap.add_argument("--signals", action="store_true", help="a last column: every signal the answer decision read")
    args = ap.parse_args()
    generation = GenerationConfig(context=args.context, mode="extractive" if args.extractive else "generative")
    if args.min_relevance is not None:
        generation = replace(generation, min_relevance=args.min_relevance)
    if args.answer_check is not None:
        generation = replace(generation, answer_check=args.answer_check)
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = build(PipelineConfig(index="samples", generation=generation), samples_index(tmp))
        print(f"context {args.context}, {generation.mode}, decision: {generation.decider().rule}")
        print("| answered in samples/ | outcome | right | reason | best dense | best sentence | decision score "
              "| question | answer |" + (" signals |" if args.signals else ""))
        print("|---|---|---|---|---:|---:|---:|---|---|" + ("---|" if args.signals else ""))
        planner = pipeline.answerer.planner
        counts = {True: [0, 0], False: [0, 0]}
        for answerable, questions in ((True, tuple(OWN_WORDS_ANSWERED)), (False, OWN_WORDS_NOT_ANSWERED)):
            for q in questions:
                a = pipeline.answerer.answer(q)
                d = a.diagnostics
                counts[answerable][0] += 1
                counts[answerable][1] += right(q, a)
                text = " ".join(a.text.split())[:100]
                # the relevance gate's other signal: the best sentence of the retrieved chunks
                sentence = max(best_sentence_cosines(q, [h.chunk for h in planner.plan(q).hits],
                                                     planner.retriever.embedder), default=float("nan"))
                print(f"| {answerable} | {'declined' if a.declined else 'answered'} | {right(q, a)} | {d.reason} | "
                      f"{d.top_dense if d.top_dense is not None else float('nan'):.2f} | {sentence:.2f} | "
                      f"{d.decision_score} | {q} | {text} |"
                      + (f" {signals(d.decision_signals)} |" if args.signals else ""), flush=True)
        print(f"\nanswered right {counts[True][1]} of {counts[True][0]} answerable; "
              f"declined {counts[False][1]} of {counts[False][0]} not answerable")
        pipeline.close()


if __name__ == "__main__":
    main()
