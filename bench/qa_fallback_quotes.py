"""The quoted fallback's best sentence vs the question: cosine per fallback row of an answer-benchmark run.

The quote floor (GenerativeStrategy's fallback_min_similarity, 0.6) was chosen on a dev run with this:
the highest floor that keeps every fallback that was judged correct.

Usage: python bench/qa_fallback_quotes.py ROWS   (rows.jsonl of `rag eval answers --dataset qa --out DIR`)
"""
import sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import re
from rag.embedding import Embedder
from rag_eval.qa import read_rows, rejudged

rows = [r for r in rejudged(read_rows(sys.argv[1])) if r.fallback]
emb = Embedder()
print("| setting | qid | correct | best quote cosine | answer check |\n|---|---|---|---:|---:|")
for r in rows:
    quote = re.match(r'"(.*?)" \[\d+\]', r.answer, re.S)
    v = emb.encode([r.question, quote.group(1) if quote else r.answer])
    print(f"| {r.setting} | {r.qid} | {r.correct} | {float(v[0] @ v[1]):.3f} | {r.answer_check} |")
