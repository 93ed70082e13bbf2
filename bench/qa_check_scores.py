"""Check-only pass: the answer check's log-odds for each question of a COVID-QA split, answerable and
unanswerable (index without the questions' articles), for several phrasings and calibrations, without
generating.  Keys (pick with ``--keys``; default all):

* A = the first yes/no phrasing; J = the shipped Y/N one (rag.answer.gate.CHECK_SUFFIX); E = J insisting
  on the exact subject; S = the number of the source that states the answer, or 0;
* G = J asked about a content-free question ("What is the capital of France?") over the same sources:
  the model's bias for these sources.  ``J-G`` (summarised) is contextual calibration (Zhao et al.,
  "Calibrate Before Use: Improving Few-Shot Performance of Language Models", ICML 2021); N is the same
  with the question "N/A";
* D = the log-odds that the answer's first token is *not* "I" (the start of the decline sentence the
  system prompt asks for): the model's own decline probability, read from the answer prompt itself.

G, N and D share the sources' KV cache with J (only the tail is evaluated).  Prints one JSON line per
question and setting (gold = a chunk holding the answer is in the prompt); ``--own-words`` adds the
questions of bench/own_words.py over ``samples/`` (settings own-answerable / own-unanswerable).  This
produced the dev calibration and the test re-scoring quoted in the README (merge a test pass into a
benchmark run's rows by (qid, setting) to judge it with bench/qa_answer_check.py).

Usage: python bench/qa_check_scores.py dev 20 [--model qwen2.5-coder-1.5b] [--keys J,G,D] [--own-words] > scores.jsonl
       (~10 s per prompt on 2 cores)
       python bench/qa_check_scores.py --summarize scores.jsonl   (AUC per key: answerable with the gold chunk
       in the prompt vs unanswerable, and what the threshold keeping 90% of the former (0.05 grid) declines, own-words included)
"""
import sys, json, time, math, argparse, os, tempfile
from pathlib import Path
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from rag_eval.stats import auc, keep_threshold

NULL_QUESTIONS = {'G': 'What is the capital of France?', 'N': 'N/A'}
DERIVED = {'J-G': lambda r: r['J'] - r['G'], 'J-N': lambda r: r['J'] - r['N']}


