#!/usr/bin/env python
"""Train a cross-encoder with labels: COVID-QA's train questions plus Cranfield's odd-numbered queries.

The supervised counterpart of ``rag reranker train`` (which mines pseudo-queries from an index with no
labels): each group is a real question, a positive chunk (COVID-QA: the chunk holding the reference
span; Cranfield: a chunk of a document judged relevant, grade >= 2, up to four per query) and three
hard negatives from the default hybrid's top 30 (chunks without the span; chunks of unjudged
documents).  Training is :class:`rag.retrieval.rerank_training.training.CrossEncoderTrainer` from the
packaged MiniLM, within ``--budget-minutes`` on CPU.  Evaluate the saved model on what it never saw
with ``eval/reranker.py`` (COVID-QA test, Cranfield ``--even``, the other collections).

Usage (from the repository root; about 15 minutes on 2 cores)::

    .venv/bin/python eval/reranker_supervised.py --out eval-results/ce-supervised --budget-minutes 12
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rag.embedding import Embedder  # noqa: E402
from rag.retrieval.rerank_training.mining import TrainingPair, _squash  # noqa: E402
from rag.retrieval.rerank_training.training import CrossEncoderTrainer  # noqa: E402
from rag.retrieval.retriever import Retriever  # noqa: E402
from rag_eval.datasets import load_dataset  # noqa: E402
from rag_eval.qa import load_qa, select  # noqa: E402
from rag_eval.retrieval import EvalSettings, build_index  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def covid_groups(embedder: Embedder, limit: int, rng: random.Random) -> list[TrainingPair]:
    """One group per train question: the chunk holding the reference span against the hybrid's other hits."""
    qa = load_qa(DATA / "covid-qa")
    index = build_index(qa.corpus(), embedder, EvalSettings())
    retriever = Retriever(index, embedder=embedder)
    questions = select(qa, "train")
    rng.shuffle(questions)
    groups = []
    for q in questions[:limit]:
        hits = [h.chunk for h in retriever.retrieve(q.question, k=30)]
        positive = next((c for c in hits if q.in_chunk(c)), None) or next(
            (c for c in index.chunks if q.in_chunk(c)), None)
        negatives = [c for c in hits if not q.in_chunk(c)][:3]
        if positive is not None and len(negatives) == 3:
            groups.append(TrainingPair(q.question, _squash(positive.text), tuple(_squash(c.text) for c in negatives),
                                       positive.id, tuple(c.id for c in negatives), "qa"))
    return groups


def cranfield_groups(embedder: Embedder, rng: random.Random) -> list[TrainingPair]:
    """Up to four groups per odd-numbered judged query: a relevant document's chunk against unjudged ones."""
    ds = load_dataset("cranfield", DATA / "cranfield")
    index = build_index(ds, embedder, EvalSettings())
    retriever = Retriever(index, embedder=embedder)
    groups = []
    judged = [(q, t) for q, t in ds.queries.items() if q in ds.qrels]
    for i, (qid, text) in enumerate(judged, start=1):
        if i % 2 == 0:
            continue  # the even half is the held-out check (eval/reranker.py --even)
        relevant = {d for d, g in ds.qrels[qid].items() if g >= 2}
        hits = [h.chunk for h in retriever.retrieve(text, k=40)]
        doc = [c.source.split(":", 1)[1] for c in hits]
        unjudged = [c for c, d in zip(hits, doc) if d not in ds.qrels[qid]][:20]
        for c in [c for c, d in zip(hits, doc) if d in relevant][:4]:
            if len(unjudged) < 3:
                break
            negatives = rng.sample(unjudged, 3)
            groups.append(TrainingPair(text, _squash(c.text), tuple(_squash(n.text) for n in negatives), c.id,
                                       tuple(n.id for n in negatives), "qrels"))
    return groups


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="folder to save the CrossEncoder in")
    ap.add_argument("--budget-minutes", type=float, default=12.0)
    ap.add_argument("--covid-questions", type=int, default=900, help="train questions used (of 1,417)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    embedder = Embedder()
    groups = covid_groups(embedder, args.covid_questions, rng)
    n_covid = len(groups)
    groups += cranfield_groups(embedder, rng)
    rng.shuffle(groups)
    print(f"groups: COVID-QA train {n_covid}, Cranfield odd queries {len(groups) - n_covid}", flush=True)
    trainer = CrossEncoderTrainer(budget_minutes=args.budget_minutes, batch_groups=8, lr=3e-5, max_length=256,
                                  seed=args.seed)
    model, result = trainer.train(groups)
    model.save(args.out)
    print(f"{result}\nsaved to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
