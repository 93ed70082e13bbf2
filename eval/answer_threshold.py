"""Answerability-check threshold sweep over the rows of one answer-benchmark run.

The check (rag.answer.gate.AnswerCheck) runs before generation and does not change it, so one run
that scores every question without declining on the score (``--answer-check -1000``) gives the
benchmark's result at every threshold.  Calibrate on the dev split, report on test:

    python -m rag eval answers --dataset qa --path ../shared/data/covid-qa --split dev --limit 30 --sample \\
        --answer-check -1000 --out /tmp/qa-dev
    python eval/answer_threshold.py /tmp/qa-dev/rows.jsonl            # pick the threshold
    python eval/answer_threshold.py /tmp/qa-test/rows.jsonl --json    # the same sweep on test
    python eval/answer_threshold.py ROWS --rejudge    # rows of an older run, judged by today's judge
"""
import sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import argparse, json
from rag_eval.qa import read_rows, rejudged, summarize, with_answer_check
from rag_eval.stats import auc, keep_threshold

p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
p.add_argument("rows", help="rows.jsonl (or rows.partial.jsonl) of `rag eval answers --dataset qa --out DIR`")
p.add_argument("--thresholds", default="none,-0.5,-0.25,0,0.25,0.5,1.0,1.5", help="comma-separated log-odds ('none' = no check)")
p.add_argument("--json", action="store_true", help="JSON lines instead of a table")
p.add_argument("--rejudge", action="store_true", help="judge the stored answers again with today's judge first")
p.add_argument("--step", type=float, default=0.05, help="grid of the calibration rule's threshold (default 0.05)")
args = p.parse_args()
rows = read_rows(args.rows)
if args.rejudge:
    rows = rejudged(rows)
if not any(r.answer_check is not None for r in rows):
    sys.exit(f"{args.rows}: no row has an answer_check score; run the benchmark with --answer-check -1000")
keys = ("correct", "cited_gold", "retrieved_gold", "declined_answerable", "declined_unanswerable",
        "invented_unanswerable")
if not args.json:
    print("| threshold | " + " | ".join(keys) + " |\n|---|" + "---:|" * len(keys))
for t in args.thresholds.split(","):
    judged = rows if t == "none" else with_answer_check(rows, float(t))
    s = summarize(judged, "")
    if args.json:
        print(json.dumps({"threshold": t, **{k: s[k] for k in keys}, "n": s["n"], "n_unanswerable": s["n_unanswerable"]}))
    else:
        print(f"| {t} | " + " | ".join(f"{s[k]:.2f}" if s[k] is not None else "–" for k in keys) + " |")

# Calibration (use dev rows): AUC of the score, answerable-with-the-answer-in-the-prompt vs unanswerable,
# and the calibration rule: the highest threshold (--step grid) keeping >= 90% of the answerable-in-prompt rows
gold = [r.answer_check for r in rows if r.setting == "answerable" and r.retrieved_gold and r.answer_check is not None]
una = [r.answer_check for r in rows if r.setting == "unanswerable" and r.answer_check is not None]
if gold and una:
    line = {"auc": round(auc(gold, una), 3), "threshold_keeping_90pct": keep_threshold(gold, 0.9, args.step),
            "n_answerable_in_prompt": len(gold), "n_unanswerable": len(una)}
    print(json.dumps(line) if args.json else f"\ncalibration: {line}")
