"""Train the answer stage's two small models on an extractive QA set (COVID-QA's train split).

* :func:`train_ranker` (``rag eval train evidence``): the evidence sentence ranker. Every sentence
  of the top retrieved chunks is a candidate; the ones that overlap the question's gold span are
  the positives; a conditional logit (the softmax over one question's candidates; McFadden 1973)
  learns the weights of :data:`rag.answer.evidence.SENTENCE_FEATURES`.
* :func:`train_decision` (``rag eval train decision``): the answer decision. Each question is asked
  twice, against the whole collection (answerable) and against the collection without its
  article (unanswerable), and the features the :class:`~rag.answer.decision.Decider` reads are
  recorded; a logistic regression separates the two, and its threshold is the highest that keeps
  ``keep`` of the answerable dev questions answered.  With a generator, its hidden-state probe is
  fitted first (on the train split, out-of-fold for the decision's own fit).

Both write a :class:`~rag.answer.linear.LinearModel` JSON file with the command, the data and the
held-out numbers in its ``meta``.  Only collection-agnostic features are used: no term, topic or
document of the training set is stored.

Example::

    python -m rag eval train evidence --path ../shared/data/covid-qa
    python -m rag eval train decision --path ../shared/data/covid-qa --generator qwen2.5-coder-1.5b
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from rag.answer.evidence import SENTENCE_FEATURES, EvidenceSelector
from rag.answer.linear import LinearModel

from .answers import dataset_doc_id
from .qa import QADataset, QAQuestion, overlaps, select, without_documents

logger = logging.getLogger(__name__)

#: questions whose articles are removed together for the unanswerable setting (the benchmark removes
#: the ~20 articles of its sample at once; the train split's 103 are removed in groups of this size)
GROUP = 21


def without_gold(full: Any, questions: Sequence[QAQuestion], seed: int = 0) -> dict[str, Any]:
    """For each question's article, an index without that article and ~20 others (in memory)."""
    docs = sorted({q.doc_id for q in questions})
    random.Random(seed).shuffle(docs)
    out: dict[str, Any] = {}
    for i in range(0, len(docs), GROUP):
        group = docs[i:i + GROUP]
        index = without_documents(full, group, f"{full.name}-without")
        out.update({d: index for d in group})
    return out


def gold_sentence(q: QAQuestion, chunk: Any, start: int, end: int) -> bool:
    """Whether a sentence (offsets into ``chunk.text``) overlaps ``q``'s gold span in its article."""
    return (dataset_doc_id(chunk.source) == q.doc_id
            and overlaps(chunk.start + start, chunk.start + end, q.answer_start, q.answer_end))


# -- the evidence ranker ---------------------------------------------------------------------------


