"""What a new user met, as regression tests with the real default model (packaged, offline).

Over the bundled samples and a generated three-page PDF, through the same builder as the app,
the CLI and the API: the README's own questions, a follow-up, questions asked in other words than
the page, and yes/no questions whose premise the documents contradict.  Each case names what went
wrong before.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

import pytest

from rag.answer.generative import repeats
from rag.answer.safety import SCAFFOLDING_RE
from rag.generation.models import DEFAULT_MODEL
from tests.pdfgen import write_pdf

pytestmark = pytest.mark.slow

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
GARDEN_PAGES = [
    "Greenfield Allotments: rules for plot holders\nChapter 1: Plots\nEvery plot is 50 square metres. Plots are "
    "given out in March.\nA plot holder keeps the paths next to the plot free of weeds.",
    "Chapter 2: Water\nWater comes from the taps at the main gate.\nHoses longer than 15 metres are not allowed.\n"
    "Sprinklers may only run before 8 in the morning.",
    "Chapter 3: Fees\nThe plot fee is 45 euros per season, payable in March.\nStudents pay half the fee.\n"
    "A key to the main gate costs a deposit of 10 euros.",
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, embedder: Any):  # type: ignore[no-untyped-def]
    from rag.index.store import IndexStore
    from rag.ingest.ingestor import Ingestor

    root = tmp_path_factory.mktemp("quality")
    store = IndexStore(root / "indexes")
    assert Ingestor("samples", store=store, embedder=embedder).ingest([SAMPLES]).ok
    garden = root / "garden"
    garden.mkdir()
    write_pdf(garden / "allotment-rules.pdf", GARDEN_PAGES)
    assert Ingestor("garden", store=store, embedder=embedder).ingest([garden]).ok
    return store


@pytest.fixture(scope="module")
def llm():  # type: ignore[no-untyped-def]
    from rag.generation.llm import LlamaCppLLM

    with LlamaCppLLM(DEFAULT_MODEL, seed=0) as model:
        yield model


def pipeline_for(store: Any, index: str, embedder: Any, llm: Any) -> Any:
    from rag.pipeline import PipelineConfig, build

    return build(PipelineConfig(index=index), store, embedder=embedder, llm=llm)


@pytest.fixture(scope="module")
def samples(store: Any, embedder: Any, llm: Any) -> Iterator[Any]:
    with pipeline_for(store, "samples", embedder, llm) as p:
        yield p


@pytest.fixture(scope="module")
def garden(store: Any, embedder: Any, llm: Any) -> Iterator[Any]:
    with pipeline_for(store, "garden", embedder, llm) as p:
        yield p


def cites(answer: Any, source: str, words: str) -> bool:
    """Whether a citation of ``answer`` points at ``source`` and at a sentence holding ``words``."""
    return any(source in c.chunk.source and words.lower() in " ".join(c.quote.split()).lower()
               for c in answer.citations)


def test_the_default_model_is_a_packaged_one_better_than_smollm2() -> None:
    from rag.generation.models import availability, get_spec

    spec = get_spec(DEFAULT_MODEL)
    assert spec.packaged and availability(spec)[0], availability(spec)
    assert DEFAULT_MODEL != "smollm2-135m", "chosen by the answer benchmark (docs/benchmarks.md)"


# -- the README's own questions ------------------------------------------------------------------

def test_what_happens_if_ingestion_is_interrupted(samples: Any) -> None:
    # before: "The hybrid ranking is not a single entity, but rather an ensemble ..." and no sources at all
    answer = samples.answerer.answer("What happens if ingestion is interrupted?")
    assert not answer.declined, answer.text
    assert re.search(r"lost|temporary|previous version|crash|renamed", answer.text, re.I), answer.text
    assert cites(answer, "faq.md", "temporary folder") or cites(answer, "faq.md", "nothing is lost"), answer.citations
    assert answer.diagnostics.decision == "answer" and answer.diagnostics.decision_score is not None


def test_the_file_size_limit_is_the_documented_one(samples: Any) -> None:
    # before: "1024 MB" (the samples say 100 MB)
    answer = samples.answerer.answer("How large can a file be?")
    assert "100 MB" in answer.text.replace("100MB", "100 MB") and "1024" not in answer.text, answer.text
    assert cites(answer, "faq.md", "100 MB")


def test_does_my_data_leave_the_computer(samples: Any) -> None:
    # before: the right answer followed by "## How does the search work? Question: ..."
    answer = samples.answerer.answer("Does my data leave the computer?")
    assert not answer.declined and SCAFFOLDING_RE.search(answer.text) is None, answer.text
    assert re.search(r"\b(no|local|locally|stays)\b", answer.text, re.I), answer.text
    assert answer.diagnostics.prompt_tokens < 400, "the prompt is the evidence, not five whole chunks"


# -- a follow-up -----------------------------------------------------------------------------------

def test_a_follow_up_is_searched_as_a_question_and_not_answered_with_the_last_answer(samples: Any) -> None:
    # before: "and how long does that take?" repeated the previous answer word for word, and showed
    # "Searched for: and how long does that take? happens ingestion interrupted"
    session = samples.chat()
    first = session.ask("What happens if ingestion is interrupted?")
    answer = session.ask("and how long does that take?")
    searched = answer.standalone_query
    assert "?" in searched and re.search(r"how long", searched, re.I), searched
    assert not searched.lower().endswith("happens ingestion interrupted"), "a question, not a bag of words"
    assert not repeats(answer.text, first.text), (first.text, answer.text)
    assert not re.search(r"\b\d+\s*(seconds?|minutes?|hours?|ms)\b", answer.text, re.I), answer.text


def test_a_new_question_after_a_turn_is_searched_as_asked(samples: Any) -> None:
    # before: "condensed" into an invented answer ("... add_to_folder() function from the os module") and searched
    session = samples.chat()
    session.ask("Does my data leave the computer?")
    question = "How do I add documents to an index?"
    answer = session.ask(question)
    assert answer.standalone_query == question and "add_to_folder" not in answer.text


# -- other words than the page, over a PDF ---------------------------------------------------------

def test_a_hose_too_long_for_the_rules_is_refused_from_its_page(garden: Any) -> None:
    # before: declined, although page 2 says "Hoses longer than 15 metres are not allowed."
    answer = garden.answerer.answer("Can I bring a 20 metre hose?")
    assert not answer.declined, (answer.text, answer.diagnostics.decision_score)
    assert re.match(r"\W*no\b", answer.text, re.I) or "not allowed" in answer.text.lower(), answer.text
    assert cites(answer, "allotment-rules.pdf", "15 metres")
    assert any(c.chunk.page == 2 for c in answer.citations)


def test_the_student_fee_question_is_answered_from_the_fee_page(garden: Any) -> None:
    answer = garden.answerer.answer("How much is the plot fee for a student?")
    assert not answer.declined, answer.text
    assert cites(answer, "allotment-rules.pdf", "half the fee") or cites(answer, "allotment-rules.pdf", "45 euros")
    assert all(c.chunk.page == 3 for c in answer.citations)


@pytest.mark.xfail(strict=False, reason="issue 25 (blocked on the 1.5B model): the 1.5B model reads the page but answers "
                   "'The plot fee for a student is 45 euros per season', not half of it")
def test_the_student_fee_is_half_of_the_plot_fee(garden: Any) -> None:
    # before: declined, although page 3 says "The plot fee is 45 euros ... Students pay half the fee."
    answer = garden.answerer.answer("How much is the plot fee for a student?")
    assert not answer.declined, answer.text
    assert re.search(r"22[.,]5|half", answer.text, re.I), answer.text
    assert cites(answer, "allotment-rules.pdf", "half the fee") or cites(answer, "allotment-rules.pdf", "45 euros")


# -- a premise the documents contradict --------------------------------------------------------------

PREMISES = [
    ("Is it true that hidden files are indexed?", "user-guide.md", "hidden files are skipped"),
    ("Are files over 100 MB indexed by default?", "faq.md", "100 MB are skipped"),
]


@pytest.mark.parametrize(("question", "source", "words"), PREMISES)
def test_a_premise_the_samples_contradict_is_answered_with_the_sentence_that_settles_it(
        samples: Any, question: str, source: str, words: str) -> None:
    # before: "I could not find this in your documents", while the cited passage says otherwise
    answer = samples.answerer.answer(question)
    assert not answer.declined and answer.diagnostics.decision == "answer", answer.text
    # the verdict and its sentence, or the sentence alone when the verdict is too close to call
    assert re.fullmatch(r"((Yes|No): )?[^\[\]]+ \[\d+\][.!]", answer.text), answer.text
    assert cites(answer, source, words), [(c.chunk.source, c.quote) for c in answer.citations]


def test_a_weak_yes_is_not_said_over_a_sentence_that_says_no(samples: Any) -> None:
    # before: "Yes: Folders are read recursively; hidden files are skipped [1]." (Yes by 0.6 in log-odds)
    answer = samples.answerer.answer("Are hidden files included?")
    assert not answer.declined, answer.text
    assert not re.match(r"\W*yes\b", answer.text, re.I), answer.text
    assert cites(answer, "user-guide.md", "hidden files are skipped")


@pytest.mark.xfail(strict=False, reason="issue 25 (blocked on the 1.5B model): the 1.5B model's verdict over 'hidden files are skipped' "
                   "is Yes by 1.5 in log-odds, so it is said; over '100 MB are skipped' Yes by 0.5, so the sentence "
                   "is quoted without a verdict. With worked examples it said No to 9 of 25 contradicted COVID-QA "
                   "dev claims (python eval/claims.py --split dev --verdicts)")
@pytest.mark.parametrize(("question", "source", "words"), PREMISES)
def test_a_premise_the_samples_contradict_is_answered_no(samples: Any, question: str, source: str,
                                                        words: str) -> None:
    answer = samples.answerer.answer(question)
    assert re.match(r"\W*no\b", answer.text, re.I), answer.text
    assert cites(answer, source, words), [(c.chunk.source, c.quote) for c in answer.citations]


def test_a_question_the_samples_do_not_answer_is_declined(samples: Any) -> None:
    answer = samples.answerer.answer("What is the price of a license?")
    assert answer.declined, answer.text
