"""Routers: chit-chat, rules, embedding, LLM (JSON grammar), chains; routing inside the Answerer; traces; CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Sequence

import pytest

from rag.answer.planner import QueryPlanner
from rag.answer.strategies import DIRECT_PROMPT, DIRECT_REPLY
from rag.cli.main import main
from rag.index.store import IndexStore
from rag.ingest.ingestor import Ingestor
from rag.generation.llm import LlamaCppLLM, ScriptedLLM
from rag.plugins.base import PluginContext, Route
from rag.retrieval.retriever import Retriever
from tests.conftest import make_answerer
from rag.plugins.routers import (DIRECT, ChitChatRouter, EmbeddingRouter, LLMRouter, RouterChain, RuleRouter, build_router,
                         route_grammar)

PUMP = ("# Pump manual\n\nTo prime the centrifugal pump, open the bleed valve and fill the casing with water "
        "until no air escapes.\n\nNever run the pump dry: the mechanical seal overheats within seconds.\n")
CAKE = ("# Sponge cake\n\nBeat four eggs with sugar until pale, fold in the flour and bake at 180 degrees "
        "for 25 minutes.")
ROUTES = {"manuals": "pump and valve maintenance manuals for machinery",
          "recipes": "cooking and baking recipes: cakes, bread, eggs, sugar, flour"}


@pytest.fixture(scope="module")
def index_root(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Path:
    root = tmp_path_factory.mktemp("routing")
    store = IndexStore(root / "indexes")
    for name, files in {"manuals": {"pump.md": PUMP}, "recipes": {"cake.md": CAKE}}.items():
        docs = root / name
        docs.mkdir()
        for fname, text in files.items():
            (docs / fname).write_text(text, encoding="utf-8")
        assert Ingestor(name, store=store, embedder=embedder).ingest([docs]).ok
    return root / "indexes"


@pytest.fixture(scope="module")
def retrievers(index_root: Path, embedder: Any) -> dict[str, Retriever]:
    store = IndexStore(index_root)
    return {n: Retriever(store.load(n), embedder=embedder) for n in ("manuals", "recipes")}


class GrammarRecorder(ScriptedLLM):
    """ScriptedLLM that also records the grammar each call was given."""

    def __init__(self, replies: Sequence[str]) -> None:
        super().__init__(replies)
        self.grammars: list[str | None] = []

    def chat(self, messages: Any, max_tokens: int = 256, temperature: float = 0.0, seed: int | None = None,
             grammar: str | None = None, stop: Sequence[str] = ()) -> str:
        self.grammars.append(grammar)
        return super().chat(messages, max_tokens, temperature, seed, grammar, stop)


# -- routers alone --------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["Hello!", "hi there", "Thanks a lot!", "thank you so much", "ok thanks",
                                  "Good morning", "bye", "How are you?", "hey, thanks!"])
def test_chitchat_goes_direct(text: str) -> None:
    route = ChitChatRouter().route(text)
    assert route.action == "direct" and route.router == "chitchat"


@pytest.mark.parametrize("text", ["How do I prime the pump?", "thanks, and how do I prime the pump?",
                                  "hi, what is a bleed valve?", "Hiya pumps", "highway code", "thanksgiving recipes"])
def test_questions_are_not_chitchat(text: str) -> None:
    route = ChitChatRouter().route(text)
    assert route.action == "retrieve" and route.collection is None


def test_rule_router_patterns_targets_and_defaults() -> None:
    r = RuleRouter([(r"\b(pump|valve)s?\b", "manuals"), (r"\b(cake|bake)\b", "recipes"), (r"^\s*joke\b", DIRECT)])
    assert r.route("Which VALVE?").collection == "manuals" and r.route("bake a cake").collection == "recipes"
    assert r.route("joke please").action == "direct"
    unmatched = r.route("turbines")
    assert unmatched.collection is None and unmatched.reason == "no rule matched"
    assert RuleRouter({"x": "a"}, default="b").route("y").collection == "b"
    auto = RuleRouter.from_context(PluginContext(collections={"manuals": "", "my-notes": ""}))
    assert auto.route("in manuals: how?").collection == "manuals" and auto.route("manualsX").collection is None
    assert auto.route("see my-notes please").collection == "my-notes"
    with pytest.raises(ValueError, match="not a valid regular expression"):
        RuleRouter({"[unclosed": "a"})
    with pytest.raises(ValueError, match="rules must not be empty"):
        RuleRouter({})
    with pytest.raises(ValueError, match="needs rules"):
        RuleRouter.from_context(PluginContext())


def test_embedding_router_zero_shot_with_threshold(embedder: Any) -> None:
    r = EmbeddingRouter(embedder, ROUTES)
    pump = r.route("How do I prime the centrifugal pump?")
    cake = r.route("How long should I bake a sponge cake?")
    assert (pump.collection, cake.collection) == ("manuals", "recipes")
    assert pump.score is not None and pump.score >= r.threshold == 0.2 and "closest description" in pump.reason
    off = r.route("Who won the football world cup in 1998?")
    assert off.collection is None and off.score is not None and off.score < 0.2 and "below threshold" in off.reason
    assert EmbeddingRouter(embedder, ROUTES, threshold=0.99, default="recipes").route(
        "How do I prime the centrifugal pump?").collection == "recipes"
    with pytest.raises(ValueError, match="threshold"):
        EmbeddingRouter(embedder, ROUTES, threshold=2.0)
    with pytest.raises(ValueError, match="empty for"):
        EmbeddingRouter(embedder, {"a": " "})


def test_llm_router_uses_a_json_grammar_and_falls_back_on_bad_output() -> None:
    llm = GrammarRecorder(['{"route": "recipes"}', "I would say recipes", '{"route": "weather"}', '{"x": 1}'])
    router = LLMRouter(llm, ROUTES)
    assert router.route("How long to bake a cake?") == Route("retrieve", "recipes", "LLM choice", None, "llm")
    assert llm.grammars[0] == route_grammar(["manuals", "recipes"])
    assert '"\\"manuals\\"" | "\\"recipes\\""' in llm.grammars[0] and DIRECT not in llm.grammars[0]
    bad = [router.route("q") for _ in range(3)]
    assert all(r.collection is None and r.action == "retrieve" for r in bad)
    assert bad[0].reason.startswith("unparseable") and "unknown route 'weather'" in bad[1].reason
    assert LLMRouter(ScriptedLLM(["nope"]), ROUTES, default="manuals").route("q").collection == "manuals"
    direct = LLMRouter(ScriptedLLM(['{"route": "direct"}']), ROUTES, allow_direct=True)
    assert direct.route("hi").action == "direct" and '"\\"direct\\""' in direct.grammar
    with pytest.raises(ValueError, match="needs a language model"):
        LLMRouter(None, ROUTES)
    with pytest.raises(ValueError, match="reserved"):
        LLMRouter(ScriptedLLM(["x"]), {"direct": "d"})
    with pytest.raises(ValueError, match="route names"):
        route_grammar(['bad"name'])


def test_router_chain_first_decision_wins() -> None:
    chain = build_router("chitchat,rules", PluginContext(options={"rules": {"pump": "manuals"}}))
    assert isinstance(chain, RouterChain) and chain.name == "chitchat,rules"
    assert chain.route("thanks!").router == "chitchat" and chain.route("pump?").collection == "manuals"
    assert chain.route("turbine?").reason == "no router decided"
    with pytest.raises(ValueError, match="unknown router 'nope'; available: chitchat, embedding, llm, none, rules"):
        build_router("chitchat,nope")


@pytest.mark.slow
def test_llm_router_real_model_output_is_valid_json_under_the_grammar() -> None:
    with LlamaCppLLM("smollm2-135m", seed=0) as llm:
        router = LLMRouter(llm, ROUTES, allow_direct=True)
        routes = [router.route(q) for q in ("How do I prime the pump?", "How long to bake a cake?", "hello")]
        raw = llm.chat(router.messages("How do I prime the pump?"), max_tokens=24, grammar=router.grammar)
    assert json.loads(raw)["route"] in ("manuals", "recipes", "direct")
    assert all(r.reason in ("LLM choice", "LLM choice direct", "LLM chose direct") for r in routes), routes


# -- routing in the Answerer -------------------------------------------------------------------------

@pytest.mark.model  # MiniLM's semantics
def test_chitchat_is_answered_without_retrieval(retrievers: dict[str, Retriever]) -> None:
    llm = ScriptedLLM(["You're welcome! Ask me about your documents."])
    answerer = make_answerer(retrievers["manuals"], llm, router=ChitChatRouter())
    answer = answerer.answer("Thanks a lot!")
    assert answer.mode == "direct" and answer.text == "You're welcome! Ask me about your documents."
    assert answer.citations == () and not answer.grounded
    trace = answer.trace
    assert trace.route.action == "direct" and trace.retrievals == () and trace.rewrite_method.startswith("skipped")
    assert llm.calls[0][0]["content"] == DIRECT_PROMPT and len(llm.calls) == 1
    extractive = make_answerer(retrievers["manuals"], extractive=True, router=ChitChatRouter()).answer("hello")
    assert extractive.text == DIRECT_REPLY and extractive.mode == "direct"
    question = answerer.answer("How do I prime the pump?")
    assert question.trace.retrievals and question.trace.route.action != "direct"
    # the scripted small talk supports nothing, so the answer falls back to quoted sources
    assert question.mode == "extractive" and question.diagnostics.fallback


def test_routed_collection_is_searched_and_traced(retrievers: dict[str, Retriever], index_root: Path) -> None:
    router = RuleRouter({r"\bcake\b": "recipes", r"\bturbine\b": "engines"})
    answerer = make_answerer(retrievers["manuals"], extractive=True, router=router, store=IndexStore(index_root))
    cake = answerer.answer("How long do I bake the sponge cake?")
    assert [Path(c.chunk.source).name for c in cake.citations] == ["cake.md"]
    trace = cake.trace
    assert trace.router == "rules" and trace.route.collection == "recipes" and trace.collection == "recipes"
    assert trace.retrievals[0].collection == "recipes" and trace.retrievals[0].hits[0].scores["dense"] > 0.3
    assert {"route_s", "rewrite_s", "retrieve_s", "fuse_s"} <= set(trace.timings) and trace.notes == ()
    unknown = answerer.answer("How often is the turbine inspected? pump")
    assert unknown.trace.collection == "manuals"
    assert unknown.trace.notes == ("router chose unknown collection 'engines'; used 'manuals'",)
    d = unknown.trace.to_dict()
    assert json.loads(json.dumps(d))["route"]["collection"] == "engines"
    assert "router rules -> engines" in unknown.trace.format()


def test_answerer_rejects_objects_that_are_not_plugins(retrievers: dict[str, Retriever]) -> None:
    with pytest.raises(ValueError, match="rewriter must have a rewrite"):
        QueryPlanner(retrievers["manuals"], rewriter=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="router must have a route"):
        QueryPlanner(retrievers["manuals"], router="rules")  # type: ignore[arg-type]


# -- CLI -------------------------------------------------------------------------------------------

def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.model  # the CLI loads MiniLM itself
def test_cli_router_rewriter_and_trace(index_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--index", "manuals", "--index-dir", str(index_root), "--extractive"]
    code, out, _ = run(["ask", "thanks!", *base, "--router", "chitchat", "--trace"], capsys)
    assert code == 0 and DIRECT_REPLY in out and "router chitchat -> direct (chit-chat" in out
    code, out, _ = run(["ask", "in recipes: how long to bake the sponge cake?", *base, "--router", "chitchat,rules",
                        "--rewriter", "keyword", "--trace"], capsys)
    assert code == 0 and "cake.md" in out.split("Sources:")[1].split("Trace:")[0]
    assert "router chitchat,rules [rules] -> recipes" in out and "rewriter keyword (keyword)" in out
    assert "q1 [keywords] recipes long bake sponge cake" in out and "timings: route" in out
    config = tmp_path / "router.json"
    config.write_text(json.dumps({"rules": {"sponge": "recipes"}}), encoding="utf-8")
    code, out, _ = run(["ask", "what about the sponge?", *base, "--router", "rules", "--router-config", str(config),
                        "--trace"], capsys)
    assert code == 0 and "router rules -> recipes (rule 'sponge'" in out
    code, out, err = run(["ask", "q", *base, "--rewriter", "nope"], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "unknown rewriter 'nope'; available: condense, decompose, hyde, keyword, multi-query, none" in err
    code, _, err = run(["ask", "q", *base, "--router", "magic"], capsys)
    assert code == 2 and "unknown router 'magic'; available: chitchat, embedding, llm, none, rules" in err
    code, _, err = run(["ask", "q", *base, "--rewriter", "hyde"], capsys)
    assert code == 2 and "rewriter 'hyde' needs a language model" in err


@pytest.mark.slow
def test_real_model_small_talk_is_answered_directly(retrievers: dict[str, Retriever], index_root: Path) -> None:
    with LlamaCppLLM("smollm2-135m", seed=0) as llm:
        answerer = make_answerer(retrievers["manuals"], llm, max_tokens=48, router=build_router("chitchat,embedding",
                            PluginContext(llm=llm, embedder=retrievers["manuals"].embedder, collections=ROUTES)),
                            store=IndexStore(index_root))
        thanks = answerer.answer("Thanks a lot!")
        cake = answerer.answer("How long do I bake the sponge cake?")
    assert thanks.mode == "direct" and thanks.text.strip() and thanks.citations == ()
    assert thanks.trace.retrievals == () and "generate_s" not in thanks.trace.timings
    assert cake.trace.route.router == "embedding" and cake.trace.collection == "recipes"
    given = [Path(c.chunk.source).name for c in (cake.sources or cake.citations)]
    assert given and given[0] == "cake.md"
