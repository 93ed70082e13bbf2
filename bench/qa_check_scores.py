"""Check-only pass: the answer check's log-odds for each question of a COVID-QA split, answerable and
unanswerable (index without the questions' articles), for two phrasings (A = the first yes/no one,
J = the shipped Y/N one, rag.answer.gate.CHECK_SUFFIX), without generating.  Prints one JSON line per
question and setting (gold = a chunk holding the answer is in the prompt).  This produced the dev
calibration and the test re-scoring quoted in the README (merge a test pass into a benchmark run's
rows by (qid, setting) to judge it with bench/qa_answer_check.py).

Usage: python bench/qa_check_scores.py dev 20 [qwen2.5-coder-1.5b] > scores.jsonl   (~25 s per prompt on 2 cores)
"""
import sys, json, time, random, math
sys.path.insert(0, str(__import__('pathlib').Path(__file__).resolve().parents[1]))
import os
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from rag.embedding import Embedder
from rag.index.store import IndexStore
from rag.pipeline import GenerationConfig, PipelineConfig, PluginConfig, RetrievalConfig, build
from rag_eval.qa import load_qa, select, without_documents, overlaps
from rag_eval.answers import dataset_doc_id
from rag_eval.retrieval import EvalSettings, build_index
from rag.generation.llm import LlamaCppLLM

split, n, model = sys.argv[1], int(sys.argv[2]), (sys.argv[3] if len(sys.argv) > 3 else 'qwen2.5-coder-1.5b')
ds = load_qa(str(__import__('pathlib').Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'covid-qa'))
qs = select(ds, split, n, seed=0)
emb = Embedder()
full = build_index(ds.corpus(), emb, EvalSettings())
without = without_documents(full, {q.doc_id for q in qs}, full.name + '-without')
llm = LlamaCppLLM(model, seed=0)
import tempfile; store = IndexStore(tempfile.mkdtemp())
def answerer(index):
    cfg = PipelineConfig(index=index.name, retrieval=RetrievalConfig(mode='hybrid'), generation=GenerationConfig(mode='generative', model=model),
                         plugins=PluginConfig(rewriter='none'))
    return build(cfg, store, index=index, embedder=emb, llm=llm).answerer
SUFFIXES = {
 'A': ("\n\nDo the sources above state the answer to this question? Reply yes or no.", ('yes','Yes'), ('no','No')),
 'J': ("\n\nDo the sources above answer the question? Reply with one letter: Y if they do, N if they do not.", ('Y',), ('N',)),
}
CH = ('yes', 'Yes', 'no', 'No')
out = sys.stderr
for setting, idx in (('answerable', full), ('unanswerable', without)):
    a = answerer(idx)
    for q in qs:
        t0 = time.perf_counter()
        plan = a.planner.plan(q.question)
        rel = [h.chunk for h in plan.relevant]
        row = {'qid': q.qid, 'setting': setting, 'n_rel': len(rel),
               'gold': any(dataset_doc_id(c.source) == q.doc_id and overlaps(c.start, c.end, q.answer_start, q.answer_end) for c in rel),
               'max_dense': max((float(h.scores.get('dense', 0)) for h in plan.relevant), default=None)}
        if rel:
            prompt = a.strategy.prompts.build(q.question, rel)
            msgs = [dict(m) for m in prompt.messages]
            for key, (suf, pos, neg) in SUFFIXES.items():
                m2 = msgs[:-1] + [{'role': 'user', 'content': msgs[-1]['content'] + suf}]
                lp = llm.first_token_logprobs(m2, pos + neg)
                py = math.log(sum(math.exp(lp[c]) for c in pos)); pn = math.log(sum(math.exp(lp[c]) for c in neg))
                row[key] = round(py - pn, 3)
        row['s'] = round(time.perf_counter() - t0, 2)
        print(json.dumps(row), flush=True)
llm.close()
