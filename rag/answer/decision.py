"""Answer, answer "No", or decline: one decision over the evidence and the model's own judgement.

The relevance gate asks "is anything on topic?"; in a collection of related documents something
always is.  :class:`Decider` asks whether the *selected evidence* answers the question, with a
logistic model trained on COVID-QA's train split (answerable questions against the same questions
with their article removed; ``rag eval train decision``) over collection-agnostic signals, chosen
among:

* the evidence's own scores (:func:`rag.answer.evidence.question_features`): the best sentence's
  score, how far it stands out from the others (``best_share``), cosine and IDF coverage of the
  question, the best retrieved chunk's cosine;
* the generator's Y/N log-odds that the sources answer the question, calibrated against a
  content-free question (:class:`~rag.answer.gate.AnswerCheck`; Zhao et al., ICML 2021);
* a linear probe of the generator's last hidden state on that check prompt (unanswerability is
  linearly decodable from it: Slobodkin et al., "The Curious Case of Hallucinatory
  (Un)answerability", EMNLP 2023).

The shipped generator decision reads ``best_share`` and ``check`` only: COVID-QA's questions were
written looking at their article, so the levels of cosine, coverage and score (and a probe fitted
to them) learn "shares the article's words" and decline a question asked in other words.

Its threshold is chosen on the dev split.  The decision has three outcomes: the sources answer
it; a yes/no question whose premise the sources contradict (answered "No", citing the sentence
that says otherwise); or not in the documents.  A model without a trained decision file falls
back to the calibrated answer check alone (``Decision.rule`` says which rule decided).

Example:
    >>> is_yes_no("Is it true that hidden files are indexed?"), is_yes_no("How large can a file be?")
    (True, False)
    >>> is_yes_no("Is it a PDF or a Word file?")
    False
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from rag.answer.evidence import Evidence
from rag.answer.gate import BASELINE_QUESTION, NO, YES, AnswerCheck, check_messages, yes_log_odds
from rag.answer.linear import LinearModel, packaged
from rag.generation.prompting import with_question
from rag.types import Choice
from rag.text import WORD_RE, flatten

logger = logging.getLogger(__name__)

_AUXILIARIES = frozenset("is are was were am do does did can could will would should shall has have had may "
                         "might must isn't aren't wasn't weren't doesn't don't didn't can't couldn't won't "
                         "wouldn't shouldn't hasn't haven't".split())
_CHOICE = re.compile(r"\bor\b", re.I)
#: ends the verdict prompt's question; "Unknown" lets the model say the sources do not settle it
POLARITY_SUFFIX = ("\n\nAnswer with one word from the sources only: Yes, No, or Unknown if they do not say. "
                   "If a source says the opposite of the question, answer No.")
#: worked examples before the question: without them the 1.5B model said Yes to 24 of 28 claims its
#: evidence contradicted, with them to 19 (and still Yes to all 27 supported ones; docs/design.md#answers)
VERDICT_EXAMPLES = (
    ("[1] Doors are locked every night at 10 pm.", "Are the doors open at night?", "No"),
    ("[1] Members may bring one guest per visit.", "Can a member bring a guest?", "Yes"),
    ("[1] The pool is heated to 28 degrees.", "Is the gym open on Sundays?", "Unknown"),
    ("[1] Bikes must be left outside; they are not allowed in the building.",
     "Is it true that bikes can be brought inside?", "No"),
)
VERDICT_SYSTEM = "You check questions against sources. Reply with one word: Yes, No, or Unknown."
VERDICT_PASSAGES = 3
POLARITY = ("Yes", "No", "Unknown")


@dataclass(frozen=True)
class YesNoRule:
    """How a yes/no question's verdict is read from the model's Yes / No / Unknown log-probabilities.

    ``no``: answer "No" when log P(No) - log P(Yes) reaches it, for a question the decision lets
    through; ``yes``: answer "Yes" only when log P(Yes) - log P(No) reaches this, and between the two
    quote the settling sentence without either (:data:`UNSURE`: the 1.5B model leans to Yes, and a
    weak Yes over "hidden files are skipped" told the user the opposite of its source) (see
    :meth:`polarity`); ``unknown``: ...but decline it when log P(Unknown) beats both Yes and No
    by this much (the model says its sources do not settle it; None: never); ``contradiction``: a
    question the decision would decline is answered "No" (its premise contradicted) when log P(No)
    beats both Yes and Unknown by this much and the evidence covers at least ``coverage`` of the
    question; None: never.
    """

    no: float = 0.0
    contradiction: float | None = None
    coverage: float = 0.5
    unknown: float | None = None
    yes: float = 0.0

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> "YesNoRule | None":
        rule = meta.get("yes_no")
        if not isinstance(rule, Mapping):
            return None
        c, u = rule.get("contradiction"), rule.get("unknown")
        return cls(float(rule.get("no", 0.0)), None if c is None else float(c), float(rule.get("coverage", 0.5)),
                   None if u is None else float(u), float(rule.get("yes", 0.0)))

    def polarity(self, no_vs_yes: float) -> str:
        """What an answered yes/no question opens with, given log P(No) - log P(Yes): "No", "Yes", or
        :data:`UNSURE` between ``no`` and ``yes`` (pure).

        Example:
            >>> rule = YesNoRule(no=0.0, yes=1.0)
            >>> rule.polarity(0.0), rule.polarity(-1.2), rule.polarity(-0.6)
            ('No', 'Yes', 'unsure')
        """
        if no_vs_yes >= self.no:
            return "No"
        return "Yes" if -no_vs_yes >= self.yes else UNSURE


#: the rule a trained generator decision records: a contradicted premise when No beats Yes and Unknown,
#: not settled when Unknown beats both, and Yes said only 1.0 clear of No (on eval/claims.py's dev claims,
#: the margin that turned most wrong Yes verdicts into quotes; docs/benchmarks.md#yesno-verdicts)
DEFAULT_YES_NO = YesNoRule(no=0.0, contradiction=0.0, coverage=0.5, unknown=0.0, yes=1.0)
#: the polarity of a yes/no question whose verdict is too close to call: its evidence sentence is quoted
UNSURE = "unsure"


def verdict_messages(question: str, passages: Sequence[str]) -> list[dict[str, str]]:
    """The yes/no verdict's prompt: :data:`VERDICT_EXAMPLES` as earlier turns, then the first
    :data:`VERDICT_PASSAGES` evidence passages and the question, ending in :data:`POLARITY_SUFFIX` (pure)."""
    msgs = [{"role": "system", "content": VERDICT_SYSTEM}]
    for source, q, reply in VERDICT_EXAMPLES:
        msgs += [{"role": "user", "content": f"Sources:\n{source}\n\nQuestion: {q}{POLARITY_SUFFIX}"},
                 {"role": "assistant", "content": reply}]
    sources = "\n".join(f"[{i}] {flatten(t)}" for i, t in enumerate(passages[:VERDICT_PASSAGES], 1))
    msgs.append({"role": "user", "content": f"Sources:\n{sources}\n\nQuestion: {question}{POLARITY_SUFFIX}"})
    return msgs


def is_yes_no(question: str) -> bool:
    """A question answered by yes or no: it opens with an auxiliary verb ("Is", "Does", "Can" ...)
    and offers no alternatives ("... or ...")."""
    words = WORD_RE.findall(question)
    return bool(words) and words[0].lower() in _AUXILIARIES and not _CHOICE.search(question)


class Outcome(Choice):
    """What the decision says to do."""

    ANSWER = "answer"
    CONTRADICTED = "contradicted"
    NOT_FOUND = "not found"


@dataclass(frozen=True)
class Decision:
    """The outcome, the score it rests on (log-odds that the sources answer the question) and the
    threshold it was held against, which rule made it, every signal it read, and for a yes/no
    question the verdict."""

    outcome: Outcome
    score: float | None = None
    threshold: float | None = None
    rule: str = ""
    signals: Mapping[str, float] = field(default_factory=dict)
    #: "Yes" or "No" when a yes/no question is answered with the model's verdict, :data:`UNSURE` when
    #: the verdict is too close to call (the evidence is quoted); "" otherwise
    polarity: str = ""

    @property
    def answers(self) -> bool:
        return self.outcome is not Outcome.NOT_FOUND


def model_signals(llm: Any, messages: Sequence[Mapping[str, str]], probe: LinearModel | None = None
                  ) -> dict[str, float]:
    """What the generator itself says about the prompt (each skipped when the model cannot say).

    ``check``: Y/N log-odds that the sources answer the question, minus the same for
    :data:`~rag.answer.gate.BASELINE_QUESTION`; ``check_raw``: without that; ``probe``: the
    ``probe`` model on the last hidden states (:func:`probe_input`).  The baseline goes first and
    the answer prompt last, so that generation, which shares the answer prompt, follows in
    llama.cpp's prefix cache.
    """
    out: dict[str, float] = {}
    base = llm.first_token_logprobs(check_messages(with_question(messages, BASELINE_QUESTION)), (*YES, *NO))
    own = llm.first_token_logprobs(check_messages(messages), (*YES, *NO))
    if own is None:
        return {}
    out["check_raw"] = yes_log_odds(own)
    if base is not None:
        out["check"] = out["check_raw"] - yes_log_odds(base)
    if probe is not None:
        state = probe_input(llm, messages)
        if state is not None:
            out["probe"] = float(probe.scores(state.reshape(1, -1))[0])
    return {k: round(float(v), 4) for k, v in out.items()}


def probe_input(llm: Any, messages: Sequence[Mapping[str, str]]) -> Any | None:
    """What the probe reads: the last hidden state at the end of the check prompt and at the end of
    the answer prompt, side by side (None when the model cannot show them)."""
    import numpy as np  # noqa: PLC0415

    check = llm.hidden_state(check_messages(messages))
    answer = llm.hidden_state(messages) if check is not None else None
    return None if answer is None else np.concatenate([check, answer]).astype(np.float32)


class Decider:
    """Decide whether to answer from the evidence, and for a yes/no question, with which word.

    Args:
        model: the trained decision (a :class:`~rag.answer.linear.LinearModel` whose ``threshold``
            is the decision point); None: the ``check`` alone decides (today's rule).
        probe: the hidden-state probe the model reads (``probe`` among its features).
        check: the calibrated answer check, the rule without a trained model (None: answer
            whenever the evidence is not empty).
        yes_no: how a yes/no question's verdict is read (:class:`YesNoRule`); None: a yes/no
            question is answered like any other.
        threshold: overrides the model's own threshold (a user's setting).

    Example:
        >>> from rag.answer.evidence import Evidence
        >>> Decider(None, check=None).decide(Evidence(()), "q").outcome
        'not found'
    """

    def __init__(self, model: LinearModel | None = None, probe: LinearModel | None = None,
                 check: AnswerCheck | None = None, yes_no: YesNoRule | None = None, threshold: float | None = None,
                 note: str = "") -> None:
        if model is not None and model.threshold is None and threshold is None:
            raise ValueError(f"decision model {model.name!r} has no threshold; pass threshold=")
        if model is not None and "probe" in model.features and probe is None:
            raise ValueError(f"decision model {model.name!r} reads a hidden-state probe; pass probe=")
        self.model = model
        self.probe = probe
        self.check = check
        self.yes_no = yes_no
        self.threshold = threshold if threshold is not None else (model.threshold if model is not None else None)
        self.note = note

    @classmethod
    def for_model(cls, name: str | None, check: AnswerCheck | None = None, threshold: float | None = None
                  ) -> "Decider":
        """The packaged decision for chat model ``name`` (None: extractive answers, no model);
        without one, ``check`` decides and :attr:`rule` says so."""
        key = "extractive" if name is None else name
        model = packaged(f"decision-{key}")
        if model is None:
            return cls(None, check=check, note=f"no trained decision for {key}")
        probe = packaged(f"probe-{key}") if "probe" in model.features else None
        return cls(model, probe, check, yes_no=YesNoRule.from_meta(model.meta), threshold=threshold)

    @property
    def rule(self) -> str:
        if self.model is not None:
            return f"{self.model.name} (threshold {self.threshold:+.2f})"
        if self.check is not None:
            return f"answer check (threshold {self.check.min_log_odds:+.2f}; {self.note or 'no trained decision'})"
        return f"relevance gate only ({self.note or 'no answer check'})"

    @property
    def needs_model(self) -> bool:
        """Whether deciding asks the chat model (so the caller passes ``llm`` and the prompt)."""
        return self.check is not None or (self.model is not None and any(
            f in self.model.features for f in ("check", "check_raw", "probe")))

    def decide(self, evidence: Evidence | None, question: str, llm: Any = None,
               messages: Sequence[Mapping[str, str]] | None = None) -> Decision:
        """The :class:`Decision` for ``question`` over ``evidence`` (None: the prompt holds whole
        chunks, so only the check can decide) whose prompt is ``messages``."""
        if evidence is not None and not evidence:
            return Decision(Outcome.NOT_FOUND, rule="no evidence")
        signals: dict[str, float] = dict(evidence.features) if evidence is not None else {}
        asks = llm is not None and messages is not None
        if self.model is not None and evidence is not None:
            if asks and self.needs_model:
                signals.update(model_signals(llm, messages, self.probe))
            missing = [f for f in self.model.features if f not in signals]
            if missing:  # a model that cannot score (no log-probabilities) is not declined for it
                logger.warning("decision %s lacks %s; answering", self.model.name, missing)
                return Decision(Outcome.ANSWER, rule=f"{self.model.name}: cannot score ({', '.join(missing)})",
                                signals=signals)
            score, threshold = self.model.score(signals), float(self.threshold)  # type: ignore[arg-type]
        elif self.check is not None and asks:
            odds = self.check.log_odds(llm, messages)  # type: ignore[arg-type]
            if odds is None:
                return Decision(Outcome.ANSWER, rule=f"{self.rule}: the model cannot score", signals=signals)
            signals["check"] = round(odds, 4)
            score, threshold = odds, self.check.min_log_odds
        else:
            return Decision(Outcome.ANSWER, rule=self.rule, signals=signals)
        outcome = Outcome.ANSWER if score >= threshold else Outcome.NOT_FOUND
        polarity, rule = "", self.rule
        if self.yes_no is not None and asks and evidence is not None and is_yes_no(question):
            scored = outcome
            outcome, polarity = self._yes_no(outcome, self.yes_no, llm, question, evidence, signals)
            if outcome is not scored:  # the trace says why the score was overruled
                rule += "; yes/no verdict: " + ("the sources do not settle it" if polarity == "" else
                                                "the sources contradict its premise")
            elif polarity == UNSURE:
                rule += "; yes/no verdict: too close to call, the sentence is quoted"
        return Decision(outcome, round(score, 4), round(threshold, 4), rule, signals, polarity)

    @staticmethod
    def _yes_no(outcome: Outcome, rule: YesNoRule, llm: Any, question: str, evidence: Evidence,
                signals: dict[str, float]) -> tuple[Outcome, str]:
        """The verdict of a yes/no question from the model's Yes / No / Unknown (signals recorded)."""
        verdict = llm.first_token_logprobs(verdict_messages(question, [p.text for p in evidence.passages]), POLARITY)
        if verdict is None:
            return outcome, ""
        signals["no_vs_yes"] = round(verdict["No"] - verdict["Yes"], 4)
        signals["no_vs_unknown"] = round(verdict["No"] - verdict["Unknown"], 4)
        if outcome is Outcome.ANSWER:
            unsure = verdict["Unknown"] - max(verdict["Yes"], verdict["No"])
            if rule.unknown is not None and unsure >= rule.unknown:
                return Outcome.NOT_FOUND, ""
            return outcome, rule.polarity(signals["no_vs_yes"])
        if (rule.contradiction is not None and min(signals["no_vs_yes"], signals["no_vs_unknown"]) >= rule.contradiction
                and signals.get("max_coverage", 0.0) >= rule.coverage):
            return Outcome.CONTRADICTED, "No"
        return outcome, ""
