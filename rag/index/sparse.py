"""Sparse retrieval: BM25 with eager sparse scoring and a non-negative IDF.

rank-bm25's ``BM25Okapi`` (the reference implementation) uses the Robertson–Spärck Jones IDF
``log((N - n + 0.5) / (n + 0.5))``, which is zero or negative for a term in half or more
of the documents.  On a tiny corpus (two or three chunks) that makes *every* score zero
or negative and ranking meaningless; rank-bm25's epsilon floor does not help when the
average IDF is itself <= 0.  We therefore use Lucene's IDF
``log(1 + (N - n + 0.5) / (n + 0.5))`` (always > 0), with rank-bm25's scoring formula,
precomputed per (document, term) so a query costs a few column sums (:class:`BM25Index`).

Example:
    >>> idx = BM25Index.build([["pump", "prime"], ["turbine", "blade"], ["pump", "seal"]])
    >>> [i for i, _ in idx.search(["pump", "prime"], 2)]
    [0, 2]
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from rag.text import STOPWORDS, STOPWORDS_ID, TOKEN_RE, english_stemmer

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
        if stemmer == "english":
            english_stemmer()  # fails here, not at the first query, when PyStemmer is missing

    @property
    def params(self) -> dict[str, Any]:
        return {"stemmer": self.stemmer, "stopwords": self.stopwords,
                "stoplist": STOPWORDS_ID if self.stopwords else None, "lowercase": True}

    def tokenize(self, text: str) -> list[str]:
        words = [w.replace("’", "'") for w in TOKEN_RE.findall(text.lower())]
        if self.stopwords:
            words = [w for w in words if w not in STOPWORDS]
        if self.stemmer == "english":
            words = english_stemmer().stemWords(words)
        return words


#: the parts :meth:`BM25Index.save` writes into an index version directory (``vocab`` lists the terms
#: in column order; the other three are the CSC arrays, read back memory-mapped)
BM25_PARTS: dict[str, str] = {"indptr": "bm25.indptr.npy", "indices": "bm25.indices.npy",
                              "data": "bm25.data.npy", "vocab": "bm25.vocab.json"}
#: names the layout of those parts in the manifest (``bm25.matrix.format``)
BM25_MATRIX_FORMAT = "csc-eager-v1"


class BM25Index:
    """BM25 (Okapi, Lucene IDF) with eager scoring: every (document, term) contribution precomputed.

    ``build`` computes, for each document ``d`` and term ``t`` in it, the BM25 contribution
    ``idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * |d| / avgdl))`` (Robertson & Zaragoza 2009,
    with Lucene's IDF) into a sparse document × term matrix in CSC layout (``indptr``, ``indices``,
    ``data``, as scipy stores it), as bm25s does
    (Lù, "BM25S: Orders of magnitude faster lexical search via eager sparse scoring", 2024).
    A query then sums a few columns.  The scores equal rank-bm25's ``BM25Okapi`` with Lucene's
    IDF (the reference implementation; tests/index/test_sparse.py checks it), query-term repeats
    included.  :meth:`search` returns ``(position, score)`` pairs, best first, for documents
    with a positive score.  :meth:`save` writes the arrays as ``.npy`` parts and :meth:`load`
    memory-maps them, so opening an index reads the matrix instead of rebuilding it.

    Example:
        >>> idx = BM25Index.build([["pump", "prime"], ["pump", "seal"], ["turbine"]])
        >>> [round(float(s), 3) for s in idx.scores(["pump", "seal"])]
        [0.434, 1.341, 0.0]
    """

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, vocab: Mapping[str, int],
                 n_docs: int, k1: float, b: float) -> None:
        self.indptr = indptr  # int64 (len(vocab) + 1,): column j is indptr[j]:indptr[j + 1]
        self.indices = indices  # int32 (nnz,): document positions, sorted within a column
        self.data = data  # float64 (nnz,): the precomputed contributions
        self.vocab = dict(vocab)  # term -> column, in column order
        self.n_docs = n_docs
        self.k1 = k1
        self.b = b

    @property
    def nnz(self) -> int:
        return int(self.data.shape[0])

    @classmethod
    def build(cls, corpus_tokens: Sequence[Sequence[str]], k1: float = 1.2, b: float = 0.75) -> "BM25Index":
        if k1 < 0:
            raise ValueError(f"k1 must be >= 0, got {k1}")
        if not 0 <= b <= 1:
            raise ValueError(f"b must be in [0, 1], got {b}")
        n_docs = len(corpus_tokens)
        vocab: dict[str, int] = {}
        rows: list[int] = []
        cols: list[int] = []
        tfs: list[int] = []
        for d, tokens in enumerate(corpus_tokens):
            for term, tf in Counter(tokens).items():
                rows.append(d)
                cols.append(vocab.setdefault(term, len(vocab)))
                tfs.append(tf)
        lengths = np.fromiter((len(t) for t in corpus_tokens), dtype=np.float64, count=n_docs)
        if not rows or lengths.sum() == 0:
            return cls(np.zeros(len(vocab) + 1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float64),
                       vocab, n_docs, k1, b)
        from scipy.sparse import csc_matrix

        r = np.asarray(rows, dtype=np.int64)
        c = np.asarray(cols, dtype=np.int64)
        tf = np.asarray(tfs, dtype=np.float64)
        df = np.bincount(c, minlength=len(vocab))
        idf = np.fromiter((lucene_idf(n_docs, int(x)) for x in df), dtype=np.float64, count=len(df))
        norm = k1 * (1.0 - b + b * lengths / lengths.mean())
        data = idf[c] * (tf * (k1 + 1.0) / (tf + norm[r]))
        matrix = csc_matrix((data, (r, c)), shape=(n_docs, len(vocab)))
        matrix.sort_indices()
        return cls(matrix.indptr.astype(np.int64), matrix.indices.astype(np.int32),
                   matrix.data.astype(np.float64), vocab, n_docs, k1, b)

    # -- persistence ------------------------------------------------------------------------

    def manifest_entry(self) -> dict[str, Any]:
        """What the index manifest records about the saved matrix (``bm25.matrix``)."""
        return {"format": BM25_MATRIX_FORMAT, "parts": dict(BM25_PARTS), "docs": self.n_docs,
                "terms": len(self.vocab), "nnz": self.nnz}

    def save(self, directory: Path) -> None:
        """Write the matrix as :data:`BM25_PARTS` into ``directory`` (an index version being written)."""
        np.save(directory / BM25_PARTS["indptr"], np.asarray(self.indptr, dtype=np.int64), allow_pickle=False)
        np.save(directory / BM25_PARTS["indices"], np.asarray(self.indices, dtype=np.int32), allow_pickle=False)
        np.save(directory / BM25_PARTS["data"], np.asarray(self.data, dtype=np.float64), allow_pickle=False)
        (directory / BM25_PARTS["vocab"]).write_text(json.dumps(list(self.vocab), ensure_ascii=False),
                                                     encoding="utf-8")

    @classmethod
    def load(cls, directory: Path, entry: Any, k1: float, b: float, n_docs: int) -> "BM25Index":
        """Memory-map a matrix :meth:`save` wrote; ``entry`` is its manifest entry.

        Checks the structure (shapes, dtypes, column pointers, document positions, finite
        scores) in O(nnz) without copying; raises ``ValueError`` naming the bad part.
        """
        if not isinstance(entry, dict) or entry.get("format") != BM25_MATRIX_FORMAT:
            got = entry.get("format") if isinstance(entry, dict) else entry
            raise ValueError(f"manifest field 'bm25.matrix' has format {got!r}, this version of rag reads "
                             f"{BM25_MATRIX_FORMAT!r}")
        counts = {k: entry.get(k) for k in ("docs", "terms", "nnz")}
        if not all(type(v) is int and v >= 0 for v in counts.values()):
            raise ValueError(f"manifest field 'bm25.matrix' has bad counts {counts}")
        if counts["docs"] != n_docs:
            raise ValueError(f"the BM25 matrix has {counts['docs']} documents, the index {n_docs}")
        try:
            vocab_list = json.loads((directory / BM25_PARTS["vocab"]).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{BM25_PARTS['vocab']} is missing or unreadable ({' '.join(str(exc).split())})") from None
        if not isinstance(vocab_list, list) or len(vocab_list) != counts["terms"] \
                or not all(isinstance(t, str) for t in vocab_list):
            raise ValueError(f"{BM25_PARTS['vocab']} must be a list of {counts['terms']} terms")
        vocab = {t: j for j, t in enumerate(vocab_list)}
        if len(vocab) != len(vocab_list):
            raise ValueError(f"{BM25_PARTS['vocab']} lists a term twice")
        arrays = {}
        for key, dtype, size in (("indptr", np.int64, counts["terms"] + 1), ("indices", np.int32, counts["nnz"]),
                                 ("data", np.float64, counts["nnz"])):
            name = BM25_PARTS[key]
            try:
                arr = np.load(directory / name, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise ValueError(f"{name} is missing or unreadable ({' '.join(str(exc).split())})") from None
            if arr.dtype != dtype or arr.shape != (size,):
                raise ValueError(f"{name} holds {arr.dtype} {arr.shape}, expected {np.dtype(dtype)} ({size},)")
            arrays[key] = arr
        indptr, indices, data = arrays["indptr"], arrays["indices"], arrays["data"]
        if indptr[0] != 0 or indptr[-1] != counts["nnz"] or bool(np.any(np.diff(indptr) < 0)):
            raise ValueError(f"{BM25_PARTS['indptr']} is not a valid column pointer array (0 .. nnz, non-decreasing)")
        if counts["nnz"] and (int(indices.min()) < 0 or int(indices.max()) >= n_docs):
            raise ValueError(f"{BM25_PARTS['indices']} names documents outside 0..{n_docs - 1}")
        if counts["nnz"] and not bool(np.isfinite(data).all()):
            raise ValueError(f"{BM25_PARTS['data']} holds NaN or infinite scores")
        return cls(indptr, indices, data, vocab, n_docs, k1, b)

    # -- queries ----------------------------------------------------------------------------

    def document_frequency(self, term: str) -> int:
        """How many documents hold ``term`` (an analysed token); 0 for a term not in the vocabulary."""
        j = self.vocab.get(term)
        return 0 if j is None else int(self.indptr[j + 1] - self.indptr[j])

    def scores(self, query_tokens: Sequence[str]) -> np.ndarray:
        """BM25 score of every document (zeros when nothing matches)."""
        out = np.zeros(self.n_docs, dtype=np.float64)
        indptr, indices, data = self.indptr, self.indices, self.data
        for term in query_tokens:  # repeats count, as in rank-bm25
            j = self.vocab.get(term)
            if j is not None:
                lo, hi = indptr[j], indptr[j + 1]
                out[indices[lo:hi]] += data[lo:hi]  # a column holds each document once
        return out

    def search(self, query_tokens: Sequence[str], n: int, rows: np.ndarray | None = None) -> list[tuple[int, float]]:
        """The ``n`` best ``(position, score)`` pairs with a positive score, best first.

        ``rows`` (sorted positions) limits the ranking to those documents: the others are masked
        before the top ``n`` is taken, so a scoped search still returns ``n`` when ``n`` of them match.

        Example:
            >>> idx = BM25Index.build([["pump"], ["pump", "seal"], ["pump", "pump"]])
            >>> [i for i, _ in idx.search(["pump"], 2)], [i for i, _ in idx.search(["pump"], 2, np.array([0, 1]))]
            ([2, 0], [0, 1])
        """
        if n <= 0:
            raise ValueError(f"n must be > 0, got {n}")
        s = self.scores(query_tokens)
        if rows is None:
            hit = np.flatnonzero(s > 0)
        else:
            rows = np.asarray(rows, dtype=np.int64)
            hit = rows[s[rows] > 0]
        if hit.size == 0:
            return []
        if hit.size > n:  # keep the n best; at a tie on the n-th score, the earliest positions
            nth = -np.partition(-s[hit], n - 1)[n - 1]
            above, tied = hit[s[hit] > nth], hit[s[hit] == nth]  # hit is in position order
            hit = np.concatenate([above, tied[: n - above.size]])
        top = hit[np.lexsort((hit, -s[hit]))]  # score desc, then position: deterministic ties
        return [(int(i), float(s[i])) for i in top]
