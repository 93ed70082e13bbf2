"""Retrieval with the real embedder: modes, fusion, reranker slot, LangChain adapter."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.index.store import IndexMismatchError, IndexStore
from rag.ingest.ingestor import Ingestor
from rag.retrieval.retriever import Retriever

QUERY_TARGETS = [
    ("how do I prime the centrifugal pump?", "pump.md"),
    ("how often should turbine blades be checked for cracks", "turbine.txt"),
    ("which fruit is rich in potassium", "fruit.html"),
]


@pytest.fixture()
def index(store: IndexStore, embedder, docs_dir: Path):  # type: ignore[no-untyped-def]
    Ingestor("docs", store=store, embedder=embedder, show_progress=False).ingest([docs_dir])
    return store.load("docs")


@pytest.mark.parametrize("mode,fusion", [("bm25", "rrf"), ("dense", "rrf"), ("hybrid", "rrf"),
                                         ("hybrid", "adaptive"), ("hybrid", "zscore"),
                                         ("hybrid", "weighted")])
def test_each_mode_finds_the_right_document(index, embedder, mode: str, fusion: str) -> None:  # type: ignore[no-untyped-def]
    r = Retriever(index, mode=mode, embedder=embedder, fusion=fusion)
    for query, target in QUERY_TARGETS:
        hits = r.retrieve(query, k=2)
        assert Path(hits[0].chunk.source).name == target, (mode, query)
        assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
        assert all(a.score >= b.score for a, b in zip(hits, hits[1:]))


@pytest.mark.parametrize("fusion", ["zscore", "adaptive", "rrf", "weighted"])
def test_hybrid_records_per_retriever_scores(index, embedder, fusion: str) -> None:  # type: ignore[no-untyped-def]
    r = Retriever(index, mode="hybrid", embedder=embedder, fusion=fusion)
    hit = r.retrieve("prime the pump", k=1)[0]
    assert {"bm25", "dense", fusion} <= set(hit.scores)
    assert hit.score == hit.scores[fusion]
    assert r.label == f"hybrid-{fusion}"


def test_hybrid_default_is_zscore_and_follows_its_fusion_function(index, embedder) -> None:  # type: ignore[no-untyped-def]
    from rag.retrieval.fusion import ranked, zscore_fusion

    r = Retriever(index, mode="hybrid", embedder=embedder)
    assert str(r.fusion) == "zscore"
    query = "how often should turbine blades be checked for cracks"
    sparse = Retriever(index, mode="bm25", embedder=embedder).retrieve(query, k=100)
    dense = Retriever(index, mode="dense", embedder=embedder).retrieve(query, k=100)
    fused = zscore_fusion({h.chunk.id: h.score for h in sparse}, {h.chunk.id: h.score for h in dense})
    assert [h.chunk.id for h in r.retrieve(query, k=5)] == ranked(fused)[:5]


def test_adaptive_fusion_follows_its_fusion_function(index, embedder) -> None:  # type: ignore[no-untyped-def]
    from rag.retrieval.fusion import adaptive_rank_fusion, ranked

    r = Retriever(index, mode="hybrid", fusion="adaptive", embedder=embedder)
    query = "how often should turbine blades be checked for cracks"
    sparse = Retriever(index, mode="bm25", embedder=embedder).retrieve(query, k=100)
    dense = Retriever(index, mode="dense", embedder=embedder).retrieve(query, k=100)
    fused, _ = adaptive_rank_fusion([h.chunk.id for h in sparse], [h.chunk.id for h in dense])
    assert [h.chunk.id for h in r.retrieve(query, k=5)] == ranked(fused)[:5]


def test_dense_recovers_paraphrase_bm25_cannot(index, embedder) -> None:  # type: ignore[no-untyped-def]
    query = "banana nutrition"
    # "nutrition" is not in the corpus; dense still finds the fruit page first
    dense = Retriever(index, mode="dense", embedder=embedder).retrieve(query, k=1)
    assert Path(dense[0].chunk.source).name == "fruit.html"


def test_empty_query_and_validation(index, embedder) -> None:  # type: ignore[no-untyped-def]
    r = Retriever(index, mode="hybrid", embedder=embedder)
    assert r.retrieve("   ", k=3) == []
    with pytest.raises(ValueError, match="k must be a positive integer"):
        r.retrieve("x", k=0)
    with pytest.raises(ValueError, match=r"retrieval mode must be one of bm25, dense, hybrid; got 'magic'"):
        Retriever(index, mode="magic")
    with pytest.raises(ValueError, match="fusion must be one of"):
        Retriever(index, fusion="borda", embedder=embedder)
    with pytest.raises(ValueError, match="candidates must be a positive integer"):
        Retriever(index, candidates=0, embedder=embedder)


def test_embedder_mismatch(index) -> None:  # type: ignore[no-untyped-def]
    from rag.embedding import Embedder

    with pytest.raises(IndexMismatchError, match="built with embedder"):
        Retriever(index, mode="dense", embedder=Embedder("some-org/other-model"))


def test_reranker_slot_reorders_by_cross_encoder(index, embedder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from sentence_transformers import CrossEncoder

    from rag.embedding import packaged_embedder_path
    from rag.retrieval.rerank import Reranker

    # a real CrossEncoder built from the packaged MiniLM weights (its head is untrained)
    ce = CrossEncoder(str(packaged_embedder_path()), num_labels=1, device="cpu")
    ce.save(str(tmp_path / "ce"))
    reranker = Reranker(str(tmp_path / "ce"))
    base = Retriever(index, mode="hybrid", embedder=embedder).retrieve("pump", k=3)
    hits = Retriever(index, mode="hybrid", embedder=embedder, reranker=reranker).retrieve("pump", k=3)
    assert {h.chunk.id for h in hits} == {h.chunk.id for h in base}
    expected = reranker.score("pump", [h.chunk.text for h in hits])
    assert [h.score for h in hits] == pytest.approx(expected)
    assert expected == sorted(expected, reverse=True)
    assert all("rerank" in h.scores and "zscore" in h.scores for h in hits)


def test_langchain_adapter(index, embedder) -> None:  # type: ignore[no-untyped-def]
    from langchain_core.retrievers import BaseRetriever

    from rag.retrieval.langchain import LangChainRetriever

    lc = LangChainRetriever(retriever=Retriever(index, embedder=embedder), k=2)
    assert isinstance(lc, BaseRetriever)
    docs = lc.invoke("prime the pump")
    assert len(docs) == 2
    assert Path(docs[0].metadata["source"]).name == "pump.md"
    assert {"page", "start", "end", "chunk_id", "score"} <= set(docs[0].metadata)


def test_query_encoding_uses_small_batch_threads_and_restores_them(embedder) -> None:  # type: ignore[no-untyped-def]
    import numpy as np
    import torch

    from rag.embedding import Embedder

    before = torch.get_num_threads()
    one = embedder.encode(["prime the pump"])
    assert torch.get_num_threads() == before
    many = embedder.encode(["prime the pump"] + [f"filler {i}" for i in range(10)])
    np.testing.assert_allclose(one[0], many[0], atol=1e-5)  # same vector whatever the thread count
    with pytest.raises(ValueError, match="small_batch_threads must be a positive integer or None"):
        Embedder(small_batch_threads=0)
