"""Evidence first: the few sentences of the retrieved chunks that answer the question.

Whole chunks make a long prompt (slow on a CPU: llama.cpp reads ~100 prompt tokens a second on
2 cores) and give a small model room to drift to a neighbouring fact.  :class:`EvidenceSelector`
scores every sentence of a wider pool of retrieved chunks (the top 20) and keeps the best few,
within a small token budget, as numbered :class:`Passage` objects: what the generator reads,
what the extractive mode quotes, and what a citation points at (a chunk plus a character span).

Each sentence is scored by a linear model over collection-agnostic signals (the file
``rag/answer/models/evidence-ranker.json``, trained by ``rag eval train evidence``):

* ``cos``: the embedder's cosine between the question and the sentence (a passage scored by its
  best sentence, MaxP: Dai & Callan, "Deeper Text Understanding for IR with Contextual Neural
  Language Modeling", SIGIR 2019);
* ``cos_window``: the same for the sentence with its neighbours and its section heading;
* ``coverage`` / ``coverage_window``: the share of the question's terms, weighted by their IDF in
  the collection, that the sentence (window) contains;
* ``log_rank``: the log of its chunk's retrieval rank; ``length``; ``cos_x_coverage``.

Question-level signals of the same candidates (the best score, the best cosine, how much of the
question the evidence covers) feed the answer decision (:mod:`rag.answer.decision`).

Example:
    >>> from rag.types import Chunk, Hit
    >>> c = Chunk("c1", "# Pump\\nOpen the bleed valve first. Then fill the casing.", "d", "pump.md", None, 0, 55, 0)
    >>> [text for _start, _end, text, _heading in candidate_sentences(c)]
    ['Open the bleed valve first.', 'Then fill the casing.']
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import numpy as np

from rag.answer.linear import LinearModel, packaged
from rag.ingest.tables import row_as_text, table_blocks
from rag.text import content_terms, flatten, sentence_spans
from rag.types import Chunk, Hit

if TYPE_CHECKING:  # pragma: no cover
    from rag.embedding import Embedder
    from rag.index.base import SearchIndex
    from rag.index.sparse import Analyzer

logger = logging.getLogger(__name__)

DEFAULT_POOL = 20
DEFAULT_BUDGET = 300
DEFAULT_MAX_PASSAGES = 6
RANKER = "evidence-ranker"
SENTENCE_FEATURES = ("cos", "cos_window", "coverage", "coverage_window", "log_rank", "length", "cos_x_coverage")
#: the hand rule when no trained ranker file is present: cosine plus IDF coverage
FALLBACK_RANKER = LinearModel("evidence-fallback", SENTENCE_FEATURES, coef=(1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0),
                              meta={"rule": "cos + coverage (no trained ranker)"})
_TITLE_WORDS = 12


@dataclass(frozen=True)
class Passage:
    """One numbered piece of evidence: a sentence (or adjacent sentences) of a chunk.

    ``start``/``end`` are character offsets into the chunk's text; :attr:`span` the same in the
    document (``doc.text[a:b]``), which is what a citation points at and the app highlights.
    """

    number: int
    chunk: Chunk
    start: int
    end: int
    score: float
    hit_score: float = 0.0
    heading: str = ""
    cos: float = 0.0

    @property
    def text(self) -> str:
        """The sentence(s), line breaks flattened."""
        return flatten(self.chunk.text[self.start:self.end])

    @property
    def full_text(self) -> str:
        """The passage as read for meaning, like :attr:`rag.types.Chunk.full_text`: a table's row as
        "Column: value; ..." (:func:`~rag.ingest.tables.row_as_text`), any other passage its text."""
        return row_as_text(self.heading, self.text) if self.heading.startswith("|") else self.text

    @property
    def span(self) -> tuple[int, int]:
        return self.chunk.start + self.start, self.chunk.start + self.end


@dataclass(frozen=True)
class Evidence:
    """The selected passages (best first, numbered ``[1]..[n]``) and question-level signals."""

    passages: tuple[Passage, ...]
    features: Mapping[str, float] = field(default_factory=dict)
    scored: int = 0
    seconds: float = 0.0

    def __bool__(self) -> bool:
        return bool(self.passages)

    @property
    def chunks(self) -> tuple[Chunk, ...]:
        return tuple(p.chunk for p in self.passages)


def candidate_sentences(chunk: Chunk) -> list[tuple[int, int, str, str]]:
    """``(start, end, text, heading)`` for each sentence of ``chunk`` that can answer something.

    Markdown headings are not candidates but label the sentences under them; a sentence that
    asks (an FAQ's question) echoes rather than answers; fragments of fewer than four words or
    two content words (a title, a bullet) carry no fact. A table's rows are candidates one by one,
    each labelled with the table's header line (from the chunk's context for rows cut from it).
    """
    out = []
    tables = table_blocks(chunk.text, chunk.context)
    for table in tables:
        for a, b in table.rows:
            text = row_as_text(table.header_line, chunk.text[a:b])  # scored as "Column: value; ..."
            if any(ch.isalnum() for ch in text):
                out.append((a, b, text, table.header_line))
    heading = ""
    for a, b in sentence_spans(chunk.text):
        if any(t.start <= a < t.end for t in tables):
            continue
        text = flatten(chunk.text[a:b])
        if text.startswith("#"):
            heading = text.lstrip("# ").strip()
            continue
        if text.endswith("?"):
            heading = heading or text
            continue
        if len(text.split()) < 4 or len(content_terms(text)) < 2:
            continue
        out.append((a, b, text, heading))
    return sorted(out) if tables else out


def idf_weights(terms: Sequence[str], index: "SearchIndex", pool: Sequence[Sequence[str]]) -> dict[str, float]:
    """IDF of each analysed query term in the collection (``index.term_idf``); an index that
    cannot say (a server index: ``term_idf`` returns None) gets the IDF over the retrieved ``pool`` instead."""
    collection = index.term_idf(terms)
    if collection is not None:
        return dict(collection)
    n = len(pool)
    return {t: math.log(1.0 + (n - df + 0.5) / (df + 0.5))
            for t in terms for df in [sum(1 for toks in pool if t in toks)]}


def coverage(terms: Mapping[str, float], tokens: set[str]) -> float:
    """The IDF-weighted share of the question's ``terms`` found in ``tokens`` (pure).

    Example:
        >>> coverage({"pump": 2.0, "prime": 1.0}, {"pump", "valv"})
        0.667
    """
    total = sum(terms.values())
    return round(sum(w for t, w in terms.items() if t in tokens) / total, 3) if total > 0 else 0.0


class EvidenceSelector:
    """Rank the sentences of the retrieved chunks and keep the best within a token budget.

    Args:
        embedder: the index's embedder (question and sentence cosines).
        ranker: the sentence scorer (default: the packaged ``evidence-ranker.json``; the
            cos + coverage rule when the file is missing).
        budget: tokens of evidence at most (passage text plus its header line).
        max_passages: passages at most.
        count_tokens: the generator's token counter (default: words × 1.3).

    Example:
        >>> EvidenceSelector(None, budget=0)
        Traceback (most recent call last):
        ...
        ValueError: budget must be a positive number of tokens, got 0
    """

    def __init__(self, embedder: "Embedder", ranker: LinearModel | None = None, budget: int = DEFAULT_BUDGET,
                 max_passages: int = DEFAULT_MAX_PASSAGES, count_tokens: Callable[[str], int] | None = None) -> None:
        if not isinstance(budget, int) or budget <= 0:
            raise ValueError(f"budget must be a positive number of tokens, got {budget!r}")
        if not isinstance(max_passages, int) or max_passages <= 0:
            raise ValueError(f"max_passages must be a positive integer, got {max_passages!r}")
        if ranker is not None and tuple(ranker.features) != SENTENCE_FEATURES:
            raise ValueError(f"ranker {ranker.name!r} scores {ranker.features}, expected {SENTENCE_FEATURES}")
        self.embedder = embedder
        self._ranker = ranker
        self.budget = budget
        self.max_passages = max_passages
        self.count_tokens = count_tokens or (lambda text: int(len(text.split()) * 1.3) + 1)

    @property
    def ranker(self) -> LinearModel:
        if self._ranker is None:
            self._ranker = packaged(RANKER) or FALLBACK_RANKER
        return self._ranker

    def select(self, question: str, hits: Sequence[Hit], index: "SearchIndex", analyzer: "Analyzer") -> Evidence:
        """The evidence for ``question`` from ``hits`` (best first) of ``index``."""
        t0 = time.perf_counter()
        rows, cands = self.score(question, hits, index, analyzer)
        if not cands:
            return Evidence((), {}, 0, time.perf_counter() - t0)
        utility = self.ranker.scores(np.asarray([[r[f] for f in SENTENCE_FEATURES] for r in rows]))
        order = [int(i) for i in np.argsort(-utility, kind="stable")]
        picked: list[int] = []
        seen_text: set[str] = set()
        used = 0
        for i in order:
            if len(picked) >= self.max_passages:
                break
            hit, a, b, text, heading = cands[i]
            if text.lower() in seen_text:
                continue
            cost = self.count_tokens(header(len(picked) + 1, hit.chunk, heading) + "\n" + text) + 2
            if picked and used + cost > self.budget:
                continue
            picked.append(i)
            seen_text.add(text.lower())
            used += cost
        passages = tuple(Passage(n, cands[i][0].chunk, cands[i][1], cands[i][2], float(utility[i]),
                                 cands[i][0].score, cands[i][4], rows[i]["cos"]) for n, i in enumerate(picked, 1))
        features = question_features(rows, utility, picked, hits)
        return Evidence(passages, features, len(cands), time.perf_counter() - t0)

    def score(self, question: str, hits: Sequence[Hit], index: "SearchIndex", analyzer: "Analyzer"
              ) -> tuple[list[dict[str, float]], list[tuple[Hit, int, int, str, str]]]:
        """Every candidate sentence of ``hits`` (first occurrence of a document span) with its
        :data:`SENTENCE_FEATURES`; what :meth:`select` ranks and what training reads."""
        cands: list[tuple[Hit, int, int, str, str]] = []
        windows: list[str] = []
        seen: set[tuple[str, int, int]] = set()
        for hit in hits:
            sentences = candidate_sentences(hit.chunk)
            texts = [s[2] for s in sentences]
            for j, (a, b, text, heading) in enumerate(sentences):
                key = (hit.chunk.doc_id, hit.chunk.start + a, hit.chunk.start + b)
                if key in seen:  # overlapping chunks hold the same sentence
                    continue
                seen.add(key)
                cands.append((hit, a, b, text, heading))
                around = " ".join(texts[max(0, j - 1):j + 2])
                windows.append(f"{heading}\n{around}" if heading else around)
        if not cands:
            return [], []
        terms = list(dict.fromkeys(analyzer.tokenize(question)))
        pool = [analyzer.tokenize(h.chunk.full_text) for h in hits]
        idf = idf_weights(terms, index, pool)
        vecs = np.asarray(self.embedder.encode([question, *(c[3] for c in cands), *windows]), dtype=np.float32)
        n = len(cands)
        cos, cos_window = vecs[1:n + 1] @ vecs[0], vecs[n + 1:] @ vecs[0]
        rows = []
        for k, (hit, _a, _b, text, _heading) in enumerate(cands):
            tokens = set(analyzer.tokenize(text))
            cov = coverage(idf, tokens)
            rows.append({"cos": float(cos[k]), "cos_window": float(cos_window[k]), "coverage": cov,
                         "coverage_window": coverage(idf, set(analyzer.tokenize(windows[k]))),
                         "log_rank": math.log(max(hit.rank, 1)), "length": min(len(tokens), 40) / 40,
                         "cos_x_coverage": float(cos[k]) * cov})
        return rows, cands


def question_features(rows: Sequence[Mapping[str, float]], utility: np.ndarray, picked: Sequence[int],
                      hits: Sequence[Hit]) -> dict[str, float]:
    """Question-level signals for the answer decision: the best sentence score and how peaked
    the scores are, the best cosine and coverage (of a sentence, and of a sentence with its
    heading and neighbours: an FAQ's question is its heading), and the best retrieved chunk's
    cosine (pure)."""
    top = int(np.argmax(utility))
    z = utility - utility.max()
    share = float(1.0 / np.exp(z).sum())
    dense = [float(h.scores["dense"]) for h in hits if "dense" in h.scores]
    return {"best_score": float(utility[top]), "best_share": share,
            "max_cos": max(r["cos"] for r in rows), "max_cos_window": max(r["cos_window"] for r in rows),
            "max_coverage": max(r["coverage"] for r in rows),
            "max_coverage_window": max(r["coverage_window"] for r in rows),
            "top_cos": rows[top]["cos"], "top_coverage": rows[top]["coverage"],
            "top_dense": max(dense) if dense else max(r["cos"] for r in rows),
            "passages": float(len(picked))}


def header(number: int, chunk: Chunk, heading: str = "") -> str:
    """``[n] file p.3 (title) — heading``: where a passage comes from, in one short line."""
    page = f" p.{chunk.page}" if chunk.page is not None else ""
    words = chunk.title.split()
    title = " ".join(words[:_TITLE_WORDS]) + (" …" if len(words) > _TITLE_WORDS else "")
    about = f" ({title})" if title else ""
    section = f" — {heading}" if heading and heading != chunk.title else ""
    return f"[{number}] {chunk.source.rsplit('/', 1)[-1]}{page}{about}{section}"


def format_passage(p: Passage) -> str:
    """A passage as the prompt shows it: its header line, then its text."""
    return f"{header(p.number, p.chunk, p.heading)}\n{p.text}"
