"""Conversation: memory types, follow-up condensation, the Runnable, and the CLI commands."""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Any, Sequence

import pytest
from langchain_core.runnables import Runnable

from rag.cli import answer as cli_answer
from rag.cli.main import build_parser, main
from rag.answer.chain import answer_runnable, normalize_history
from rag.answer.chat import ChatSession
from rag.index.store import Index, IndexStore
from rag.ingest.ingestor import Ingestor
from rag.generation.llm import LlamaCppLLM, ScriptedLLM
from rag.generation.memory import BufferMemory, SummaryMemory, WindowMemory, make_memory
from rag.generation.prompting import NOT_FOUND, QueryCondenser
from rag.retrieval.retriever import Retriever
from rag.types import Answer
from tests.conftest import make_answerer

PUMP = ("# Pump manual\n\nTo prime the centrifugal pump, open the bleed valve and fill the casing with water "
        "until no air escapes.\n\nNever run the pump dry: the mechanical seal overheats within seconds.\n")
TURBINE = ("Turbine maintenance. The turbine blades must be inspected for cracks every 500 operating hours. "
           "Replace any blade with erosion deeper than 2 mm.")
FRUIT = "Bananas are yellow and rich in potassium."
HISTORY = [{"role": "user", "content": "How do I prime the centrifugal pump?"},
           {"role": "assistant", "content": "Open the bleed valve and fill the casing with water [1]."}]


