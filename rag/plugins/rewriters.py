"""Built-in query rewriters; :class:`~rag.retrieval.multi_query.MultiQuerySearcher` runs their queries.

Rewriters (select by name: ``--rewriter NAME``; see :mod:`rag.plugins.base`):

* ``none``: the question as is.
* ``condense``: follow-ups rewritten into standalone questions with the LLM
  (:class:`~rag.generation.prompting.QueryCondenser`), key-term fallback without one (today's default).
* ``keyword``: no LLM; the question's content words (stop words and filler stripped).
* ``multi-query``: the LLM writes alternative phrasings; each is searched and the hit lists are
  merged with RRF, the original included (RAG-Fusion: Rackauckas, "RAG-Fusion: a New Take on
  Retrieval-Augmented Generation", 2024; LangChain's MultiQueryRetriever).
* ``hyde``: the LLM writes a hypothetical answer passage, which is embedded in place of the
  question on the dense side (Gao, Ma, Lin & Callan, "Precise Zero-Shot Dense Retrieval without
  Relevance Labels", 2022); BM25 keeps the question.
* ``decompose``: the LLM splits the question into sub-questions; each is searched and the hits
  merged with RRF (least-to-most decomposition: Zhou et al. 2022; Self-Ask: Press et al. 2022).

A tiny model (the packaged SmolLM2-135M) often writes garbage, so every LLM rewriter validates
its output (:func:`~rag.generation.prompting.is_plausible_rewrite`) and falls back to the original question,
recording why in ``Rewrite.fallback``.

Example:
    >>> KeywordRewriter().rewrite("What are the effects of the boundary layer on heat transfer?").queries[0].text
    'effects boundary layer heat transfer'
    >>> from rag.generation.llm import ScriptedLLM
    >>> mq = MultiQueryRewriter(ScriptedLLM(["1. boundary layer heat flux\\n2. <|im_end|>\\n- laminar heating rates"]))
    >>> [q.text for q in mq.rewrite("How does the boundary layer affect heating?").queries]
    ['How does the boundary layer affect heating?', 'boundary layer heat flux', 'laminar heating rates']
"""

from __future__ import annotations

import logging
import re
from typing import Sequence

from rag.generation.llm import ChatModel, ContextOverflowError, Message
from rag.plugins.base import PluginContext, Rewrite, SearchQuery
from rag.text import CHAT_TEMPLATE_RE, content_terms
from rag.validate import positive_int
from rag.generation.prompting import (Condensed, QueryCondenser, follow_up_fallback, is_plausible_rewrite,
                                     looks_like_follow_up)

logger = logging.getLogger(__name__)

_BULLET = re.compile(r"^\s*(?:\d+\s*[.):-]|[-*•]|(?:sub-?)?(?:question|query|q)\s*\d*\s*[:.)-])\s*", re.I)
_ECHO = re.compile(r"\b(search|different|these)\b.*\bquer(y|ies)\b|\bsub-?questions?\b|\bquer(y|ies) for\b", re.I)


def _standalone(condenser: QueryCondenser | None, query: str, history: Sequence[Message]) -> Condensed:
    """Today's follow-up handling: LLM condensation, else the key-term fallback for follow-ups."""
    if not history:
        return Condensed(query, "none")
    if condenser is not None:
        return condenser.condense(query, history)
    if looks_like_follow_up(query):
        return follow_up_fallback(query, history)
    return Condensed(query, "none")


def _lines(raw: str, question: str, limit: int) -> list[str]:
    """Usable one-line queries from model output: bullets/numbers stripped, garbage and repeats dropped."""
    out: list[str] = []
    seen = {frozenset(content_terms(question))}
    for line in raw.splitlines():
        text = _BULLET.sub("", line).strip().strip('"').strip()
        terms = frozenset(content_terms(text))
        if not text or CHAT_TEMPLATE_RE.search(text) or _ECHO.search(text) or terms in seen:
            continue  # garbage, an echo of the instructions, or a repeat (same content words)
        if not is_plausible_rewrite(text, question, max_words=40):
            continue
        seen.add(terms)
        out.append(text)
        if len(out) >= limit:
            break
    return out


def _generate(llm: ChatModel, system: str, user: str, max_tokens: int) -> str:
    try:
        return llm.chat([{"role": "system", "content": system}, {"role": "user", "content": user}],
                        max_tokens=max_tokens, temperature=0.0)
    except ContextOverflowError:
        logger.warning("rewrite prompt too long for the model's context; keeping the question")
        return ""


