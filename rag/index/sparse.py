"""Sparse retrieval: BM25 over rank-bm25, with a non-negative IDF.

rank-bm25's ``BM25Okapi`` uses the Robertson–Spärck Jones IDF
``log((N - n + 0.5) / (n + 0.5))``, which is zero or negative for a term in half or more
of the documents.  On a tiny corpus (two or three chunks) that makes *every* score zero
or negative and ranking meaningless; rank-bm25's epsilon floor does not help when the
average IDF is itself <= 0.  We therefore use Lucene's IDF
``log(1 + (N - n + 0.5) / (n + 0.5))`` (always > 0), keeping rank-bm25's scoring loop.

Example:
    >>> idx = BM25Index.build([["pump", "prime"], ["turbine", "blade"], ["pump", "seal"]])
    >>> [i for i, _ in idx.search(["pump", "prime"], 2)]
    [0, 2]
"""

from __future__ import annotations

import logging
import math
from typing import Any, Sequence

import numpy as np

from rag.text import STOPWORDS, STOPWORDS_ID, TOKEN_RE

logger = logging.getLogger(__name__)


def lucene_idf(n_docs: int, doc_freq: int) -> float:
    """BM25 IDF as in Lucene: ``log(1 + (N - n + 0.5) / (n + 0.5))``.

    Robertson & Zaragoza, "The Probabilistic Relevance Framework: BM25 and Beyond",
    Foundations and Trends in IR 3(4), 2009; the ``1 +`` keeps it positive (Lucene's
    ``BM25Similarity``), which matters on small corpora.
    """
    return math.log(1.0 + (n_docs - doc_freq + 0.5) / (doc_freq + 0.5))


class Analyzer:
    """Lowercase word tokenizer with optional stop-word removal and Snowball stemming.

    Example:
        >>> Analyzer(stemmer="english").tokenize("The pumps were priming!")
        ['pump', 'prime']
    """

    STEMMERS: tuple[str, ...] = ("english", "none")

    def __init__(self, stemmer: str = "english", stopwords: bool = True) -> None:
        if stemmer not in self.STEMMERS:
            raise ValueError(f"stemmer must be one of {self.STEMMERS}, got {stemmer!r}")
        self.stemmer = stemmer
        self.stopwords = stopwords
        self._stem: Any | None = None
        if stemmer == "english":
            import Stemmer  # PyStemmer: Snowball (Porter2) in C

            self._stem = Stemmer.Stemmer("english")

    @property
    def params(self) -> dict[str, Any]:
        return {"stemmer": self.stemmer, "stopwords": self.stopwords,
                "stoplist": STOPWORDS_ID if self.stopwords else None, "lowercase": True}

    def tokenize(self, text: str) -> list[str]:
        words = [w.replace("’", "'") for w in TOKEN_RE.findall(text.lower())]
        if self.stopwords:
            words = [w for w in words if w not in STOPWORDS]
        if self._stem is not None:
            words = self._stem.stemWords(words)
        return words


class BM25Index:
    """BM25 (Okapi, Lucene IDF) over pre-tokenized documents, via rank-bm25.

    Use :meth:`build` to create one; :meth:`search` returns ``(position, score)`` pairs,
    best first, for documents with a positive score.
    """

    def __init__(self, bm25: Any | None, n_docs: int, k1: float, b: float) -> None:
        self._bm25 = bm25
        self.n_docs = n_docs
        self.k1 = k1
        self.b = b

    @classmethod
    def build(cls, corpus_tokens: Sequence[Sequence[str]], k1: float = 1.2, b: float = 0.75) -> "BM25Index":
        if k1 < 0:
            raise ValueError(f"k1 must be >= 0, got {k1}")
        if not 0 <= b <= 1:
            raise ValueError(f"b must be in [0, 1], got {b}")
        if len(corpus_tokens) == 0:
            return cls(None, 0, k1, b)
        from rank_bm25 import BM25Okapi

        class _LuceneBM25(BM25Okapi):
            def _calc_idf(self, nd: dict[str, int]) -> None:  # noqa: D401 - rank-bm25 hook
                self.idf = {w: lucene_idf(self.corpus_size, df) for w, df in nd.items()}

        # rank-bm25 divides by the average length: give empty docs a length of 0 safely
        docs = [list(t) for t in corpus_tokens]
        if not any(docs):
            return cls(None, len(docs), k1, b)
        bm25 = _LuceneBM25(docs, k1=k1, b=b)
        return cls(bm25, len(docs), k1, b)

    def scores(self, query_tokens: Sequence[str]) -> np.ndarray:
        """BM25 score of every document (zeros when nothing matches)."""
        if self._bm25 is None or not query_tokens:
            return np.zeros(self.n_docs, dtype=np.float64)
        return np.asarray(self._bm25.get_scores(list(query_tokens)), dtype=np.float64)

    def search(self, query_tokens: Sequence[str], n: int) -> list[tuple[int, float]]:
        if n <= 0:
            raise ValueError(f"n must be > 0, got {n}")
        s = self.scores(query_tokens)
        if s.size == 0:
            return []
        n = min(n, s.size)
        top = np.argpartition(-s, n - 1)[:n]
        top = top[np.lexsort((top, -s[top]))]  # score desc, then position: deterministic ties
        return [(int(i), float(s[i])) for i in top if s[i] > 0]
