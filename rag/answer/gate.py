"""The relevance gate: is any retrieved hit relevant enough to answer from?

If none is, the answer is the fixed "not in your documents" reply and the LLM is not called.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from rag.index.sparse import Analyzer
from rag.types import Hit

DEFAULT_MIN_DENSE = 0.3


@dataclass(frozen=True)
class RelevanceGate:
    """Is a hit relevant enough to answer from?

    The dense cosine (``hit.scores["dense"]``, present in dense and hybrid mode) is the
    signal used by default: embeddings are unit vectors, so the cosine means the same on every
    corpus.  With all-MiniLM-L6-v2, a passage that answers the question typically scores
    0.4-0.8 and an unrelated one below 0.2, so ``min_dense=0.3`` keeps borderline matches and
    drops clearly unrelated ones.  RRF and BM25 scores are not calibrated across corpora
    (RRF depends only on ranks; BM25 grows with term rarity and query length), so without a
    dense score (BM25 mode) the gate only requires ``score > min_score`` (default 0: at least
    one query term matched).

    A chunk that covers several questions (an FAQ, a long page) can hold the exact answer yet
    score a low cosine against one question (0.12 measured on the bundled FAQ for "What happens
    if ingestion is interrupted?").  So when the query and the index's analyzer are given, a
    hit below ``min_dense`` still passes if it contains at least ``min_term_coverage`` of the
    query's analysed content terms (stemmed, stop words removed); an off-topic question shares
    none of them.

    Example:
        >>> from rag.types import Chunk, Hit
        >>> c = Chunk("c", "text", "d", "a.txt", None, 0, 4, 0)
        >>> gate = RelevanceGate(min_dense=0.3)
        >>> gate.passes(Hit(c, 0.03, 1, {"dense": 0.12, "rrf": 0.03})), gate.passes(Hit(c, 2.1, 1, {"bm25": 2.1}))
        (False, True)
    """

    min_dense: float = DEFAULT_MIN_DENSE
    min_score: float = 0.0
    min_term_coverage: float = 0.75

    def __post_init__(self) -> None:
        if not -1.0 <= self.min_dense <= 1.0:
            raise ValueError(f"min_dense must be a cosine similarity in [-1, 1], got {self.min_dense!r}")
        if not 0.0 < self.min_term_coverage <= 1.0:
            raise ValueError(f"min_term_coverage must be in (0, 1], got {self.min_term_coverage!r}")

    def passes(self, hit: Hit, query_terms: frozenset[str] = frozenset(),
               analyzer: Analyzer | None = None) -> bool:
        dense = hit.scores.get("dense")
        if dense is None:
            return hit.score > self.min_score
        if float(dense) >= self.min_dense:
            return True
        if not query_terms or analyzer is None:
            return False
        covered = query_terms & set(analyzer.tokenize(f"{hit.chunk.title}\n{hit.chunk.text}"))
        return len(covered) / len(query_terms) >= self.min_term_coverage

    def filter(self, hits: Sequence[Hit], query: str = "", analyzer: Analyzer | None = None) -> list[Hit]:
        """Hits that pass; give ``query`` and the index's ``analyzer`` to enable term coverage."""
        terms = frozenset(analyzer.tokenize(query)) if (analyzer is not None and query) else frozenset()
        return [h for h in hits if self.passes(h, terms, analyzer)]
