"""Yes/no claims over COVID-QA's articles: supported, contradicted, and not settled, through the default pipeline.

``eval/claims/covid-qa-claims-{dev,test}.jsonl`` hold 50 claims each, written for this check over the
articles of COVID-QA's dev and test splits (25 that an article's sentence supports, 25 that it
contradicts: a changed number, a reversed direction, a swapped virus or host), with the document
and the character offsets of the sentence that settles each (the text itself stays in
``../shared/data/covid-qa``).  Each claim is asked as a question twice through the default pipeline
(``rag.pipeline.build`` with ``PipelineConfig()``, the packaged default model):

* against all 145 articles: a supported claim should be answered Yes, a contradicted one No;
* against the articles without the ones the claims were written on: the sources do not settle it,
  so it should be declined.

Prints one JSON object: the rates, and for each answered claim whether it cites the settling sentence.

``--verdicts`` asks only the yes/no verdict (no answer is written) over each claim's evidence from all
articles, and shows what a Yes margin (``YesNoRule.yes``) would say: Yes only when log P(Yes) - log P(No)
reaches it, No when No ties or beats Yes, and the settling sentence quoted, with neither, in between.

Usage: python eval/claims.py [--split dev|test] [--limit N] [--out DIR]   (~20 min for 50 claims on 2 cores)
       python eval/claims.py --split dev --verdicts                      (~3 min)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

COVID_QA = ROOT.parent / "shared" / "data" / "covid-qa"
CLAIMS = Path(__file__).resolve().parent / "claims"


def verdict(text: str, declined: bool) -> str:
    """``yes``, ``no``, ``declined`` or ``other`` (an answer that opens with neither)."""
    if declined:
        return "declined"
    from rag_eval.qa import opening_verdict

    return opening_verdict(text) or "other"


MARGINS = (0.0, 0.5, 1.0, 1.5)
WHICH_SOURCE = "Which source says so? Reply with its number only."


def margin_table(rows: list[dict], margins: tuple[float, ...] = MARGINS) -> dict[str, dict]:
    """Per Yes margin: how many supported claims get Yes / a quote / No, contradicted ones No / a quote
    / Yes, and the share of spoken verdicts that are right (pure)."""
    from rag.answer.decision import UNSURE, YesNoRule

    out = {}
    for m in margins:
        said = {"supported": {"yes": 0, "quote": 0, "no": 0}, "contradicted": {"no": 0, "quote": 0, "yes": 0}}
        rule = YesNoRule(no=0.0, yes=m)
        for r in rows:
            polarity = rule.polarity(r["no_vs_yes"])
            said[r["label"]]["quote" if polarity == UNSURE else polarity.lower()] += 1
        spoken = sum(v for g in said.values() for k, v in g.items() if k != "quote")
        wrong = said["supported"]["no"] + said["contradicted"]["yes"]
        out[f"yes_margin_{m:g}"] = {**said, "wrong_verdicts": wrong,
                                    "right_of_spoken": round(1 - wrong / spoken, 3) if spoken else None}
    return out


def verdicts(pipeline: object, claims: list[dict]) -> dict[str, object]:
    """``--verdicts``: the verdict's No - Yes log-odds per claim (all articles) and :func:`margin_table`."""
    from rag.answer.decision import POLARITY, VERDICT_PASSAGES, verdict_messages
    from rag_eval.answers import dataset_doc_id
    from rag_eval.qa import overlaps

    planner, llm = pipeline.answerer.planner, pipeline.llm  # type: ignore[attr-defined]
    rows = []
    for c in claims:
        plan = planner.plan(c["question"])
        shown = plan.evidence.passages[:VERDICT_PASSAGES] if plan.evidence else ()
        messages = verdict_messages(c["question"], [p.text for p in shown])
        lp = llm.first_token_logprobs(messages, POLARITY) if shown else None
        if lp is not None:
            def settles(p: object) -> bool:
                return dataset_doc_id(p.chunk.source) == c["doc_id"] and overlaps(  # type: ignore[attr-defined]
                    *p.span, c["evidence_start"], c["evidence_end"])  # type: ignore[attr-defined]

            # the model asked, after its verdict, which passage says so (one more short turn, prefix cached)
            said = max(lp, key=lp.get)
            pick = llm.first_token_logprobs(
                [*messages, {"role": "assistant", "content": said}, {"role": "user", "content": WHICH_SOURCE}],
                [str(i) for i in range(1, len(shown) + 1)])
            picked = shown[int(max(pick, key=pick.get)) - 1] if pick else shown[0]
            rows.append({"id": c["id"], "label": c["label"], "no_vs_yes": round(lp["No"] - lp["Yes"], 4),
                         "first_settles": settles(shown[0]), "best_cos_settles": settles(max(shown, key=lambda p: p.cos)),
                         "model_pick_settles": settles(picked), "shown_settles": any(settles(p) for p in shown)})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    # which of the verdict's passages a yes/no answer should quote: the first, or the closest in meaning
    quoted = {k: sum(r[k] for r in rows) for k in ("shown_settles", "first_settles", "best_cos_settles",
                                                     "model_pick_settles")}
    return {"claims": len(claims), "with_evidence": len(rows), "settling_sentence": quoted, **margin_table(rows)}