def _need_llm(name: str, llm: ChatModel | None) -> ChatModel:
    if llm is None:
        raise ValueError(f"rewriter {name!r} needs a language model; choose a generative answer mode, "
                         f"or a rewriter without an LLM (none, condense, keyword)")
    return llm


class NoRewriter:
    """The question unchanged (``--rewriter none``).

    Example:
        >>> NoRewriter().rewrite("pump?").queries[0].text
        'pump?'
    """

    name = "none"

    @classmethod
    def from_context(cls, context: PluginContext) -> "NoRewriter":
        return cls()

    def rewrite(self, query: str, history: Sequence[Message] = ()) -> Rewrite:
        return Rewrite.single(query, "none")


class CondenseRewriter:
    """Follow-up condensation: the default. With an LLM, :class:`~rag.generation.prompting.QueryCondenser`;
    without one, follow-ups get key terms of the last user turn; no history, no change.

    Example:
        >>> h = [{"role": "user", "content": "How do I prime the centrifugal pump?"},
        ...      {"role": "assistant", "content": "Open the valve."}]
        >>> r = CondenseRewriter(None).rewrite("What if it runs dry?", h)
        >>> r.standalone, r.queries[0].text
        ('What if it runs dry? (after: How do I prime the centrifugal pump?)', 'What if it runs dry? prime centrifugal pump')
    """

    name = "condense"

    def __init__(self, llm: ChatModel | None = None, enabled: bool = True) -> None:
        self.enabled = bool(enabled)
        self.condenser = QueryCondenser(llm) if (llm is not None and self.enabled) else None

    @classmethod
    def from_context(cls, context: PluginContext) -> "CondenseRewriter":
        return cls(context.llm)

    def rewrite(self, query: str, history: Sequence[Message] = ()) -> Rewrite:
        if not self.enabled:
            return Rewrite.single(query, "none")
        c = _standalone(self.condenser, query, history)
        return Rewrite.single(c.search, c.method, standalone=c.query, raw=c.raw,
                              fallback=f"rejected rewrite: {c.problem}" if (c.method == "fallback" and c.problem) else "")


class KeywordRewriter:
    """No LLM: keep the question's content words (stop words, question words and filler removed).

    Follow-ups first get key terms of the last user turn (as ``condense`` does without an LLM).
    A question with fewer than ``min_terms`` content words is kept as is.

    Example:
        >>> KeywordRewriter().rewrite("Hello?").queries[0].text
        'Hello?'
    """

    name = "keyword"

    def __init__(self, min_terms: int = 2) -> None:
        positive_int("min_terms", min_terms)
        self.min_terms = min_terms

    @classmethod
    def from_context(cls, context: PluginContext) -> "KeywordRewriter":
        return cls(int(context.options.get("min_terms", 2)))

    def rewrite(self, query: str, history: Sequence[Message] = ()) -> Rewrite:
        base = _standalone(None, query, history)
        terms = content_terms(base.search)
        if len(terms) < self.min_terms:
            return Rewrite.single(base.search, "keyword", standalone=base.query,
                                  fallback=f"fewer than {self.min_terms} content words")
        return Rewrite(queries=(SearchQuery(" ".join(terms), kind="keywords"),), method="keyword",
                       standalone=base.query)


MULTI_QUERY_PROMPT = ("You write search engine queries. Reply with the queries only, one per line.")
HYDE_PROMPT = ("You are an expert. Write a short factual passage, two or three sentences, that answers the "
               "question. Reply with the passage only.")
DECOMPOSE_PROMPT = ("Split the question into simpler sub-questions that together answer it. Reply with the "
                    "sub-questions only, one per line. If the question is already simple, repeat it.")


