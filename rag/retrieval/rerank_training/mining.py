"""Mine self-supervised ``(pseudo-query, positive, hard negatives)`` groups from an index's chunks.

Pseudo-queries (``--strategy``):

* ``ict`` -- the Inverse Cloze Task (Lee, Chang & Toutanova, "Latent Retrieval for
  Weakly Supervised Open Domain Question Answering", ACL 2019): a sentence removed
  from its chunk is the query, the rest of the chunk is the positive.
* ``title`` -- the document title is the query and the chunk with its title line
  removed is the positive (titles as queries: Chang et al., "Pre-training Tasks for
  Embedding-based Large-scale Retrieval", ICLR 2020, whose "Body First Selection" and
  "Wiki Link Prediction" are the same idea); documents without a real title (fewer
  than three words) fall back to ICT.
* ``mixed`` -- both, alternating.

Hard negatives are BM25 hits for the pseudo-query and dense neighbours of the
positive chunk, always from *other documents* (a chunk is never its own negative, nor
is an overlapping chunk of the same file), skipping the very top hits, which are the
most likely to be unlabelled positives (the "denoised hard negatives" of RocketQA,
Qu et al., NAACL 2021).

Words and sentences are the shared ones of :mod:`rag.text` (:func:`~rag.text.words`,
:func:`~rag.text.split_sentences`).

Nothing here reads evaluation queries or relevance judgements: only ``index.chunks``,
``index.embeddings``, ``index.bm25``, ``index.dense`` and ``index.analyzer``.

Example:
    >>> PairMiner(strategy="cloze")
    Traceback (most recent call last):
    ...
    ValueError: strategy must be one of ('ict', 'title', 'mixed'), got 'cloze'
    >>> sentence_spans("Open the valve. Fill the casing!")
    [(0, 15), (16, 32)]
"""

from __future__ import annotations

import logging
import random
import re
from dataclasses import dataclass
from typing import Any, Sequence

from rag.index.store import Index
from rag.text import split_sentences, words
from rag.types import Chunk
from rag.validate import non_negative_int, positive_int

logger = logging.getLogger(__name__)

STRATEGIES: tuple[str, ...] = ("ict", "title", "mixed")
DEFAULT_STRATEGY = "mixed"
_HEADING_MARKS = "#*=_ "  # a Markdown / RST heading marker before a title


class RerankerTrainingError(ValueError):
    """The index cannot be used for training (empty, too few documents, no usable text)."""


@dataclass(frozen=True)
class TrainingPair:
    """A pseudo-query paired with its positive passage, plus hard negatives from other documents.

    ``chunk_id`` is the chunk the positive was cut from; ``negative_ids`` the chunks the
    negatives are; ``kind`` is ``ict`` or ``title``.

    Example:
        >>> p = TrainingPair("wing lift", "the wing ...", ("a pump ...",), "c1", ("c7",), "title")
        >>> p.chunk_id in p.negative_ids
        False
    """

    query: str
    positive: str
    negatives: tuple[str, ...]
    chunk_id: str
    negative_ids: tuple[str, ...]
    kind: str


def _squash(text: str) -> str:
    return " ".join(text.split())


def _n_words(text: str) -> int:
    return len(words(text))


def _strip_title(text: str, title: str) -> str:
    """``text`` without a leading copy of ``title`` (whitespace-insensitive), squashed."""
    flat, t = _squash(text), _squash(title)
    lead = flat.lstrip(_HEADING_MARKS)
    if t and lead.lower().startswith(t.lower()):
        return lead[len(t):].lstrip(" .:-\u2013\u2014")
    return flat


