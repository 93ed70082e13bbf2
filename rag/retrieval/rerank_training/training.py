"""Fine-tune a cross-encoder on mined groups within a wall-clock budget, on CPU.

The model is a sentence-transformers ``CrossEncoder`` initialised from the packaged
MiniLM encoder (a BERT; its classification head starts untrained).  Training uses a
listwise softmax cross-entropy over each group -- the positive first, then its hard
negatives (the Localized Contrastive Estimation loss of Gao, Dai & Callan, ECIR 2021) --
and stops cleanly between steps when the budget is spent or on Ctrl-C.

Example:
    >>> CrossEncoderTrainer(lr=0)
    Traceback (most recent call last):
    ...
    ValueError: lr must be > 0, got 0
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass
from typing import Any, Sequence

from rag.retrieval.rerank_training.mining import TrainingPair
from rag.validate import non_negative_int, positive_int

logger = logging.getLogger(__name__)

DEFAULT_BASE_MODEL = "default"


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
            positive_int(name, value)
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr!r}")
        if not head_lr_scale > 0:
            raise ValueError(f"head_lr_scale must be > 0, got {head_lr_scale!r}")
        non_negative_int("warmup_steps", warmup_steps)
        positive_int("train_layers", train_layers, optional=True)
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
        from rag.embedding import resolve_model

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
        opt = self._optimizer(hf, params)
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
                    losses.append(self._step(hf, tok, opt, params, batch, step))
                    step += 1
                    seen += len(batch)
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

    def _optimizer(self, hf: Any, params: list[Any]) -> Any:
        """AdamW over ``params``, the classifier head's at ``head_lr_scale`` times the rate."""
        import torch

        head_ids = {id(p) for m in self._head(hf) for p in m.parameters()}
        groups = [{"params": [p for p in params if id(p) not in head_ids], "scale": 1.0},
                  {"params": [p for p in params if id(p) in head_ids], "scale": self.head_lr_scale}]
        return torch.optim.AdamW([g for g in groups if g["params"]], lr=self.lr, weight_decay=0.01)

    def _step(self, hf: Any, tok: Any, opt: Any, params: list[Any], batch: Sequence[TrainingPair], step: int) -> float:
        """One optimiser step on ``batch`` (linear warm-up); its loss."""
        import torch

        for g in opt.param_groups:
            g["lr"] = g["scale"] * self.lr * min(1.0, (step + 1) / (self.warmup_steps + 1))
        loss = self._loss(hf, tok, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

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
