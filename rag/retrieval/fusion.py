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

from rag.validate import in_range, positive_int

K = TypeVar("K", bound=Hashable)

DEFAULT_RRF_K = 60
#: adaptive fusion (:func:`agreement_weight`): lists compared at this depth, the dense list's weight
#: never below the floor, and full (1.0) once this share of the two top lists agree; chosen on
#: Cranfield and COVID-QA's dev split (docs/design.md#retrieval).
AGREEMENT_DEPTH = 10
MIN_DENSE_WEIGHT = 0.3
FULL_AGREEMENT = 0.5


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


def agreement_weight(sparse: Sequence[K], dense: Sequence[K], depth: int = AGREEMENT_DEPTH,
                     floor: float = MIN_DENSE_WEIGHT, full_at: float = FULL_AGREEMENT) -> float:
    """The dense ranking's RRF weight for one query, from how much the two rankings agree.

    ``agreement = |top(sparse) ∩ top(dense)| / m`` over the first ``depth`` keys of each, where
    ``m = min(depth, len(sparse), len(dense))``; the weight is ``clip(agreement / full_at, floor, 1)``
    (BM25 keeps weight 1).  Disagreement between retrieval functions marks a query one of them
    gets wrong (Aslam & Pavlu, "Query Hardness Estimation Using Jensen-Shannon Divergence Among
    Multiple Scoring Functions", ECIR 2007); when they disagree, the lexical ranking is the one to
    keep, because a general-purpose dense model is what fails on unfamiliar, term-heavy
    collections while BM25 stays robust (Thakur et al., "BEIR", NeurIPS Datasets 2021).  With an
    empty ranking on either side the weight is 1 (only one ranking contributes anyway).

    Example:
        >>> agreement_weight(list("abcdefghij"), list("abcdeklmno"))  # half agree: equal weights
        1.0
        >>> agreement_weight(list("abcdefghij"), list("abklmnopqr"))  # two in ten: 0.2 / 0.5
        0.4
        >>> agreement_weight(list("abcdefghij"), list("klmnopqrst"))  # none: the floor
        0.3
    """
    positive_int("agreement depth", depth)
    in_range("dense weight floor", floor, 0, 1)
    if not 0.0 < full_at <= 1.0:
        raise ValueError(f"full agreement must be in (0, 1], got {full_at!r}")
    m = min(depth, len(sparse), len(dense))
    if m == 0:
        return 1.0
    shared = len(set(sparse[:depth]) & set(dense[:depth]))
    return round(min(1.0, max(floor, shared / m / full_at)), 6)  # shared <= m


def adaptive_rank_fusion(sparse: Sequence[K], dense: Sequence[K], k: int = DEFAULT_RRF_K,
                         depth: int = AGREEMENT_DEPTH, floor: float = MIN_DENSE_WEIGHT,
                         full_at: float = FULL_AGREEMENT) -> tuple[dict[K, float], float]:
    """Weighted RRF of a BM25 and a dense ranking, the dense weight set per query by
    :func:`agreement_weight`; returns the fused scores and that weight.

    Example:
        >>> fused, w = adaptive_rank_fusion(["a", "b"], ["c", "d"], k=1, depth=2)
        >>> ranked(fused), w
        (['a', 'b', 'c', 'd'], 0.3)
    """
    w = agreement_weight(sparse, dense, depth, floor, full_at)
    return reciprocal_rank_fusion([sparse, dense], k=k, weights=(1.0, w)), w


def robust_z_normalize(scores: Mapping[K, float]) -> dict[K, float]:
    """Each score as ``(s - median) / (1.4826 * MAD)`` over this list: a z-score whose centre and
    spread ignore the few top scores that matter most (the median absolute deviation, scaled to
    the standard deviation of a normal distribution; Rousseeuw & Croux, JASA 1993).  Falls back to
    the standard deviation, then to 1, when the spread is zero.

    Example:
        >>> {k: round(z, 4) for k, z in robust_z_normalize({"a": 3.0, "b": 2.0, "c": 1.0}).items()}
        {'a': 0.6745, 'b': 0.0, 'c': -0.6745}
    """
    if not scores:
        return {}
    values = sorted(scores.values())
    n = len(values)
    median = (values[(n - 1) // 2] + values[n // 2]) / 2
    deviations = sorted(abs(v - median) for v in values)
    spread = 1.4826 * (deviations[(n - 1) // 2] + deviations[n // 2]) / 2
    if spread <= 0:
        mean = sum(values) / n
        spread = (sum((v - mean) ** 2 for v in values) / n) ** 0.5 or 1.0
    return {key: (s - median) / spread for key, s in scores.items()}


def zscore_fusion(sparse: Mapping[K, float], dense: Mapping[K, float]) -> dict[K, float]:
    """CombSUM of robust z-scores: ``z_bm25(d) + z_dense(d)``, each list normalised on its own
    (:func:`robust_z_normalize`); a key missing from one list gets that list's lowest z.

    Z-score normalisation before CombSUM (Montague & Aslam, "Relevance Score Normalization for
    Metasearch", CIKM 2001; Fox & Shaw, TREC-2 1994) lets each retriever count by how far a hit
    stands out from the rest of its own list, so neither side is assumed to be the robust one: a
    query whose dense scores are flat gets its order from BM25, and the other way round.  Chosen
    over RRF and agreement-weighted RRF on seven collections (docs/benchmarks.md#retrieval).

    Example:
        >>> fused = zscore_fusion({"a": 9.0, "b": 2.0, "c": 1.9}, {"b": 0.61, "c": 0.60, "d": 0.59})
        >>> ranked(fused)
        ['a', 'b', 'c', 'd']
    """
    zs, zd = robust_z_normalize(sparse), robust_z_normalize(dense)
    floor_s, floor_d = min(zs.values(), default=0.0), min(zd.values(), default=0.0)
    keys = list(dict.fromkeys([*zs, *zd]))
    return {key: zs.get(key, floor_s) + zd.get(key, floor_d) for key in keys}


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
