"""Lexical decline signals beside the answer check, on the rows of an answer-benchmark run.

For each row the question is retrieved again as the run did (the default hybrid retriever, top 5; the
unanswerable setting against the collection without the gold documents of the run's questions) and the
question's *term coverage* is computed: the largest share of its analysed terms (stemmed, stop words
removed) found in one of the five chunks; and whether its *rarest term* (highest IDF over the whole
collection) is in any of them.  Then a question is declined when the run declined it, or its
answer-check log-odds is below ``check``, or the lexical rule fires (coverage below a floor, or the
rarest term missing); the table shows what each pair does to correct / cited_gold / declines.  The
AUC line separates answerable questions whose gold chunk was retrieved from unanswerable ones, for
coverage alone.

Then the same signals for questions asked in one's own words over ``samples/`` (written for this check,
not taken from the documents; the first group is answered there, the second is not): COVID-QA's
questions were written looking at their article, so their word overlap says little about a user's.

Usage: python bench/qa_decline_signals.py [ROWS ...]
       (rows.jsonl of `rag eval answers --dataset qa --path ../shared/data/covid-qa --answer-check -1000 --out DIR`)
"""
from __future__ import annotations

import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag.embedding import Embedder  # noqa: E402
from rag.index.sparse import lucene_idf  # noqa: E402
from rag.retrieval.retriever import Retriever  # noqa: E402
from rag_eval.qa import declined, load_qa, read_rows, rejudged, summarize, with_answer_check, without_documents  # noqa: E402
from rag_eval.retrieval import EvalSettings, build_index  # noqa: E402
from rag_eval.stats import auc  # noqa: E402
from bench.own_words import OWN_WORDS_ANSWERED, OWN_WORDS_NOT_ANSWERED, samples_index  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "covid-qa"
CHECKS = (None, 1.0, 1.5)
RULES = ("none", "coverage < 0.6", "coverage < 0.7", "coverage < 0.8", "rarest term missing")


def signals(analyzer, idf, question: str, chunks) -> tuple[float, bool]:
    """(term coverage of the best chunk, whether the question's rarest term is in any chunk)."""
    terms = set(analyzer.tokenize(question))
    if not terms:
        return 1.0, True
    held = [terms & set(analyzer.tokenize(f"{c.title}\n{c.text}")) for c in chunks]
    rarest = max(sorted(terms), key=idf)
    return max((len(h) / len(terms) for h in held), default=0.0), any(rarest in h for h in held)


def fires(rule: str, cov: float, rare: bool) -> bool:
    if rule == "none":
        return False
    if rule == "rarest term missing":
        return not rare
    return cov < float(rule.rsplit(" ", 1)[1])


def own_words(emb: Embedder) -> None:
    print("\nOwn-words questions over samples/ (coverage = share of the question's terms in the best of 5 chunks)")
    print("| answered in samples/ | coverage | best dense cosine | question |\n|---|---:|---:|---|")
    with tempfile.TemporaryDirectory() as tmp:
        index = samples_index(tmp).load("samples")
        retriever = Retriever(index, embedder=emb)
        for answered, questions in ((True, OWN_WORDS_ANSWERED), (False, OWN_WORDS_NOT_ANSWERED)):
            for q in questions:
                hits = retriever.retrieve(q, 5)
                cov, _ = signals(index.analyzer, lambda t: 0.0, q, [h.chunk for h in hits])
                dense = max(float(h.scores.get("dense", 0.0)) for h in hits)
                print(f"| {answered} | {cov:.2f} | {dense:.2f} | {q} |")


def main() -> None:
    emb = Embedder()
    qa = load_qa(DATA)
    questions = {q.qid: q for q in qa.questions}
    full = build_index(qa.corpus(), emb, EvalSettings(), show_progress=True)
    analyzer = full.analyzer
    df = Counter(t for c in full.chunks for t in set(analyzer.tokenize(f"{c.title}\n{c.text}")))

    def idf(term: str) -> float:
        return lucene_idf(len(full.chunks), df.get(term, 0))
    for path in sys.argv[1:]:
        rows = rejudged(read_rows(path))
        asked = {r.qid for r in rows}
        without = without_documents(full, {questions[q].doc_id for q in asked}, "without-gold")
        retrievers = {"answerable": Retriever(full, embedder=emb), "unanswerable": Retriever(without, embedder=emb)}
        cov, rare, gold = {}, {}, {}
        for r in rows:
            chunks = [h.chunk for h in retrievers[r.setting].retrieve(r.question, 5)]
            cov[r.qid, r.setting], rare[r.qid, r.setting] = signals(analyzer, idf, r.question, chunks)
            gold[r.qid, r.setting] = any(questions[r.qid].in_chunk(c) for c in chunks)
        pos = [cov[k] for k in cov if k[1] == "answerable" and gold[k]]
        neg = [cov[k] for k in cov if k[1] == "unanswerable"]
        print(f"\n{path}: coverage AUC (answerable with gold retrieved vs unanswerable) {auc(pos, neg):.3f}, "
              f"n = {len(pos)} / {len(neg)}")
        print("| check < | lexical rule | correct | cited_gold | declined_answerable | declined_unanswerable |")
        print("|---|---|---:|---:|---:|---:|")
        for check in CHECKS:
            checked = rows if check is None else with_answer_check(rows, check)
            for rule in RULES:
                s = summarize([declined(r, rule) if not r.declined and fires(rule, cov[r.qid, r.setting],
                                                                             rare[r.qid, r.setting]) else r
                               for r in checked], "")
                print(f"| {check} | {rule} | {s['correct']:.2f} | {s['cited_gold']:.2f} | "
                      f"{s['declined_answerable']:.2f} | {s['declined_unanswerable']:.2f} |")
    own_words(emb)


if __name__ == "__main__":
    main()
