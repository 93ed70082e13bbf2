"""COVID-QA retrieval ceiling: share of questions whose gold span is in a top-k chunk, per retriever.

Usage: python bench/qa_retrieval.py   (120 seeded test questions; ~2 min with the cached index)
"""
import sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import sys, statistics
from rag.embedding import Embedder
from rag_eval.answers import dataset_doc_id as _source_doc
from rag_eval.qa import load_qa, select, overlaps
from rag_eval.retrieval import EvalSettings, build_index
from rag.retrieval.retriever import Retriever
ds = load_qa(str(Path(__file__).resolve().parents[1].parent / 'shared' / 'data') + '/' + 'covid-qa'); qs = select(ds, 'test')
import random; random.Random(0).shuffle(qs); qs = qs[:120]
emb = Embedder(); idx = build_index(ds.corpus(), emb, EvalSettings())
for mode in ('bm25','dense','hybrid'):
    r = Retriever(idx, mode=mode, embedder=emb, candidates=100)
    ranks=[]; docr=[]
    for q in qs:
        hits = r.retrieve(q.question, k=50)
        rk = next((i+1 for i,h in enumerate(hits) if _source_doc(h.chunk.source)==q.doc_id and overlaps(h.chunk.start,h.chunk.end,q.answer_start,q.answer_end)), None)
        dr = next((i+1 for i,h in enumerate(hits) if _source_doc(h.chunk.source)==q.doc_id), None)
        ranks.append(rk); docr.append(dr)
    for k in (1,3,5,10,20,50):
        print(mode, k, 'chunk', round(sum(1 for x in ranks if x and x<=k)/len(qs),3), 'doc', round(sum(1 for x in docr if x and x<=k)/len(qs),3))
