"""The one pipeline builder, the one retrieval path and the typed Answer (real embedder, real FAISS)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

import pytest

from rag.answer.planner import QueryPlanner
from rag.cli.main import main
from rag.generation.llm import ScriptedLLM
from rag.generation.prompting import NOT_FOUND
from rag.index.store import IndexStore
from rag.pipeline import (GenerationConfig, MemoryConfig, PipelineConfig, PluginConfig, RetrievalConfig, build,
                          build_retriever)
from rag.plugins import Rewrite, RewriteMethod, RouteAction, SearchQuery
from rag.plugins.rewriters import CondenseRewriter, NoRewriter
from rag.retrieval.multi_query import MultiQuerySearcher
from rag.retrieval.retriever import Retriever
from rag.types import AnswerMode, Diagnostics, Fusion, Hit, RetrievalMode
from tests.conftest import build_index

REPO = Path(__file__).resolve().parents[2]
Q = "How do I prime the centrifugal pump?"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Path:
    tmp = tmp_path_factory.mktemp("pipeline")
    build_index(tmp, "docs", {
        "pump.md": "# Pump manual\n\nTo prime the centrifugal pump, open the bleed valve and fill the casing with "
                   "water until no air escapes.\n\nNever run the pump dry: the mechanical seal overheats within "
                   "seconds.\n",
        "turbine.txt": "Turbine maintenance. The turbine blades must be inspected for cracks every 500 operating "
                       "hours. Replace any blade with erosion deeper than 2 mm.",
        "fruit.txt": "Bananas are yellow and rich in potassium. Apples grow on trees."}, embedder)
    return tmp / "indexes"


def names(hits: Sequence[Hit]) -> list[str]:
    return [Path(h.chunk.source).name for h in hits]


# -- configs --------------------------------------------------------------------------------------

def test_configs_parse_enums_and_reject_bad_values() -> None:
    c = RetrievalConfig(mode="dense", fusion="weighted")
    assert c.mode is RetrievalMode.DENSE and c.fusion is Fusion.WEIGHTED
    with pytest.raises(ValueError, match="retrieval mode must be one of bm25, dense, hybrid; got 'fuzzy'"):
        RetrievalConfig(mode="fuzzy")
    with pytest.raises(ValueError, match="alpha must be in"):
        RetrievalConfig(alpha=2.0)
    with pytest.raises(ValueError, match="generation mode must be generative or extractive"):
        GenerationConfig(mode="direct")
    with pytest.raises(ValueError, match="memory must be one of"):
        MemoryConfig(kind="forever")
    assert RetrievalConfig(reranker="  ").reranker is None


# -- one builder ----------------------------------------------------------------------------------

def test_build_extractive_pipeline_answers_with_citations(root: Path, embedder: Any) -> None:
    config = PipelineConfig(index="docs", retrieval=RetrievalConfig(fusion="weighted", alpha=0.7, k=3),
                            generation=GenerationConfig(mode="extractive"))
    with build(config, IndexStore(root), embedder=embedder) as pipeline:
        r = pipeline.retriever
        assert (r.fusion, r.alpha, r.label) == (Fusion.WEIGHTED, 0.7, "hybrid-weighted") and pipeline.llm is None
        answer = pipeline.answerer.answer(Q)
        assert answer.mode is AnswerMode.EXTRACTIVE and "bleed valve" in answer.text
        assert Path(answer.citations[0].chunk.source).name == "pump.md"
        assert answer.sources and answer.trace is not None and answer.trace.retrievals[0].retriever == "hybrid-weighted"
        assert isinstance(answer.diagnostics, Diagnostics) and answer.diagnostics.retrieved >= 1
        off_topic = pipeline.answerer.answer("What is the capital of France?")
        assert off_topic.declined and off_topic.text == NOT_FOUND and off_topic.diagnostics.reason == "no relevant hit"


def test_build_generative_with_a_given_model_and_chat_memory(root: Path, embedder: Any) -> None:
    llm = ScriptedLLM(["To prime it, open the bleed valve [1].", "It overheats [1]."])
    config = PipelineConfig(index="docs", memory=MemoryConfig("window", window=1),
                            plugins=PluginConfig(rewriter="keyword"))
    with build(config, IndexStore(root), embedder=embedder, llm=llm) as pipeline:
        chat = pipeline.chat()
        first = chat.ask(Q)
        assert first.mode is AnswerMode.GENERATIVE and first.diagnostics.explicit_citations == (1,)
        assert first.trace is not None and first.trace.rewriter == "keyword"
        assert chat.memory.messages()[0]["content"] == Q
    assert len(llm.calls) == 1  # the model passed in is the one that answered


def test_build_fails_early_on_an_unknown_plugin_or_model(root: Path, embedder: Any) -> None:
    with pytest.raises(ValueError, match="unknown rewriter 'spellcheck'"):
        build(PipelineConfig(index="docs", plugins=PluginConfig(rewriter="spellcheck")), IndexStore(root),
              embedder=embedder, llm=ScriptedLLM(["x"]))
    with pytest.raises(Exception, match="unknown model 'gpt-9'"):
        build(PipelineConfig(index="docs", generation=GenerationConfig(model="gpt-9")), IndexStore(root),
              embedder=embedder)


# -- one retrieval path ---------------------------------------------------------------------------

def test_a_rewriter_with_one_unchanged_query_returns_exactly_the_retrievers_hits(root: Path, embedder: Any) -> None:
    index = IndexStore(root).load("docs")
    retriever = Retriever(index, embedder=embedder)
    expected = retriever.retrieve(Q, k=3)
    for rewriter in (NoRewriter(), CondenseRewriter(None)):
        plan = QueryPlanner(retriever, k=3, rewriter=rewriter).plan(Q)
        assert list(plan.hits) == expected
    hyde = SearchQuery("zebra xylophone", dense="open the bleed valve to prime the centrifugal pump")
    found = MultiQuerySearcher(retriever).search(Rewrite((hyde,)), k=2)
    assert list(found.hits) == retriever.retrieve("zebra xylophone", 2, dense_query=hyde.dense)
    assert names(found.hits)[0] == "pump.md"


class LengthReranker:
    """Scores a chunk by its length: a deterministic stand-in for a cross-encoder."""

    def rerank(self, query: str, hits: Sequence[Hit], k: int | None = None) -> list[Hit]:
        order = sorted(hits, key=lambda h: -len(h.chunk.text))[:k]
        return [dataclasses.replace(h, rank=r, score=float(len(h.chunk.text)),
                                    scores={**h.scores, "rerank": float(len(h.chunk.text))})
                for r, h in enumerate(order, start=1)]


def test_rerank_rescores_the_head_and_keeps_the_fused_tail_below(root: Path, embedder: Any) -> None:
    index = IndexStore(root).load("docs")
    fused = Retriever(index, embedder=embedder, candidates=10).retrieve("pump valve", k=3)
    assert len(fused) == 3
    reranked = Retriever(index, embedder=embedder, candidates=10, reranker=LengthReranker(),  # type: ignore[arg-type]
                         rerank_candidates=2).retrieve("pump valve", k=3)
    head = sorted(fused[:2], key=lambda h: -len(h.chunk.text))
    assert [h.chunk.id for h in reranked] == [h.chunk.id for h in head] + [fused[2].chunk.id]
    assert [h.rank for h in reranked] == [1, 2, 3] and "rerank" in reranked[0].scores
    assert "rerank" not in reranked[2].scores


def test_search_and_eval_use_the_same_retriever(root: Path, embedder: Any) -> None:
    from rag_eval.retrieval import EvalSettings, retrieval_config

    index = IndexStore(root).load("docs")
    config = retrieval_config("hybrid-weighted", EvalSettings(candidates=10, alpha=0.6))
    direct = Retriever(index, embedder=embedder, fusion="weighted", alpha=0.6, candidates=10)
    assert build_retriever(config, index, embedder).retrieve(Q, k=5) == direct.retrieve(Q, k=5)


# -- typed records --------------------------------------------------------------------------------

def test_rewrite_and_route_enums() -> None:
    assert Rewrite.single("q", "llm+terms").condensed and Rewrite.single("q", "llm").condensed
    assert not Rewrite.single("q", "fallback").condensed
    assert Rewrite.single("q", "llm+terms").method is RewriteMethod.LLM_TERMS
    assert Rewrite.single("q", "shout").method == "shout"  # a plugin's own method stays a string
    from rag.plugins import Route

    assert Route.direct("hi").action is RouteAction.DIRECT and Route("retrieve").action is RouteAction.RETRIEVE
    with pytest.raises(ValueError, match="route action must be one of"):
        Route("jump")


# -- the CLI gets every retrieval option -----------------------------------------------------------

@pytest.mark.model  # the CLI loads MiniLM itself
def test_ask_takes_every_retrieval_option(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--index", "docs", "--index-dir", str(root), "--extractive"]
    assert main(["ask", Q, *base, "--fusion", "weighted", "--alpha", "0.8", "--candidates", "20", "--rrf-k", "10",
                 "--trace"]) == 0
    out = capsys.readouterr().out
    assert "bleed valve" in out and "Sources:" in out and "hybrid-weighted" in out
    assert main(["ask", Q, *base, "--reranker", "auto"]) == 2
    assert "has no trained reranker" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["ask", Q, *base, "--alpha", "3"])
    assert exc.value.code == 2 and "must be a number in [0, 1], got '3'" in capsys.readouterr().err


def test_rag_does_not_import_the_eval_harness() -> None:
    code = ("import sys, rag, rag.pipeline, rag.cli.main, rag.answer.answerer; "
            "bad = [m for m in sys.modules if m == 'rag_eval' or m.startswith('rag_eval.') or m == 'eval']; "
            "print(bad); raise SystemExit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stdout + out.stderr
