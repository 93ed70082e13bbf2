"""Gates before an answer: is any hit relevant (:class:`RelevanceGate`), and do the relevant
sources answer the question (:class:`AnswerCheck`)?

If no hit is relevant, the answer is the fixed "not in your documents" reply and the LLM is not
called; if the check says the sources do not answer it, the same reply lists the sources.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from rag.generation.prompting import with_question
from rag.index.sparse import Analyzer
from rag.text import split_sentences
from rag.types import Chunk, Hit

if TYPE_CHECKING:
    from rag.embedding import Embedder

DEFAULT_MIN_DENSE = 0.3


@dataclass(frozen=True)
class RelevanceGate:
    """Is a hit relevant enough to answer from?

    The dense cosine (``hit.scores["dense"]``, present in dense and hybrid mode) is the
    signal used by default: embeddings are unit vectors, so the cosine means the same on every
    corpus.  With all-MiniLM-L6-v2 a passage that answers the question typically scores 0.4-0.8
    and an unrelated one below 0.2, so ``min_dense=0.3`` keeps borderline matches.  RRF and BM25
    scores are not calibrated across corpora, so without a dense score (BM25 mode) the gate only
    requires ``score > min_score`` (default 0: at least one query term matched).

    A chunk that covers several questions (an FAQ, a long page) can hold the exact answer yet
    score a low cosine against one of them.  So when the query and the index's analyzer are
    given, a hit below ``min_dense`` still passes if it contains at least ``min_term_coverage``
    of the query's analysed content terms; and when an embedder is given, a hit that fails both
    tests passes if one of its sentences reaches ``min_dense`` (:func:`best_sentence_cosines`;
    a document scored by its best passage, MaxP, Dai & Callan 2019), which catches a question
    asked in other words than the page.  Sentences are embedded only for the hits that fail the
    cheap tests (docs/design.md#answers).

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
        covered = query_terms & set(analyzer.tokenize(f"{hit.chunk.title}\n{hit.chunk.full_text}"))
        return len(covered) / len(query_terms) >= self.min_term_coverage

    def filter(self, hits: Sequence[Hit], query: str = "", analyzer: Analyzer | None = None,
               embedder: "Embedder | None" = None) -> list[Hit]:
        """Hits that pass; give ``query`` and the index's ``analyzer`` to enable term coverage,
        and its ``embedder`` to let a hit pass on its best sentence."""
        terms = frozenset(analyzer.tokenize(query)) if (analyzer is not None and query) else frozenset()
        keep = [self.passes(h, terms, analyzer) for h in hits]
        doubtful = [i for i, (h, k) in enumerate(zip(hits, keep)) if not k and "dense" in h.scores]
        if doubtful and embedder is not None and query:
            best = best_sentence_cosines(query, [hits[i].chunk for i in doubtful], embedder)
            for i, cosine in zip(doubtful, best):
                keep[i] = cosine >= self.min_dense
        return [h for h, k in zip(hits, keep) if k]


def best_sentence_cosines(query: str, chunks: Sequence[Chunk], embedder: "Embedder",
                          min_words: int = 3) -> list[float]:
    """For each chunk, the highest cosine between ``query`` and one of its sentences (or its
    title) of at least ``min_words`` words; -1.0 for a chunk without one.

    Embeddings are unit vectors, so the dot product is the cosine.
    """
    units: list[str] = []
    owner: list[int] = []
    for i, chunk in enumerate(chunks):
        for unit in [chunk.title or "", *split_sentences(chunk.full_text)]:
            if len(unit.split()) >= min_words:
                units.append(unit)
                owner.append(i)
    best = [-1.0] * len(chunks)
    if not units:
        return best
    vecs = np.asarray(embedder.encode([query, *units]), dtype=np.float32)
    for i, cosine in zip(owner, vecs[1:] @ vecs[0]):
        best[i] = max(best[i], float(cosine))
    return best


# -- answerability check -----------------------------------------------------------------------

#: Appended to the answer prompt's question for the check (the sources stay a shared prefix); a letter, not
#: yes/no, so that the check's "no" is not read from a yes/no question's answer (docs/design.md#answers).
CHECK_SUFFIX = "\n\nDo the sources above answer the question? Reply with one letter: Y if they do, N if they do not."
YES, NO = ("Y",), ("N",)
DEFAULT_MIN_LOG_ODDS = 0.0
#: The content-free question the check is calibrated against (:class:`AnswerCheck`): one that a
#: user's documents are unlikely to answer (a travel guide to France would: pass another one).
BASELINE_QUESTION = "What is the capital of France?"


def _logsumexp(values: Sequence[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def check_messages(messages: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    """The answer prompt's messages with :data:`CHECK_SUFFIX` after the question."""
    msgs = [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]
    if not msgs or msgs[-1]["role"] != "user":
        raise ValueError("the answer prompt must end with the user's question")
    msgs[-1]["content"] += CHECK_SUFFIX
    return msgs


def yes_log_odds(logprobs: Mapping[str, float], yes: Sequence[str] = YES, no: Sequence[str] = NO) -> float:
    """log P(yes) - log P(no), each summed over its spellings (pure).

    Example:
        >>> round(yes_log_odds({"Y": -0.5, "N": -2.0}), 3)
        1.5
        >>> round(yes_log_odds({"yes": -0.5, "Yes": -1.5, "no": -2.0, "No": -3.0}, ("yes", "Yes"), ("no", "No")), 3)
        1.5
    """
    return _logsumexp([logprobs[c] for c in yes]) - _logsumexp([logprobs[c] for c in no])


@dataclass(frozen=True)
class AnswerCheck:
    """Ask the generator whether the retrieved sources answer the question, before it answers.

    The relevance gate asks "is anything on topic?"; in a collection of related documents
    (papers of one field, manuals of one product line) something always is, and a small model
    then answers from a passage about a neighbouring fact.  The check appends
    :data:`CHECK_SUFFIX` to the answer prompt and reads the model's first-token log-odds of
    "Y" against "N" (no sampling); below ``min_log_odds`` the answer is "I could not find this
    in your documents" with the passages listed.

    **Calibrated against a content-free question** (contextual calibration: Zhao et al., "Calibrate
    Before Use: Improving Few-Shot Performance of Language Models", ICML 2021).  A small model says
    "Y" more readily over some sources than others whatever is asked, so the same check is asked
    once more with ``baseline_question`` in place of the question, and the score is the difference:
    how much more the model believes these sources answer *this* question than a question they
    cannot answer.  One threshold then serves collections whose raw scores sit at different levels
    (docs/design.md#answers).  ``baseline_question=None`` reads the raw log-odds.

    The sources are the prompt's prefix, so llama.cpp reuses their KV cache: each check costs a
    forward pass over the question's and the suffix's tokens, not a second prompt.  The threshold is
    the model's (calibrated per model: :attr:`rag.generation.models.ModelSpec.answer_check`).

    Models that cannot score (``first_token_logprobs`` returns None) skip the check.

    Example:
        >>> AnswerCheck(min_log_odds=float("nan"))
        Traceback (most recent call last):
        ...
        ValueError: min_log_odds must be a finite number, got nan
    """

    min_log_odds: float = DEFAULT_MIN_LOG_ODDS
    baseline_question: str | None = BASELINE_QUESTION

    def __post_init__(self) -> None:
        if not isinstance(self.min_log_odds, (int, float)) or not math.isfinite(self.min_log_odds):
            raise ValueError(f"min_log_odds must be a finite number, got {self.min_log_odds!r}")
        if self.baseline_question is not None and not self.baseline_question.strip():
            raise ValueError("baseline_question must be a question or None (raw log-odds), got an empty string")

    def log_odds(self, llm: Any, messages: Sequence[Mapping[str, str]]) -> float | None:
        """The model's (calibrated) log-odds that the sources answer the question; None if it cannot
        score (its :meth:`~rag.generation.llm.ChatModel.first_token_logprobs` returns None)."""
        scorer = llm.first_token_logprobs
        baseline = 0.0
        if self.baseline_question is not None:
            # first, so that the answer prompt, which shares the question with the check, follows the check
            base = scorer(check_messages(with_question(messages, self.baseline_question)), (*YES, *NO))
            if base is None:
                return None
            baseline = yes_log_odds(base)
        logprobs = scorer(check_messages(messages), (*YES, *NO))
        return None if logprobs is None else yes_log_odds(logprobs) - baseline

    def passes(self, log_odds: float | None) -> bool:
        return log_odds is None or log_odds >= self.min_log_odds
