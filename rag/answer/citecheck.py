"""Citation markers and the sentence-level support check.

:class:`SupportChecker` splits an answer into sentences, embeds them with the index's
embedder and maps each to the provided chunk that supports it best (cosine similarity to
the chunk or to one of its sentences).  Sentences below the threshold are flagged as
unsupported: with a small LLM these are usually invented.

Example:
    >>> fix_citations("Prime it [1][7].", n_sources=2)
    ('Prime it [1].', (1,), (7,))
"""

from __future__ import annotations

import logging
import re
from typing import Sequence

import numpy as np

from rag.embedding import Embedder
from rag.text import CITE_RE, content_stems, split_sentences
from rag.types import Chunk, SentenceSupport

logger = logging.getLogger(__name__)

DEFAULT_SUPPORT_THRESHOLD = 0.7
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_ALNUM = re.compile(r"[A-Za-z0-9]")


def strip_citations(text: str) -> str:
    return re.sub(r"\s+([.,;:!?])", r"\1", re.sub(r"\s{2,}", " ", CITE_RE.sub("", text))).strip()


def fix_citations(text: str, n_sources: int) -> tuple[str, tuple[int, ...], tuple[int, ...]]:
    """Normalise markers to ``[n]``, dropping numbers outside ``1..n_sources``.

    Returns ``(text, valid numbers used, invalid numbers removed)``, each in order of appearance.
    """
    valid: dict[int, None] = {}
    invalid: dict[int, None] = {}

    def repl(m: re.Match[str]) -> str:
        keep = []
        for n in (int(x) for x in re.findall(r"\d+", m.group(1))):
            if 1 <= n <= n_sources:
                valid.setdefault(n, None)
                if n not in keep:
                    keep.append(n)
            else:
                invalid.setdefault(n, None)
        return "".join(f"[{n}]" for n in keep)

    fixed = CITE_RE.sub(repl, text)
    fixed = re.sub(r"[ \t]+([.,;:!?])", r"\1", re.sub(r"[ \t]{2,}", " ", fixed)).strip()
    return fixed, tuple(valid), tuple(invalid)


class SupportChecker:
    """Map each answer sentence to its best-supporting chunk by embedding similarity.

    Args:
        embedder: the index's :class:`~rag.embedding.Embedder` (``retriever.embedder``).
        threshold: minimum cosine similarity for a sentence to count as supported: with MiniLM,
            close paraphrases of a source sentence score above it and a small model's on-topic
            inventions below (docs/design.md#answers).
        check_numbers: also flag a sentence that states a number found in none of the
            provided chunks (cheap, and catches the commonest invention embeddings miss).
        min_coverage: a sentence whose content words (at least two, stemmed) are found in one chunk at
            this share counts as supported by that chunk, even below the cosine threshold and
            even when another chunk has the higher cosine: a terse, correct answer scores low
            against a long source sentence, while an invention brings words and numbers the
            sources lack.
        min_lexical_similarity: ...but only at this cosine or above, because a few common words can
            all sit in an unrelated chunk.

    Example (runs the real embedder)::

        checker = SupportChecker(Embedder().load())
        for s in checker.check("Open the bleed valve. Paris is in France.", chunks):
            print(s.supported, s.citation, round(s.similarity, 2), s.sentence)
    """

    def __init__(self, embedder: Embedder, threshold: float = DEFAULT_SUPPORT_THRESHOLD,
                 check_numbers: bool = True, min_coverage: float = 0.8, min_lexical_similarity: float = 0.4) -> None:
        if not -1.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be a cosine similarity in [-1, 1], got {threshold!r}")
        if not 0.0 < min_coverage <= 1.0:
            raise ValueError(f"min_coverage must be in (0, 1], got {min_coverage!r}")
        if not -1.0 <= min_lexical_similarity <= 1.0:
            raise ValueError(f"min_lexical_similarity must be a cosine in [-1, 1], got {min_lexical_similarity!r}")
        self.embedder = embedder
        self.threshold = threshold
        self.check_numbers = check_numbers
        self.min_coverage = min_coverage
        self.min_lexical_similarity = min_lexical_similarity

    def check(self, text: str, chunks: Sequence[Chunk]) -> tuple[SentenceSupport, ...]:
        """One :class:`SentenceSupport` per sentence of ``text``; ``chunks[i]`` (a chunk or an evidence
        passage, read as its ``full_text``) is citation ``i + 1``."""
        sentences = split_sentences(text)
        if not sentences:
            return ()
        claims = [strip_citations(s) for s in sentences]
        if not chunks:
            return tuple(SentenceSupport(s, None, 0.0, False) for s in sentences)
        units: list[str] = []
        owner: list[int] = []
        for i, chunk in enumerate(chunks):
            for unit in [chunk.full_text, *split_sentences(chunk.full_text)]:
                units.append(unit)
                owner.append(i)
        vecs = self.embedder.encode([*claims, *units])
        sims = vecs[: len(claims)] @ vecs[len(claims):].T          # (sentences, units)
        per_chunk = np.full((len(claims), len(chunks)), -1.0, dtype=np.float32)
        for j, i in enumerate(owner):
            per_chunk[:, i] = np.maximum(per_chunk[:, i], sims[:, j])
        known_numbers = set(_NUMBER.findall(" ".join(c.full_text for c in chunks)))
        chunk_terms = [set(content_stems(c.full_text)) for c in chunks]
        out = []
        for k, sentence in enumerate(sentences):
            if not _ALNUM.search(claims[k]):
                out.append(SentenceSupport(sentence, None, 0.0, False))
                continue
            best = int(np.argmax(per_chunk[k]))
            sim = float(per_chunk[k, best])
            supported = sim >= self.threshold
            terms = set(content_stems(claims[k]))
            if len(terms) >= 2:
                # the chunk holding the sentence's words beats a chunk merely on its topic (docs/design.md#answers)
                coverage = [len(terms & ct) / len(terms) for ct in chunk_terms]
                lexical = max(range(len(chunks)), key=lambda i: (coverage[i], per_chunk[k, i]))
                if coverage[lexical] >= self.min_coverage and per_chunk[k, lexical] >= self.min_lexical_similarity:
                    best, sim, supported = lexical, float(per_chunk[k, lexical]), True
            if supported and self.check_numbers and not set(_NUMBER.findall(claims[k])) <= known_numbers:
                supported = False
            out.append(SentenceSupport(sentence, best + 1, sim, supported))
        return tuple(out)
