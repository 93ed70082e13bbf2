"""The app's framework-free helpers (rag.ui): readable sources, starter questions, models, the trace."""

from __future__ import annotations

from pathlib import Path

import pytest

def _samples_index(tmp_path: Path, embedder):  # type: ignore[no-untyped-def]
    from rag.index.store import IndexStore
    from rag.ingest.ingestor import Ingestor

    samples = Path(__file__).resolve().parents[2] / "samples"
    store = IndexStore(tmp_path / "idx")
    assert Ingestor("samples", store=store, embedder=embedder, show_progress=False).ingest([samples]).ok
    return store, store.load("samples")


def test_example_questions_come_from_the_collections_own_headings(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    from rag.ui.examples import example_questions

    _store, index = _samples_index(tmp_path, embedder)
    questions = example_questions(index.chunks, {s: r.title for s, r in index.documents.items()})
    assert len(questions) == 3 and len(set(questions)) == 3
    assert all(q.endswith("?") for q in questions)
    text = " ".join(c.text for c in index.chunks)
    # each one names a heading or a term of a different sample document
    assert questions[0] in text  # the FAQ's headings are questions already: kept as they are
    assert "glossary" not in questions[1].lower() and questions[1].removeprefix("What does “").split("”")[0] in text
    assert questions[2].removeprefix("What should I know about ").rstrip("?") in text.lower()


def test_sources_are_grouped_by_document_with_relevance_cues(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    from rag.serve.service import SourcePaths
    from rag.ui.sources import Relevance, group_sources, passage_cosines, relevance
    from rag.types import Citation

    _store, index = _samples_index(tmp_path, embedder)
    paths = SourcePaths(list(index.documents))
    names = {s: paths.relative(s) for s in index.documents}
    faq = [c for c in index.chunks if c.source.endswith("faq.md")]
    guide = [c for c in index.chunks if c.source.endswith("user-guide.md")]
    citations = [Citation(1, faq[0], 0.03), Citation(2, guide[0], 0.02), Citation(3, faq[1], 0.01)]
    groups = group_sources(citations, names)
    assert [(g.name, g.numbers) for g in groups] == [("faq.md", (1, 3)), ("user-guide.md", (2,))]
    query = embedder.encode([" ".join(faq[0].text.split()[:40])])[0]  # the passage's own opening words
    cos = passage_cosines(index, query, [c.chunk.id for c in citations] + ["not-a-chunk"])
    assert set(cos) == {c.chunk.id for c in citations}
    assert cos[faq[0].id] == pytest.approx(float(index.embeddings[index.chunks.index(faq[0])] @ query), abs=1e-5)
    # a passage asked about in its own words is a High match; for an unrelated question, Low
    assert relevance(cos[faq[0].id]) is Relevance.HIGH
    unrelated = passage_cosines(index, embedder.encode(["recipe for tomato soup with basil"])[0], [faq[0].id])
    assert relevance(unrelated[faq[0].id]) is Relevance.LOW


def test_models_not_on_this_machine_are_marked_with_the_command_to_get_them(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from rag.generation.models import REGISTRY
    from rag.ui.models import model_choices

    monkeypatch.setenv("RAG_MODELS_DIR", str(tmp_path / "models"))
    choices = {m.name: m for m in model_choices()}
    assert choices["smollm2-135m"].available and choices["smollm2-135m"].label == "smollm2-135m"
    phi = choices["phi-3-mini"]
    assert not phi.available and phi.label == "phi-3-mini (not downloaded)"
    assert phi.get_command == "rag models pull phi-3-mini"
    pulled = tmp_path / "models" / "phi-3-mini" / REGISTRY["phi-3-mini"].filename
    pulled.parent.mkdir(parents=True)
    pulled.write_bytes(b"GGUF")
    assert {m.name: m for m in model_choices()}["phi-3-mini"].available


def test_the_trace_reads_as_steps(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    from rag.pipeline import GenerationConfig, PipelineConfig, RetrievalConfig, build
    from rag.ui.trace import trace_outline

    store, index = _samples_index(tmp_path, embedder)
    config = PipelineConfig(index="samples", retrieval=RetrievalConfig(mode="hybrid", k=3),
                            generation=GenerationConfig(mode="extractive"))
    with build(config, store, index=index, embedder=embedder) as pipeline:
        answer = pipeline.answerer.answer("How large can a file be?")
    names = {c.id: Path(c.source).name for c in index.chunks}
    steps = trace_outline(answer, lambda cid, loc: names.get(cid, loc), {"total_s": 1.5, "load_s": 1.2})
    labels = [label for _, label, _ in steps]
    assert labels[:4] == ["Question", "Rewrite", "q1 (original)", "Search q1"]
    assert labels[4:7] == ["#1", "#2", "#3"] and "Relevance gate" in labels and labels[-1] == "Timings"
    hits = [text for _, label, text in steps if label.startswith("#")]
    assert hits[0].startswith("faq.md (") and "bm25" in hits[0] and "dense" in hits[0] and "/" not in hits[0]
    timings = steps[-1][2]
    assert "loading models 1.20 s" in timings and timings.endswith("total 1.50 s")
    assert all(depth in (0, 1) for depth, _, _ in steps)