@pytest.fixture(scope="module")
def index_root(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Path:
    root = tmp_path_factory.mktemp("chat")
    docs = root / "docs"
    docs.mkdir()
    for name, text in {"pump.md": PUMP, "turbine.txt": TURBINE, "fruit.txt": FRUIT}.items():
        (docs / name).write_text(text, encoding="utf-8")
    report = Ingestor("docs", store=IndexStore(root / "indexes"), embedder=embedder).ingest([docs])
    assert report.ok, report.summary()
    return root / "indexes"


@pytest.fixture(scope="module")
def index(index_root: Path) -> Index:
    return IndexStore(index_root).load("docs")


@pytest.fixture(scope="module")
def retriever(index: Index, embedder: Any) -> Retriever:
    return Retriever(index, embedder=embedder)


def scripted(condense_reply: str, answer_reply: str = "Open the bleed valve [1].") -> ScriptedLLM:
    """Replies to the condensation prompt and the answer prompt differently."""
    def reply(messages: Sequence[dict[str, str]]) -> str:
        if "Rewritten question" in messages[-1]["content"]:
            return condense_reply
        if "New summary" in messages[-1]["content"]:
            return "The user asked how to prime the centrifugal pump."
        return answer_reply
    return ScriptedLLM(reply)


# -- memory -------------------------------------------------------------------------------------

def test_memory_types_by_name() -> None:
    assert isinstance(make_memory("buffer"), BufferMemory)
    assert isinstance(make_memory("window", k=2), WindowMemory)
    assert isinstance(make_memory("summary", llm=ScriptedLLM(["s"])), SummaryMemory)
    with pytest.raises(ValueError, match=r"\('buffer', 'window', 'summary'\), got 'forever'"):
        make_memory("forever")
    with pytest.raises(ValueError, match="needs an llm"):
        make_memory("summary")
    with pytest.raises(ValueError, match="k \\(turns kept\\)"):
        WindowMemory(k=0)


def test_buffer_keeps_all_window_keeps_last_k() -> None:
    buf, win = BufferMemory(), WindowMemory(k=2)
    for i in range(4):
        buf.add(f"q{i}", f"a{i}")
        win.add(f"q{i}", f"a{i}")
    assert [m["content"] for m in buf.messages()][::2] == ["q0", "q1", "q2", "q3"]
    assert [m["content"] for m in win.messages()] == ["q2", "a2", "q3", "a3"]
    win.reset()
    assert win.messages() == []


def test_summary_memory_uses_llm_and_falls_back_on_garbage() -> None:
    mem = SummaryMemory(ScriptedLLM(["The user asked about the pump.", "??"]))
    mem.add("How do I prime the pump?", "Open the bleed valve.")
    assert mem.summary == "The user asked about the pump."
    msgs = mem.messages()
    assert msgs[0]["role"] == "system" and "about the pump" in msgs[0]["content"]
    mem.add("And the turbine?", "Inspect the blades.")
    assert "And the turbine?" in mem.summary, "a useless summary falls back to the question"
    assert [m["content"] for m in mem.messages()[1:]] == ["And the turbine?", "Inspect the blades."]


# -- condensation ---------------------------------------------------------------------------------

def test_condenser_accepts_a_good_rewrite() -> None:
    c = QueryCondenser(ScriptedLLM(["What happens if the centrifugal pump runs dry?"]))
    out = c.condense("What happens if it runs dry?", HISTORY)
    assert (out.query, out.method) == ("What happens if the centrifugal pump runs dry?", "llm")


@pytest.mark.parametrize("reply", ["", "<|im_start|>assistant", "!!! ??? ...", "banana " * 80,
                                   "The weather is nice today."])
def test_condenser_falls_back_on_bad_rewrites(reply: str) -> None:
    out = QueryCondenser(ScriptedLLM([reply or " "])).condense("What happens if it runs dry?", HISTORY)
    assert out.method == "fallback"
    assert out.query.startswith("What happens if it runs dry?") and "pump" in out.query


def test_condenser_does_not_rewrite_a_self_contained_question() -> None:
    q = "How often are the turbine blades inspected?"
    llm = ScriptedLLM(["To prime the pump, fill the casing."])
    out = QueryCondenser(llm).condense(q, HISTORY)
    assert (out.query, out.method) == (q, "none") and llm.calls == [], "a new question is searched as asked"


@pytest.mark.parametrize("reply, problem", [
    ("Use the add_to_folder() function from the os module.", "off-topic"),
    ("If it runs dry, the seal of the pump overheats within seconds.", "not a question"),
    ("It runs dry. Then the seal overheats within seconds?", "more than one sentence"),
    ("What does `pump.run(dry=True)` do?", "contains code"),
    ("What happens if the quantum flux capacitor of the pump runs dry?", "adds words"),
    ("What happens?", "drops the question's words"),
])
def test_condenser_rejects_answers_and_inventions(reply: str, problem: str) -> None:
    out = QueryCondenser(ScriptedLLM([reply])).condense("What happens if it runs dry?", HISTORY)
    assert out.method == "fallback" and problem in out.problem, out
    assert out.query.startswith("What happens if it runs dry?") and "pump" in out.query


def test_condenser_adds_history_terms_when_rewrite_resolves_nothing() -> None:
    out = QueryCondenser(ScriptedLLM(["What happens if it runs dry?"])).condense("What happens if it runs dry?",
                                                                                 HISTORY)
    assert out.method == "llm+terms" and "centrifugal" in out.search and "pump" in out.search
    # shown as a question, never as a bag of words
    assert out.query == "What happens if it runs dry? (after: How do I prime the centrifugal pump?)"


def test_no_history_means_no_condensation_call() -> None:
    llm = ScriptedLLM(["unused"])
    out = QueryCondenser(llm).condense("How do I prime the pump?", [])
    assert (out.query, out.method) == ("How do I prime the pump?", "none") and llm.calls == []


# -- chat session ---------------------------------------------------------------------------------

def test_chat_session_condenses_follow_up_and_remembers(retriever: Retriever) -> None:
    llm = scripted("What happens if the centrifugal pump runs dry?")
    chat = ChatSession(make_answerer(retriever, llm), memory="window", window=1)
    first = chat.ask("How do I prime the centrifugal pump?")
    assert first.standalone_query == "How do I prime the centrifugal pump?"
    follow = chat.ask("What happens if it runs dry?")
    assert follow.standalone_query == "What happens if the centrifugal pump runs dry?"
    assert follow.diagnostics.rewrite_method == "llm"
    assert [m["content"] for m in chat.memory.messages()] == ["What happens if it runs dry?", follow.text]
    chat.reset()
    assert chat.memory.messages() == []


def test_condensation_can_be_disabled(retriever: Retriever) -> None:
    llm = scripted("SHOULD NOT BE USED")
    chat = ChatSession(make_answerer(retriever, llm, condense=False))
    chat.ask("How do I prime the centrifugal pump?")
    follow = chat.ask("What happens if it runs dry?")
    assert follow.standalone_query == "What happens if it runs dry?"
    assert not any("Rewritten question" in call[-1]["content"] for call in llm.calls)


def test_summary_memory_in_a_session(retriever: Retriever) -> None:
    llm = scripted("What happens if the centrifugal pump runs dry?")
    chat = ChatSession(make_answerer(retriever, llm), memory="summary", llm=llm)
    chat.ask("How do I prime the centrifugal pump?")
    assert chat.memory.summary == "The user asked how to prime the centrifugal pump."


def test_streaming_session_stores_turn_after_stream(retriever: Retriever) -> None:
    chat = ChatSession(make_answerer(retriever, scripted("x")), memory="buffer")
    stream = chat.stream("How do I prime the centrifugal pump?")
    assert chat.memory.messages() == []
    text = "".join(stream)
    assert text == "Open the bleed valve [1]." and stream.answer.citations
    assert len(chat.memory.messages()) == 2


@pytest.mark.slow
def test_real_model_follow_up_is_condensed_with_history(retriever: Retriever) -> None:
    with LlamaCppLLM("smollm2-135m", seed=0) as llm:
        answer = make_answerer(retriever, llm, max_tokens=48).answer("What happens if it runs dry?", HISTORY)
    assert answer.diagnostics.rewrite_method in ("llm", "llm+terms", "fallback")
    assert "pump" in answer.standalone_query.lower()
    assert answer.standalone_query != "What happens if it runs dry?"
    given = [Path(c.chunk.source).name for c in (answer.sources or answer.citations)]
    assert given and given[0] == "pump.md"


# -- LangChain Runnable -----------------------------------------------------------------------------

def test_runnable_takes_question_and_history(retriever: Retriever) -> None:
    llm = scripted("What happens if the centrifugal pump runs dry?")
    chain = answer_runnable(make_answerer(retriever, llm))
    assert isinstance(chain, Runnable)
    answer = chain.invoke({"question": "What happens if it runs dry?", "history": [("human", HISTORY[0]["content"]),
                                                                                  ("ai", HISTORY[1]["content"])]})
    assert isinstance(answer, Answer)
    assert answer.standalone_query == "What happens if the centrifugal pump runs dry?"
    assert chain.invoke({"question": "How do I prime the centrifugal pump?"}).citations
    with pytest.raises(ValueError, match="'question'"):
        chain.invoke({"q": "missing"})
    with pytest.raises(ValueError, match="history role"):
        normalize_history([("robot", "hi")])


# -- CLI ------------------------------------------------------------------------------------------

def parser() -> argparse.ArgumentParser:
    return build_parser()


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_defaults_and_bad_flags(capsys: pytest.CaptureFixture[str]) -> None:
    args = parser().parse_args(["ask", "q"])
    assert (args.index, args.mode, args.k, args.model, args.n_gpu_layers, args.extractive) == \
        ("default", "hybrid", 5, "qwen2.5-coder-1.5b", "auto", False)
    for bad in (["ask", "q", "--mode", "fuzzy"], ["ask", "q", "-k", "0"], ["ask", "q", "--n-gpu-layers", "gpu"],
                ["chat", "--memory", "forever"], ["ask", "q", "--temperature", "9"]):
        with pytest.raises(SystemExit) as exc:
            parser().parse_args(bad)
        assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_cli_unknown_index_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["ask", "q", "--index", "nope", "--index-dir", str(tmp_path), "--extractive"], capsys)
    assert code == 2 and out == ""
    assert err.startswith("error: no index named 'nope'") and err.count("\n") == 1


