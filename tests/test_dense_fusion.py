"""FAISS vs numpy brute force, approximate kinds vs flat, and the pure fusion functions."""

from __future__ import annotations

import numpy as np
import pytest

from rag.index.dense import FaissIndex
from rag.retrieval.fusion import convex_combination, min_max_normalize, ranked, reciprocal_rank_fusion


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_flat_matches_numpy_brute_force() -> None:
    rng = np.random.default_rng(0)
    vecs, queries = _unit(rng, 500, 32), _unit(rng, 20, 32)
    idx = FaissIndex.build(vecs, "flat")
    for q in queries:
        got = idx.search(q, 10)
        sims = vecs @ q
        expected = np.argsort(-sims)[:10]
        assert [i for i, _ in got] == expected.tolist()
        np.testing.assert_allclose([s for _, s in got], sims[expected], rtol=1e-5)


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_kinds_recall_against_flat(kind: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    vecs, queries = _unit(rng, 2000, 32), _unit(rng, 30, 32)
    flat = FaissIndex.build(vecs, "flat")
    approx = FaissIndex.build(vecs, kind)
    approx.save(tmp_path / "x.faiss")
    approx = FaissIndex.load(tmp_path / "x.faiss", kind)
    recall = np.mean([len({i for i, _ in flat.search(q, 10)} & {i for i, _ in approx.search(q, 10)}) / 10
                      for q in queries])
    assert recall >= 0.8


def test_dense_errors_and_empty() -> None:
    with pytest.raises(ValueError, match="FAISS index kind must be one of"):
        FaissIndex.build(np.zeros((1, 4), np.float32), "lsh")
    empty = FaissIndex.build(np.zeros((0, 4), np.float32), "flat")
    assert empty.search(np.ones(4, np.float32), 3) == []
    idx = FaissIndex.build(np.eye(4, dtype=np.float32), "flat")
    with pytest.raises(ValueError, match="query vector has dim 3, index has dim 4"):
        idx.search(np.ones(3, np.float32), 1)


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
