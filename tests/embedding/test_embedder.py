"""Embedder backends: torch (reference) vs ONNX Runtime (fp32 and int8), and the export cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rag.embedding import (BACKENDS, DEFAULT_EMBEDDER_ID, Embedder, OnnxCache, OnnxCacheEntry, OnnxExporter,
                           UnsupportedModelError, physical_cores)

SENTENCES = [
    "To prime the centrifugal pump, open the bleed valve and fill the casing with water.",
    "Never run the pump dry: the mechanical seal overheats within seconds.",
    "The turbine blades must be inspected for cracks every 500 operating hours.",
    "Bananas are yellow and rich in potassium.",
    "What is the boundary layer thickness on a flat plate in supersonic flow?",
    "Does my data leave the computer?",
]
DOCS = [
    "Open the bleed valve and fill the pump casing with water until no air escapes.",
    "Inspect every turbine blade for cracks and erosion deeper than 2 mm.",
    "Bananas are a yellow fruit rich in potassium.",
    "All documents, indexes and models stay on your machine; nothing is sent anywhere.",
    "The laminar boundary layer thickens downstream of the leading edge of a flat plate.",
]
QUERIES = ["how do I prime a pump", "blade inspection interval", "which fruit has potassium",
           "is my data private", "boundary layer growth on a plate"]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)


# -- cheap: no model loaded ------------------------------------------------------------


def test_backend_is_validated_and_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="backend must be one of auto, torch, onnx, onnx-int8; got 'gpu'"):
        Embedder(backend="gpu")
    with pytest.raises(ValueError, match="runs on the CPU"):
        Embedder(backend="onnx-int8", device="cuda")
    with pytest.raises(ValueError, match="threads must be a positive integer or None"):
        Embedder(threads=0)
    monkeypatch.setenv("RAG_EMBEDDER_BACKEND", "torch")
    assert Embedder().backend == "torch"
    assert Embedder(backend="onnx").backend == "onnx"  # the argument wins
    monkeypatch.setenv("RAG_EMBEDDER_BACKEND", "fast")
    with pytest.raises(ValueError, match="got 'fast'"):
        Embedder()
    assert set(BACKENDS) == {"auto", "torch", "onnx", "onnx-int8"}


def test_model_id_does_not_depend_on_the_backend() -> None:
    ids = {Embedder(backend=b).model_id for b in BACKENDS}
    assert ids == {DEFAULT_EMBEDDER_ID}


def test_physical_cores_is_positive() -> None:
    assert 1 <= physical_cores() <= (__import__("os").cpu_count() or 1)


def test_cache_key_follows_the_model_files_and_the_variant(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}", encoding="utf-8")
    cache = OnnxCache(tmp_path / "cache")
    a = cache.entry(str(model), "m", quantize=True)
    assert a.key == cache.entry(str(model), "m", quantize=True).key
    assert a.path.parent == tmp_path / "cache" / "embedders"
    assert a.key != cache.entry(str(model), "m", quantize=False).key
    assert a.key != cache.entry(str(model), "other", quantize=True).key
    (model / "config.json").write_text('{"changed": 1}', encoding="utf-8")
    assert a.key != cache.entry(str(model), "m", quantize=True).key
    assert a.read() is None  # nothing there yet: no error, nothing created
    assert not (tmp_path / "cache").exists()


def test_a_damaged_entry_reads_as_missing_and_is_removed(tmp_path: Path) -> None:
    entry = OnnxCacheEntry(tmp_path / "embedders", str(tmp_path), "m", quantize=False)
    entry.path.mkdir(parents=True)
    (entry.path / "model.onnx").write_bytes(b"not a model")
    (entry.path / "meta.json").write_text("{not json", encoding="utf-8")
    assert entry.read() is None
    assert not entry.path.exists()
    entry.path.mkdir(parents=True)
    (entry.path / "model.onnx").write_bytes(b"not a model")
    (entry.path / "meta.json").write_text(json.dumps({"key": entry.key, "sha256": "0" * 64}), encoding="utf-8")
    assert entry.read() is None  # checksum mismatch
    assert not entry.path.exists()


# -- real models -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def torch_embedder() -> Embedder:
    return Embedder(backend="torch").load()


@pytest.fixture(scope="module")
def int8_embedder() -> Embedder:
    """The int8 ONNX path from the default cache (built once per machine, ~20 s)."""
    return Embedder(backend="onnx-int8").load()


@pytest.mark.slow
def test_int8_vectors_are_close_to_torch_and_rank_the_same(torch_embedder: Embedder,
                                                           int8_embedder: Embedder) -> None:
    assert int8_embedder.backend == "onnx-int8"
    assert int8_embedder.dim == torch_embedder.dim == 384
    assert int8_embedder.max_seq_length == torch_embedder.max_seq_length
    old, new = torch_embedder.encode(SENTENCES), int8_embedder.encode(SENTENCES)
    assert new.dtype == np.float32 and new.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(np.linalg.norm(new, axis=1), 1.0, atol=1e-5)
    assert cosines(old, new).min() > 0.99
    # the same nearest neighbour for every query, and the same order for every pair of documents
    # whose torch scores differ by more than 0.05 (below that, near-zero cosines of unrelated
    # documents may swap: 0.105 vs 0.122 is noise, not a ranking)
    reference = torch_embedder.encode(QUERIES) @ torch_embedder.encode(DOCS).T
    assert list(reference.argmax(axis=1)) == [0, 1, 2, 3, 4]
    for emb_q, emb_d in ((int8_embedder, int8_embedder),    # a new index
                         (int8_embedder, torch_embedder)):  # int8 queries against a torch-built index
        scores = emb_q.encode(QUERIES) @ emb_d.encode(DOCS).T
        assert list(scores.argmax(axis=1)) == [0, 1, 2, 3, 4]
        for ref_row, row in zip(reference, scores):
            pairs = [(i, j) for i in range(len(DOCS)) for j in range(len(DOCS)) if ref_row[i] > ref_row[j] + 0.05]
            assert pairs and all(row[i] > row[j] for i, j in pairs)


@pytest.mark.slow
def test_int8_vector_of_a_text_does_not_depend_on_the_batch(int8_embedder: Embedder) -> None:
    alone = int8_embedder.encode([SENTENCES[0]])  # small batch: the caller's thread
    batch = int8_embedder.encode(SENTENCES * 3 + ["x " * 500])  # large batch: worker threads, longest first
    np.testing.assert_allclose(batch[0], alone[0], atol=1e-6)
    np.testing.assert_allclose(batch[6], alone[0], atol=1e-6)
    one_thread = Embedder(backend="onnx-int8", threads=1).load().encode(SENTENCES * 2)
    np.testing.assert_allclose(one_thread, batch[:12], atol=1e-6)


@pytest.mark.slow
def test_onnx_tokenizer_matches_sentence_transformers(torch_embedder: Embedder, int8_embedder: Embedder) -> None:
    text = "Résumé of the naïve 'über' test: 12.5 mm, x² — done. " * 60  # longer than max_seq_length
    texts = [text, "", "pump", *SENTENCES]
    expected = torch_embedder.tokenizer(texts, truncation=True, max_length=torch_embedder.max_seq_length)["input_ids"]
    assert int8_embedder._impl.token_ids(texts) == expected  # type: ignore[union-attr]
    assert len(expected[0]) == torch_embedder.max_seq_length
    # the chunker counts tokens with embedder.tokenizer: identical counts, so identical chunks
    assert int8_embedder.tokenizer.encode(text, add_special_tokens=False) == \
        torch_embedder.tokenizer.encode(text, add_special_tokens=False)
    assert int8_embedder.encode([""]).shape == (1, 384)


@pytest.mark.slow
def test_cache_is_reused_and_a_corrupt_cache_is_rebuilt(tmp_path: Path, torch_embedder: Embedder,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    exports: list[Path] = []
    real_export = OnnxExporter.export

    def counting_export(self: OnnxExporter, out: Path, tokenizer_dir: Path | None = None) -> dict:
        exports.append(out)
        return real_export(self, out, tokenizer_dir)

    monkeypatch.setattr(OnnxExporter, "export", counting_export)
    first = Embedder(backend="onnx", cache_dir=tmp_path).load()  # fp32: the same cache code, a faster export
    assert len(exports) == 1
    entries = [p for p in (tmp_path / "embedders").iterdir()]
    assert [p.name.startswith("sentence-transformers_all-MiniLM-L6-v2-onnx-") for p in entries] == [True]
    assert sorted(f.name for f in entries[0].iterdir()) == \
        ["meta.json", "model.onnx", "tokenizer.json", "tokenizer_config.json"]  # no temp files left
    various = SENTENCES + ["", "pump", "x " * 500]  # 3 to 256 tokens: the traced graph holds for any length
    np.testing.assert_allclose(first.encode(various), torch_embedder.encode(various), atol=1e-4)

    second = Embedder(backend="onnx", cache_dir=tmp_path).load()
    assert len(exports) == 1  # read from the cache
    expected = first.encode(SENTENCES)
    np.testing.assert_allclose(second.encode(SENTENCES), expected, atol=1e-6)

    model = entries[0] / "model.onnx"
    model.write_bytes(model.read_bytes()[: 1 << 20])  # truncated, e.g. a crash while copying
    third = Embedder(backend="onnx", cache_dir=tmp_path).load()
    assert len(exports) == 2  # rebuilt
    np.testing.assert_allclose(third.encode(SENTENCES), expected, atol=1e-6)
    assert [p.name for p in (tmp_path / "embedders").iterdir()] == [entries[0].name]


@pytest.mark.slow
def test_auto_falls_back_to_torch_when_onnx_cannot_be_used(monkeypatch: pytest.MonkeyPatch,
                                                           tmp_path: Path) -> None:
    def unsupported(self: OnnxExporter, out: Path, tokenizer_dir: Path | None = None) -> dict:
        raise UnsupportedModelError("only Transformer -> Pooling models export")

    monkeypatch.setattr(OnnxExporter, "export", unsupported)
    emb = Embedder(backend="auto", cache_dir=tmp_path).load()
    assert emb.backend == "torch"
    assert emb.encode(["pump"]).shape == (1, 384)
    with pytest.raises(UnsupportedModelError):
        Embedder(backend="onnx-int8", cache_dir=tmp_path).load()
    monkeypatch.setattr("rag.embedding.embedder.onnx_available", lambda: False)
    assert Embedder(backend="auto", cache_dir=tmp_path).load().backend == "torch"
