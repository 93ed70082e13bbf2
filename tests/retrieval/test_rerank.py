"""The chat model as a pointwise reranker (rag.retrieval.rerank.LLMReranker, ``--reranker llm``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import pytest

from rag.retrieval.rerank import LLMReranker, relevance_messages, reorder
from rag.types import Chunk, Hit

HOSE = "Hoses longer than 15 metres are not allowed on the plots."
FEE = "The plot fee is 45 euros per season, paid in March."
DATES = "Plots are given out on the first Saturday of April."


class KeywordModel:
    """Answers Yes with probability 0.9 when the passage holds ``word``, else 0.1 (records what it saw)."""

    def __init__(self, word: str, can_score: bool = True) -> None:
        self.word, self.can_score, self.seen = word, can_score, []

    def first_token_logprobs(self, messages: Sequence[dict[str, str]], choices: Sequence[str]) -> dict[str, float] | None:
        self.seen.append(messages)
        if not self.can_score:
            return None
        p = 0.9 if self.word in messages[-1]["content"] else 0.1
        # like LlamaCppLLM: a log-probability for every choice asked for (each spelling alike here)
        return {c: math.log(p if c.lower() == "yes" else 1 - p) for c in choices}


def hit(text: str, rank: int) -> Hit:
    chunk = Chunk(id=f"c{rank}", text=text, doc_id="d", source="rules.txt", page=None, start=0, end=len(text),
                  index=rank)
    return Hit(chunk=chunk, score=1.0 / rank, rank=rank, scores={"zscore": 1.0 / rank})


def test_candidates_are_reordered_by_the_models_yes_no_log_odds() -> None:
    model = KeywordModel("15 metres")
    hits = [hit(FEE, 1), hit(DATES, 2), hit(HOSE, 3)]
    out = LLMReranker(model).rerank("Can I bring a 20 metre hose?", hits)
    assert [h.chunk.text for h in out] == [HOSE, FEE, DATES]  # ties keep the fused order
    assert [h.rank for h in out] == [1, 2, 3]
    assert out[0].scores["rerank"] == pytest.approx(math.log(9)) and out[0].scores["zscore"] == 1.0 / 3
    # the question comes before the passage, so every candidate shares the prompt's prefix
    first, second = (m[-1]["content"] for m in model.seen[:2])
    assert first.startswith("Question: Can I bring a 20 metre hose?") and second.startswith(first.split("Passage:")[0])
    assert LLMReranker(model).rerank("q", []) == []
    assert len(LLMReranker(model).rerank("q", hits, k=2)) == 2


def test_a_model_that_cannot_score_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="cannot score a Yes/No reply.*CrossEncoder"):
        LLMReranker(KeywordModel("x", can_score=False)).score("q", ["a passage"])
    with pytest.raises(ValueError, match="needs a chat model"):
        LLMReranker(object())
    with pytest.raises(ValueError, match="max_passage_chars"):
        LLMReranker(KeywordModel("x"), max_passage_chars=0)
    # long passages are cut before they reach the model
    model = KeywordModel("x")
    LLMReranker(model, max_passage_chars=10).score("q", ["y" * 500])
    assert "y" * 11 not in model.seen[0][-1]["content"]


def test_reorder_is_stable_and_keeps_each_hits_scores() -> None:
    hits = [hit("a", 1), hit("b", 2), hit("c", 3)]
    out = reorder(hits, [0.5, 2.0, 0.5])
    assert [h.chunk.text for h in out] == ["b", "a", "c"]
    assert relevance_messages("q?", "p.")[0]["role"] == "system"


@pytest.mark.slow
@pytest.mark.model
def test_the_default_model_ranks_the_answering_passage_first_through_the_pipeline(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    """``--reranker llm`` built by the pipeline with the real default model, over a real index."""
    from rag.index.store import IndexStore
    from rag.pipeline import PipelineConfig, RetrievalConfig, build
    from tests.conftest import build_index

    build_index(tmp_path, "garden", {"hoses.txt": HOSE, "fee.txt": FEE, "dates.txt": DATES}, embedder)
    config = PipelineConfig(index="garden", retrieval=RetrievalConfig(reranker="llm", rerank_candidates=3, k=3))
    with build(config, IndexStore(tmp_path / "indexes"), embedder=embedder) as pipeline:
        hits = pipeline.retriever.retrieve("How long may a garden hose be?", k=3)
        assert pipeline.retriever.label.endswith("-rerank")
        assert Path(hits[0].chunk.source).name == "hoses.txt", [(h.chunk.source, h.scores) for h in hits]
        print([(Path(h.chunk.source).name, round(h.scores["rerank"], 2)) for h in hits])
        assert hits[0].scores["rerank"] > hits[1].scores["rerank"] + 1  # clearly ahead, not a tie broken by order
        assert all("zscore" in h.scores for h in hits)
