"""Dense retrieval: FAISS inner product over L2-normalised vectors (= cosine).

Index kinds: ``flat`` (exact, default), ``hnsw`` (graph; fast approximate search for
large corpora) and ``ivf`` (inverted lists; trained on the corpus itself).

Example:
    >>> import numpy as np
    >>> vecs = np.eye(3, dtype=np.float32)
    >>> idx = FaissIndex.build(vecs, kind="flat")
    >>> idx.search(np.array([0.0, 1.0, 0.0], dtype=np.float32), 1)
    [(1, 1.0)]
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

INDEX_KINDS: tuple[str, ...] = ("flat", "hnsw", "ivf")
#: a scoped ``hnsw`` search over at most this many rows is a brute-force scan of their vectors
EXACT_ROWS = 10_000


def validate_kind(kind: str) -> str:
    if kind not in INDEX_KINDS:
        raise ValueError(f"FAISS index kind must be one of {INDEX_KINDS}, got {kind!r}")
    return kind


class FaissIndex:
    """A FAISS inner-product index; positions are row numbers of the build matrix."""

    def __init__(self, index: Any, kind: str, dim: int) -> None:
        self._index = index
        self.kind = kind
        self.dim = dim

    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)

    @property
    def params(self) -> dict[str, int]:
        """The build and search parameters of the kind (recorded in the index manifest, ``faiss.params``).

        Example:
            >>> FaissIndex.build(np.eye(4, dtype=np.float32), kind="hnsw", hnsw_m=16).params
            {'hnsw_m': 16, 'ef_construction': 40, 'ef_search': 128}
        """
        raw = self._index
        if self.kind == "hnsw":
            return {"hnsw_m": int(raw.hnsw.nb_neighbors(1)), "ef_construction": int(raw.hnsw.efConstruction),
                    "ef_search": int(raw.hnsw.efSearch)}
        if self.kind == "ivf":
            return {"nlist": int(raw.nlist), "nprobe": int(raw.nprobe)}
        return {}

    @classmethod
    def build(cls, vectors: np.ndarray, kind: str = "flat", hnsw_m: int = 32, ivf_nlist: int = 256,
              ef_search: int = 128, nprobe: int = 16) -> "FaissIndex":
        import faiss

        validate_kind(kind)
        if vectors.ndim != 2:
            raise ValueError(f"vectors must be a 2-D array, got shape {vectors.shape}")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n, dim = vectors.shape
        if kind == "flat":
            index = faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efSearch = ef_search
        else:
            # IVF needs training points: ~39 per list is FAISS' own minimum; small corpora get fewer lists
            nlist = max(1, min(ivf_nlist, n // 39))
            quantizer = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            if n:
                index.train(vectors)
            index.nprobe = min(nprobe, nlist)
        if n:
            index.add(vectors)
        return cls(index, kind, dim)

    def search(self, query: np.ndarray, n: int, rows: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Top-``n`` ``(position, cosine)`` pairs for one query vector.

        ``rows`` limits the search to those positions with a FAISS ``IDSelectorBatch``: the top
        ``n`` among them, not a filtered top ``n`` of all.  ``ivf`` then probes every list (exact
        among the rows).  ``hnsw`` scores up to :data:`EXACT_ROWS` allowed rows by brute force
        (a narrow filter cuts the graph walk short, and a few thousand dot products cost less than
        the walk); more go through the graph with the selector, redone exactly if it finds fewer than ``n``.

        Example:
            >>> idx = FaissIndex.build(np.array([[1, 0], [0.8, 0.6], [0, 1]], dtype=np.float32))
            >>> [i for i, _ in idx.search(np.array([1.0, 0.0], dtype=np.float32), 2, rows=np.array([0, 2]))]
            [0, 2]
        """
        if n <= 0:
            raise ValueError(f"n must be > 0, got {n}")
        if self.ntotal == 0:
            return []
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        if q.shape[1] != self.dim:
            raise ValueError(f"query vector has dim {q.shape[1]}, index has dim {self.dim}")
        if rows is None:
            scores, ids = self._index.search(q, min(n, self.ntotal))
            return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]
        rows = np.unique(np.asarray(rows, dtype=np.int64))
        if rows.size == 0:
            return []
        want = min(n, int(rows.size))
        if self.kind == "hnsw" and rows.size <= EXACT_ROWS:
            return self._exact(q[0], rows, want)
        selector = faiss_selector(rows)
        scores, ids = self._index.search(q, want, params=self._params(selector))
        found = [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]
        if len(found) < want and self.kind == "hnsw":
            logger.debug("scoped hnsw search found %d of %d; searching the %d allowed rows exactly",
                         len(found), want, rows.size)
            return self._exact(q[0], rows, want)
        return found

    def _params(self, selector: Any) -> Any:
        """Search parameters of this kind carrying ``selector`` (HNSW and IVF refuse the generic class)."""
        import faiss

        raw = self._index
        if self.kind == "hnsw":
            return faiss.SearchParametersHNSW(sel=selector, efSearch=int(raw.hnsw.efSearch))
        if self.kind == "ivf":
            return faiss.SearchParametersIVF(sel=selector, nprobe=int(raw.nlist))  # every list: exact among rows
        return faiss.SearchParameters(sel=selector)

    def _exact(self, q: np.ndarray, rows: np.ndarray, n: int) -> list[tuple[int, float]]:
        """Brute-force top ``n`` of ``rows`` (score desc, then position), from the index's stored vectors."""
        scores = self._index.reconstruct_batch(rows) @ q
        top = np.lexsort((rows, -scores))[:n]
        return [(int(rows[i]), float(scores[i])) for i in top]

    def save(self, path: Path) -> None:
        import faiss

        try:
            faiss.write_index(self._index, str(path))
        except RuntimeError as exc:  # faiss reports a failed write as RuntimeError, its errno only in the text
            code = _errno_in(str(exc))
            if code is None:
                raise
            raise OSError(code, os.strerror(code), str(path)) from exc

    @classmethod
    def load(cls, path: Path, kind: str) -> "FaissIndex":
        import faiss

        index = faiss.read_index(str(path), getattr(faiss, "IO_FLAG_MMAP_IFC", 0))  # vectors memory-mapped
        return cls(index, kind, int(index.d))


def faiss_selector(rows: np.ndarray) -> Any:
    """A FAISS ``IDSelectorBatch`` of ``rows`` (positions): a hash set, so a flat scan checks each id in O(1)."""
    import faiss

    return faiss.IDSelectorBatch(np.ascontiguousarray(rows, dtype=np.int64))


def _errno_in(message: str) -> int | None:
    """The errno whose text ends ``message`` in parentheses, as faiss writes it (``... (No space left on device)``).

    Example:
        >>> import errno
        >>> _errno_in("write error in /x: 65491 != 307200 (No space left on device)") == errno.ENOSPC
        True
        >>> _errno_in("Error: 'ntotal == 0' failed") is None
        True
    """
    for code in sorted(errno.errorcode):
        if message.rstrip().endswith(f"({os.strerror(code)})"):
            return code
    return None
