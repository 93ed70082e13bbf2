"""Pure score-fusion functions for hybrid retrieval.

Each takes rankings or score maps keyed by chunk id and returns a fused score map;
sort with :func:`ranked`.

Example:
    >>> fused = reciprocal_rank_fusion([["a", "b", "c"], ["b", "c", "a"]], k=60)
    >>> ranked(fused)[0]
    'b'
"""

from __future__ import annotations

from typing import Hashable, Mapping, Sequence, TypeVar

K = TypeVar("K", bound=Hashable)

DEFAULT_RRF_K = 60


def reciprocal_rank_fusion(rankings: Sequence[Sequence[K]], k: int = DEFAULT_RRF_K,
                           weights: Sequence[float] | None = None) -> dict[K, float]:
    """Reciprocal Rank Fusion: ``score(d) = sum_r w_r / (k + rank_r(d))``, ranks 1-based.

    Cormack, Clarke & Büttcher, "Reciprocal Rank Fusion outperforms Condorcet and
    individual Rank Learning Methods", SIGIR 2009 (k = 60 in the paper).
    """
    if k < 0:
        raise ValueError(f"RRF k must be >= 0, got {k}")
    if weights is not None and len(weights) != len(rankings):
        raise ValueError(f"got {len(weights)} weights for {len(rankings)} rankings")
    fused: dict[K, float] = {}
    for r, ranking in enumerate(rankings):
        w = 1.0 if weights is None else float(weights[r])
        for rank, key in enumerate(ranking, start=1):
            fused[key] = fused.get(key, 0.0) + w / (k + rank)
    return fused


def min_max_normalize(scores: Mapping[K, float], lower: float | None = None) -> dict[K, float]:
    """Scale scores to [0, 1]: ``(s - lo) / (max - lo)``.

    ``lower`` fixes ``lo`` to the scorer's theoretical minimum ("theoretical min-max",
    Bruch, Gai & Ingber, "An Analysis of Fusion Functions for Hybrid Retrieval",
    ACM TOIS 2023), which is less sensitive to the candidate set than the observed min.
    """
    if not scores:
        return {}
    hi = max(scores.values())
    lo = min(scores.values()) if lower is None else lower
    span = hi - lo
    if span <= 0:
        return {key: 1.0 for key in scores}
    return {key: max(0.0, (s - lo) / span) for key, s in scores.items()}


def convex_combination(sparse: Mapping[K, float], dense: Mapping[K, float], alpha: float = 0.5,
                       sparse_lower: float | None = 0.0, dense_lower: float | None = -1.0) -> dict[K, float]:
    """Convex combination of normalised scores: ``alpha * dense + (1 - alpha) * sparse``.

    Both inputs are min-max normalised first (theoretical lower bounds by default:
    0 for BM25, -1 for cosine); a document missing from one list gets 0 there.
    Bruch, Gai & Ingber, ACM TOIS 2023.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    ns = min_max_normalize(sparse, sparse_lower)
    nd = min_max_normalize(dense, dense_lower)
    keys = list(dict.fromkeys([*ns, *nd]))
    return {key: alpha * nd.get(key, 0.0) + (1 - alpha) * ns.get(key, 0.0) for key in keys}


def ranked(scores: Mapping[K, float]) -> list[K]:
    """Keys by descending score; ties keep insertion order (deterministic)."""
    order = {key: i for i, key in enumerate(scores)}
    return sorted(scores, key=lambda key: (-scores[key], order[key]))
