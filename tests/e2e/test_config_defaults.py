"""One source for every setting: the config dataclasses in rag.pipeline.

The CLI's flags, the app's sidebar, ``rag eval answers`` and the Retriever take their defaults from
``PipelineConfig()``'s fields; a default typed again anywhere that drifts fails here, field by field.
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any, Iterator

import pytest

from rag.cli.common import pipeline_config, retrieval_config
from rag.cli.main import build_parser
from rag.pipeline import GenerationConfig, MemoryConfig, PipelineConfig, RetrievalConfig, make_llm
from rag.retrieval.retriever import Retriever
from rag.types import ContextMode
from rag.ui.settings import DEFAULT_SETTINGS, app_config
from rag_eval.answers_cli import RAGAS_CONTEXTS, RAGAS_PLUGINS, answer_config
from tests.conftest import build_index

APP = str(Path(__file__).resolve().parents[2] / "ui" / "app.py")


def differences(got: Any, want: Any, path: str = "config") -> list[str]:
    """Every field (nested dataclasses walked) where ``got`` differs from ``want``, named by its path."""
    out = []
    for f in dataclasses.fields(want):
        g, w = getattr(got, f.name), getattr(want, f.name)
        if dataclasses.is_dataclass(w):
            out += differences(g, w, f"{path}.{f.name}")
        elif g != w:
            out.append(f"{path}.{f.name}: {g!r}, default {w!r}")
    return out


def parse(*argv: str) -> Any:
    return build_parser().parse_args(list(argv))


@pytest.mark.parametrize("argv", [["ask", "q"], ["chat"], ["serve"]])
def test_a_command_line_without_options_is_the_default_pipeline_config(argv: list[str]) -> None:
    assert differences(pipeline_config(parse(*argv)), PipelineConfig()) == []


def test_search_without_options_is_the_default_retrieval_config() -> None:
    assert differences(retrieval_config(parse("search", "q")), RetrievalConfig()) == []


def test_every_option_reaches_the_config() -> None:
    args = parse("chat", "--mode", "bm25", "-k", "7", "--rrf-k", "10", "--candidates", "30", "--temperature", "0.5",
                 "--max-tokens", "99", "--seed", "3", "--answer-check", "1.5", "--context", "chunks",
                 "--evidence-pool", "9", "--memory", "window", "--window", "2", "--no-condense", "--extractive")
    c = pipeline_config(args)
    assert (c.retrieval.mode, c.retrieval.k, c.retrieval.rrf_k, c.retrieval.candidates) == ("bm25", 7, 10, 30)
    assert (c.generation.temperature, c.generation.max_tokens, c.generation.seed) == (0.5, 99, 3)
    assert (c.generation.answer_check, c.generation.context, c.generation.evidence_pool) == (1.5, ContextMode.CHUNKS, 9)
    assert c.generation.extractive and (c.memory.kind, c.memory.window) == ("window", 2)
    assert c.plugins.rewriter == "none"


def test_the_apps_settings_start_at_the_default_pipeline_config() -> None:
    assert differences(app_config("default", DEFAULT_SETTINGS), PipelineConfig()) == []


def test_eval_answers_defaults_are_the_apps() -> None:
    app = app_config("default", DEFAULT_SETTINGS)
    qa = answer_config(parse("eval", "answers", "--dataset", "qa", "--path", "x"), "default")
    assert differences(qa, app) == []
    # a Ragas-scored benchmark differs only where it says so
    ragas = answer_config(parse("eval", "answers", "--dataset", "cranfield", "--path", "x"), "default")
    want = dataclasses.replace(app, retrieval=dataclasses.replace(app.retrieval, k=RAGAS_CONTEXTS), plugins=RAGAS_PLUGINS)
    assert differences(ragas, want) == []


@pytest.mark.parametrize("dataset", ["qa", "cranfield"])
def test_eval_answers_options_reach_every_dataset(dataset: str) -> None:
    args = parse("eval", "answers", "--dataset", dataset, "--path", "x", "--answer-check", "1.5", "--context", "chunks",
                 "--evidence-pool", "7", "--evidence-budget", "111", "--contexts", "4", "--extractive")
    g = answer_config(args, "default").generation
    assert (g.answer_check, g.context, g.evidence_pool, g.evidence_budget) == (1.5, ContextMode.CHUNKS, 7, 111)
    assert g.extractive and answer_config(args, "default").retrieval.k == 4
    assert answer_config(parse("eval", "answers", "--dataset", dataset, "--no-answer-check"), "d").generation \
        .answer_check is None


def test_the_retriever_takes_the_config_defaults_and_checks_like_it() -> None:
    d = RetrievalConfig()
    r = Retriever(None, mode="bm25")  # type: ignore[arg-type]  # BM25 alone needs no index to construct
    assert (r.fusion, r.rrf_k, r.alpha, r.candidates, r.rerank_candidates, r.default_k) == \
        (d.fusion, d.rrf_k, d.alpha, d.candidates, d.rerank_candidates, d.k)
    assert {n: p.default for n, p in inspect.signature(Retriever).parameters.items() if n != "index"} == \
        dict.fromkeys(("mode", "embedder", "fusion", "rrf_k", "alpha", "candidates", "reranker", "rerank_candidates"))
    for bad in ({"candidates": 0}, {"rerank_candidates": -1}, {"rrf_k": -1}, {"alpha": 1.5}, {"candidates": True}):
        with pytest.raises(ValueError) as from_config:
            RetrievalConfig(**bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError) as from_retriever:
            Retriever(None, mode="bm25", **bad)  # type: ignore[arg-type]
        assert str(from_retriever.value) == str(from_config.value)
    with pytest.raises(ValueError, match="k must be a positive integer, got 0"):
        r.retrieve("q", k=0)


def test_make_llm_builds_the_model_the_config_names_without_loading_it() -> None:
    config = GenerationConfig(model="smollm2-135m", n_ctx=1024, n_gpu_layers=0, seed=7, temperature=0.3)
    llm = make_llm(config)
    assert (llm.model, llm.n_ctx, llm.n_gpu_layers, llm.seed) == ("smollm2-135m", 1024, 0, 7)
    assert llm.path.is_file() and llm._llama is None


# -- the sidebar's widgets start at DEFAULT_SETTINGS ----------------------------------------------
@pytest.fixture()
def app_with_a_collection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedder: Any) -> Iterator[Any]:
    from streamlit import config
    from streamlit.testing.v1 import AppTest

    build_index(tmp_path, "docs", {"pump.md": "The Zephyr-9 pump is primed through the bleed valve."}, embedder)
    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "indexes"))
    monkeypatch.setenv("RAG_UPLOAD_DIR", str(tmp_path / "up"))
    monkeypatch.delenv("RAG_ACCESS_TOKEN", raising=False)
    old = config.get_option("server.address")
    config.set_option("server.address", "127.0.0.1")
    yield AppTest.from_file(APP, default_timeout=600)
    config.set_option("server.address", old)


def test_the_sidebar_starts_at_the_default_settings(app_with_a_collection: Any) -> None:
    at = app_with_a_collection.run()
    assert not at.exception
    shown = {
        "answer_mode": at.radio(key="setting_answer_mode").value, "model": at.selectbox(key="model_select").value,
        "temperature": at.slider(key="setting_temperature").value, "memory": at.selectbox(key="setting_memory").value,
        "mode": at.selectbox(key="setting_mode").value, "k": at.slider(key="setting_k").value,
        "fusion": at.selectbox(key="setting_fusion").value, "rrf_k": at.number_input(key="setting_rrf_k").value,
        "alpha": at.slider(key="setting_alpha").value, "rerank": at.checkbox(key="setting_rerank").value,
        "reranker_path": at.text_input(key="reranker_path").value,
        "rewriter": at.selectbox(key="rewriter_select").value, "router": at.selectbox(key="router_select").value,
        "chitchat": at.checkbox(key="chitchat").value}
    assert shown == {k: v for k, v in DEFAULT_SETTINGS.items() if k != "model_problem"}
    assert MemoryConfig().kind == shown["memory"]
