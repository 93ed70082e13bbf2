"""The answer decision: the learned model, its fallback, the three outcomes, and what it records."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pytest

from rag.answer.decision import (POLARITY, POLARITY_SUFFIX, UNSURE, VERDICT_EXAMPLES, Decider, Decision, Outcome,
                                 YesNoRule, is_yes_no, model_signals, verdict_messages)
from rag.answer.evidence import Evidence, Passage
from rag.answer.gate import BASELINE_QUESTION, CHECK_SUFFIX, AnswerCheck
from rag.answer.linear import LinearModel, packaged
from rag.answer.strategies import CHECK_REASON, DECLINE_NOTES, VERDICT_REASON, decline_reason
from rag.generation.llm import ScriptedLLM
from rag.generation.prompting import EVIDENCE_SYSTEM_PROMPT, user_message
from rag.types import Chunk

CHUNK = Chunk("c", "Hidden files are skipped. Folders are read recursively.", "d", "guide.md", None, 0, 56, 0)
EVIDENCE = Evidence((Passage(1, CHUNK, 0, 25, 2.0, 0.5, "", 0.7),),
                    {"best_score": 2.0, "best_share": 0.8, "max_cos": 0.7, "max_coverage": 0.9, "top_dense": 0.6,
                     "max_coverage_window": 0.9, "top_cos": 0.7, "top_coverage": 0.9, "passages": 1.0})


def prompt(question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": EVIDENCE_SYSTEM_PROMPT},
            {"role": "user", "content": user_message(question, ["[1] guide.md\nHidden files are skipped."])}]


def scripted(check: float, baseline: float = 0.0, verdict: tuple[float, float, float] = (-0.1, -3.0, -3.0),
             hidden: Sequence[float] | None = None) -> ScriptedLLM:
    """Y/N log-odds ``check`` for the question, ``baseline`` for the content-free one; the yes/no
    verdict's log-probabilities of Yes, No and Unknown."""

    def logprobs(msgs: Sequence[Mapping[str, str]]) -> dict[str, float]:
        last = msgs[-1]["content"]
        if last.endswith(CHECK_SUFFIX):
            odds = baseline if BASELINE_QUESTION in last else check
            return {"Y": -np.log1p(np.exp(-odds)), "N": -np.log1p(np.exp(odds))}
        if last.endswith(POLARITY_SUFFIX):
            return dict(zip(POLARITY, verdict))
        return {"Yes": -0.1, "No": -3.0, "I": -5.0}

    return ScriptedLLM(["No, hidden files are skipped [1]."], logprobs=logprobs,
                       hidden=(lambda _m: hidden) if hidden is not None else None)


def decision_model(**kw: Any) -> LinearModel:
    return LinearModel("decision-test", ("best_score", "check"), coef=(1.0, 1.0), threshold=kw.pop("threshold", 2.5),
                       **kw)


def test_yes_no_questions_are_recognised() -> None:
    assert is_yes_no("Are hidden files indexed?") and is_yes_no("Does it work with Word files?")
    assert not is_yes_no("Which kinds of files can I add?") and not is_yes_no("Is it a PDF or a Word file?")


def test_the_learned_decision_answers_above_its_threshold_and_records_why() -> None:
    decider = Decider(decision_model())
    yes = decider.decide(EVIDENCE, "Are hidden files skipped?", scripted(1.5, 0.5), prompt("Are hidden files skipped?"))
    assert yes.outcome is Outcome.ANSWER and yes.score == pytest.approx(3.0, abs=1e-3)  # 2.0 + (1.5 - 0.5)
    assert yes.threshold == 2.5 and "decision-test" in yes.rule and yes.signals["check"] == pytest.approx(1.0)
    no = decider.decide(EVIDENCE, "What is the licence price?", scripted(-1.0), prompt("What is the licence price?"))
    assert no.outcome is Outcome.NOT_FOUND and no.score == pytest.approx(1.0, abs=1e-3)


