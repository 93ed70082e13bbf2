"""Upload names from the browser are untrusted: no traversal, no collisions, no lost extensions."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from rag.serve.webapp import MAX_NAME_BYTES, UploadError, check_upload, safe_filename, save_uploads


def _saved(paths: list[Path]) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in paths}


def test_unicode_names_keep_their_letters_and_never_collide(tmp_path: Path) -> None:
    names = ["報告.txt", "議事録.txt", "Отчёт.md", "تقرير.md", "हिन्दी.txt"]
    saved, errors = save_uploads([(n, n.encode()) for n in names], tmp_path)
    assert errors == []
    assert sorted(_saved(saved)) == sorted(unicodedata.normalize("NFC", n) for n in names)
    assert all(p.read_bytes() == p.name.encode() for p in saved)


def test_names_are_normalised_nfkc(tmp_path: Path) -> None:
    decomposed = unicodedata.normalize("NFD", "café.txt")
    assert safe_filename(decomposed) == "café.txt"
    assert safe_filename("ｒｅｐｏｒｔ．ｔｘｔ") == "report.txt"  # full-width letters and dot
    saved, errors = save_uploads([("ｒｅｐｏｒｔ．ｔｘｔ", b"wide")], tmp_path)
    assert errors == [] and [p.name for p in saved] == ["report.txt"]
    check_upload("ｎｏｔｅｓ．ｍｄ", 3)  # the normalised extension is what counts


def test_control_and_direction_characters_are_replaced() -> None:
    assert safe_filename("evil\u202etxt.md") == "evil_txt.md"   # right-to-left override
    assert safe_filename("a\x00b\nc.txt") == "a_b_c.txt"
    assert safe_filename("what?*<>|.md") == "what_.md"


def test_names_differing_only_in_dots_and_spaces_get_unique_names(tmp_path: Path) -> None:
    names = ["report.txt", "report .txt", ".report.txt", "report..txt", "report.txt.", " report.txt "]
    saved, errors = save_uploads([(n, f"content of {n!r}".encode()) for n in names], tmp_path)
    assert errors == []
    files = _saved(saved)
    assert len(files) == len(names) == len(set(saved))
    assert all(name.endswith(".txt") and not name.startswith(".") for name in files)
    assert sorted(files.values()) == sorted(f"content of {n!r}".encode() for n in names)
    assert [p.name for p in saved][:2] == ["report.txt", "report-2.txt"]


def test_a_different_upload_is_never_overwritten(tmp_path: Path) -> None:
    first, _ = save_uploads([("notes.md", b"version one")], tmp_path)
    again, _ = save_uploads([("notes.md", b"version one")], tmp_path)       # same bytes: same file
    assert again == first and len(list(tmp_path.iterdir())) == 1
    other, _ = save_uploads([("notes.md", b"version two")], tmp_path)       # different bytes: new name
    assert other[0].name == "notes-2.md"
    assert first[0].read_bytes() == b"version one" and other[0].read_bytes() == b"version two"
    assert not list(tmp_path.glob(".*"))  # no temp or reservation files left behind


def test_replace_overwrites_only_the_exact_same_name(tmp_path: Path) -> None:
    save_uploads([("notes.md", b"old"), ("a b?.md", b"old")], tmp_path)
    saved, errors = save_uploads([("notes.md", b"new"), ("a b*.md", b"other"), ("notes.md", b"newer")],
                                 tmp_path, replace=True)
    assert errors == []
    assert [p.name for p in saved] == ["notes.md", "a b_-2.md", "notes-2.md"]
    assert (tmp_path / "notes.md").read_bytes() == b"new"          # replaced on request
    assert (tmp_path / "a b_.md").read_bytes() == b"old"           # a different original name: kept
    assert (tmp_path / "notes-2.md").read_bytes() == b"newer"      # same batch: never overwritten


@pytest.mark.parametrize("stem", ["x" * 296, "報" * 300, "é" * 299])
def test_long_names_keep_their_extension_and_fit_the_file_system(tmp_path: Path, stem: str) -> None:
    assert len(stem + ".txt") >= 300
    name = safe_filename(stem + ".txt")
    assert name.endswith(".txt") and len(name.encode()) <= MAX_NAME_BYTES
    saved, errors = save_uploads([(stem + ".txt", b"one"), (stem + "-other.txt", b"two")], tmp_path)
    assert errors == []
    assert len(set(saved)) == 2 and all(p.name.endswith(".txt") for p in saved)
    assert all(len(p.name.encode()) <= MAX_NAME_BYTES for p in saved)
    assert sorted(p.read_bytes() for p in saved) == [b"one", b"two"]


def test_traversal_is_still_refused(tmp_path: Path) -> None:
    up = tmp_path / "up"
    saved, errors = save_uploads([("../../escape.txt", b"a"), ("..\\..\\win.txt", b"b"), ("/abs/x.md", b"c")],
                                 up, max_mb=1)
    assert errors == []
    assert all(p.parent == up.absolute() for p in saved)
    assert sorted(p.name for p in saved) == ["escape.txt", "win.txt", "x.md"]
    assert [p.name for p in tmp_path.iterdir()] == ["up"]
    for bad in ("..", ".", "   ", "/", "...."):
        with pytest.raises(UploadError, match="not usable"):
            safe_filename(bad)


def test_without_hard_links_the_name_is_reserved_then_filled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import os

    def no_links(src: object, dst: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    saved, errors = save_uploads([("a.md", b"one"), ("a.md", b"two"), ("a.md", b"one")], tmp_path)
    assert errors == [] and [p.name for p in saved] == ["a.md", "a-2.md"]
    assert [p.read_bytes() for p in saved] == [b"one", b"two"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-2.md", "a.md"]


# -- readable sources, starter questions, models, the trace (framework-free app helpers) -------------
def _samples_index(tmp_path: Path, embedder):  # type: ignore[no-untyped-def]
    from rag.index.store import IndexStore
    from rag.ingest.ingestor import Ingestor

    samples = Path(__file__).resolve().parent.parent / "samples"
    store = IndexStore(tmp_path / "idx")
    assert Ingestor("samples", store=store, embedder=embedder, show_progress=False).ingest([samples]).ok
    return store, store.load("samples")


def test_example_questions_come_from_the_collections_own_headings(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    from rag.serve.webapp import example_questions

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
    from rag.serve.webapp import Relevance, group_sources, passage_cosines, relevance
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
    from rag.serve.webapp import model_choices

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
    from rag.serve.webapp import trace_outline

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
