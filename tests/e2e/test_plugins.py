"""Plugin discovery (entry points + built-in fallback), a real third-party package, eval and UI wiring."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tomllib
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any, Iterator, Sequence

import pytest

from rag.plugins import base as plugins
from rag.index.store import IndexStore
from rag.ingest.ingestor import Ingestor
from rag.plugins.base import (BUILTIN_REWRITERS, BUILTIN_ROUTERS, PluginContext, Rewrite, Route, available_rewriters,
                         available_routers, make_rewriter, make_router)
from rag.plugins.rewriters import HydeRewriter, KeywordRewriter

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "rag-example-plugins"


class FakeRewriter:
    name = "fake"

    def __init__(self, suffix: str) -> None:
        self.suffix = suffix

    @classmethod
    def from_context(cls, context: PluginContext) -> "FakeRewriter":
        return cls(context.options.get("suffix", "!"))

    def rewrite(self, query: str, history: Sequence[Any] = ()) -> Rewrite:
        return Rewrite.single(query + self.suffix, "fake")


def not_a_router(context: PluginContext) -> object:
    return object()


@pytest.fixture()
def fake_entry_points(monkeypatch: pytest.MonkeyPatch) -> list[EntryPoint]:
    eps = [EntryPoint("fake", "tests.e2e.test_plugins:FakeRewriter.from_context", "rag.rewriters"),
           EntryPoint("hyde", "tests.e2e.test_plugins:FakeRewriter.from_context", "rag.rewriters"),
           EntryPoint("broken", "tests.e2e.test_plugins:not_a_router", "rag.routers")]
    monkeypatch.setattr(plugins.metadata, "entry_points", lambda group: [e for e in eps if e.group == group])
    return eps


def test_unknown_names_raise_value_error_listing_the_choices() -> None:
    with pytest.raises(ValueError) as exc:
        make_rewriter("hyDE")
    assert str(exc.value).startswith("unknown rewriter 'hyDE'; available: condense, decompose, hyde, keyword, "
                                     "multi-query, none")
    assert "'rag.rewriters' entry point" in str(exc.value)
    with pytest.raises(ValueError, match="unknown router 'semantic'; available: chitchat, embedding, llm, none, rules"):
        make_router("semantic")


def test_builtins_work_without_installed_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugins.metadata, "entry_points", lambda group: [])
    assert available_rewriters() == sorted(BUILTIN_REWRITERS)
    assert available_routers() == sorted(BUILTIN_ROUTERS)
    assert isinstance(make_rewriter("keyword"), KeywordRewriter)
    assert make_router("chitchat").route("thanks!") == Route.direct("chit-chat", 1.0, router="chitchat")


def test_pyproject_registers_exactly_the_builtins() -> None:
    eps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]
    assert eps["rag.routers"] == dict(BUILTIN_ROUTERS) and eps["rag.rewriters"] == dict(BUILTIN_REWRITERS)
    for target in [*BUILTIN_ROUTERS.values(), *BUILTIN_REWRITERS.values()]:
        assert callable(plugins._load_target(target)), target


def test_entry_points_are_discovered_and_cannot_shadow_builtins(fake_entry_points: list[EntryPoint],
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    assert "fake" in available_rewriters() and "broken" in available_routers()
    rw = make_rewriter("fake", PluginContext(options={"suffix": "?!"}))
    assert isinstance(rw, FakeRewriter) and rw.rewrite("pump").queries[0].text == "pump?!"
    with caplog.at_level(logging.WARNING, logger="rag.plugins.base"):
        hyde = make_rewriter("hyde", PluginContext(llm=__import__("rag.generation.llm").generation.llm.ScriptedLLM(["x"])))
    assert isinstance(hyde, HydeRewriter) and "shadows a built-in" in caplog.text
    with pytest.raises(TypeError, match="router 'broken' \\(object\\) has no route\\(\\) method"):
        make_router("broken")


# -- a real third-party package, installed with pip ------------------------------------------------------

PUMP = "# Pump manual\n\nTo prime the centrifugal pump, open the bleed valve and fill the casing with water.\n"
CAKE = ("# Sponge cake\n\nBeat four eggs with sugar, fold in the flour and bake at 180 degrees for 25 minutes.\n\n"
        "## A sunken cake\n\nTo fix a cake that sank in the middle, bake the next one five minutes longer.\n")


@pytest.fixture(scope="module")
def two_collections(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Path:
    root = tmp_path_factory.mktemp("plugins")
    store = IndexStore(root / "indexes")
    for name, text in {"manuals": PUMP, "recipes": CAKE}.items():
        (root / name).mkdir()
        (root / name / f"{name}.md").write_text(text, encoding="utf-8")
        assert Ingestor(name, store=store, embedder=embedder).ingest([root / name]).ok
    return root / "indexes"


@pytest.fixture()
def example_installed() -> Iterator[None]:
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q",
                              "-e", str(EXAMPLE)], capture_output=True, text=True, env=env, timeout=300)
    assert install.returncode == 0, install.stderr
    try:
        yield
    finally:
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-y", "-q", "rag-example-plugins"],
                       capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.model  # a `rag ask` subprocess loads MiniLM itself
def test_third_party_package_router_and_rewriter_are_found_by_name_and_used(example_installed: None,
                                                                             two_collections: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    listed = subprocess.run([sys.executable, "-c", "from rag.plugins.base import available_routers as a, "
                             "available_rewriters as b; print(a()); print(b())"],
                            capture_output=True, text=True, env=env, timeout=120, cwd=REPO)
    routers, rewriters = listed.stdout.splitlines()
    assert "'example-prefix'" in routers and "'example-synonyms'" in rewriters, listed.stderr
    ask = subprocess.run([sys.executable, "-m", "rag", "ask", "@recipes how do I fix the cake?", "--index", "manuals",
                          "--index-dir", str(two_collections), "--extractive", "--router", "example-prefix",
                          "--rewriter", "example-synonyms", "--trace"],
                         capture_output=True, text=True, env=env, timeout=300, cwd=REPO)
    assert ask.returncode == 0, ask.stderr
    out = ask.stdout
    assert "router example-prefix -> recipes (prefix @recipes, score 1.000)" in out
    assert "rewriter example-synonyms (example-synonyms): 2 queries" in out
    assert "q2 [synonyms] how do I fix the cake? repair" in out and "retrieval q2 on recipes" in out
    assert "recipes.md" in out.split("Sources:")[1].split("Trace:")[0]


# -- eval output ------------------------------------------------------------------------------------------

@pytest.mark.model  # the CLI loads MiniLM itself
def test_eval_retrieval_compares_rewriters_and_writes_traces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from rag.cli.main import main
    from tests.eval.test_harness import write_beir

    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path / "cache"))
    root = write_beir(tmp_path / "tiny")
    out = tmp_path / "out"
    code = main(["eval", "retrieval", "--dataset", "beir", "--path", str(root), "--configs", "hybrid",
                 "--rewriters", "none,keyword", "--limit", "3", "--depth", "5", "--candidates", "10",
                 "--resamples", "200", "--out", str(out), "-q"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| hybrid |" in printed and "| hybrid+keyword |" in printed
    assert "| keyword |" in printed and "added ms/query" in printed and "3 judged queries" in printed
    traces = [json.loads(line) for line in (out / "traces.jsonl").read_text().splitlines()]
    assert len(traces) == 3 and {t["config"] for t in traces} == {"hybrid+keyword"}
    assert all(t["queries"][0]["kind"] in ("keywords", "original") and "rewrite_ms" in t for t in traces)
    report = json.loads((out / "comparison.json").read_text())
    assert report["baseline"] == "hybrid" and report["n_queries"] == 3
    assert report["configs"]["hybrid"]["p_values"]["nDCG@10"] is None
    assert (out / "rewriters.md").read_text().count("\n| ") == 2  # header separator excluded: two data rows
    code = main(["eval", "retrieval", "--dataset", "beir", "--path", str(root), "--rewriters", "none,spellcheck"])
    assert code == 2 and "unknown rewriter(s) spellcheck; available: condense" in capsys.readouterr().err


# -- UI ---------------------------------------------------------------------------------------------------

def test_ui_sidebar_selects_plugins_and_shows_the_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "idx"))
    monkeypatch.setenv("RAG_UPLOAD_DIR", str(tmp_path / "up"))
    at = AppTest.from_file(str(REPO / "ui" / "app.py"), default_timeout=600)
    at.run()
    at.button(key="index_samples").click().run()
    assert not at.exception
    assert "multi-query" in at.selectbox(key="rewriter_select").options
    assert "embedding" in at.selectbox(key="router_select").options
    at.radio[0].set_value("extractive").run()
    at.selectbox(key="rewriter_select").set_value("keyword")
    at.checkbox(key="chitchat").check().run()
    at.chat_input[0].set_value("What happens if ingestion is interrupted?").run()
    assert not at.exception
    assert [e for e in at.expander if e.label == "Trace"]
    trace = [m.value for m in at.markdown if "**Rewrite**" in m.value][-1]  # the readable trace list
    assert "**Rewrite**: keyword" in trace and "**Route**: chitchat" in trace
    assert "happens ingestion interrupted" in trace
    assert "**Search q1**" in trace and "**#1**" in trace
    at.chat_input[0].set_value("thanks!").run()
    assert not at.exception
    last = [m.value for m in at.markdown if "**Route**" in m.value][-1]
    assert "direct" in last and "**Search q1**" not in last