def test_a_users_threshold_overrides_the_models() -> None:
    decider = Decider(decision_model(), threshold=3.5)
    assert decider.decide(EVIDENCE, "q?", scripted(1.5, 0.5), prompt("q?")).outcome is Outcome.NOT_FOUND


def test_a_yes_no_question_gets_the_models_verdict_and_a_contradicted_premise_a_no() -> None:
    rule = YesNoRule(no=0.0, contradiction=1.0)
    decider = Decider(decision_model(), yes_no=rule)
    q = "Is it true that hidden files are indexed?"
    contradicted = decider.decide(EVIDENCE, q, scripted(-1.0, 0.0, verdict=(-3.0, -0.2, -2.5)), prompt(q))
    assert contradicted.outcome is Outcome.CONTRADICTED and contradicted.polarity == "No" and contradicted.answers
    assert contradicted.signals["no_vs_yes"] == pytest.approx(2.8)
    assert contradicted.rule.endswith("yes/no verdict: the sources contradict its premise"), contradicted.rule
    unsure = decider.decide(EVIDENCE, q, scripted(-1.0, 0.0, verdict=(-3.0, -0.8, -0.6)), prompt(q))
    assert unsure.outcome is Outcome.NOT_FOUND and not unsure.polarity, "Unknown beats No: not settled"
    supported = decider.decide(EVIDENCE, "Are hidden files skipped?", scripted(1.5, 0.5, verdict=(-0.1, -3.0, -3.0)),
                               prompt("Are hidden files skipped?"))
    assert supported.outcome is Outcome.ANSWER and supported.polarity == "Yes"
    unsettled = decider.decide(EVIDENCE, "Are hidden files skipped?",
                               scripted(1.5, 0.5, verdict=(-1.5, -3.0, -0.4)), prompt("Are hidden files skipped?"))
    assert unsettled.outcome is Outcome.ANSWER and unsettled.polarity == "Yes", "unknown=None: never declined for it"
    strict = Decider(decision_model(), yes_no=YesNoRule(no=0.0, contradiction=1.0, unknown=0.0))
    unsettled = strict.decide(EVIDENCE, "Are hidden files skipped?",
                              scripted(1.5, 0.5, verdict=(-1.5, -3.0, -0.4)), prompt("Are hidden files skipped?"))
    assert unsettled.outcome is Outcome.NOT_FOUND and not unsettled.polarity, "Unknown beats Yes and No: declined"
    assert unsettled.rule.endswith("yes/no verdict: the sources do not settle it"), unsettled.rule
    # the user is told which of the two declined it: the verdict (its score passed) or the score
    assert decline_reason(unsettled) == VERDICT_REASON and decline_reason(unsure) == CHECK_REASON
    assert VERDICT_REASON in DECLINE_NOTES and CHECK_REASON in DECLINE_NOTES
    wh = decider.decide(EVIDENCE, "Which files are indexed?", scripted(-1.0, 0.0, verdict=(-3.0, -0.1, -3.0)),
                        prompt("Which files are indexed?"))
    assert wh.outcome is Outcome.NOT_FOUND and not wh.polarity, "only a yes/no question is answered No"
    assert YesNoRule.from_meta({"yes_no": {"no": 0.5, "contradiction": 1.5}}) == YesNoRule(0.5, 1.5)
    assert YesNoRule.from_meta({"yes_no": {"unknown": 0.0}}) == YesNoRule(unknown=0.0)
    assert YesNoRule.from_meta({}) is None


def test_a_yes_too_close_to_no_is_not_said_and_the_sentence_is_quoted() -> None:
    decider = Decider(decision_model(), yes_no=YesNoRule(no=0.0, yes=1.0))
    q = "Are hidden files included?"

    def verdict(yes: float, no: float) -> Decision:
        return decider.decide(EVIDENCE, q, scripted(1.5, 0.5, verdict=(yes, no, -5.0)), prompt(q))

    weak = verdict(-0.5, -1.1)  # Yes by 0.6: under the margin
    assert weak.outcome is Outcome.ANSWER and weak.polarity == UNSURE
    assert weak.rule.endswith("too close to call, the sentence is quoted"), weak.rule
    assert verdict(-0.2, -1.3).polarity == "Yes"  # by 1.1
    assert verdict(-0.9, -0.9).polarity == "No", "No is said as soon as it ties Yes: the model leans the other way"
    assert Decider(decision_model(), yes_no=YesNoRule(no=0.0)).decide(
        EVIDENCE, q, scripted(1.5, 0.5, verdict=(-0.5, -1.1, -5.0)), prompt(q)).polarity == "Yes", "yes=0: as before"
    assert YesNoRule.from_meta({"yes_no": {"yes": 1.0}}) == YesNoRule(yes=1.0)


