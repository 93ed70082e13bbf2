"""Evaluation: Cranfield loader (query-position trap), metrics vs pytrec_eval, end-to-end CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag_eval.datasets import cranfield_gain, load_cranfield
from rag_eval.metrics import evaluate, per_query
from rag_eval.retrieval import parse_configs
from rag.retrieval.retriever import Retriever
from tests.conftest import COVID_QA, CRANFIELD

# A tiny inline TREC fixture: graded qrels and a run with a missing query (q3).
QRELS = {
    "q1": {"d1": 2, "d2": 0, "d3": 1, "d4": 3},
    "q2": {"d5": 1},
    "q3": {"d1": 1},
}
RUN = {
    "q1": {"d1": 0.9, "d2": 0.8, "d3": 0.7, "d9": 0.6, "d4": 0.1},
    "q2": {"d6": 0.9, "d5": 0.5},
}


def test_metrics_match_pytrec_eval_reference() -> None:
    import pytrec_eval

    ref = pytrec_eval.RelevanceEvaluator(QRELS, {"ndcg_cut.10", "map", "recall.100", "recip_rank"})
    expected = ref.evaluate(RUN)
    ours = per_query(QRELS, RUN)
    for q in ("q1", "q2"):
        assert ours["nDCG@10"][q] == pytest.approx(expected[q]["ndcg_cut_10"], abs=1e-6)
        assert ours["MAP"][q] == pytest.approx(expected[q]["map"], abs=1e-6)
        assert ours["Recall@100"][q] == pytest.approx(expected[q]["recall_100"], abs=1e-6)
        assert ours["MRR@10"][q] == pytest.approx(expected[q]["recip_rank"], abs=1e-6)
    # hand-checkable values
    assert ours["MRR@10"]["q2"] == pytest.approx(0.5)
    assert ours["MAP"]["q2"] == pytest.approx(0.5)


def test_queries_missing_from_the_run_score_zero() -> None:
    ours = per_query(QRELS, RUN)
    assert ours["nDCG@10"]["q3"] == 0.0
    means = evaluate(QRELS, RUN)
    assert means["MRR@10"] == pytest.approx((1.0 + 0.5 + 0.0) / 3)


def test_cranfield_gain_mapping() -> None:
    assert [cranfield_gain(c) for c in (1, 2, 3, 4, -1, 5)] == [4, 3, 2, 1, 0, 0]


@pytest.mark.skipif(not CRANFIELD.exists(), reason="needs ../shared/data/cranfield")
def test_cranfield_loader_maps_qrels_by_query_position() -> None:
    ds = load_cranfield(CRANFIELD)
    assert len(ds.documents) == 1400 and len(ds.queries) == 225
    # position 3 is `.I 004` (the .I numbers skip 003)
    assert ds.queries["3"].startswith("what problems of heat conduction in composite slabs")
    assert "004" not in ds.queries
    assert len(ds.qrels) == 225
    assert ds.documents[0].doc_id == "1" and ds.documents[0].title.startswith("experimental investigation")
    # code -1 ("no interest") is judged but not relevant
    gains = [g for q in ds.qrels.values() for g in q.values()]
    assert 0 in gains and max(gains) == 4


def test_unknown_configs_are_listed() -> None:
    assert parse_configs("bm25, hybrid") == ["bm25", "hybrid"]
    with pytest.raises(ValueError, match="choose from bm25, dense, hybrid"):
        parse_configs("bm25,magic")


@pytest.mark.slow
@pytest.mark.skipif(not CRANFIELD.exists(), reason="needs ../shared/data/cranfield")
def test_cranfield_end_to_end_hybrid_beats_bm25(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from rag.cli.main import main

    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path / "cache"))
    code = main(["eval", "retrieval", "--dataset", "cranfield", "--path", str(CRANFIELD),
                 "--configs", "bm25,dense,hybrid", "--format", "json"])
    assert code == 0
    results = json.loads(capsys.readouterr().out)
    assert set(results) == {"bm25", "dense", "hybrid"}
    for vals in results.values():
        assert set(vals) == {"nDCG@10", "MAP", "Recall@100", "MRR@10"}
        assert all(0.0 < v <= 1.0 for v in vals.values())
    assert results["hybrid"]["nDCG@10"] > results["bm25"]["nDCG@10"]
    assert results["hybrid"]["MAP"] > results["bm25"]["MAP"]
    # the cached index is reused on a second run (no re-embedding)
    assert list((tmp_path / "cache" / "eval-indexes").iterdir())


@pytest.mark.slow
@pytest.mark.skipif(not COVID_QA.exists(), reason="needs ../shared/data/covid-qa")
def test_covid_qa_default_fusion_keeps_what_bm25_finds(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    """On biomedical questions MiniLM is weak; equal-weight RRF drags BM25's hits down, z-score fusion
    (the default) and adaptive fusion don't."""
    from dataclasses import replace

    from rag_eval.qa import load_qa, select
    from rag_eval.retrieval import EvalSettings, build_index

    qa = load_qa(COVID_QA)
    questions = select(qa, "dev")
    docs = {q.doc_id for q in questions}  # the dev articles only: a small index, built in about a minute
    corpus = replace(qa.corpus(), documents=tuple(d for d in qa.documents if d.doc_id in docs))
    index = build_index(corpus, embedder, EvalSettings(), cache_dir=tmp_path)

    def found_at_5(**kw) -> int:  # type: ignore[no-untyped-def]
        r = Retriever(index, embedder=embedder, **kw)
        return sum(any(q.in_chunk(h.chunk) for h in r.retrieve(q.question, k=5)) for q in questions)

    bm25, rrf, adaptive = found_at_5(mode="bm25"), found_at_5(fusion="rrf"), found_at_5(fusion="adaptive")
    default = found_at_5()
    print(f"gold chunk in the top 5 of {len(questions)}: bm25 {bm25}, hybrid-rrf {rrf}, hybrid-adaptive {adaptive}, "
          f"hybrid (zscore) {default}")
    assert adaptive > rrf and default > rrf
    assert adaptive >= 0.9 * bm25 and default >= 0.9 * bm25
