"""FAISS vs numpy brute force, approximate kinds vs flat (rag.index.dense)."""

from __future__ import annotations

import numpy as np
import pytest

from rag.index.dense import FaissIndex


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
