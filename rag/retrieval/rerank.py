"""Reranking stage: a second model scores (query, chunk) pairs and reorders the fused hits.

* :class:`Reranker` -- a sentence-transformers CrossEncoder, by hub name (with a network) or local
  path, e.g. one trained by ``rag reranker train``.  Loaded lazily.
* :class:`LLMReranker` -- the chat model as a pointwise reranker: its log-odds that the passage
  answers the question, ``log P(Yes) - log P(No)`` of its first reply token (``--reranker llm``).

Example:
    >>> r = Reranker("path/to/cross-encoder")   # cheap: nothing loaded yet
    >>> r.model
    'path/to/cross-encoder'
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any, Sequence

from rag.answer.gate import yes_log_odds
from rag.types import Hit

logger = logging.getLogger(__name__)

#: first reply tokens read as "yes" / "no" by :class:`LLMReranker`
YES: tuple[str, ...] = ("Yes", "yes")
NO: tuple[str, ...] = ("No", "no")
#: the relevance question put to the chat model; the question comes before the passage, so the
#: KV cache of everything up to the passage is shared by all candidates of one query
RELEVANCE_SYSTEM = ("You judge search results. Reply with one word: Yes if the passage answers the question "
                    "or gives the facts needed to answer it, No otherwise.")


def reorder(hits: Sequence[Hit], scores: Sequence[float], k: int | None = None) -> list[Hit]:
    """``hits`` by descending ``scores`` (ties keep their order), the top ``k``, each scored as ``rerank``."""
    order = sorted(range(len(hits)), key=lambda i: (-scores[i], i))
    if k is not None:
        order = order[:k]
    return [dataclasses.replace(hits[i], score=float(scores[i]), rank=r,
                                scores={**hits[i].scores, "rerank": float(scores[i])})
            for r, i in enumerate(order, start=1)]


class Reranker:
    """Cross-encoder reranker.

    Args:
        model: CrossEncoder hub name or local directory.
        batch_size: pairs scored per forward pass.
        max_length: token limit for query + chunk.
        device: torch device, ``cpu`` by default.
    """

    def __init__(self, model: str, batch_size: int = 32, max_length: int = 256, device: str | None = "cpu") -> None:
        if not isinstance(model, str) or not model:
            raise ValueError(f"reranker model must be a non-empty name or path, got {model!r}")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {batch_size}")
        if max_length <= 0:
            raise ValueError(f"max_length must be > 0, got {max_length}")
        self.model = model
        self.batch_size = batch_size
        self.max_length = max_length
        self.device = device
        self._ce: Any | None = None
        self._lock = threading.Lock()

    def load(self) -> "Reranker":
        with self._lock:
            if self._ce is None:
                from sentence_transformers import CrossEncoder

                logger.info("loading cross-encoder %s", self.model)
                self._ce = CrossEncoder(self.model, max_length=self.max_length, device=self.device)
        return self

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        ce = self.load()._ce
        scores = ce.predict([(query, t) for t in texts], batch_size=self.batch_size, show_progress_bar=False)
        return [float(s) for s in scores]

    def rerank(self, query: str, hits: Sequence[Hit], k: int | None = None) -> list[Hit]:
        """Reorder ``hits`` by cross-encoder score; keep the top ``k`` (all if None)."""
        if not hits:
            return []
        return reorder(hits, self.score(query, [h.chunk.full_text for h in hits]), k)


def relevance_messages(query: str, passage: str) -> list[dict[str, str]]:
    """The chat messages :class:`LLMReranker` scores: the question first, then the passage.

    Example:
        >>> relevance_messages("How long is the warranty?", "Two years.")[1]["content"].splitlines()[0]
        'Question: How long is the warranty?'
    """
    return [{"role": "system", "content": RELEVANCE_SYSTEM},
            {"role": "user", "content": f"Question: {query}\n\nPassage: {passage}\n\n"
                                        "Does the passage answer the question? Yes or No."}]


class LLMReranker:
    """The chat model as a pointwise reranker (``--reranker llm``): each candidate is scored by the
    model's log-odds ``log P(Yes) - log P(No)`` that it answers the question (monoT5's relevance
    token read from a decoder LLM; Nogueira et al., "Document Ranking with a Pretrained
    Sequence-to-Sequence Model", Findings of EMNLP 2020).

    One prompt evaluation per candidate: on a GPU a few milliseconds each; on 2 CPU cores about a
    second per candidate with the 1.5B default, so it is an opt-in (docs/benchmarks.md).

    Args:
        llm: a :class:`~rag.generation.llm.ChatModel` whose ``first_token_logprobs`` can score
            (a GGUF with a chat template); checked on the first call.
        max_passage_chars: a candidate's text is cut to this many characters.

    Example:
        >>> LLMReranker(None)
        Traceback (most recent call last):
        ...
        ValueError: LLMReranker needs a chat model with first_token_logprobs, got None
    """

    model = "llm"

    def __init__(self, llm: Any, max_passage_chars: int = 1500) -> None:
        if llm is None or not callable(getattr(llm, "first_token_logprobs", None)):
            raise ValueError(f"LLMReranker needs a chat model with first_token_logprobs, got {llm!r}")
        if not isinstance(max_passage_chars, int) or max_passage_chars <= 0:
            raise ValueError(f"max_passage_chars must be a positive integer, got {max_passage_chars!r}")
        self.llm = llm
        self.max_passage_chars = max_passage_chars

    def load(self) -> "LLMReranker":
        """Nothing to load here: the chat model is loaded by whoever built it."""
        return self

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        scores = []
        for text in texts:
            lp = self.llm.first_token_logprobs(relevance_messages(query, text[:self.max_passage_chars]), (*YES, *NO))
            if lp is None:
                raise ValueError("the chat model cannot score a Yes/No reply (a GGUF without a chat template); "
                                 "use --reranker with a CrossEncoder path instead of llm")
            scores.append(yes_log_odds(lp, YES, NO))
        return scores

    def rerank(self, query: str, hits: Sequence[Hit], k: int | None = None) -> list[Hit]:
        """Reorder ``hits`` by the model's relevance log-odds; keep the top ``k`` (all if None)."""
        if not hits:
            return []
        return reorder(hits, self.score(query, [h.chunk.full_text for h in hits]), k)
