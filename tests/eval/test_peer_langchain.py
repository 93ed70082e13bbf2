"""bench/peer_langchain.py: LangChain's stock hybrid retriever over a tiny BEIR folder, real MiniLM."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from rag_eval.datasets import load_dataset
from tests.conftest import REPO

pytestmark = pytest.mark.model  # the real packaged all-MiniLM-L6-v2, through LangChain's HuggingFaceEmbeddings

CORPUS = [
    {"_id": "pump", "title": "Centrifugal pumps",
     "text": "A centrifugal pump must be primed with liquid before it starts, or the impeller runs dry."},
    {"_id": "wing", "title": "Swept wings",
     "text": "Sweeping the wing back delays the drag rise as the aircraft approaches the speed of sound."},
    {"_id": "heat", "title": "Heat conduction in slabs",
     "text": "Heat flows through a composite slab at a rate set by the conductivity of each layer."},
    {"_id": "bird", "title": "Migration",
     "text": "Swallows fly south in autumn and return in spring to the same nests."},
]
QUERIES = {"q1": "why must a centrifugal pump be primed before starting",
           "q2": "how does sweeping a wing back delay the drag rise near the speed of sound"}
QRELS = {"q1": "pump", "q2": "wing"}


def _load_script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("peer_langchain", REPO / "bench" / "peer_langchain.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_langchain_hybrid_ranks_the_relevant_document_first(tmp_path: Path) -> None:
    pytest.importorskip("langchain_classic")
    pytest.importorskip("rank_bm25")
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in CORPUS) + "\n", encoding="utf-8")
    (tmp_path / "queries.jsonl").write_text(
        "\n".join(json.dumps({"_id": q, "text": t}) for q, t in QUERIES.items()) + "\n", encoding="utf-8")
    (tmp_path / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, d in QRELS.items()), encoding="utf-8")
    peer = _load_script()

    result, run = peer.run_benchmark(load_dataset("beir", tmp_path, "test"))

    for qid, doc in QRELS.items():
        assert max(run[qid], key=run[qid].get) == doc, run[qid]
    assert set(run["q1"]) == {d["_id"] for d in CORPUS}  # BM25 returns every chunk, so every document ranks
    assert result[peer.NAME] == {"nDCG@10": 1.0, "MAP": 1.0, "R@100": 1.0}
    s = result["settings"]
    assert (s["documents"], s["chunks"], s["queries"], s["weights"], s["rrf_c"]) == (4, 4, 2, [0.5, 0.5], 60)
    assert peer.markdown(result).splitlines()[-1] == "| langchain-hybrid | 1.0000 | 1.0000 | 1.0000 |"