@pytest.mark.model  # the CLI loads MiniLM itself
def test_cli_missing_model_is_one_clear_line(index_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["ask", "q", "--index", "docs", "--index-dir", str(index_root), "--model", "gpt-9"], capsys)
    assert code == 2 and "unknown model 'gpt-9'" in err and "smollm2-135m" in err and err.count("\n") == 1


@pytest.mark.model  # the CLI loads MiniLM itself
def test_cli_ask_extractive(index_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["ask", "How do I prime the pump?", "--index", "docs", "--index-dir", str(index_root),
                        "--extractive"], capsys)
    assert code == 0 and "bleed valve" in out
    assert "Sources:\n  [1] " in out and "pump.md" in out.split("Sources:")[1]


@pytest.mark.model  # the CLI loads MiniLM itself
def test_cli_chat_repl(index_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = parser().parse_args(["chat", "--index", "docs", "--index-dir", str(index_root), "--extractive"])
    stdin = io.StringIO("How do I prime the centrifugal pump?\nWhat happens if it runs dry?\n/reset\n"
                        "What is the capital of France?\n/quit\nnever read\n")
    assert cli_answer.cmd_chat(args, stdin=stdin) == 0
    out = capsys.readouterr().out
    assert "(searching for: What happens if it runs dry? (after: How do I prime the centrifugal pump?))" in out
    assert "(memory cleared)" in out and NOT_FOUND in out and "never read" not in out


@pytest.mark.slow
def test_cli_ask_streams_real_model(index_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["ask", "How do I prime the pump?", "--index", "docs", "--index-dir", str(index_root),
                        "--max-tokens", "48"], capsys)
    assert code == 0 and "Sources:" in out and "pump.md" in out


def test_cli_models_list_and_offline_pull(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["models", "list", "--models-dir", str(tmp_path)], capsys)
    assert code == 0 and "smollm2-135m" in out and "packaged" in out and "not downloaded" in out
    code, out, err = run(["models", "pull", "phi-3-mini", "--models-dir", str(tmp_path)], capsys)
    assert code == 2 and "--model /path/to/Phi-3-mini-4k-instruct-q4.gguf" in err
    code, _, err = run(["models", "pull", "nope", "--models-dir", str(tmp_path)], capsys)
    assert code == 2 and "registry names are" in err
