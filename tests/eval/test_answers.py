"""Answer evaluation with Ragas: non-LLM metrics, judge robustness (garbage, timeouts, concurrency,
OpenAI-compatible endpoint), reports, and `rag eval answers` end to end with the real default model."""

from __future__ import annotations

import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from rag_eval.answers import (GeneratedAnswer, QuestionSample, as_generator, dataset_doc_id, load_questions,
                          questions_from_dataset)
from rag_eval.answer_report import write_answer_report
from rag_eval.judges import LlamaCppJudge, OpenAICompatibleJudge, make_judge, schema_grammar
from rag_eval.scoring import ALL_METRICS, AnswerScorer, evaluate_answers, parse_answer_metrics

SAMPLE = QuestionSample("q1", "what is lift?", reference_ids=("d1", "d2", "d3", "d4"),
                        reference_contexts=("Lift is the force on a wing that acts upward.",))
ANSWER = GeneratedAnswer("Lift is the upward force on a wing [1].",
                         ("Lift is the force on a wing that acts upward.", "Drag resists motion."), ("d1", "d9"))


class FakeJudge:
    """A judge backend returning canned text; records the most calls in flight at once."""

    def __init__(self, reply: str = "not json at all", delay: float = 0.0) -> None:
        self.reply, self.delay = reply, delay
        self.active = self.max_active = self.calls = 0
        self._guard = threading.Lock()

    @property
    def name(self) -> str:
        return "fake"

    def complete(self, prompt: str, temperature: float = 0.0) -> str:
        with self._guard:
            self.active += 1
            self.calls += 1
            self.max_active = max(self.max_active, self.active)
        try:
            time.sleep(self.delay)
            return self.reply
        finally:
            with self._guard:
                self.active -= 1


def test_non_llm_metrics_without_a_judge() -> None:
    scores = AnswerScorer(judge=None).score(SAMPLE, ANSWER)
    assert set(scores) == set(ALL_METRICS)
    assert scores["id_context_precision"].value == pytest.approx(0.5)   # d1 of {d1, d9}
    assert scores["id_context_recall"].value == pytest.approx(0.25)     # d1 of 4 relevant
    assert scores["nonllm_context_recall"].value == pytest.approx(1.0)
    for m in ("faithfulness", "answer_relevancy", "context_precision", "context_recall"):
        assert scores[m].value is None and "no judge" in scores[m].reason
    assert scores["semantic_similarity"].value is None and "reference answer" in scores["semantic_similarity"].reason


def test_unparseable_judge_output_is_missing_with_a_reason_and_calls_are_serialised() -> None:
    judge = FakeJudge("I think the answer is good!", delay=0.01)
    scorer = AnswerScorer(judge=judge, metrics=("faithfulness", "context_precision", "answer_relevancy"),
                          timeout_s=30)
    scores = scorer.score(SAMPLE, ANSWER)
    for m, s in scores.items():
        assert s.value is None and s.failed, m
        assert s.reason, m
    assert judge.calls >= 3
    assert judge.max_active == 1  # ragas gathers the per-context calls; the lock serialises them


def test_a_slow_judge_times_out_instead_of_hanging() -> None:
    judge = FakeJudge('{"statements": []}', delay=2.0)
    scorer = AnswerScorer(judge=judge, metrics=("faithfulness",), timeout_s=0.5)
    t0 = time.monotonic()
    s = scorer.score(SAMPLE, ANSWER)["faithfulness"]
    assert s.value is None and "timed out after 0.5s" in s.reason
    assert time.monotonic() - t0 < 10


def test_llamacpp_judge_stops_at_the_deadline_and_builds_a_grammar() -> None:
    from rag.generation.llm import ScriptedLLM

    prompt = 'Say it. as specified in JSON Schema:\n{"type": "object", "properties": {"verdict": {"type": "integer"}}}'
    assert schema_grammar(prompt) is not None and "verdict" in schema_grammar(prompt)
    judge = LlamaCppJudge(ScriptedLLM(['{"verdict": 1}']))
    assert judge.complete(prompt) == '{"verdict": 1}'
    with pytest.raises(ValueError, match="max_tokens must be a positive integer, got 0"):
        LlamaCppJudge(ScriptedLLM(["x"]), max_tokens=0)
    # a judge that answers in the expected schema gives real scores
    verdicts = ScriptedLLM(lambda msgs: '{"reason": "r", "verdict": 1}')
    cp = AnswerScorer(judge=LlamaCppJudge(verdicts), metrics=("context_precision",)).score(SAMPLE, ANSWER)
    assert cp["context_precision"].value == pytest.approx(1.0)