def test_the_verdict_prompt_is_worked_examples_then_the_best_passages_and_the_question() -> None:
    msgs = verdict_messages("Are hidden files indexed?", ["Hidden files\nare skipped.", "Two", "Three", "Four"])
    assert [m["role"] for m in msgs] == ["system", *["user", "assistant"] * len(VERDICT_EXAMPLES), "user"]
    assert {m["content"] for m in msgs if m["role"] == "assistant"} == set(POLARITY)
    last = msgs[-1]["content"]
    assert last.endswith(POLARITY_SUFFIX) and "Question: Are hidden files indexed?" in last
    assert "[1] Hidden files are skipped." in last and "[3] Three" in last and "Four" not in last


def test_the_probe_reads_the_hidden_state() -> None:
    # the probe reads the check prompt's and the answer prompt's last hidden states side by side
    probe = LinearModel("probe-test", ("h0", "h1", "h2", "h3"), coef=(2.0, -1.0, 0.0, 0.0))
    model = LinearModel("decision-test", ("probe",), coef=(1.0,), threshold=0.0)
    decider = Decider(model, probe)
    good = decider.decide(EVIDENCE, "q?", scripted(0.0, hidden=[1.0, 0.5]), prompt("q?"))
    bad = decider.decide(EVIDENCE, "q?", scripted(0.0, hidden=[0.0, 1.0]), prompt("q?"))
    assert good.signals["probe"] == pytest.approx(1.5) and good.outcome is Outcome.ANSWER
    assert bad.outcome is Outcome.NOT_FOUND
    with pytest.raises(ValueError, match="probe"):
        Decider(model)


def test_a_model_that_cannot_score_is_not_declined_for_it() -> None:
    llm = ScriptedLLM(["answer"])  # no log-probabilities: first_token_logprobs returns None
    assert model_signals(llm, prompt("q?")) == {}
    d = Decider(decision_model()).decide(EVIDENCE, "q?", llm, prompt("q?"))
    assert d.outcome is Outcome.ANSWER and "cannot score" in d.rule


def test_without_a_trained_decision_the_calibrated_check_decides_and_says_so() -> None:
    decider = Decider.for_model("no-such-model", check=AnswerCheck(0.5))
    assert decider.model is None and "answer check" in decider.rule and "no trained decision" in decider.rule
    d = decider.decide(EVIDENCE, "q?", scripted(0.2), prompt("q?"))
    assert d.outcome is Outcome.NOT_FOUND and d.score == pytest.approx(0.2, abs=1e-3) and d.threshold == 0.5
    assert Decider.for_model("no-such-model").decide(EVIDENCE, "q?").outcome is Outcome.ANSWER


def test_empty_evidence_is_not_found() -> None:
    assert Decider(decision_model()).decide(Evidence(()), "q?").outcome is Outcome.NOT_FOUND


def test_the_packaged_decisions_load_with_their_probe_and_dev_numbers() -> None:
    from rag.generation.models import DEFAULT_MODEL

    for key in (DEFAULT_MODEL, "extractive"):
        model = packaged(f"decision-{key}")
        assert model is not None and model.threshold is not None, key
        assert model.meta["dev"]["declined_answerable"] <= 0.10 and "command" in model.meta
        decider = Decider.for_model(None if key == "extractive" else key)
        assert decider.model == model and ("probe" not in model.features or decider.probe is not None)
        assert (decider.yes_no is None) == (key == "extractive"), "a generator's decision reads its yes/no verdict"
