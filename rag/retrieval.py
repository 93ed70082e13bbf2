"""Retrieval stage: BM25, dense, or hybrid (fused), then an optional cross-encoder rerank.

Example (runs the real embedder)::

    from rag import IndexStore, Retriever
    index = IndexStore().load("docs")
    for hit in Retriever(index, mode="hybrid").retrieve("how do I prime the pump?", k=5):
        print(hit.rank, round(hit.score, 3), hit.chunk.location)
"""

from __future__ import annotations

import logging
from typing import Sequence

from .embedding import DEFAULT_EMBEDDER, Embedder
from .fusion import DEFAULT_RRF_K, convex_combination, ranked, reciprocal_rank_fusion
from .index import Index, IndexMismatchError
from .rerank import Reranker
from .types import Hit

logger = logging.getLogger(__name__)

MODES: tuple[str, ...] = ("bm25", "dense", "hybrid")
FUSIONS: tuple[str, ...] = ("rrf", "weighted")


class Retriever:
    """Ranked chunks for a query.

    Args:
        index: a loaded :class:`~rag.index.Index`.
        mode: ``bm25``, ``dense`` or ``hybrid``.
        embedder: must match the index's embedder (checked); default: the packaged MiniLM.
        fusion: ``rrf`` (Reciprocal Rank Fusion) or ``weighted`` (convex combination of
            normalised scores) for hybrid mode.
        rrf_k: the RRF constant (default 60, as in Cormack et al. 2009).
        alpha: dense weight for ``weighted`` fusion (BM25 gets ``1 - alpha``).
        candidates: hits fetched from each retriever before fusion/reranking; must be >= k.
        reranker: optional :class:`~rag.rerank.Reranker`; skipped when None.
        rerank_candidates: how many fused hits the reranker rescores.
    """

    def __init__(self, index: Index, mode: str = "hybrid", embedder: Embedder | None = None,
                 fusion: str = "rrf", rrf_k: int = DEFAULT_RRF_K, alpha: float = 0.5, candidates: int = 100,
                 reranker: Reranker | None = None, rerank_candidates: int = 50) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        if not isinstance(rrf_k, int) or rrf_k < 0:
            raise ValueError(f"rrf_k must be a non-negative integer, got {rrf_k!r}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if not isinstance(candidates, int) or candidates <= 0:
            raise ValueError(f"candidates must be a positive integer, got {candidates!r}")
        if not isinstance(rerank_candidates, int) or rerank_candidates <= 0:
            raise ValueError(f"rerank_candidates must be a positive integer, got {rerank_candidates!r}")
        self.index = index
        self.mode = mode
        self.fusion = fusion
        self.rrf_k = rrf_k
        self.alpha = alpha
        self.candidates = candidates
        self.reranker = reranker
        self.rerank_candidates = rerank_candidates
        self.embedder = embedder
        if mode != "bm25":
            self.embedder = embedder or Embedder(DEFAULT_EMBEDDER)
            if self.embedder.model_id != index.settings.embedder_id:
                raise IndexMismatchError(
                    f"index {index.name!r} was built with embedder {index.settings.embedder_id!r}, "
                    f"but the retriever was given {self.embedder.model_id!r}; use the same embedder")

    def _bm25(self, query: str, n: int) -> list[tuple[int, float]]:
        return self.index.bm25.search(self.index.analyzer.tokenize(query), n)

    def _dense(self, query: str, n: int) -> list[tuple[int, float]]:
        if self.embedder is None:
            raise RuntimeError("dense retrieval needs an embedder")
        vec = self.embedder.encode([query])[0]
        return self.index.dense.search(vec, n)

    def retrieve(self, query: str, k: int = 5) -> list[Hit]:
        """Top-``k`` hits for ``query``, best first; empty for an empty index or query."""
        if not isinstance(k, int) or k <= 0:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if not query or not query.strip() or len(self.index) == 0:
            return []
        n = max(self.candidates, k)
        per: dict[str, dict[int, float]] = {}
        if self.mode in ("bm25", "hybrid"):
            per["bm25"] = dict(self._bm25(query, n))
        if self.mode in ("dense", "hybrid"):
            per["dense"] = dict(self._dense(query, n))
        if self.mode == "hybrid":
            if self.fusion == "rrf":
                fused = reciprocal_rank_fusion([list(per["bm25"]), list(per["dense"])], k=self.rrf_k)
            else:
                fused = convex_combination(per["bm25"], per["dense"], alpha=self.alpha)
            label = self.fusion
        else:
            fused = per[self.mode]
            label = self.mode
        order = ranked(fused)
        limit = max(k, self.rerank_candidates) if self.reranker is not None else k
        hits = [self._hit(pos, fused[pos], rank, per, label) for rank, pos in enumerate(order[:limit], start=1)]
        if self.reranker is not None:
            hits = self.reranker.rerank(query, hits, k=k)
        return hits[:k]

    def retrieve_many(self, queries: Sequence[str], k: int = 5) -> list[list[Hit]]:
        return [self.retrieve(q, k) for q in queries]

    def _hit(self, pos: int, score: float, rank: int, per: dict[str, dict[int, float]], label: str) -> Hit:
        scores = {name: s[pos] for name, s in per.items() if pos in s}
        scores[label] = score
        return Hit(chunk=self.index.chunks[pos], score=float(score), rank=rank, scores=scores)
