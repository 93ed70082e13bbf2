"""Dense weight in RRF: COVID-QA gold-chunk recall@k vs Cranfield hybrid nDCG@10, one run per weight.

Experiment only (patches the fusion call the retriever makes; the shipped default stays weight 1.0).
Usage: python bench/qa_fusion_weights.py   (~10 min)
"""
import sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import functools, json, random
import rag.retrieval.retriever as rr
from rag.retrieval.fusion import reciprocal_rank_fusion
from rag.embedding import Embedder
from rag_eval.answers import dataset_doc_id as _source_doc
from rag_eval.qa import load_qa, select, overlaps
from rag_eval.retrieval import EvalSettings, build_index, compare_configs
from rag_eval.datasets import load_dataset
from rag.retrieval.retriever import Retriever
emb = Embedder()
ds = load_qa(str(Path(__file__).resolve().parents[1].parent / 'shared' / 'data') + '/' + 'covid-qa'); qs = select(ds, 'test'); random.Random(0).shuffle(qs); qs = qs[:120]
idx = build_index(ds.corpus(), emb, EvalSettings())
cran = load_dataset('cranfield', str(Path(__file__).resolve().parents[1].parent / 'shared' / 'data') + '/' + 'cranfield')
for wd in (1.0, 0.7, 0.5, 0.3):
    rr.reciprocal_rank_fusion = lambda rankings, k=60, weights=None, wd=wd: reciprocal_rank_fusion(rankings, k=k, weights=[1.0, wd])
    r = Retriever(idx, mode='hybrid', embedder=emb, candidates=100)
    rec = {}
    for k in (3,5,10):
        rec[k] = 0
    for q in qs:
        hits = r.retrieve(q.question, k=10)
        rk = next((i+1 for i,h in enumerate(hits) if _source_doc(h.chunk.source)==q.doc_id and overlaps(h.chunk.start,h.chunk.end,q.answer_start,q.answer_end)), None)
        for k in rec:
            rec[k] += bool(rk and rk <= k)
    cmp = compare_configs(cran, ['hybrid'], settings=EvalSettings(), show_progress=False)
    m = cmp.means()
    print(json.dumps({"dense_weight": wd, "covid_chunk_recall": {k: round(v/len(qs),3) for k,v in rec.items()}, "cranfield": m}), flush=True)