def main() -> None:
    from rag.index.store import IndexStore
    from rag.pipeline import PipelineConfig, build
    from rag_eval.answers import dataset_doc_id
    from rag_eval.qa import load_qa, overlaps, without_documents
    from rag_eval.retrieval import EvalSettings, build_index

    from rag.embedding import Embedder

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=("dev", "test"), default="test")
    ap.add_argument("--limit", type=int, default=None, help="the first N claims of the file")
    ap.add_argument("--out", default=None, help="write rows.jsonl and summary.json here")
    ap.add_argument("--verdicts", action="store_true",
                    help="only the yes/no verdict over all articles, and what each Yes margin would say")
    args = ap.parse_args()
    claims = [json.loads(line) for line in (CLAIMS / f"covid-qa-claims-{args.split}.jsonl").read_text().splitlines()]
    claims = claims[:args.limit] if args.limit else claims
    ds = load_qa(COVID_QA)
    texts = {d.doc_id: d.text for d in ds.documents}
    for c in claims:
        if not 0 <= c["evidence_start"] < c["evidence_end"] <= len(texts[c["doc_id"]]):
            raise ValueError(f"claim {c['id']}: offsets outside document {c['doc_id']}")
    embedder = Embedder()
    full = build_index(ds.corpus(), embedder, EvalSettings())
    without = without_documents(full, sorted({c["doc_id"] for c in claims}), f"{full.name}-without-claims")
    store = IndexStore(Path(os.environ.get("TMPDIR", "/tmp")) / "claims-indexes")
    rows = []
    with build(PipelineConfig(index=full.name), store, index=full, embedder=embedder) as pipeline:
        if args.verdicts:
            print(json.dumps({"split": args.split, **verdicts(pipeline, claims)}, indent=2))
            return
        absent = build(PipelineConfig(index=without.name), store, index=without, embedder=embedder,
                       llm=pipeline.llm).answerer
        for c in claims:
            for setting, answerer, label in (("present", pipeline.answerer, c["label"]),
                                             ("absent", absent, "not settled")):
                a = answerer.answer(c["question"])
                cites = any(dataset_doc_id(x.chunk.source) == c["doc_id"]
                            and overlaps(*x.span, c["evidence_start"], c["evidence_end"]) for x in a.citations)
                rows.append({"id": c["id"], "setting": setting, "label": label,
                             "verdict": verdict(a.text, a.declined), "cites_settling_sentence": cites,
                             "decision": a.diagnostics.decision, "decision_score": a.diagnostics.decision_score,
                             "signals": dict(a.diagnostics.decision_signals), "answer": a.text})
                print(json.dumps(rows[-1], ensure_ascii=False), file=sys.stderr, flush=True)
    right = {"supported": "yes", "contradicted": "no", "not settled": "declined"}
    summary: dict[str, object] = {"split": args.split, "claims": len(claims)}
    for label, want in right.items():
        group = [r for r in rows if r["label"] == label]
        if not group:  # --limit can leave a label out
            continue
        summary[label] = {"n": len(group), "right": round(sum(r["verdict"] == want for r in group) / len(group), 3),
                          **{v: sum(r["verdict"] == v for r in group) for v in ("yes", "no", "declined", "other")},
                          "right_and_cites": sum(r["verdict"] == want and r["cites_settling_sentence"]
                                                 for r in group)}
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "rows.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
