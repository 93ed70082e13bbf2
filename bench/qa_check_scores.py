"""Check-only pass: the answer check's log-odds for each question of a COVID-QA split, answerable and
unanswerable (index without the questions' articles), for four phrasings (A = the first yes/no one,
J = the shipped Y/N one, rag.answer.gate.CHECK_SUFFIX; E = J insisting on the exact subject; S = the number of the source
that states the answer, or 0), without generating.  Prints one JSON line per
question and setting (gold = a chunk holding the answer is in the prompt).  This produced the dev
calibration and the test re-scoring quoted in the README (merge a test pass into a benchmark run's
rows by (qid, setting) to judge it with bench/qa_answer_check.py).

Usage: python bench/qa_check_scores.py dev 20 [qwen2.5-coder-1.5b] > scores.jsonl   (~25 s per prompt on 2 cores)
       python bench/qa_check_scores.py --summarize scores.jsonl   (AUC per phrasing: answerable with the gold chunk
       in the prompt vs unanswerable, and what keeping 90% of the former declines)
"""
import sys, json, time, random, math
sys.path.insert(0, str(__import__('pathlib').Path(__file__).resolve().parents[1]))
from rag_eval.stats import auc


def summarize(path):
    rows = [json.loads(line) for line in open(path)]
    for key in ('A', 'J', 'E', 'S'):
        pos = sorted(r[key] for r in rows if r['setting'] == 'answerable' and r['gold'] and key in r)
        allpos = [r[key] for r in rows if r['setting'] == 'answerable' and key in r]
        neg = [r[key] for r in rows if r['setting'] == 'unanswerable' and key in r]
        if not pos or not neg:
            continue
        th = pos[int(0.1 * len(pos))]
        print(f"{key}: AUC {auc(pos, neg):.3f} (all answerable: {auc(allpos, neg):.3f}), n {len(pos)}/{len(neg)}; "
              f"threshold keeping 90% {th:.2f} declines {sum(x < th for x in neg) / len(neg):.2f} of unanswerable, "
              f"{sum(x < th for x in allpos) / len(allpos):.2f} of answerable")


if sys.argv[1:2] == ['--summarize']:
    summarize(sys.argv[2])
    sys.exit(0)
import os
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from rag.embedding import Embedder
from rag.index.store import IndexStore
from rag.pipeline import GenerationConfig, PipelineConfig, PluginConfig, RetrievalConfig, build
from rag_eval.qa import load_qa, select, without_documents
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
 'E': ("\n\nDo the sources above answer this exact question, about this exact subject (not a related one)? Reply with one letter: Y if they do, N if they do not.", ('Y',), ('N',)),
 'S': ("\n\nWhich source states the answer to the question? Reply with the source's number only, or 0 if no source states it.", ('1', '2', '3', '4', '5'), ('0',)),
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
               'gold': any(q.in_chunk(c) for c in rel),
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
