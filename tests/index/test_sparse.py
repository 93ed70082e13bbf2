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


def _rank_bm25_lucene(tokens: list[list[str]], k1: float, b: float):  # type: ignore[no-untyped-def]
    """The reference: rank-bm25's BM25Okapi with Lucene's IDF."""
    from rank_bm25 import BM25Okapi

    class LuceneBM25(BM25Okapi):
        def _calc_idf(self, nd: dict[str, int]) -> None:
            self.idf = {w: lucene_idf(self.corpus_size, df) for w, df in nd.items()}

    return LuceneBM25(tokens, k1=k1, b=b)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_eager_scores_equal_rank_bm25_on_random_corpora(seed: int) -> None:
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(40)]
    tokens = [list(rng.choice(words, size=int(rng.integers(0, 30)), p=np.linspace(2, 0.1, 40) / 42.0))
              for _ in range(200)]
    tokens[3] = []  # an empty chunk
    k1, b = (1.2, 0.75) if seed != 2 else (0.9, 0.4)
    ours, ref = BM25Index.build(tokens, k1=k1, b=b), _rank_bm25_lucene(tokens, k1, b)
    for _ in range(25):
        q = list(rng.choice([*words, "unknown"], size=int(rng.integers(1, 6))))  # repeats and unknown terms
        expected = np.asarray(ref.get_scores(q))
        np.testing.assert_allclose(ours.scores(q), expected, rtol=1e-12, atol=1e-12)
        hits = ours.search(q, 10)
        order = sorted((i for i in range(len(tokens)) if expected[i] > 0), key=lambda i: (-expected[i], i))[:10]
        assert [i for i, _ in hits] == order  # identical ranking, ties by position


def test_one_stemmer_per_thread() -> None:
    """PyStemmer's stemmer must not be called concurrently: each thread gets its own, reused."""
    import threading

    from rag.text import english_stemmer

    here = english_stemmer()
    other: list[object] = []
    t = threading.Thread(target=lambda: other.append(english_stemmer()))
    t.start()
    t.join()
    assert english_stemmer() is here and other[0] is not here
    assert Analyzer(stemmer="english").tokenize("pumps priming") == here.stemWords(["pumps", "priming"])


def test_scoped_search_ranks_only_the_allowed_rows() -> None:
    """Masked rows are never ranked: the top n of the allowed rows' scores, ties by position."""
    analyzer = Analyzer(stemmer="english")
    idx = BM25Index.build([analyzer.tokenize(t) for t in CORPUS])
    for query in QUERIES:
        terms = analyzer.tokenize(query)
        scores = idx.scores(terms)
        for rows in (np.array([1, 2, 5]), np.array([0, 4]), np.arange(len(CORPUS))):
            got = idx.search(terms, 2, rows)
            allowed = [int(i) for i in rows if scores[i] > 0]
            expected = sorted(allowed, key=lambda i: (-scores[i], i))[:2]
            assert [i for i, _ in got] == expected, (query, rows)
    assert idx.search(analyzer.tokenize("pump"), 3, np.array([1, 3])) == []  # no allowed row holds the term