def summarize(path):
    rows = [json.loads(line) for line in open(path)]
    for key in ('A', 'J', 'E', 'S', 'G', 'N', 'D', *DERIVED):
        value = DERIVED.get(key, lambda r, k=key: r[k])
        have = [r for r in rows if all(k in r for k in (key.split('-') if key in DERIVED else [key]))]
        pos = sorted(value(r) for r in have if r['setting'] == 'answerable' and r['gold'])
        allpos = [value(r) for r in have if r['setting'] == 'answerable']
        neg = [value(r) for r in have if r['setting'] == 'unanswerable']
        if not pos or not neg:
            continue
        th = keep_threshold(pos, 0.9, 0.05)
        line = (f"{key}: AUC {auc(pos, neg):.3f} (all answerable: {auc(allpos, neg):.3f}), n {len(pos)}/{len(neg)}; "
                f"threshold keeping 90% {th:.2f} declines {sum(x < th for x in neg) / len(neg):.2f} of unanswerable, "
                f"{sum(x < th for x in allpos) / len(allpos):.2f} of answerable")
        own = [value(r) for r in have if r['setting'] == 'own-answerable']
        own_no = [value(r) for r in have if r['setting'] == 'own-unanswerable']
        if own:
            line += (f"; own words at that threshold: {sum(x >= th for x in own)}/{len(own)} answerable pass, "
                     f"{sum(x >= th for x in own_no)}/{len(own_no)} unanswerable pass")
        print(line)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument('split')
    ap.add_argument('n', type=int)
    ap.add_argument('--model', default='qwen2.5-coder-1.5b')
    ap.add_argument('--keys', default='A,J,E,S,G,N,D', help='comma-separated keys (G and N need J)')
    ap.add_argument('--own-words', action='store_true', help="also score bench/own_words.py's questions over samples/")
    args = ap.parse_args()
    keys = set(args.keys.split(','))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from rag.embedding import Embedder
    from rag.index.store import IndexStore
    from rag.pipeline import GenerationConfig, PipelineConfig, PluginConfig, RetrievalConfig, build
    from rag_eval.qa import load_qa, select, without_documents
    from rag_eval.retrieval import EvalSettings, build_index
    from rag.generation.llm import LlamaCppLLM
    from rag.generation.prompting import with_question
    from rag.answer.gate import CHECK_SUFFIX, NO, YES, check_messages, yes_log_odds
    from bench.own_words import OWN_WORDS_ANSWERED, OWN_WORDS_NOT_ANSWERED, samples_index

    ds = load_qa(str(ROOT.parent / 'shared' / 'data' / 'covid-qa'))
    qs = select(ds, args.split, args.n, seed=0)
    emb = Embedder()
    full = build_index(ds.corpus(), emb, EvalSettings())
    without = without_documents(full, {q.doc_id for q in qs}, full.name + '-without')
    llm = LlamaCppLLM(args.model, seed=0)

    def answerer(index, store):
        cfg = PipelineConfig(index=index.name, retrieval=RetrievalConfig(mode='hybrid'),
                             generation=GenerationConfig(mode='generative', model=args.model),
                             plugins=PluginConfig(rewriter='none'))
        return build(cfg, store, index=index, embedder=emb, llm=llm).answerer
    suffixes = {
     'A': ("\n\nDo the sources above state the answer to this question? Reply yes or no.", ('yes', 'Yes'), ('no', 'No')),
     'J': (CHECK_SUFFIX, YES, NO),
     'E': ("\n\nDo the sources above answer this exact question, about this exact subject (not a related one)? Reply with one letter: Y if they do, N if they do not.", ('Y',), ('N',)),
     'S': ("\n\nWhich source states the answer to the question? Reply with the source's number only, or 0 if no source states it.", ('1', '2', '3', '4', '5'), ('0',)),
    }

    def log_odds(msgs, pos, neg):
        return yes_log_odds(llm.first_token_logprobs(msgs, pos + neg), pos, neg)

    def score(a, question, row):
        t0 = time.perf_counter()
        plan = a.planner.plan(question)
        rel = [h.chunk for h in plan.relevant]
        row['n_rel'] = len(rel)
        row['max_dense'] = max((float(h.scores.get('dense', 0)) for h in plan.relevant), default=None)
        if rel:
            msgs = [dict(m) for m in a.strategy.prompts.build(question, rel).messages]
            user = msgs[-1]['content']
            for key, (suf, pos, neg) in suffixes.items():
                if key in keys:
                    row[key] = round(log_odds(msgs[:-1] + [{'role': 'user', 'content': user + suf}], pos, neg), 3)
            for key, null in NULL_QUESTIONS.items():
                if key in keys:
                    row[key] = round(log_odds(check_messages(with_question(msgs, null)), YES, NO), 3)
            if 'D' in keys:
                p = math.exp(llm.first_token_logprobs(msgs, ('I',))['I'])
                row['D'] = round(math.log(max(1.0 - p, 1e-12) / max(p, 1e-12)), 3)
        row['s'] = round(time.perf_counter() - t0, 2)
        return row, rel

    with tempfile.TemporaryDirectory() as tmp:
        store = IndexStore(tmp)
        for setting, idx in (('answerable', full), ('unanswerable', without)):
            a = answerer(idx, store)
            for q in qs:
                row, rel = score(a, q.question, {'qid': q.qid, 'setting': setting})
                row['gold'] = any(q.in_chunk(c) for c in rel)
                print(json.dumps(row), flush=True)
    if args.own_words:
        with tempfile.TemporaryDirectory() as tmp:
            store = samples_index(tmp)
            a = answerer(store.load('samples'), store)
            for setting, questions in (('own-answerable', OWN_WORDS_ANSWERED), ('own-unanswerable', OWN_WORDS_NOT_ANSWERED)):
                for q in questions:
                    print(json.dumps(score(a, q, {'qid': q, 'setting': setting})[0]), flush=True)
    llm.close()


if __name__ == '__main__':
    if sys.argv[1:2] == ['--summarize']:
        summarize(sys.argv[2])
    else:
        main()
