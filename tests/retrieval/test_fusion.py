"""The pure fusion functions (rag.retrieval.fusion): RRF, convex combination, normalisation, adaptive fusion."""

from __future__ import annotations

import pytest

from rag.retrieval.fusion import convex_combination, min_max_normalize, ranked, reciprocal_rank_fusion


def test_rrf_uses_explicit_k() -> None:
    fused = reciprocal_rank_fusion([["a", "b"], ["b", "c"]], k=1)
    assert fused == pytest.approx({"a": 1 / 2, "b": 1 / 3 + 1 / 2, "c": 1 / 3})
    assert ranked(fused) == ["b", "a", "c"]
    # a larger k flattens the rank differences
    f60 = reciprocal_rank_fusion([["a", "b"], ["b", "c"]], k=60)
    assert f60["a"] / f60["c"] < fused["a"] / fused["c"]
    with pytest.raises(ValueError, match="RRF k must be >= 0"):
        reciprocal_rank_fusion([["a"]], k=-1)


def test_convex_combination_on_normalised_scores() -> None:
    sparse = {"a": 10.0, "b": 5.0}
    dense = {"b": 0.9, "c": 0.1}
    both = convex_combination(sparse, dense, alpha=0.5)
    assert ranked(both)[0] == "b"  # strong in both lists
    assert ranked(convex_combination(sparse, dense, alpha=0.0)) [0] == "a"
    assert ranked(convex_combination(sparse, dense, alpha=1.0))[0] == "b"
    assert all(0.0 <= v <= 1.0 for v in both.values())
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        convex_combination(sparse, dense, alpha=2)


def test_min_max_normalize() -> None:
    assert min_max_normalize({"a": 2.0, "b": 4.0}) == {"a": 0.0, "b": 1.0}
    assert min_max_normalize({"a": 2.0, "b": 4.0}, lower=0.0) == {"a": 0.5, "b": 1.0}
    assert min_max_normalize({"a": 3.0}) == {"a": 1.0}
    assert min_max_normalize({}) == {}


def test_agreement_weight_follows_the_top_lists_overlap() -> None:
    from rag.retrieval.fusion import agreement_weight

    top = [f"s{i}" for i in range(10)]
    weights = [agreement_weight(top, top[:shared] + [f"d{i}" for i in range(10 - shared)]) for shared in range(11)]
    assert weights == sorted(weights)  # more agreement never lowers the dense weight
    assert weights[0] == 0.3 and weights[5] == 1.0 and weights[10] == 1.0
    assert weights[3] == pytest.approx(0.6)
    # only the first `depth` keys count, and short lists are compared at their own length
    assert agreement_weight(top, ["d0"] * 10 + top) == 0.3
    assert agreement_weight(["a", "b"], ["b", "a", "c"]) == 1.0
    assert agreement_weight([], ["a"]) == 1.0  # one ranking alone: nothing to weigh
    assert agreement_weight(top, [f"d{i}" for i in range(10)], floor=0.0) == 0.0
    for bad in ({"depth": 0}, {"floor": 1.5}, {"full_at": 0.0}):
        with pytest.raises(ValueError, match="must be"):
            agreement_weight(top, top, **bad)


def test_adaptive_fusion_keeps_bm25_order_when_the_rankings_disagree() -> None:
    from rag.retrieval.fusion import adaptive_rank_fusion, ranked, reciprocal_rank_fusion

    sparse = ["a", "b", "c", "d"]
    dense = ["x", "y", "c", "z"]  # one shared in four: dense weight 0.5
    fused, w = adaptive_rank_fusion(sparse, dense, k=1, depth=4)
    assert w == 0.5
    assert fused == reciprocal_rank_fusion([sparse, dense], k=1, weights=(1.0, 0.5))
    assert ranked(fused)[:2] == ["a", "c"]  # equal-weight RRF would tie "a" with "x"
    same, w_same = adaptive_rank_fusion(sparse, list(reversed(sparse)), k=1, depth=4)
    assert w_same == 1.0 and same == reciprocal_rank_fusion([sparse, list(reversed(sparse))], k=1)


def test_robust_z_normalize_centres_on_the_median_and_ignores_the_top_outlier() -> None:
    from rag.retrieval.fusion import robust_z_normalize

    z = robust_z_normalize({"top": 100.0, "a": 3.0, "b": 2.0, "c": 1.0, "d": 0.0})
    assert z["b"] == 0.0  # the median
    assert z["a"] == -z["c"] > 0  # one MAD either side, whatever the outlier
    assert z["top"] > 50 * z["a"]
    # zero spread: the standard deviation, then 1, so nothing divides by zero
    assert robust_z_normalize({"a": 1.0, "b": 1.0, "c": 1.0, "d": 5.0})["d"] > 0
    assert robust_z_normalize({"only": 0.7}) == {"only": 0.0}
    assert robust_z_normalize({}) == {}


def test_zscore_fusion_is_symmetric_and_follows_the_list_whose_top_stands_out() -> None:
    from rag.retrieval.fusion import ranked, zscore_fusion

    flat = {"x": 0.52, "y": 0.51, "z": 0.50, "w": 0.49, "v": 0.48}     # no clear winner
    sharp = {"w": 9.0, "v": 2.1, "x": 2.0, "y": 1.9, "z": 1.8}         # w stands out
    # the sharp list decides the top, whichever side it is on (no side is assumed robust)
    assert ranked(zscore_fusion(sharp, flat))[0] == "w"
    assert ranked(zscore_fusion(flat, sharp))[0] == "w"
    assert zscore_fusion(sharp, flat) == zscore_fusion(flat, sharp)
    # a key in one list only gets the other list's lowest z: no bonus for being absent
    fused = zscore_fusion({"a": 3.0, "b": 2.0, "c": 1.0}, {"b": 3.0, "c": 2.0, "d": 1.0})
    assert ranked(fused) == ["b", "a", "c", "d"]
    assert fused["a"] == pytest.approx(0.0)  # top of BM25 (+z) plus the dense list's lowest (-z)
    # one side empty: the other side's order
    assert ranked(zscore_fusion({}, flat)) == ranked(flat)