@pytest.fixture()
def chat_server() -> Iterator[str]:
    """A local OpenAI-compatible endpoint that answers every chat with a fixed verdict."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            assert body["messages"][0]["role"] == "user"
            reply = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                     "choices": [{"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": '{"reason": "r", "verdict": 0}'}}],
                     "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_openai_compatible_endpoint_judge(chat_server: str) -> None:
    judge = make_judge(chat_server, model="local-model")
    assert isinstance(judge, OpenAICompatibleJudge) and judge.name.endswith("(local-model)")
    s = AnswerScorer(judge=judge, metrics=("context_precision",), timeout_s=30).score(SAMPLE, ANSWER)
    assert s["context_precision"].value == pytest.approx(0.0)
    assert make_judge("none") is None


def test_validation_messages() -> None:
    with pytest.raises(ValueError, match="unknown answer metric"):
        AnswerScorer(metrics=("bleu",))
    with pytest.raises(ValueError, match="timeout_s must be > 0, got 0"):
        AnswerScorer(timeout_s=0)
    assert parse_answer_metrics("auto") == ALL_METRICS
    with pytest.raises(ValueError, match="context ids"):
        GeneratedAnswer("a", ("c1",), ("i1", "i2"))
    with pytest.raises(ValueError, match="non-empty"):
        QuestionSample("q", " ")


def test_evaluate_answers_records_generator_failures_and_writes_reports(tmp_path: Path) -> None:
    def gen(question: str) -> tuple[str, list[str], list[str]]:
        if "boom" in question:
            raise RuntimeError("model crashed")
        return ANSWER.text, list(ANSWER.contexts), list(ANSWER.context_ids)

    samples = [SAMPLE, QuestionSample("q2", "boom?", reference_ids=("d1",))]
    report = evaluate_answers(samples, as_generator(gen), AnswerScorer(judge=None))
    assert report.results[1].error.startswith("generation failed: RuntimeError: model crashed")
    agg = report.aggregate()
    assert agg["id_context_recall"]["scored"] == 1 and agg["id_context_recall"]["missing"] == 1
    assert agg["faithfulness"]["scored"] == 0 and agg["faithfulness"]["mean"] is None
    paths = write_answer_report(report, tmp_path / "out")
    rows = json.loads(paths["samples_json"].read_text())
    assert rows[0]["id_context_precision"] == pytest.approx(0.5) and rows[0]["faithfulness"] is None
    assert "no judge" in rows[0]["faithfulness_reason"]
    assert paths["chart"].read_bytes()[:4] == b"\x89PNG"
    assert "| id_context_recall | 0.250 | 1/2 | 1 |" in paths["summary_md"].read_text()
    assert agg["faithfulness"]["failed"] == 1 and report.n_fully_scored == 1


def test_question_sets(tmp_path: Path) -> None:
    from rag_eval.datasets import BenchDocument, Dataset

    ds = Dataset("toy", tuple(BenchDocument(f"d{i}", "", f"text {i}") for i in range(4)),
                 {"a": "q a", "b": "q b", "c": "q c"},
                 {"a": {"d1": 1, "d2": 3, "d3": 0}, "b": {"d0": 0}, "c": {"d3": 2}})
    qs = questions_from_dataset(ds)
    assert [q.qid for q in qs] == ["a", "c"]           # b has no relevant document
    assert qs[0].reference_ids == ("d2", "d1")        # most relevant first
    assert qs[0].reference_contexts == ("text 2", "text 1")
    assert len(questions_from_dataset(ds, limit=1, seed=3)) == 1
    assert dataset_doc_id("cranfield:12") == "12"
    p = tmp_path / "q.jsonl"
    p.write_text('{"question": "what?", "reference": "that", "reference_ids": ["a.txt"]}\n', encoding="utf-8")
    assert load_questions(p)[0].reference == "that"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_eval_answers_end_to_end_with_the_default_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from rag.cli.main import main
    from tests.eval.test_harness import write_beir

    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path / "cache"))
    root = write_beir(tmp_path / "tiny")
    out = tmp_path / "answers"
    code = main(["eval", "answers", "--dataset", "beir", "--path", str(root), "--limit", "2", "--contexts", "2",
                 "--max-tokens", "48", "--timeout", "60", "--judge-max-tokens", "128", "--out", str(out),
                 "--format", "json", "-q"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["samples"] == 2 and 0 <= summary["fully_scored"] <= 2 and summary["judge"].startswith("llama.cpp:smollm2")
    assert set(summary["metrics"]) == set(ALL_METRICS)
    for name, agg in summary["metrics"].items():
        assert agg["scored"] + agg["missing"] == 2 and agg["failed"] <= agg["missing"], name
        if agg["mean"] is not None:
            assert 0.0 <= agg["mean"] <= 1.0 + 1e-9, name
    assert summary["metrics"]["id_context_recall"]["scored"] == 2   # qrels-based: always computable
    rows = json.loads((out / "samples.json").read_text())
    for row in rows:
        assert row["answer"]
        for m in ALL_METRICS:
            value = row[m]
            assert (value is None and row[f"{m}_reason"]) or (0.0 <= value <= 1.0 + 1e-9 and not math.isnan(value))
    assert (out / "scores.png").exists() and (out / "summary.md").exists() and (out / "samples.csv").exists()
