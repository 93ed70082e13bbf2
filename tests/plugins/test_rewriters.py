"""Query rewriters: built-ins (deterministic fakes and the real SmolLM2), RRF merging, Answerer wiring."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import pytest

from rag.retrieval.fusion import ranked, reciprocal_rank_fusion
from rag.index.store import Index
from rag.generation.llm import LlamaCppLLM, ScriptedLLM
from rag.plugins.base import PluginContext, Rewrite, SearchQuery, make_rewriter
from rag.text import content_terms
from rag.retrieval.multi_query import MultiQuerySearcher
from rag.retrieval.retriever import Retriever
from tests.conftest import build_index, make_answerer
from rag.plugins.rewriters import (CondenseRewriter, DecomposeRewriter, HydeRewriter, KeywordRewriter,
                           MultiQueryRewriter, NoRewriter)
from rag.answer.trace import Trace

PUMP = ("# Pump manual\n\nTo prime the centrifugal pump, open the bleed valve and fill the casing with water "
        "until no air escapes.\n\nNever run the pump dry: the mechanical seal overheats within seconds.\n")
TURBINE = ("Turbine maintenance. The turbine blades must be inspected for cracks every 500 operating hours. "
           "Replace any blade with erosion deeper than 2 mm.")
FRUIT = "Bananas are yellow and rich in potassium. Apples grow on trees in temperate climates."
Q = "How do I prime the centrifugal pump?"


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Index:
    return build_index(tmp_path_factory.mktemp("rewriting"), "docs",
                       {"pump.md": PUMP, "turbine.txt": TURBINE, "fruit.txt": FRUIT}, embedder)


@pytest.fixture(scope="module")
def retriever(index: Index, embedder: Any) -> Retriever:
    return Retriever(index, mode="hybrid", embedder=embedder)


def by_prompt(rewrite: str, answer: str = "Open the bleed valve [1].") -> ScriptedLLM:
    """A fake model: ``rewrite`` for any rewriting prompt, ``answer`` for the answer prompt."""
    def reply(messages: Sequence[dict[str, str]]) -> str:
        return answer if messages[-1]["content"].startswith("Sources:") else rewrite
    return ScriptedLLM(reply)


def names(hits: Sequence[Any]) -> list[str]:
    return [Path(h.chunk.source).name for h in hits]


# -- built-ins, deterministic ------------------------------------------------------------------------

def test_keyword_rewriter_strips_stop_words_and_keeps_short_questions() -> None:
    r = KeywordRewriter().rewrite("What are the structural problems of high speed aircraft?")
    assert [q.text for q in r.queries] == ["structural problems high speed aircraft"]
    assert r.method == "keyword" and r.standalone.startswith("What are") and not r.fallback
    short = KeywordRewriter().rewrite("Pumps?")
    assert short.queries[0].text == "Pumps?" and "content words" in short.fallback
    history = [{"role": "user", "content": Q}, {"role": "assistant", "content": "Open the valve."}]
    assert "pump" in KeywordRewriter().rewrite("What if it runs dry?", history).queries[0].text
    with pytest.raises(ValueError, match="min_terms"):
        KeywordRewriter(min_terms=0)


def test_multi_query_parses_lines_and_drops_garbage_echoes_and_repeats() -> None:
    raw = ("1. centrifugal pump priming procedure\n2. 3 different search queries for this question\n"
           "3. How do I prime the centrifugal pump.\n- <|im_end|>\n* bleed valve to prime a pump\n"
           "4. bananas are yellow")
    r = MultiQueryRewriter(ScriptedLLM([raw]), n=3).rewrite(Q)
    assert [q.text for q in r.queries] == [Q, "centrifugal pump priming procedure", "bleed valve to prime a pump"]
    assert [q.kind for q in r.queries] == ["original", "alternative", "alternative"] and not r.fallback
    bad = MultiQueryRewriter(ScriptedLLM(["<|im_start|>assistant\n!!!"])).rewrite(Q)
    assert [q.text for q in bad.queries] == [Q] and bad.fallback == "no usable alternative queries"


def test_hyde_embeds_the_passage_and_keeps_the_question_for_bm25() -> None:
    passage = "To prime a centrifugal pump, fill the casing with water and vent the air through a valve."
    r = HydeRewriter(ScriptedLLM([passage])).rewrite(Q)
    (q,) = r.queries
    assert q.text == Q and q.dense == f"{Q}\n{passage}" and q.kind == "hyde" and not r.fallback
    for garbage, why in (("ok", "shorter"), ("1234 5678 9012 3456 7890 1234 %%%", "not text"),
                         ("Bananas are yellow and rich in potassium and grow on trees.", "no content word")):
        fb = HydeRewriter(ScriptedLLM([garbage])).rewrite(Q)
        assert fb.queries == (SearchQuery(Q),) and why in fb.fallback, garbage


def test_decompose_splits_into_sub_questions() -> None:
    raw = "1. How is a centrifugal pump primed?\n2. What does the bleed valve of a pump do?\n3. Sub-questions:"
    r = DecomposeRewriter(ScriptedLLM([raw])).rewrite(Q)
    assert [q.text for q in r.queries] == [Q, "How is a centrifugal pump primed?",
                                           "What does the bleed valve of a pump do?"]
    assert r.queries[1].kind == "sub-question"
    assert DecomposeRewriter(ScriptedLLM([""])).rewrite(Q).fallback == "no usable sub-questions"


def test_llm_rewriters_need_a_model_and_validate_settings() -> None:
    for name in ("multi-query", "hyde", "decompose"):
        with pytest.raises(ValueError, match=f"rewriter '{name}' needs a language model"):
            make_rewriter(name, PluginContext(llm=None))
    with pytest.raises(ValueError, match="n must be an integer in"):
        MultiQueryRewriter(ScriptedLLM(["x"]), n=0)
    with pytest.raises(ValueError, match="max_sub"):
        DecomposeRewriter(ScriptedLLM(["x"]), max_sub=9)
    with pytest.raises(ValueError, match="at least one query"):
        Rewrite(queries=())
    with pytest.raises(ValueError, match="non-empty"):
        SearchQuery("  ")


def test_condense_rewriter_matches_todays_default() -> None:
    history = [{"role": "user", "content": Q}, {"role": "assistant", "content": "Open the bleed valve."}]
    llm = ScriptedLLM(["What happens if the centrifugal pump runs dry?"])
    r = CondenseRewriter(llm).rewrite("What happens if it runs dry?", history)
    assert (r.standalone, r.method) == ("What happens if the centrifugal pump runs dry?", "llm")
    assert CondenseRewriter(llm, enabled=False).rewrite("What if it runs dry?", history).method == "none"
    assert NoRewriter().rewrite("x y").queries == (SearchQuery("x y"),)


# -- running rewrites ------------------------------------------------------------------------------------

def test_single_query_is_exactly_the_retriever(retriever: Retriever) -> None:
    found = MultiQuerySearcher(retriever).search(Rewrite.single(Q), k=3, collection="docs")
    assert list(found.hits) == retriever.retrieve(Q, k=3)
    (t,) = found.retrievals
    assert t.collection == "docs" and t.retriever == "hybrid-zscore" and t.hits[0].location.endswith("]")
    assert {"bm25", "dense", "zscore"} <= set(t.hits[0].scores)


def test_several_queries_are_merged_with_weighted_rrf(retriever: Retriever) -> None:
    queries = (SearchQuery("turbine blade cracks"), SearchQuery("bananas potassium", weight=2.0))
    found = MultiQuerySearcher(retriever, rrf_k=60).search(Rewrite(queries), k=3)
    lists = [retriever.retrieve(q.text, k=retriever.candidates) for q in queries]
    fused = reciprocal_rank_fusion([[h.chunk.id for h in hits] for hits in lists], k=60, weights=[1.0, 2.0])
    assert [h.chunk.id for h in found.hits] == ranked(fused)[:3]
    assert names(found.hits)[0] == "fruit.txt"  # the heavier query wins the top
    assert found.hits[0].scores["multi_rrf"] == pytest.approx(fused[found.hits[0].chunk.id])
    assert "dense" in found.hits[0].scores and len(found.retrievals) == 2


@pytest.mark.model  # MiniLM's semantics
def test_dense_override_searches_the_passage_on_the_dense_side(index: Index, embedder: Any) -> None:
    dense = Retriever(index, mode="dense", embedder=embedder)
    q = SearchQuery("zebra xylophone", dense="open the bleed valve to prime the centrifugal pump", kind="hyde")
    hits = MultiQuerySearcher(dense).search(Rewrite((q,)), k=2).hits
    assert names(hits)[0] == "pump.md" and names(dense.retrieve("zebra xylophone", k=1)) != ["pump.md"]
    hybrid = Retriever(index, mode="hybrid", embedder=embedder)
    h = MultiQuerySearcher(hybrid).search(Rewrite((q,)), k=1).hits[0]
    assert "bm25" not in h.scores and h.scores["dense"] > 0.3  # BM25 on the nonsense text found nothing


def test_answerer_with_a_multi_query_rewriter_traces_every_query(retriever: Retriever) -> None:
    llm = by_prompt("centrifugal pump priming procedure\nturbine blade cracks maintenance\npump bleed valve")
    answer = make_answerer(retriever, llm, rewriter=MultiQueryRewriter(llm)).answer(Q)
    trace = answer.trace
    assert isinstance(trace, Trace) and trace.rewriter == "multi-query" and trace.query == Q
    assert [q.text for q in trace.queries] == [Q, "centrifugal pump priming procedure",
                                               "pump bleed valve"]  # the off-topic line was dropped
    assert len(trace.retrievals) == 3 and all(r.hits for r in trace.retrievals)
    assert "pump.md" in trace.retrievals[2].hits[0].location and "pump.md" in trace.fused[0].location
    assert trace.fused[0].scores["multi_rrf"] > 0
    assert {"rewrite_s", "retrieve_s", "fuse_s", "generate_s"} <= set(trace.timings)
    assert answer.diagnostics.rewrite_method == "multi-query" and answer.citations
    answer_prompt = llm.calls[-1][-1]["content"]
    assert answer_prompt.endswith(f"Question: {Q}")  # the prompt keeps the user's question


def test_rewriter_fallback_is_noted_in_the_trace(retriever: Retriever) -> None:
    llm = by_prompt("ok")
    answer = make_answerer(retriever, llm, rewriter=HydeRewriter(llm)).answer(Q)
    trace = answer.trace
    assert len(trace.queries) == 1 and trace.queries[0].dense is None
    assert any("rewriter fell back: passage shorter" in n for n in trace.notes)
    assert "note: rewriter fell back" in trace.format()


# -- the real default model -------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("name", ["multi-query", "hyde", "decompose"])
def test_llm_rewriters_with_smollm2_give_usable_queries(name: str, smol: LlamaCppLLM, retriever: Retriever) -> None:
    rewriter = make_rewriter(name, PluginContext(llm=smol))
    r = rewriter.rewrite(Q)
    assert r.queries[0].text == Q and r.raw  # the model said something; the original is always searched
    q_terms = set(content_terms(Q))
    for q in r.queries[1:]:
        assert q_terms & set(content_terms(q.text)), q.text  # every extra query stays on topic
    if name == "hyde" and not r.fallback:
        assert r.queries[0].dense is not None and r.queries[0].dense.startswith(Q + "\n")
    if name != "hyde":
        assert len(r.queries) >= 2 or r.fallback
    hits = MultiQuerySearcher(retriever).search(r, k=3).hits
    assert names(hits)[0] == "pump.md"
