"""The answer benchmark (rag_eval.qa): judging, dataset checks, the unanswerable setting, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag_eval.qa import (QAQuestion, QARow, content_recall, content_tokens, judge, load_qa, normalize_answer, select, summarize,
                         strip_references, token_f1, without_documents)

DOCS = {
    "101": "Pump manual\n\nTo prime the centrifugal pump, open the bleed valve and fill the casing with water. "
           "Never run the pump dry: the mechanical seal overheats within seconds.",
    "102": "Turbine guide\n\nThe turbine blades are inspected every 500 operating hours. Cracked blades are "
           "replaced, never repaired.",
    "103": "Boiler notes\n\nThe boiler pressure must stay below 12 bar. The safety valve opens at 13 bar.",
}


def write_dataset(root: Path, questions: list[dict]) -> Path:
    (root / "documents").mkdir(parents=True)
    for doc_id, text in DOCS.items():
        (root / "documents" / f"{doc_id}.txt").write_text(text, encoding="utf-8")
    with open(root / "questions.jsonl", "w", encoding="utf-8") as fh:
        for q in questions:
            fh.write(json.dumps(q) + "\n")
    return root


def question(qid: str, text: str, doc_id: str, answer: str, split: str = "test") -> dict:
    return {"id": qid, "question": text, "answers": [answer], "doc_id": doc_id,
            "answer_start": DOCS[doc_id].index(answer), "split": split}


QUESTIONS = [
    question("1", "How often are the turbine blades inspected?", "102", "every 500 operating hours"),
    question("2", "How do I prime the centrifugal pump?", "101", "open the bleed valve and fill the casing with water"),
    question("3", "At what pressure does the safety valve open?", "103", "13 bar"),
    question("4", "Why should this never run dry?", "101", "the mechanical seal overheats within seconds", "train"),
]


# -- judging ----------------------------------------------------------------------------------

def test_normalisation_and_f1_follow_squad() -> None:
    assert normalize_answer(" The Valley of Death!  ") == "valley of death"
    assert token_f1("valley of death", "the valley of death") == 1.0
    assert token_f1("nothing alike", "valley of death") == 0.0


@pytest.mark.parametrize("answer, correct", [
    ("The blades are inspected every 500 operating hours [1].", True),       # contains the reference
    ("Inspection happens each 500 hours of operation.", True),               # 3 of 3 content words
    ("The blades are inspected regularly.", False),
    ("I could not find this in your documents.", False),
])
def test_judge_is_recall_of_the_reference(answer: str, correct: bool) -> None:
    assert judge(answer, "every 500 operating hours").correct is correct


def test_content_recall_reads_ranges_hyphens_and_number_words() -> None:
    # COVID-QA 562: a right answer that SQuAD's punctuation deletion ("11-13" -> "1113") judged wrong
    reference = "median time until death is 11-13 days (range 5-27 days) among"
    answer = "The median time until death in MERS-COV is 11 to 13 days, ranging from five to 27 days."
    assert judge(answer, reference).correct
    assert content_recall("TNF-α, IL-1β, and IL-6", "(TNF)-α, (IL)-1β, and IL-6") == 1.0
    assert content_recall("about 1113 days", "11-13 days") < 0.5  # the digits must really be there
    assert not judge("The median time is 20 days.", reference).correct


def test_judge_ignores_literature_citations_and_inflection() -> None:
    # COVID-QA 3963: the answer is the reference minus its "(Kim et al., 2008; ...)" parenthetical
    reference = ("when not all exacerbation events occurred during the viral infection but may also occur well after "
                 "viral clearance (Kim et al., 2008; Stolz et al., 2019) in particular the late onset of a sensitized "
                 "state (Pattemore et al.")
    answer = ("This is especially true when not all exacerbation events occurred during the viral infection but may "
              "also occur well after viral clearance.")
    assert content_recall(answer, reference) < 0.5 <= judge(answer, reference).recall
    assert judge("Respiratory viral infections.", "Respiratory virus infection").correct  # COVID-QA 3854
    assert content_tokens(strip_references("(Becker, 2006) infections")) == content_tokens("infection")
    # content in parentheses stays: a year that is the answer, a range
    assert judge("It emerged in China.", "emerged in China (in 2002)").recall < 1.0
    assert judge("11 days", "11 days (range 5-27 days)").recall < 1.0
    assert not judge("Bacterial infections were linked.", "reports linking respiratory viruses (Pattemore et al., "
                     "1992) only start to emerge in the late 1950s").correct


def test_content_recall_ignores_stop_words_and_citations() -> None:
    assert content_recall("open valve [2]", "open the valve") == 1.0
    assert judge("open [1] the valve", "open the valve").contains is True  # markers are removed first
    assert judge("first open, then the valve", "open the valve").contains is False
    assert judge("first open, then the valve", "open the valve").correct is True  # recall covers it


# -- dataset ----------------------------------------------------------------------------------

def test_load_checks_offsets_and_flags_context_dependent_questions(tmp_path: Path) -> None:
    ds = load_qa(write_dataset(tmp_path / "qa", QUESTIONS))
    assert len(ds.documents) == 3 and len(ds.questions) == 4
    assert [q.qid for q in select(ds, "test")] == ["1", "2", "3"]
    assert [q.qid for q in select(ds, "all", limit=2)] == ["1", "2"]
    assert [q.context_dependent for q in ds.questions] == [False, False, False, True]
    with pytest.raises(ValueError, match="unknown split 'validation'.*test, train"):
        select(ds, "validation")


def test_load_names_the_question_whose_offset_is_wrong(tmp_path: Path) -> None:
    bad = dict(QUESTIONS[0], answer_start=3)
    with pytest.raises(ValueError, match=r"questions.jsonl:1: question 1's answer is not at offset 3 of 102.txt"):
        load_qa(write_dataset(tmp_path / "qa", [bad]))


def test_load_rejects_a_folder_without_the_layout(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="needs questions.jsonl and documents/"):
        load_qa(tmp_path)


# -- summary ----------------------------------------------------------------------------------

def row(setting: str, declined: bool, correct: bool, cited: bool = False, context: bool = False) -> QARow:
    return QARow(qid="q", setting=setting, question="q?", reference="r", answer="a", declined=declined,
                 correct=correct, recall=1.0 if correct else 0.0, f1=0.5, cosine=None, cited_gold=cited,
                 retrieved_gold=cited, scaffolding=False, context_dependent=context, citations=(), ttft_s=1.0,
                 answer_s=2.0)


def test_summary_counts_declines_inventions_and_answers_found_elsewhere() -> None:
    rows = [row("answerable", False, True, cited=True), row("answerable", True, False),
            row("answerable", False, False, context=True),
            row("unanswerable", True, False), row("unanswerable", False, False), row("unanswerable", False, True)]
    s = summarize(rows, "m")
    assert (s["n"], s["correct"], s["cited_gold"], s["declined_answerable"]) == (3, 0.3333, 0.3333, 0.3333)
    assert (s["declined_unanswerable"], s["invented_unanswerable"], s["answered_elsewhere_unanswerable"]) == \
        (0.3333, 0.3333, 0.3333)
    assert s["context_dependent"] == 1 and s["standalone"]["n"] == 2 and s["standalone"]["correct"] == 0.5


def test_without_documents_drops_only_the_gold_documents(tmp_path: Path, embedder) -> None:
    from rag_eval.retrieval import EvalSettings, build_index

    ds = load_qa(write_dataset(tmp_path / "qa", QUESTIONS))
    full = build_index(ds.corpus(), embedder, EvalSettings(), cache_dir=tmp_path / "cache")
    without = without_documents(full, {"102"}, "no-turbine")
    sources = {c.source for c in without.chunks}
    assert sources == {c.source for c in full.chunks} - {"qa:102"} and len(without.documents) == 2
    assert without.embeddings.shape[0] == len(without.chunks) < len(full.chunks)


# -- end to end through the CLI (extractive: real embedder and index, no LLM) ---------------------

@pytest.mark.model  # the CLI loads MiniLM itself
def test_cli_runs_the_benchmark_and_reports_both_settings(tmp_path: Path, monkeypatch, capsys) -> None:
    from rag.cli.main import main

    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path / "cache"))
    root = write_dataset(tmp_path / "qa", QUESTIONS)
    code = main(["eval", "answers", "--dataset", "qa", "--path", str(root), "--split", "test", "--limit", "3",
                 "--extractive", "--format", "json", "--out", str(tmp_path / "out"), "-q"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["model"] == "extractive" and out["n"] == 3 and out["n_unanswerable"] == 3
    assert out["correct"] >= 2 / 3 and out["cited_gold"] >= 2 / 3, out
    assert out["declined_unanswerable"] + out["invented_unanswerable"] + out["answered_elsewhere_unanswerable"] \
        == pytest.approx(1.0, abs=1e-3)
    rows = [json.loads(line) for line in (tmp_path / "out" / "rows.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and {r["setting"] for r in rows} == {"answerable", "unanswerable"}
    unanswerable = [r for r in rows if r["setting"] == "unanswerable"]
    assert all("102[" not in c for r in unanswerable if r["qid"] == "1" for c in r["citations"]), \
        "the gold document is gone in the unanswerable setting"
    assert "Sample of judged rows" in (tmp_path / "out" / "report.md").read_text()
    assert not (tmp_path / "out" / "rows.partial.jsonl").exists(), "the partial file is replaced by rows.jsonl"
    assert "ragas" not in out and all(r["ragas"] == [] for r in rows), "Ragas is an opt-in column"


@pytest.mark.model  # the CLI loads MiniLM itself
def test_ragas_is_an_optional_extra_column(tmp_path: Path, monkeypatch, capsys) -> None:
    from rag.cli.main import main
    from rag_eval.qa import read_rows

    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path / "cache"))
    root = write_dataset(tmp_path / "qa", QUESTIONS)
    code = main(["eval", "answers", "--dataset", "qa", "--path", str(root), "--split", "test", "--limit", "3",
                 "--extractive", "--ragas", "--judge", "none", "--metrics", "semantic_similarity,id_context_recall,"
                 "faithfulness", "--format", "json", "--out", str(tmp_path / "out"), "-q"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and set(out["ragas"]) == {"semantic_similarity", "id_context_recall", "faithfulness"}
    answered = 3 - round(out["declined_answerable"] * 3)
    recall = out["ragas"]["id_context_recall"]
    assert recall["answered"] == answered and recall["scored"] == answered and recall["mean"] >= 2 / 3, out["ragas"]
    assert 0 < out["ragas"]["semantic_similarity"]["mean"] <= 1
    faith = out["ragas"]["faithfulness"]
    assert faith["scored"] == 0 and faith["mean"] is None, "no judge: missing, not zero"
    assert out["correct"] >= 2 / 3, "the verdict is still the judge of record"
    rows = read_rows(tmp_path / "out" / "rows.jsonl")
    assert all(not r.ragas for r in rows if r.setting == "unanswerable" or r.declined)
    assert all(dict(r.ragas)["faithfulness"] is None for r in rows if r.ragas)
    assert "ragas id_context_recall" in (tmp_path / "out" / "report.md").read_text()


def test_rows_round_trip_and_the_answer_check_is_applied_offline(tmp_path: Path) -> None:
    from dataclasses import replace

    from rag_eval.qa import read_rows, with_answer_check, write_rows

    rows = [replace(row("answerable", False, True, cited=True), answer_check=1.4),
            replace(row("answerable", False, True, cited=True), answer_check=0.6),
            replace(row("unanswerable", False, False), answer_check=0.2),
            replace(row("unanswerable", True, False), answer_check=None)]
    write_rows(rows, tmp_path / "rows.jsonl")
    back = read_rows(tmp_path / "rows.jsonl")
    assert back == rows
    s0, s1 = summarize(back, "m"), summarize(with_answer_check(back, 1.0), "m")
    assert (s0["correct"], s0["declined_unanswerable"]) == (1.0, 0.5)
    assert (s1["correct"], s1["cited_gold"], s1["declined_answerable"], s1["declined_unanswerable"]) == \
        (0.5, 0.5, 0.5, 1.0)
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(ValueError, match="bad.jsonl:1: "):  # names the file and the line
        read_rows(tmp_path / "bad.jsonl")


def test_the_benchmark_keeps_rows_as_they_come(tmp_path: Path) -> None:
    from rag_eval.qa import run_qa_benchmark

    class Declines:
        def stream(self, question):  # type: ignore[no-untyped-def]
            from rag.answer.stream import single
            from rag.types import Answer

            return single(Answer(question=question, text="I could not find this in your documents.",
                                 grounded=False), question)

    qs = [QAQuestion(qid=str(i), question=f"q{i}?", answer="r", doc_id="d", answer_start=0, split="test")
          for i in range(3)]
    seen: list[str] = []
    rows = run_qa_benchmark(qs, Declines(), Declines(), on_row=lambda r: seen.append(f"{r.setting}:{r.qid}"))
    assert seen == [f"{r.setting}:{r.qid}" for r in rows] and len(seen) == 6


def test_question_dataclass_span() -> None:
    q = QAQuestion("1", "q?", "13 bar", "103", 10, "test")
    assert q.answer_end == 16 and not q.context_dependent


def test_a_qa_folder_is_a_retrieval_collection_where_each_question_judges_its_article(tmp_path: Path) -> None:
    from rag_eval.datasets import load_dataset

    root = write_dataset(tmp_path / "qa", QUESTIONS)
    ds = load_dataset("qa", root, split="test")
    assert ds.queries == {"1": QUESTIONS[0]["question"], "2": QUESTIONS[1]["question"], "3": QUESTIONS[2]["question"]}
    assert ds.qrels == {"1": {"102": 1}, "2": {"101": 1}, "3": {"103": 1}}
    assert [d.doc_id for d in ds.documents] == ["101", "102", "103"]
    assert set(load_dataset("qa", root, split="all").queries) == {"1", "2", "3", "4"}
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        load_dataset("qa", root, split="dev")