def sentence_spans(text: str) -> list[tuple[int, int]]:
    r"""Character spans ``(start, end)`` of the sentences of ``text``, as :func:`rag.text.split_sentences` splits it.

    ``split_sentences`` only trims and re-joins whitespace, so each sentence is found in
    ``text`` in order, from a cursor: verbatim, or with its whitespace runs matched
    loosely (a merged list bullet ``1.`` + newline + sentence).

    Example:
        >>> text = "1.\nOpen the bleed valve. Then fill it!"
        >>> [text[a:b] for a, b in sentence_spans(text)]
        ['1.\nOpen the bleed valve.', 'Then fill it!']
    """
    spans: list[tuple[int, int]] = []
    cursor = 0
    for sentence in split_sentences(text):
        start = text.find(sentence, cursor)
        if start >= 0:
            end = start + len(sentence)
        else:
            m = re.compile(r"\s+".join(map(re.escape, sentence.split()))).search(text, cursor)
            if m is None:  # cannot happen for split_sentences output; skip rather than guess
                logger.debug("sentence %r not found in chunk text", sentence)
                continue
            start, end = m.span()
        spans.append((start, end))
        cursor = end
    return spans


class PairMiner:
    """Mine self-supervised training groups from an index's chunks.

    Args:
        strategy: ``ict``, ``title`` or ``mixed`` (see the module docstring).
        max_pairs: at most this many groups.
        negatives: hard negatives per group (half BM25, half dense, topped up at random).
        skip_top: other-document hits skipped at the top of each list (likely positives).
        depth: how deep in the BM25 / dense lists negatives are drawn from.
        min_words, max_words: length bounds of an ICT query sentence.
        keep_sentence: probability that an ICT positive keeps its query sentence (Lee et al.
            keep it 10% of the time so the model still learns exact matching).
        seed: sampling seed (mining is deterministic for a given index and seed).

    Example:
        >>> PairMiner(negatives=0)
        Traceback (most recent call last):
        ...
        ValueError: negatives must be a positive integer, got 0
    """

    def __init__(self, strategy: str = DEFAULT_STRATEGY, max_pairs: int = 2000, negatives: int = 3,
                 skip_top: int = 2, depth: int = 30, min_words: int = 5, max_words: int = 40,
                 keep_sentence: float = 0.1, seed: int = 0) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        for name, value in (("max_pairs", max_pairs), ("negatives", negatives), ("depth", depth),
                            ("min_words", min_words)):
            positive_int(name, value)
        non_negative_int("skip_top", skip_top)
        if depth <= skip_top:
            raise ValueError(f"depth must be > skip_top={skip_top}, got {depth}")
        if not isinstance(max_words, int) or max_words < min_words:
            raise ValueError(f"max_words must be an integer >= min_words={min_words}, got {max_words!r}")
        if not 0.0 <= keep_sentence <= 1.0:
            raise ValueError(f"keep_sentence must be in [0, 1], got {keep_sentence}")
        self.strategy = strategy
        self.max_pairs = max_pairs
        self.negatives = negatives
        self.skip_top = skip_top
        self.depth = depth
        self.min_words = min_words
        self.max_words = max_words
        self.keep_sentence = keep_sentence
        self.seed = seed

    @property
    def params(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "max_pairs": self.max_pairs, "negatives": self.negatives,
                "skip_top": self.skip_top, "depth": self.depth, "min_words": self.min_words,
                "max_words": self.max_words, "keep_sentence": self.keep_sentence, "seed": self.seed}

    def mine(self, index: Index) -> list[TrainingPair]:
        """Training groups from ``index`` (raises :class:`RerankerTrainingError` if it has too little text)."""
        n_docs = len({c.doc_id for c in index.chunks})
        if len(index) == 0:
            raise RerankerTrainingError(f"index {index.name!r} is empty; add documents first with "
                                        f"`rag ingest DIR --index {index.name}`")
        if n_docs < 2:
            raise RerankerTrainingError(f"index {index.name!r} has {n_docs} document; training a reranker needs "
                                        f"at least 2 (negatives come from other documents)")
        rng = random.Random(self.seed)
        order = list(range(len(index)))
        rng.shuffle(order)
        pairs: list[TrainingPair] = []
        turn = 0
        for pos in order:
            if len(pairs) >= self.max_pairs:
                break
            kinds = self._kinds(index.chunks[pos], turn)
            turn += 1
            for kind in kinds:
                query_positive = (self._title_query(index.chunks[pos]) if kind == "title"
                                  else self._ict_query(index.chunks[pos], rng))
                if query_positive is None:
                    continue
                query, positive = query_positive
                neg = self._negatives(index, pos, query, rng)
                if not neg:
                    continue
                strip = kind == "title"
                pairs.append(TrainingPair(
                    query=query, positive=positive,
                    negatives=tuple(_strip_title(index.chunks[i].text, index.chunks[i].title) if strip
                                    else _squash(index.chunks[i].text) for i in neg),
                    chunk_id=index.chunks[pos].id, negative_ids=tuple(index.chunks[i].id for i in neg), kind=kind))
                break
        if not pairs:
            raise RerankerTrainingError(f"index {index.name!r}: no training pairs could be mined (chunks too short "
                                        f"for strategy {self.strategy!r}; try --strategy mixed)")
        logger.info("mined %d training groups (%s) from %d chunks", len(pairs),
                    ", ".join(f"{k}={sum(p.kind == k for p in pairs)}" for k in ("ict", "title")), len(index))
        return pairs

    # -- pseudo-queries -------------------------------------------------------------

    def _kinds(self, chunk: Chunk, turn: int) -> tuple[str, ...]:
        has_title = self._usable_title(chunk)
        if self.strategy == "ict":
            return ("ict",)
        if self.strategy == "title":
            return ("title", "ict") if has_title else ("ict",)
        # mixed: alternate, falling back to the other kind when one cannot be made
        return ("title", "ict") if has_title and turn % 2 == 0 else ("ict", "title")

    @staticmethod
    def _usable_title(chunk: Chunk) -> bool:
        return _n_words(chunk.title) >= 3

    def _title_query(self, chunk: Chunk) -> tuple[str, str] | None:
        if not self._usable_title(chunk):
            return None
        positive = _strip_title(chunk.text, chunk.title)
        if _n_words(positive) < self.min_words:
            return None
        return _squash(chunk.title).rstrip(" ."), positive

    def _ict_query(self, chunk: Chunk, rng: random.Random) -> tuple[str, str] | None:
        text = chunk.text
        title = _squash(chunk.title).rstrip(" .").lower()
        sentences = sentence_spans(text)
        spans = [(a, b) for a, b in sentences
                 if self.min_words <= _n_words(text[a:b]) <= self.max_words
                 and _squash(text[a:b]).lstrip(_HEADING_MARKS).rstrip(" .").lower() != title]
        if len(sentences) < 2 or not spans:
            return None
        a, b = spans[rng.randrange(len(spans))]
        query = _squash(text[a:b])
        positive = _squash(text) if rng.random() < self.keep_sentence else _squash(text[:a] + " " + text[b:])
        if _n_words(positive) < self.min_words:
            return None
        return query, positive

    # -- hard negatives ---------------------------------------------------------------

    def _negatives(self, index: Index, pos: int, query: str, rng: random.Random) -> list[int]:
        own_doc = index.chunks[pos].doc_id

        def others(hits: Sequence[tuple[int, float]]) -> list[int]:
            seen: set[str] = set()
            out = []
            for i, _ in hits:
                doc = index.chunks[i].doc_id
                if doc == own_doc or doc in seen:
                    continue
                seen.add(doc)
                out.append(i)
            return out[self.skip_top:self.depth]

        n = self.depth + 8
        bm25 = others(index.bm25.search(index.analyzer.tokenize(query), n))
        dense = others(index.dense.search(index.embeddings[pos], n))
        rng.shuffle(bm25)
        rng.shuffle(dense)
        chosen = bm25[: (self.negatives + 1) // 2]
        for pool in (dense, bm25):  # the rest from dense neighbours, then more BM25 hits
            chosen.extend([i for i in pool if i not in chosen][: self.negatives - len(chosen)])
        # top up with random chunks of other documents
        tries = 0
        while len(chosen) < self.negatives and tries < 20 * self.negatives:
            tries += 1
            i = rng.randrange(len(index))
            if index.chunks[i].doc_id != own_doc and i not in chosen:
                chosen.append(i)
        return chosen[: self.negatives]
