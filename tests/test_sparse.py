"""BM25: differential test against bm25s (Lucene variant), tiny-corpus IDF, analyzer."""

from __future__ import annotations

import numpy as np
import pytest

from rag.index.sparse import Analyzer, BM25Index, lucene_idf

CORPUS = [
    "the pump must be primed before the pump is started",
    "turbine blades are inspected for cracks every 500 hours",
    "a centrifugal pump moves water with an impeller",
    "bananas are yellow and rich in potassium",
    "inspect the mechanical seal of the pump for leaks",
    "the impeller of a turbine converts flow into rotation",
]
QUERIES = ["pump impeller", "turbine inspection cracks", "yellow fruit potassium", "seal leaks pump"]


def test_matches_bm25s_lucene_reference() -> None:
    import bm25s

    analyzer = Analyzer(stemmer="english")
    tokens = [analyzer.tokenize(t) for t in CORPUS]
    ours = BM25Index.build(tokens, k1=1.2, b=0.75)
    ref = bm25s.BM25(method="lucene", k1=1.2, b=0.75)
    vocab = sorted({w for t in tokens for w in t})
    ref.index(bm25s.tokenization.Tokenized(ids=[[vocab.index(w) for w in t] for t in tokens],
                                           vocab={w: i for i, w in enumerate(vocab)}), show_progress=False)
    for q in QUERIES:
        q_tokens = [w for w in analyzer.tokenize(q) if w in vocab]
        expected = ref.get_scores(q_tokens)
        # rank-bm25 keeps Robertson's (k1 + 1) numerator factor; bm25s' Lucene variant drops it
        np.testing.assert_allclose(ours.scores(q_tokens), (1.2 + 1) * expected, rtol=1e-5, atol=1e-9)


def test_tiny_corpus_scores_stay_positive() -> None:
    # With Okapi IDF a term in 2 of 3 docs gets a negative IDF; Lucene IDF does not.
    tokens = [["pump", "valve"], ["pump", "seal"], ["banana"]]
    idx = BM25Index.build(tokens)
    hits = idx.search(["pump", "valve"], 3)
    assert [i for i, _ in hits] == [0, 1]
    assert all(s > 0 for _, s in hits)
    assert lucene_idf(3, 2) > 0 and lucene_idf(1, 1) > 0


def test_idf_decreases_with_document_frequency() -> None:
    assert lucene_idf(100, 1) > lucene_idf(100, 10) > lucene_idf(100, 90) > 0


def test_empty_corpus_and_empty_query() -> None:
    assert BM25Index.build([]).search(["x"], 5) == []
    idx = BM25Index.build([["a"], ["b"]])
    assert idx.search([], 5) == []
    with pytest.raises(ValueError, match="n must be > 0"):
        idx.search(["a"], 0)


def test_ties_are_broken_by_position() -> None:
    idx = BM25Index.build([["x", "y"], ["x", "y"], ["z"]])
    assert [i for i, _ in idx.search(["x"], 3)] == [0, 1]


def test_analyzer() -> None:
    a = Analyzer(stemmer="english")
    assert a.tokenize("The Pumps were PRIMED, aren't they?") == ["pump", "prime"]  # "aren't" is a stop word
    assert a.tokenize("the seal at five o’clock") == ["seal", "five", "o'clock"]  # curly apostrophe normalised
    assert Analyzer(stemmer="none", stopwords=False).tokenize("The pumps") == ["the", "pumps"]
    with pytest.raises(ValueError, match="stemmer must be one of"):
        Analyzer(stemmer="klingon")
