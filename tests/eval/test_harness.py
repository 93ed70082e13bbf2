"""Evaluation harness: BEIR/TREC loaders, metrics vs pytrec_eval, significance tests, comparison command."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from rag_eval.datasets import (load_beir, load_dataset, read_beir_qrels, read_trec_qrels, read_trec_run,
                           write_trec_qrels, write_trec_run)
from rag_eval.metrics import default_metrics, evaluate, metric_spec, parse_metrics, per_query
from rag_eval.stats import paired_t_test, randomization_test, significance

QRELS = {
    "q1": {"d1": 2, "d2": 0, "d3": 1, "d4": 3},
    "q2": {"d5": 1, "d7": 2},
    "q3": {"d1": 1},
}
RUN = {
    "q1": {"d1": 0.9, "d2": 0.8, "d3": 0.7, "d9": 0.6, "d4": 0.1},
    "q2": {"d6": 0.9, "d5": 0.5, "d8": 0.4, "d7": 0.3},
}

DOCS = [
    ("d1", "Pump priming", "To prime the centrifugal pump open the bleed valve and fill the casing with water."),
    ("d2", "Seal care", "Never run the pump dry: the mechanical seal overheats within seconds."),
    ("d3", "Turbine blades", "Inspect turbine blades for cracks every 500 operating hours."),
    ("d4", "Blade erosion", "Replace any turbine blade with erosion deeper than 2 mm."),
    ("d5", "Bananas", "Bananas are yellow and rich in potassium."),
    ("d6", "Apples", "Apples are red or green and keep well in a cool cellar."),
    ("d7", "Wing lift", "Lift on a wing grows with the square of the airspeed."),
    ("d8", "Boundary layer", "The boundary layer on a flat plate thickens downstream and may separate."),
]
QUERIES = {"q1": "how do I prime the pump", "q2": "when should turbine blades be replaced",
           "q3": "which fruit is rich in potassium", "q4": "how does lift depend on airspeed",
           "q5": "unjudged query"}
BEIR_QRELS = [("q1", "d1", 2), ("q1", "d2", 1), ("q2", "d4", 2), ("q2", "d3", 1), ("q3", "d5", 1),
              ("q4", "d7", 1), ("q4", "d8", 0)]


def write_beir(root: Path) -> Path:
    (root / "qrels").mkdir(parents=True)
    with open(root / "corpus.jsonl", "w", encoding="utf-8") as fh:
        for did, title, text in DOCS:
            fh.write(json.dumps({"_id": did, "title": title, "text": text, "metadata": {}}) + "\n")
    with open(root / "queries.jsonl", "w", encoding="utf-8") as fh:
        for qid, text in QUERIES.items():
            fh.write(json.dumps({"_id": qid, "text": text}) + "\n")
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{s}" for q, d, s in BEIR_QRELS]
    (root / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


# -- loaders ---------------------------------------------------------------------------------

def test_beir_loader_reads_corpus_queries_and_qrels(tmp_path: Path) -> None:
    ds = load_dataset("beir", write_beir(tmp_path / "tiny-beir"))
    assert ds.name == "tiny-beir"
    assert [d.doc_id for d in ds.documents] == [d for d, _, _ in DOCS]
    assert ds.documents[0].title == "Pump priming"
    assert set(ds.queries) == {"q1", "q2", "q3", "q4"}  # q5 has no judgements in the split
    assert ds.qrels["q1"] == {"d1": 2, "d2": 1} and ds.qrels["q4"]["d8"] == 0


def test_beir_loader_names_missing_files_and_splits(tmp_path: Path) -> None:
    root = write_beir(tmp_path / "b")
    with pytest.raises(FileNotFoundError, match=r"missing qrels/dev.tsv \(available splits: test\)"):
        load_beir(root, split="dev")
    (root / "queries.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match="queries.jsonl"):
        load_beir(root)
    with pytest.raises(ValueError, match="unknown dataset 'msmarco'; available: cranfield, beir"):
        load_dataset("msmarco", root)


def test_beir_qrels_reject_bad_rows(tmp_path: Path) -> None:
    p = tmp_path / "q.tsv"
    p.write_text("query-id\tcorpus-id\tscore\nq1\td1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="q.tsv:2: expected 3 tab-separated columns"):
        read_beir_qrels(p)


def test_trec_qrels_and_run_round_trip(tmp_path: Path) -> None:
    assert read_trec_qrels(write_trec_qrels(QRELS, tmp_path / "qrels.txt")) == QRELS
    run = {"q1": {"d1": 0.9, "d2": 1 / 3, "d3": -2.5e-7}, "q2": {"d5": 12.0}}
    path = write_trec_run(run, tmp_path / "run.trec", tag="bm25")
    assert read_trec_run(path) == run
    first = path.read_text(encoding="utf-8").splitlines()[0].split()
    assert first == ["q1", "Q0", "d1", "1", "0.9", "bm25"]
    # ranks follow descending score
    assert [ln.split()[2] for ln in path.read_text().splitlines() if ln.startswith("q1")] == ["d1", "d2", "d3"]


def test_trec_readers_name_the_bad_line(tmp_path: Path) -> None:
    p = tmp_path / "run.trec"
    p.write_text("q1 Q0 d1 1 0.5 tag\nq1 Q0 d2 2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="run.trec:2"):
        read_trec_run(p)
    with pytest.raises(ValueError, match="tag"):
        write_trec_run({"q": {"d": 1.0}}, tmp_path / "x", tag="two words")


# -- metrics vs pytrec_eval golden values ----------------------------------------------------

def test_all_metrics_match_pytrec_eval_golden_values() -> None:
    import pytrec_eval

    measures = {"ndcg_cut.5", "ndcg_cut.10", "map", "map_cut.3", "recall.3", "recall.100", "recip_rank", "P.1",
                "P.5"}
    expected = pytrec_eval.RelevanceEvaluator(QRELS, measures).evaluate(RUN)
    labels = parse_metrics("nDCG@5,nDCG@10,MAP,MAP@3,Recall@3,Recall@100,MRR,P@1,P@5")
    ours = per_query(QRELS, RUN, labels)
    keys = {"nDCG@5": "ndcg_cut_5", "nDCG@10": "ndcg_cut_10", "MAP": "map", "MAP@3": "map_cut_3",
            "Recall@3": "recall_3", "Recall@100": "recall_100", "MRR": "recip_rank", "P@1": "P_1", "P@5": "P_5"}
    for label, key in keys.items():
        for q in ("q1", "q2"):
            assert ours[label][q] == pytest.approx(expected[q][key], abs=1e-6), (label, q)
        assert ours[label]["q3"] == 0.0  # judged but absent from the run
    # hand-checkable: q2 retrieves d6 (non-relevant) then d5
    assert ours["P@1"]["q2"] == 0.0 and ours["P@5"]["q2"] == pytest.approx(2 / 5)
    assert evaluate(QRELS, RUN, parse_metrics("P@1"))["P@1"] == pytest.approx(1 / 3)


def test_metric_labels_are_validated() -> None:
    assert metric_spec("MRR@10") == "RR@10" and metric_spec("MAP@5") == "AP@5"
    assert list(default_metrics()) == ["nDCG@10", "MAP", "Recall@100", "MRR@10"]
    assert list(default_metrics(5, 50)) == ["nDCG@5", "MAP", "Recall@50", "MRR@5"]
    for bad in ("nDCG", "P@0", "Recall", "bpref", ""):
        with pytest.raises(ValueError):
            parse_metrics(bad)
    with pytest.raises(ValueError, match="k must be a positive integer, got 0"):
        default_metrics(0)


# -- significance ----------------------------------------------------------------------------

def test_randomization_test_exact_and_sampled() -> None:
    # exact enumeration: 3 equal positive diffs -> only all-plus/all-minus as extreme: 2/8
    assert randomization_test([0, 0, 0], [1, 1, 1]) == pytest.approx(0.25)
    a = [0.2, 0.5, 0.1, 0.7, 0.3, 0.9, 0.4, 0.6, 0.35, 0.8] * 3
    b = [x + 0.05 for x in a]
    p = randomization_test(a, b, n_resamples=2000, seed=1)
    assert p == randomization_test(a, b, n_resamples=2000, seed=1)  # fixed seed: reproducible
    assert p == pytest.approx(1 / 2001)  # every diff the same sign: nothing as extreme
    assert randomization_test(a, a) == 1.0
    noisy = [x + (0.05 if i % 2 else -0.05) for i, x in enumerate(a)]
    assert randomization_test(a, noisy, n_resamples=2000) > 0.5
    assert randomization_test(a, b, n_resamples=2000) == randomization_test(b, a, n_resamples=2000)


def test_paired_t_test_matches_scipy() -> None:
    from scipy import stats

    a, b = [0.1, 0.4, 0.35, 0.8, 0.5], [0.2, 0.45, 0.3, 0.9, 0.7]
    assert paired_t_test(a, b) == pytest.approx(stats.ttest_rel(b, a).pvalue)
    assert significance(a, b, "t-test") == paired_t_test(a, b)
    with pytest.raises(ValueError, match="unknown significance test 'wilcoxon'; choose from randomization, t-test"):
        significance(a, b, "wilcoxon")
    with pytest.raises(ValueError, match="same length"):
        randomization_test([1.0], [1.0, 2.0])


# -- the comparison command on a tiny BEIR folder --------------------------------------------

@pytest.mark.model  # the CLI loads MiniLM itself
def test_eval_retrieval_compares_configs_and_writes_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from rag.cli.main import main

    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path / "cache"))
    root = write_beir(tmp_path / "tiny")
    out = tmp_path / "out"
    code = main(["eval", "retrieval", "--dataset", "beir", "--path", str(root), "--out", str(out),
                 "--depth", "5", "--candidates", "10", "--resamples", "500", "--format", "json", "-q"])
    assert code == 0
    configs = ["bm25", "dense", "hybrid-zscore", "hybrid-adaptive", "hybrid-rrf", "hybrid-weighted"]
    printed = json.loads(capsys.readouterr().out)
    assert list(printed) == configs
    assert all(set(v) == {"nDCG@10", "MAP", "Recall@5", "MRR@10"} for v in printed.values())
    for name in ("comparison.md", "comparison.csv", "comparison.json", "per_query.csv", "metrics.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for c in configs:
        run = read_trec_run(out / "runs" / f"{c}.trec")
        assert set(run) == {"q1", "q2", "q3", "q4"} and all(len(d) <= 5 for d in run.values())
    with open(out / "comparison.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["config"] for r in rows] == configs
    assert "p (nDCG@10)" in rows[0] and "mean ms" in rows[0]
    report = json.loads((out / "comparison.json").read_text())
    assert report["baseline"] == "bm25" and report["n_queries"] == 4
    for c in configs[1:]:
        for p in report["configs"][c]["p_values"].values():
            assert 0.0 <= p <= 1.0
        assert report["configs"][c]["latency_ms"]["p95"] >= 0
    assert all(p is None for p in report["configs"]["bm25"]["p_values"].values())
    md = (out / "comparison.md").read_text()
    assert all(f"| {c} |" in md for c in configs) and "randomization" in md
    # the metrics a user can ask for, and latency in the JSON on request
    code = main(["eval", "retrieval", "--dataset", "beir", "--path", str(root), "--configs", "bm25,dense",
                 "--metrics", "P@1,nDCG@3", "--with-latency", "--format", "json", "-q"])
    printed = json.loads(capsys.readouterr().out)
    assert set(printed["dense"]) == {"P@1", "nDCG@3", "latency_mean_ms", "latency_p95_ms"}


def test_rerank_config_reranks_the_head_and_keeps_the_tail(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    import dataclasses

    from rag_eval.retrieval import CompareSettings, EvalSettings, compare_configs

    class ReverseReranker:
        """Stand-in cross-encoder: reverses the order of the hits it is given."""

        def __init__(self) -> None:
            self.calls = 0

        def load(self) -> "ReverseReranker":
            return self

        def rerank(self, query, hits, k=None):  # type: ignore[no-untyped-def]
            self.calls += 1
            return [dataclasses.replace(h, rank=i) for i, h in enumerate(reversed(hits), start=1)]

    ds = load_beir(write_beir(tmp_path / "tiny"))
    rr = ReverseReranker()
    settings = EvalSettings(depth=8, candidates=20, rerank_candidates=2)
    compare = CompareSettings(["hybrid-rrf", "hybrid-rrf-rerank"], retrieval=settings, baseline="hybrid-rrf",
                              cache_dir=tmp_path / "cache")
    cmp = compare_configs(ds, compare, embedder=embedder, reranker=rr)
    assert rr.calls == len(ds.queries)
    base, reranked = cmp.results["hybrid-rrf"].run["q1"], cmp.results["hybrid-rrf-rerank"].run["q1"]
    order = lambda run: [d for d, _ in sorted(run.items(), key=lambda kv: -kv[1])]  # noqa: E731
    assert set(base) == set(reranked)
    # one chunk per document here: the top 2 swap places, the rest keep the fused order
    assert order(reranked) == [order(base)[1], order(base)[0], *order(base)[2:]]
    with pytest.raises(ValueError, match="need a reranker"):
        compare_configs(ds, CompareSettings(["hybrid-rrf-rerank"], cache_dir=tmp_path / "cache"), embedder=embedder)


def test_jsonl_errors_name_the_file_and_line(tmp_path: Path) -> None:
    from rag_eval.answers import load_questions
    from rag_eval.datasets import read_jsonl

    qs = tmp_path / "q.jsonl"
    qs.write_text('{"question": "ok?"}\n\n{"q": "no"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"q\.jsonl:3: expected an object with a 'question' string"):
        load_questions(qs)
    bad = tmp_path / "corpus.jsonl"
    bad.write_text('{"_id": "1"}\n{oops\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"corpus\.jsonl:2: not valid JSON"):
        list(read_jsonl(bad))
    good = tmp_path / "queries.jsonl"
    good.write_text('{"_id": "a"}\n\n{"_id": "b"}\n', encoding="utf-8")
    assert [(n, r["_id"]) for n, r in read_jsonl(good)] == [(1, "a"), (3, "b")]  # blank lines skipped, numbers kept
