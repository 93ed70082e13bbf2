"""Evidence first: sentences with their offsets, the ranker, the budget, citations that point at sentences."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rag.answer.evidence import (FALLBACK_RANKER, SENTENCE_FEATURES, EvidenceSelector, candidate_sentences, coverage,
                                 format_passage)
from rag.answer.linear import LinearModel, packaged
from rag.index.store import Index
from rag.retrieval.retriever import Retriever
from rag.text import flatten, sentence_spans, split_sentences
from rag.types import Chunk, Citation
from tests.conftest import build_index

FAQ = ("# Frequently asked questions\n\n## What happens if ingestion is interrupted?\n\nNothing is lost. A new "
       "version of an index is written to a temporary folder and renamed into place only\nwhen it is complete, so "
       "the previous version stays usable after a crash.\n\n## How large can a file be?\n\nBy default files over "
       "100 MB are skipped with a clear message. Change the limit with `--max-file-mb`.\n")
GUIDE = ("# User guide\n\nSupported formats are plain text (.txt), Markdown (.md), PDF (.pdf) and Word\ndocuments "
         "(.docx). Folders are read recursively; hidden files are skipped.\n\nType a question in the chat box. "
         "The answer cites its sources as [1], [2] and so on.\n")
GARDEN = ("Allotment rules. Hoses longer than 15 metres are not allowed on the plots. The plot fee is 45 euros "
          "per season, and students pay half the fee. Bonfires are forbidden from May to September.")


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Index:
    return build_index(tmp_path_factory.mktemp("evidence"), "ev",
                       {"faq.md": FAQ, "guide.md": GUIDE, "garden.txt": GARDEN}, embedder)


@pytest.fixture(scope="module")
def retriever(index: Index, embedder: Any) -> Retriever:
    return Retriever(index, embedder=embedder)


def select(retriever: Retriever, question: str, **kw: Any):  # type: ignore[no-untyped-def]
    hits = retriever.retrieve(question, k=20)
    return EvidenceSelector(retriever.embedder, **kw).select(question, hits, retriever.index,
                                                             retriever.index.analyzer)


# -- sentences and their offsets -----------------------------------------------------------------

@pytest.mark.parametrize("text", [FAQ, GUIDE, GARDEN, "1. first\n2. second item here", "a\n\nb c d. E f.",
                                  "Open the valve [1]. Fill the casing. [2] Done!", "", "  \n ",
                                  "word one\n\n\n two three.\n- bullet one\n- b two"])
def test_sentence_spans_are_the_sentences_at_their_offsets(text: str) -> None:
    assert [flatten(text[a:b]) for a, b in sentence_spans(text)] == split_sentences(text)


def test_candidates_skip_headings_and_questions_but_label_sentences_with_them() -> None:
    c = Chunk("c", FAQ, "d", "faq.md", None, 0, len(FAQ), 0)
    cands = candidate_sentences(c)
    texts = [t for _a, _b, t, _h in cands]
    assert "Nothing is lost." not in texts, "three words carry no fact on their own"
    first = next(x for x in cands if x[2].startswith("A new version"))
    assert first[3] == "What happens if ingestion is interrupted?"
    assert flatten(FAQ[first[0]:first[1]]) == first[2], "offsets point at the sentence in the chunk"
    assert not any(t.endswith("?") for t in texts)


def test_coverage_weighs_rare_terms_more() -> None:
    assert coverage({"hose": 3.0, "plot": 1.0}, {"hose"}) > coverage({"hose": 3.0, "plot": 1.0}, {"plot"})
    assert coverage({}, {"x"}) == 0.0


# -- selection -------------------------------------------------------------------------------------

def test_the_sentence_that_answers_is_the_first_passage(retriever: Retriever) -> None:
    ev = select(retriever, "How much do students pay for a plot?")
    top = ev.passages[0]
    assert "students pay half" in top.text and top.chunk.source.endswith("garden.txt")
    doc = GARDEN
    a, b = top.span
    assert flatten(doc[a:b]) == top.text, "the span is the sentence's place in the document"
    assert [p.number for p in ev.passages] == list(range(1, len(ev.passages) + 1))
    assert ev.features["max_cos"] >= ev.features["top_cos"] and 0 < ev.features["best_share"] <= 1


def test_a_heading_lets_an_faq_answer_win_in_other_words(retriever: Retriever) -> None:
    ev = select(retriever, "What if my computer crashes while adding files?")
    assert any("temporary folder" in p.text for p in ev.passages[:2]), [p.text for p in ev.passages]
    assert "What happens if ingestion is interrupted?" in format_passage(ev.passages[0]) or \
        any(p.heading for p in ev.passages)


def test_the_budget_bounds_the_evidence(retriever: Retriever) -> None:
    wide = select(retriever, "What are the rules of the allotment?", budget=400)
    narrow = select(retriever, "What are the rules of the allotment?", budget=30)
    assert len(narrow.passages) < len(wide.passages)
    assert len(narrow.passages) >= 1, "the best passage is kept even over budget"
    assert sum(len(format_passage(p).split()) for p in narrow.passages[1:]) * 1.3 <= 30


def test_overlapping_chunks_give_each_sentence_once(retriever: Retriever, embedder: Any) -> None:
    c1 = Chunk("a", GARDEN[:120], "d", "garden.txt", None, 0, 120, 0)
    c2 = Chunk("b", GARDEN[60:], "d", "garden.txt", None, 60, len(GARDEN), 1)
    from rag.types import Hit

    hits = [Hit(c1, 1.0, 1, {"dense": 0.5}), Hit(c2, 0.9, 2, {"dense": 0.4})]
    rows, cands = EvidenceSelector(embedder).score("plot fee", hits, retriever.index, retriever.index.analyzer)
    spans = [(h.chunk.start + a, h.chunk.start + b) for h, a, b, _t, _h in cands]
    assert len(spans) == len(set(spans)) and len(rows) == len(cands)
    assert set(rows[0]) == set(SENTENCE_FEATURES)


def test_no_hits_no_evidence(retriever: Retriever, embedder: Any) -> None:
    ev = EvidenceSelector(embedder).select("anything", [], retriever.index, retriever.index.analyzer)
    assert not ev and ev.passages == () and ev.features == {}


def test_the_selector_validates() -> None:
    with pytest.raises(ValueError, match="max_passages"):
        EvidenceSelector(None, max_passages=0)
    with pytest.raises(ValueError, match="expected"):
        EvidenceSelector(None, ranker=LinearModel("x", ("cos",), coef=(1.0,)))


def test_the_packaged_ranker_reads_the_selector_features() -> None:
    ranker = packaged("evidence-ranker")
    assert ranker is not None and ranker.features == SENTENCE_FEATURES
    assert ranker.coef != FALLBACK_RANKER.coef and "command" in ranker.meta


# -- the linear model file ----------------------------------------------------------------------------

def test_linear_model_round_trips_and_refuses_a_bad_file(tmp_path: Path) -> None:
    m = LinearModel("m", ("a", "b"), coef=(1.0, -2.0), intercept=0.5, mean=(1.0, 0.0), scale=(2.0, 1.0),
                    threshold=0.1, meta={"command": "x"})
    back = LinearModel.load(m.save(tmp_path / "m.json"))
    assert back == m
    rows = np.array([[3.0, 1.0], [1.0, 0.0]])
    assert np.allclose(back.scores(rows), [back.score({"a": 3.0, "b": 1.0}), back.score({"a": 1.0, "b": 0.0})])
    (tmp_path / "bad.json").write_text('{"format": "other"}', encoding="utf-8")
    with pytest.raises(ValueError, match="bad.json: not a rag-linear-v1 file"):
        LinearModel.load(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="needs features"):
        m.score({"a": 1.0})


# -- citations point at sentences ------------------------------------------------------------------

def test_a_citation_span_must_lie_in_its_chunk() -> None:
    c = Chunk("c", "Open the valve. Fill the casing.", "d", "pump.md", None, 100, 132, 0)
    assert Citation(1, c, 0.5, 116, 132).span == (116, 132)
    with pytest.raises(ValueError, match="not inside its chunk"):
        Citation(1, c, 0.5, 90, 120)
    with pytest.raises(ValueError, match="both"):
        Citation(1, c, 0.5, 116, None)
