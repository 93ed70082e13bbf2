"""Reranking stage: a sentence-transformers CrossEncoder scores (query, chunk) pairs.

Takes any CrossEncoder by hub name (with a network) or local path, e.g. one trained
by ``rag reranker train``.  Loaded lazily.

Example:
    >>> r = Reranker("path/to/cross-encoder")   # cheap: nothing loaded yet
    >>> r.model
    'path/to/cross-encoder'
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any, Sequence

from rag.types import Hit

logger = logging.getLogger(__name__)


class Reranker:
    """Cross-encoder reranker.

    Args:
        model: CrossEncoder hub name or local directory.
        batch_size: pairs scored per forward pass.
        max_length: token limit for query + chunk.
        device: torch device, ``cpu`` by default.
    """

    def __init__(self, model: str, batch_size: int = 32, max_length: int = 256, device: str | None = "cpu") -> None:
        if not isinstance(model, str) or not model:
            raise ValueError(f"reranker model must be a non-empty name or path, got {model!r}")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {batch_size}")
        if max_length <= 0:
            raise ValueError(f"max_length must be > 0, got {max_length}")
        self.model = model
        self.batch_size = batch_size
        self.max_length = max_length
        self.device = device
        self._ce: Any | None = None
        self._lock = threading.Lock()

    def load(self) -> "Reranker":
        with self._lock:
            if self._ce is None:
                from sentence_transformers import CrossEncoder

                logger.info("loading cross-encoder %s", self.model)
                self._ce = CrossEncoder(self.model, max_length=self.max_length, device=self.device)
        return self

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        ce = self.load()._ce
        scores = ce.predict([(query, t) for t in texts], batch_size=self.batch_size, show_progress_bar=False)
        return [float(s) for s in scores]

    def rerank(self, query: str, hits: Sequence[Hit], k: int | None = None) -> list[Hit]:
        """Reorder ``hits`` by cross-encoder score; keep the top ``k`` (all if None)."""
        if not hits:
            return []
        scores = self.score(query, [h.chunk.text for h in hits])
        order = sorted(range(len(hits)), key=lambda i: (-scores[i], i))
        if k is not None:
            order = order[:k]
        return [dataclasses.replace(hits[i], score=scores[i], rank=r,
                                    scores={**hits[i].scores, "rerank": scores[i]})
                for r, i in enumerate(order, start=1)]