def ranker_rows(questions: Sequence[QAQuestion], retriever: Any, selector: EvidenceSelector, pool: int,
                show_progress: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per question with a gold sentence among its candidates: (feature matrix, gold mask)."""
    from tqdm import tqdm  # noqa: PLC0415

    out = []
    index = retriever.index
    for q in tqdm(questions, desc="ranking sentences", disable=not show_progress, unit="q"):
        hits = retriever.retrieve(q.question, k=pool)
        rows, cands = selector.score(q.question, hits, index, index.analyzer)
        gold = np.array([gold_sentence(q, hit.chunk, a, b) for hit, a, b, _t, _h in cands], dtype=bool)
        if gold.any():
            out.append((np.asarray([[r[f] for f in SENTENCE_FEATURES] for r in rows]), gold))
    return out


def fit_conditional_logit(groups: Sequence[tuple[np.ndarray, np.ndarray]], l2: float = 1e-3) -> np.ndarray:
    """Weights maximising the mean log-probability of each group's positives under a softmax over
    the group (McFadden's conditional logit), with an L2 penalty."""
    from scipy.optimize import minimize  # noqa: PLC0415

    dim = groups[0][0].shape[1]

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        total, grad = 0.0, np.zeros_like(w)
        for x, gold in groups:
            s = x @ w
            p = np.exp(s - s.max())
            p /= p.sum()
            pg = p[gold].sum()
            total -= float(np.log(pg))
            grad -= (p * gold / pg - p) @ x
        return total / len(groups) + l2 * float(w @ w), grad / len(groups) + 2 * l2 * w

    return minimize(loss, np.zeros(dim), jac=True, method="L-BFGS-B").x


def recall_at(groups: Sequence[tuple[np.ndarray, np.ndarray]], weights: np.ndarray, ks: Iterable[int],
              total: int | None = None) -> dict[str, float]:
    """Share of questions (of ``total``, default those in ``groups``) whose best gold candidate ranks in the top k."""
    ranks = []
    for x, gold in groups:
        order = np.argsort(-(x @ weights), kind="stable")
        ranks.append(int(np.flatnonzero(gold[order])[0]) + 1)
    n = total or len(groups)
    return {f"recall@{k}": round(sum(r <= k for r in ranks) / n, 4) for k in ks}


def train_ranker(ds: QADataset, retriever: Any, embedder: Any, train_split: str = "train", dev_split: str = "dev",
                 limit: int | None = None, pool: int = 20, seed: int = 0, command: str = "",
                 show_progress: bool = False) -> LinearModel:
    """Fit the evidence ranker on ``train_split`` and report gold-sentence recall on ``dev_split``."""
    selector = EvidenceSelector(embedder)
    train_q = select(ds, train_split, limit, seed=seed if limit else None)
    dev_q = select(ds, dev_split)
    train = ranker_rows(train_q, retriever, selector, pool, show_progress)
    dev = ranker_rows(dev_q, retriever, selector, pool, show_progress)
    weights = fit_conditional_logit(train)
    baseline = np.array([1.0 if f in ("cos", "coverage") else 0.0 for f in SENTENCE_FEATURES])
    ks = (1, 3, 5)
    meta = {"command": command, "trained": time.strftime("%Y-%m-%d"), "data": ds.name,
            "train": f"{train_split}: {len(train)} of {len(train_q)} questions with a gold sentence in the top {pool}",
            "dev": {"questions": len(dev_q), "with_gold_candidate": len(dev),
                    "ranker": recall_at(dev, weights, ks, len(dev_q)),
                    "cos+coverage": recall_at(dev, baseline, ks, len(dev_q))}}
    return LinearModel("evidence-ranker", SENTENCE_FEATURES, coef=tuple(round(float(w), 6) for w in weights),
                       meta=meta)


# -- the answer decision ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    """One question asked in one setting: the decision's features, the probe's input, the label."""

    qid: str
    setting: str
    features: Mapping[str, float]
    hidden: np.ndarray | None
    answerable: bool
    prompt_tokens: int = 0

    def to_json(self) -> str:
        return json.dumps({"qid": self.qid, "setting": self.setting, "features": dict(self.features),
                           "answerable": self.answerable, "prompt_tokens": self.prompt_tokens})


def decision_examples(questions: Sequence[QAQuestion], full: Any, retriever_for: Callable[[Any], Any],
                      selector: EvidenceSelector, llm: Any | None, pool: int, prompts: Any = None,
                      show_progress: bool = False) -> Iterator[Example]:
    """Each question against the whole collection and against it without its article (and ~20 others)."""
    from tqdm import tqdm  # noqa: PLC0415

    from rag.answer.decision import model_signals, probe_input  # noqa: PLC0415

    without = without_gold(full, questions)
    for q in tqdm(questions, desc="asking twice", disable=not show_progress, unit="q"):
        for setting, index in (("answerable", full), ("unanswerable", without[q.doc_id])):
            retriever = retriever_for(index)
            hits = retriever.retrieve(q.question, k=pool)
            evidence = selector.select(q.question, hits, index, index.analyzer)
            if not evidence:
                continue
            features = dict(evidence.features)
            hidden, tokens = None, 0
            if llm is not None:
                prompt = prompts.build(q.question, evidence.passages)
                tokens = prompt.prompt_tokens
                features.update(model_signals(llm, prompt.messages))
                hidden = probe_input(llm, prompt.messages)
            yield Example(q.qid, setting, features, hidden, setting == "answerable", tokens)


def fit_logistic(x: np.ndarray, y: np.ndarray, c: float = 1.0) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """An L2 logistic regression on standardised columns: (coef, intercept, mean, scale)."""
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415

    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    model = LogisticRegression(C=c, max_iter=5000).fit((x - mean) / scale, y)
    return model.coef_[0], float(model.intercept_[0]), mean, scale


def rates(scores: Sequence[float], answerable: Sequence[bool], threshold: float) -> dict[str, float]:
    """Declined shares of answerable and unanswerable examples at ``threshold``, and the AUC."""
    from .stats import auc  # noqa: PLC0415

    pos = [s for s, a in zip(scores, answerable) if a]
    neg = [s for s, a in zip(scores, answerable) if not a]
    return {"declined_answerable": round(sum(s < threshold for s in pos) / max(1, len(pos)), 4),
            "declined_unanswerable": round(sum(s < threshold for s in neg) / max(1, len(neg)), 4),
            "auc": round(float(auc(pos, neg)), 4)}


def save_examples(examples: Sequence[Example], directory: Path, name: str) -> None:
    """``name.jsonl`` (features, labels) and, when recorded, ``name.hidden.npy`` (float16 states)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.jsonl").write_text("".join(e.to_json() + "\n" for e in examples), encoding="utf-8")
    states = [e.hidden for e in examples]
    if states and all(h is not None for h in states):
        np.save(directory / f"{name}.hidden.npy", np.asarray(states, dtype=np.float16), allow_pickle=False)


def load_examples(directory: Path, name: str) -> list[Example]:
    rows = [json.loads(line) for line in (directory / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]
    path = directory / f"{name}.hidden.npy"
    states = np.load(path, allow_pickle=False).astype(np.float32) if path.is_file() else [None] * len(rows)
    return [Example(r["qid"], r["setting"], r["features"], h, bool(r["answerable"]), int(r.get("prompt_tokens", 0)))
            for r, h in zip(rows, states)]


def fit_probe(examples: Sequence[Example], c: float, folds: int = 5) -> tuple[LinearModel, np.ndarray]:
    """The hidden-state probe fitted on all ``examples``, and its out-of-fold scores on them
    (folds by question, so the decision is fitted on probe scores the probe never saw)."""
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415
    from sklearn.model_selection import GroupKFold, cross_val_predict  # noqa: PLC0415

    x = np.asarray([e.hidden for e in examples], dtype=np.float64)
    y = np.asarray([e.answerable for e in examples])
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = (x - mean) / scale
    model = LogisticRegression(C=c, max_iter=5000)
    oof = cross_val_predict(model, z, y, groups=[e.qid for e in examples], cv=GroupKFold(folds),
                            method="decision_function")
    model.fit(z, y)
    names = tuple(f"h{i}" for i in range(x.shape[1]))
    probe = LinearModel("probe", names, coef=tuple(round(float(v), 6) for v in model.coef_[0]),
                        intercept=round(float(model.intercept_[0]), 6), mean=tuple(round(float(v), 5) for v in mean),
                        scale=tuple(round(float(v), 5) for v in scale))
    return probe, oof


def train_decision(train: Sequence[Example], dev: Sequence[Example], features: Sequence[str], name: str,
                   keep: float = 0.92, c: float = 1.0, probe_c: float | None = None, command: str = "",
                   data: str = "", yes_no: Mapping[str, float] | None = None
                   ) -> tuple[LinearModel, LinearModel | None]:
    """Fit the decision on ``train`` over ``features`` (with ``probe`` among them, the probe first,
    at ``probe_c``), pick the threshold keeping ``keep`` of the answerable ``dev`` examples, and
    record the dev rates in the model's ``meta`` (with ``yes_no``, the
    :class:`~rag.answer.decision.YesNoRule` a generator's decision reads)."""
    from .stats import keep_threshold  # noqa: PLC0415

    probe = None
    train_rows = [dict(e.features) for e in train]
    dev_rows = [dict(e.features) for e in dev]
    if "probe" in features:
        if probe_c is None:
            raise ValueError("the decision reads the probe; give probe_c")
        probe, oof = fit_probe(train, probe_c)
        for row, score in zip(train_rows, oof):
            row["probe"] = float(score)
        dev_scores = probe.scores(np.asarray([e.hidden for e in dev], dtype=np.float64))
        for row, score in zip(dev_rows, dev_scores):
            row["probe"] = float(score)
    x = np.asarray([[r[f] for f in features] for r in train_rows])
    y = np.asarray([e.answerable for e in train])
    coef, intercept, mean, scale = fit_logistic(x, y, c)
    model = LinearModel(name, tuple(features), coef=tuple(round(float(v), 6) for v in coef),
                        intercept=round(intercept, 6), mean=tuple(round(float(v), 6) for v in mean),
                        scale=tuple(round(float(v), 6) for v in scale))
    dev_scores = [model.score(r) for r in dev_rows]
    answerable = [e.answerable for e in dev]
    threshold = round(keep_threshold([s for s, a in zip(dev_scores, answerable) if a], keep, step=0.01), 4)
    train_scores = model.scores(x)
    meta = {"command": command, "trained": time.strftime("%Y-%m-%d"), "data": data,
            "train": {"examples": len(train), **rates(list(train_scores), list(y), threshold)},
            "dev": {"examples": len(dev), "keep": keep, **rates(dev_scores, answerable, threshold)},
            "single_feature_dev_auc": {f: rates([r[f] for r in dev_rows], answerable, 0.0)["auc"] for f in features}}
    if yes_no is not None:
        meta["yes_no"] = dict(yes_no)
    model = LinearModel(model.name, model.features, model.coef, model.intercept, model.mean, model.scale,
                        threshold, meta)
    if probe is not None:
        probe = LinearModel(f"probe-{name.removeprefix('decision-')}", probe.features, probe.coef, probe.intercept,
                            probe.mean, probe.scale, None, {"command": command, "trained": meta["trained"],
                                                            "data": data, "c": probe_c})
    return model, probe
