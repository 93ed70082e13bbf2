"""The self-supervised reranker: pair mining, training within a budget, saving, reloading, CLI errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from rag.index.store import IndexSettings, IndexStore, Index
from rag.ingest.ingestor import Ingestor
from rag.retrieval.rerank_training.builder import RerankerBuilder
from rag.retrieval.rerank_training.mining import PairMiner, RerankerTrainingError, TrainingPair, sentence_spans
from rag.retrieval.rerank_training.store import (RERANKER_MANIFEST, load_index_reranker, read_reranker_manifest,
                                                 save_reranker, trained_reranker_path)
from rag.retrieval.rerank_training.training import CrossEncoderTrainer

# Six short documents with disjoint vocabularies: each title is a query whose planted positive is its document.
DOCS = {
    "pump.md": ("Centrifugal pump priming procedure",
                "Open the bleed valve before starting. Fill the casing with water until no air escapes. "
                "Never run the pump dry because the mechanical seal overheats. Close the bleed valve once "
                "water flows steadily from the outlet."),
    "turbine.md": ("Wind turbine blade inspection schedule",
                   "Inspect every rotor blade for cracks after five hundred operating hours. Replace any blade "
                   "with leading edge erosion deeper than two millimetres. Record lightning strikes in the "
                   "maintenance log. Check the pitch bearings for grease leaks each spring."),
    "bread.md": ("Sourdough bread fermentation guide",
                 "Feed the starter with rye flour the evening before baking. Bulk fermentation of the dough "
                 "takes about five hours at room temperature. Shape the loaf gently to keep the gas bubbles. "
                 "Bake in a preheated cast iron pot for a crisp crust."),
    "bees.md": ("Honeybee colony winter survival",
                "Bees cluster tightly around the queen when the hive gets cold. Leave enough capped honey "
                "in the frames for the whole winter. Reduce the hive entrance so mice cannot get inside. "
                "Treat the colony against varroa mites in late autumn."),
    "eclipse.md": ("Lunar eclipse observation tips",
                   "A total lunar eclipse turns the moon a deep copper red. Binoculars show the shadow edge "
                   "crossing the craters. No eye protection is needed to watch the moon. Photograph the "
                   "totality with a tripod and long exposures."),
    "castle.md": ("Medieval castle siege tactics",
                  "Attackers dug mines beneath the curtain wall to collapse the towers. Defenders poured "
                  "boiling oil through the murder holes above the gate. A trebuchet hurled heavy stones over "
                  "the battlements. Starving the garrison often ended a siege faster than assault."),
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, embedder) -> tuple[IndexStore, Path]:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("rr")
    docs = root / "docs"
    docs.mkdir()
    for name, (title, body) in DOCS.items():
        (docs / name).write_text(f"# {title}\n\n{body}\n", encoding="utf-8")
    store = IndexStore(root / "indexes")
    Ingestor("tiny", store=store, embedder=embedder, show_progress=False).ingest([docs])
    return store, docs


def _train_tiny(store: IndexStore, budget_minutes: float = 1.5) -> dict:  # type: ignore[type-arg]
    miner = PairMiner(strategy="title", max_pairs=100, negatives=3, skip_top=0, seed=0)
    trainer = CrossEncoderTrainer(budget_minutes=budget_minutes, epochs=40, batch_groups=3, lr=1e-4,
                                  warmup_steps=2, max_length=96, seed=0, show_progress=False)
    return RerankerBuilder(store, miner, trainer).build("tiny")


@pytest.mark.parametrize("strategy", ["ict", "title", "mixed"])
def test_mining_never_uses_a_chunk_or_its_document_as_negative(tiny, strategy: str) -> None:  # type: ignore[no-untyped-def]
    store, _ = tiny
    index = store.load("tiny")
    doc_of = {c.id: c.doc_id for c in index.chunks}
    pairs = PairMiner(strategy=strategy, negatives=3, skip_top=0, seed=1).mine(index)
    assert pairs and all(isinstance(p, TrainingPair) for p in pairs)
    for p in pairs:
        assert p.chunk_id not in p.negative_ids
        assert all(doc_of[n] != doc_of[p.chunk_id] for n in p.negative_ids)
        assert len(p.negatives) == len(p.negative_ids) == 3
        assert len(set(p.negative_ids)) == 3
        assert p.query and p.positive and p.query != p.positive
    if strategy == "title":
        titles = {t for t, _ in DOCS.values()}
        assert {p.query for p in pairs if p.kind == "title"} <= titles
        # the title line is cut from the positive, so the pair is not a trivial exact match
        assert all(not p.positive.startswith(("#", p.query)) for p in pairs if p.kind == "title")
    if strategy == "ict":
        assert {p.kind for p in pairs} == {"ict"}


def test_mining_is_deterministic(tiny) -> None:  # type: ignore[no-untyped-def]
    index = tiny[0].load("tiny")
    assert PairMiner(seed=3).mine(index) == PairMiner(seed=3).mine(index)


def test_validation_names_the_bad_value() -> None:
    with pytest.raises(ValueError, match=r"strategy must be one of \('ict', 'title', 'mixed'\), got 'cloze'"):
        PairMiner(strategy="cloze")
    with pytest.raises(ValueError, match="max_pairs must be a positive integer, got 0"):
        PairMiner(max_pairs=0)
    with pytest.raises(ValueError, match="depth must be > skip_top=5, got 5"):
        PairMiner(skip_top=5, depth=5)
    with pytest.raises(ValueError, match="budget_minutes must be > 0, got -1"):
        CrossEncoderTrainer(budget_minutes=-1)
    with pytest.raises(ValueError, match="train_layers must be a positive integer or None, got 0"):
        CrossEncoderTrainer(train_layers=0)


def test_empty_and_single_document_indexes_are_refused(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    store = IndexStore(tmp_path / "indexes")
    store.save(Index.empty("void", IndexSettings(embedder_id="x", dim=384, chunker={})))
    with pytest.raises(RerankerTrainingError, match="index 'void' is empty; add documents first"):
        RerankerBuilder(store).build("void")
    (tmp_path / "one.txt").write_text("A single document. It has two sentences of text here.", encoding="utf-8")
    Ingestor("one", store=store, embedder=embedder, show_progress=False).ingest([tmp_path / "one.txt"])
    with pytest.raises(RerankerTrainingError, match="has 1 document; training a reranker needs at least 2"):
        PairMiner().mine(store.load("one"))


def test_sentence_spans_locate_the_shared_splitter_sentences() -> None:
    from rag.text import split_sentences

    text = "# Pump guide\n\n1.\nOpen the  valve [1]. Fill the casing.\nDone!"
    spans = sentence_spans(text)
    squash = " ".join
    assert [squash(text[a:b].split()) for a, b in spans] == [squash(x.split()) for x in split_sentences(text)]
    assert len(spans) == 4 and text[spans[1][0]:spans[1][1]] == "1.\nOpen the  valve [1]."
    assert all(a < b <= c for (a, b), (c, _) in zip(spans, spans[1:]))


class _FakeModel:
    """Stands in for a CrossEncoder: ``save`` writes one weights file (or fails)."""

    def __init__(self, payload: bytes, fail: bool = False) -> None:
        self.payload, self.fail = payload, fail

    def save(self, path: str) -> None:
        (Path(path) / "weights.bin").write_bytes(self.payload)
        if self.fail:
            raise OSError("disk full")


def test_save_reranker_is_atomic_and_recovers_from_a_crash(tmp_path: Path) -> None:
    import os

    index_dir = tmp_path / "col"
    index_dir.mkdir()
    path = save_reranker(_FakeModel(b"v1"), {"format_version": 1, "v": 1}, index_dir)
    assert path == index_dir / "reranker" == trained_reranker_path(index_dir)
    save_reranker(_FakeModel(b"v2"), {"format_version": 1, "v": 2}, index_dir)
    assert (path / "weights.bin").read_bytes() == b"v2" and read_reranker_manifest(index_dir)["v"] == 2
    with pytest.raises(OSError, match="disk full"):
        save_reranker(_FakeModel(b"v3", fail=True), {"v": 3}, index_dir)
    assert (path / "weights.bin").read_bytes() == b"v2"
    assert sorted(p.name for p in index_dir.iterdir()) == ["reranker"]
    os.replace(path, index_dir / ".old-reranker-deadbeef")  # a crash between the two renames
    assert trained_reranker_path(index_dir) == path and read_reranker_manifest(index_dir)["v"] == 2


def _cli(argv: list[str]) -> argparse.Namespace:
    from rag.cli.reranker import add_commands

    parser = argparse.ArgumentParser(prog="rag")
    add_commands(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rag.cli.main import main  # commands raise; main() alone turns errors into one line and an exit code

    root = str(tmp_path / "indexes")
    assert main(["reranker", "train", "--index", "nope", "--index-dir", root, "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no index named 'nope'") and "\n" not in err
    store = IndexStore(root)
    store.save(Index.empty("void", IndexSettings(embedder_id="x", dim=384, chunker={})))
    assert main(["reranker", "train", "--index", "void", "--index-dir", root, "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: index 'void' is empty; add documents first with `rag ingest DIR --index void`"
    assert main(["reranker", "info", "--index", "void", "--index-dir", root]) == 1
    assert "has no trained reranker; train one with `rag reranker train --index void`" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _cli(["reranker", "train", "--index", "x", "--strategy", "cloze"])
    assert trained_reranker_path(store.path("void")) is None
    assert load_index_reranker(store.path("void")) is None


@pytest.mark.slow
def test_train_save_reload_and_rank_planted_positive(tiny, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    from rag.retrieval.rerank import Reranker
    from rag.retrieval.retriever import Retriever

    store, _ = tiny
    m = _train_tiny(store)
    index_dir = store.path("tiny")
    path = trained_reranker_path(index_dir)
    assert path == index_dir / "reranker" and Path(m["path"]) == path
    assert not list(index_dir.glob(".tmp-*")) and not list(index_dir.glob(".old-*"))
    manifest = json.loads((path / RERANKER_MANIFEST).read_text(encoding="utf-8"))
    assert manifest == read_reranker_manifest(index_dir)
    assert manifest["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert manifest["strategy"] == "title" and manifest["pairs"] == 6
    assert manifest["steps"] > 0 and manifest["seconds"] > 0
    assert manifest["index"]["chunks"] == 6 and manifest["index"]["documents"] == 6
    assert manifest["index"]["updated_at"] == store.read_manifest("tiny")["updated_at"]
    assert manifest["training"]["loss_end"] < manifest["training"]["loss_start"]

    reranker = load_index_reranker(index_dir)
    assert isinstance(reranker, Reranker)
    index = store.load("tiny")
    for title, _ in DOCS.values():
        texts = [c.text for c in index.chunks]
        scores = reranker.score(title.lower(), texts)
        best = max(range(len(texts)), key=scores.__getitem__)
        assert index.chunks[best].title == title, (title, scores)
    # and through the retrieval pipeline's reranker slot
    hits = Retriever(index, mode="bm25", reranker=reranker, rerank_candidates=6).retrieve("honeybee colony winter", k=3)
    assert hits[0].chunk.title == "Honeybee colony winter survival" and "rerank" in hits[0].scores

    args = _cli(["reranker", "info", "--index", "tiny", "--index-dir", str(store.root)])
    assert args.func(args) == 0
    assert "strategy: title, 6 pairs" in capsys.readouterr().out


@pytest.mark.slow
def test_budget_stops_training_cleanly(tiny) -> None:  # type: ignore[no-untyped-def]
    index = tiny[0].load("tiny")
    pairs = PairMiner(max_pairs=100, skip_top=0).mine(index)
    trainer = CrossEncoderTrainer(budget_minutes=0.001, epochs=1000, batch_groups=2, max_length=64,
                                  show_progress=False)
    _, result = trainer.train(pairs)
    assert result.stopped_by == "budget"
    assert 1 <= result.steps < 1000 * 3
