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


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
@pytest.mark.parametrize("allowed", [7, 60])
def test_scoped_search_is_the_top_n_of_the_allowed_rows(kind: str, allowed: int, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """An IDSelector search returns the n best allowed rows (numpy brute force over them), never fewer:
    a post-filter of the unscoped top n would keep almost none of them."""
    import rag.index.dense

    monkeypatch.setattr(rag.index.dense, "EXACT_ROWS", 10)  # 60 rows: hnsw's graph walk with the selector
    rng = np.random.default_rng(2)
    vecs, queries = _unit(rng, 2000, 32), _unit(rng, 5, 32)
    idx = FaissIndex.build(vecs, kind, ivf_nlist=16)
    rows = np.sort(rng.choice(2000, size=allowed, replace=False))
    for q in queries:
        got = idx.search(q, 5, rows=rows)
        sims = vecs[rows] @ q
        expected = rows[np.argsort(-sims)[:5]]
        assert len(got) == 5 and {i for i, _ in got} <= set(rows.tolist())
        if kind != "hnsw" or allowed <= 10:  # flat and ivf (every list probed) are exact, and so is a narrow hnsw
            assert [i for i, _ in got] == expected.tolist()
        else:
            assert len({i for i, _ in got} & set(expected.tolist())) >= 3  # approximate: most of the best
        assert len({i for i, _ in idx.search(q, 5)} & set(rows.tolist())) < 5
    assert idx.search(queries[0], 5, rows=np.zeros(0, np.int64)) == []
    assert len(idx.search(queries[0], 50, rows=rows[:3])) == 3