class MultiQueryRewriter:
    """The LLM writes ``n`` alternative queries; the original plus the usable ones are searched and
    their hit lists merged with RRF (RAG-Fusion, Rackauckas 2024).

    Args:
        llm: the chat model.
        n: alternative queries asked for.
        max_tokens: generation budget.
        original_weight: RRF weight of the original question (the alternatives get 1.0).
    """

    name = "multi-query"

    def __init__(self, llm: ChatModel | None, n: int = 3, max_tokens: int = 64, original_weight: float = 1.0) -> None:
        if not isinstance(n, int) or not 1 <= n <= 8:
            raise ValueError(f"n must be an integer in [1, 8], got {n!r}")
        positive_int("max_tokens", max_tokens)
        if not original_weight > 0:
            raise ValueError(f"original_weight must be > 0, got {original_weight!r}")
        self.llm = _need_llm(self.name, llm)
        self.n = n
        self.max_tokens = max_tokens
        self.original_weight = float(original_weight)
        self.condenser = QueryCondenser(self.llm)

    @classmethod
    def from_context(cls, context: PluginContext) -> "MultiQueryRewriter":
        return cls(context.llm, n=int(context.options.get("n", 3)))

    def rewrite(self, query: str, history: Sequence[Message] = ()) -> Rewrite:
        base = _standalone(self.condenser, query, history)
        raw = _generate(self.llm, MULTI_QUERY_PROMPT,
                        f"Write {self.n} different search queries for this question.\n\nQuestion: {base.query}\n\n"
                        f"Queries:", self.max_tokens)
        extra = _lines(raw, base.query, self.n)
        queries = (SearchQuery(base.search, weight=self.original_weight),
                   *(SearchQuery(t, kind="alternative") for t in extra))
        return Rewrite(queries=queries, method="multi-query", standalone=base.query, raw=raw,
                       fallback="" if extra else "no usable alternative queries")


class HydeRewriter:
    """HyDE (Gao et al. 2022): embed a hypothetical answer passage instead of the question.

    The dense query is ``question + passage`` (the paper averages the question's and the
    passages' embeddings; concatenation is the single-vector equivalent used by Query2doc,
    Wang et al. 2023); BM25 keeps the question.  An unusable passage (empty, garbage, off
    topic) falls back to the plain question.
    """

    name = "hyde"

    def __init__(self, llm: ChatModel | None, max_tokens: int = 96, min_words: int = 6) -> None:
        positive_int("max_tokens", max_tokens)
        positive_int("min_words", min_words)
        self.llm = _need_llm(self.name, llm)
        self.max_tokens = max_tokens
        self.min_words = min_words
        self.condenser = QueryCondenser(self.llm)

    @classmethod
    def from_context(cls, context: PluginContext) -> "HydeRewriter":
        return cls(context.llm)

    def rewrite(self, query: str, history: Sequence[Message] = ()) -> Rewrite:
        base = _standalone(self.condenser, query, history)
        raw = _generate(self.llm, HYDE_PROMPT, f"Question: {base.query}\n\nPassage:", self.max_tokens)
        passage = " ".join(CHAT_TEMPLATE_RE.sub(" ", raw).split())
        problem = self._problem(passage, base.query)
        if problem:
            return Rewrite.single(base.search, "hyde", standalone=base.query, raw=raw, fallback=problem)
        return Rewrite(queries=(SearchQuery(base.search, dense=f"{base.query}\n{passage}", kind="hyde"),),
                       method="hyde", standalone=base.query, raw=raw)

    def _problem(self, passage: str, question: str) -> str:
        words = passage.split()
        if len(words) < self.min_words:
            return f"passage shorter than {self.min_words} words"
        if sum(ch.isalpha() for ch in passage) < 0.6 * len(passage.replace(" ", "")):
            return "passage is not text"
        q_terms = set(content_terms(question))
        if q_terms and not q_terms & set(content_terms(passage)):
            return "passage shares no content word with the question"
        return ""


class DecomposeRewriter:
    """The LLM splits the question into up to ``max_sub`` sub-questions; each is searched and
    the hits merged with RRF, the original question included (Zhou et al. 2022, least-to-most;
    Press et al. 2022, Self-Ask)."""

    name = "decompose"

    def __init__(self, llm: ChatModel | None, max_sub: int = 3, max_tokens: int = 72) -> None:
        if not isinstance(max_sub, int) or not 1 <= max_sub <= 6:
            raise ValueError(f"max_sub must be an integer in [1, 6], got {max_sub!r}")
        positive_int("max_tokens", max_tokens)
        self.llm = _need_llm(self.name, llm)
        self.max_sub = max_sub
        self.max_tokens = max_tokens
        self.condenser = QueryCondenser(self.llm)

    @classmethod
    def from_context(cls, context: PluginContext) -> "DecomposeRewriter":
        return cls(context.llm, max_sub=int(context.options.get("max_sub", 3)))

    def rewrite(self, query: str, history: Sequence[Message] = ()) -> Rewrite:
        base = _standalone(self.condenser, query, history)
        raw = _generate(self.llm, DECOMPOSE_PROMPT, f"Question: {base.query}\n\nSub-questions:", self.max_tokens)
        subs = _lines(raw, base.query, self.max_sub)
        queries = (SearchQuery(base.search), *(SearchQuery(s, kind="sub-question") for s in subs))
        return Rewrite(queries=queries, method="decompose", standalone=base.query, raw=raw,
                       fallback="" if subs else "no usable sub-questions")
