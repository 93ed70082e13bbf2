"""``rag eval answers``: the answer pipeline over a benchmark, generated and scored.

``--dataset qa`` (an extractive QA folder) judges each answer correct / cited_gold and asks the
same questions without their articles (declined vs invented); every other dataset is scored with
Ragas. Both build the pipeline with :func:`answer_config`: the app's defaults (``PipelineConfig()``)
but for the options given, so the benchmark measures what the app runs.

Example::

    rag eval answers --dataset qa --path ../shared/data/covid-qa --split dev --limit 50 --out results/qa
    rag eval answers --dataset cranfield --path ../shared/data/cranfield --limit 5 --out results/answers
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from rag.cli.common import (FUSIONS, MODES, add_answer_check_arg, add_evidence_args, add_extractive_arg,
                            add_index_dir_arg, positive_float, positive_int)
from rag.pipeline import GenerationConfig, PipelineConfig, PluginConfig, RetrievalConfig, make_llm
from rag.types import AnswerMode

#: How the Ragas-scored benchmarks (every ``--dataset`` but ``qa``) differ from the app's pipeline: fewer
#: chunks in the judge's prompts (``--contexts`` overrides it), and no follow-up rewriting (single questions).
RAGAS_CONTEXTS = 3
RAGAS_PLUGINS = PluginConfig(rewriter="none")


def answer_config(args: argparse.Namespace, index: str) -> PipelineConfig:
    """The pipeline ``rag eval answers`` measures: the app's (``PipelineConfig()``) but for the options given.

    One builder for every dataset, so ``--answer-check`` and the evidence options reach each one;
    a Ragas-scored benchmark changes only :data:`RAGAS_CONTEXTS` and :data:`RAGAS_PLUGINS`.
    """
    ragas = args.dataset != "qa"
    contexts = args.contexts or (RAGAS_CONTEXTS if ragas else None)
    return PipelineConfig(
        index=index,
        retrieval=RetrievalConfig(mode=args.mode, fusion=args.fusion, candidates=args.candidates,
                                  **({"k": contexts} if contexts else {})),
        generation=GenerationConfig(mode=AnswerMode.EXTRACTIVE if args.extractive else AnswerMode.GENERATIVE,
                                    model=args.generator, max_tokens=args.max_tokens, answer_check=args.answer_check,
                                    context=args.context, evidence_pool=args.evidence_pool,
                                    evidence_budget=args.evidence_budget),
        plugins=RAGAS_PLUGINS if ragas else PluginConfig())


def cmd_eval_qa(args: argparse.Namespace) -> int:
    """``rag eval answers --dataset qa``: correct / cited_gold / declined / invented over an extractive QA set."""
    from rag.embedding import Embedder
    from rag.index.store import IndexStore
    from rag.pipeline import build
    from rag_eval.qa import (add_cosines, load_qa, report_markdown, row_json, run_qa_benchmark, select, summarize,
                             without_documents)
    from rag_eval.retrieval import EvalSettings, build_index

    if not args.path:
        raise ValueError("--dataset qa needs --path FOLDER (documents/ and questions.jsonl, e.g. ../shared/data/covid-qa)")
    ds = load_qa(args.path)
    questions = select(ds, args.split, args.limit, seed=args.seed if args.sample else None)
    embedder = Embedder()
    full = build_index(ds.corpus(), embedder, EvalSettings(), show_progress=not args.quiet)
    without = None
    if args.unanswerable:
        without = without_documents(full, {q.doc_id for q in questions}, f"{full.name}-without-gold")
    config = answer_config(args, full.name)
    llm = None if config.generation.extractive else make_llm(config.generation)
    store = IndexStore(args.index_dir)
    scorer, judge = _qa_scorer(args, embedder, llm) if args.ragas else (None, None)

    def answerer(index):  # one builder for both settings; the model and embedder are shared; the app's plugins
        return build(replace(config, index=index.name), store, index=index, embedder=embedder, llm=llm).answerer

    partial = None
    if args.out:  # rows as they come, so an interrupted run keeps what it measured
        Path(args.out).mkdir(parents=True, exist_ok=True)
        partial = open(Path(args.out) / "rows.partial.jsonl", "w", encoding="utf-8")  # noqa: SIM115

    def keep(row: Any) -> None:
        if partial is not None:
            partial.write(row_json(row) + "\n")
            partial.flush()

    try:
        rows = run_qa_benchmark(questions, answerer(full), answerer(without) if without is not None else None,
                                show_progress=not args.quiet, on_row=keep, scorer=scorer)
    finally:
        for model in {id(m): m for m in (llm, getattr(judge, "llm", None)) if m is not None}.values():
            model.close()
        if partial is not None:
            partial.close()
    rows = add_cosines(rows, embedder.encode)
    summary = summarize(rows, "extractive" if args.extractive else args.generator)
    summary["settings"] = _qa_settings(args, config, unanswerable=without is not None)
    if args.out:
        _write_qa(Path(args.out), rows, summary)
    print(json.dumps(summary, indent=2) if args.format == "json" else report_markdown(summary, rows),
          end="\n" if args.format == "json" else "")
    return 0


def _qa_scorer(args: argparse.Namespace, embedder: Any, llm: Any) -> tuple[Any, Any]:
    """``--ragas``: the optional extra column's scorer and its judge (the verdict stays correct / cited_gold / declined)."""
    from rag_eval.judges import make_judge
    from rag_eval.scoring import AnswerScorer, parse_answer_metrics

    judge = make_judge(args.judge, model=args.judge_model, api_key=os.environ.get(args.judge_api_key_env),
                       max_tokens=args.judge_max_tokens, shared_llm=llm)
    return AnswerScorer(judge=judge, embedder=embedder, metrics=parse_answer_metrics(args.metrics),
                        timeout_s=args.timeout), judge


def _qa_settings(args: argparse.Namespace, config: PipelineConfig, unanswerable: bool) -> dict[str, Any]:
    """What a QA run measured, for its summary."""
    generation = config.generation
    return {"split": args.split, "limit": args.limit,
            "questions": f"seeded sample (seed {args.seed})" if args.sample else "first N",
            "mode": args.mode, "k": config.retrieval.k, "context": str(generation.context),
            "evidence_pool": generation.evidence_pool, "evidence_budget": generation.evidence_budget,
            "max_tokens": args.max_tokens,
            "unanswerable": "same questions, index without their gold documents" if unanswerable else "off"}


def _write_qa(out: Path, rows: Any, summary: dict[str, Any]) -> None:
    from rag_eval.qa import report_markdown, write_rows

    write_rows(rows, out / "rows.jsonl")
    (out / "rows.partial.jsonl").unlink(missing_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (out / "report.md").write_text(report_markdown(summary, rows), encoding="utf-8")
    print(f"wrote rows.jsonl, summary.json and report.md to {out}/", file=sys.stderr)


def cmd_eval_answers(args: argparse.Namespace) -> int:
    """``rag eval answers``: build the pipeline, generate, score, print and write the report."""
    if args.dataset == "qa":
        return cmd_eval_qa(args)
    from rag.embedding import Embedder
    from rag.index.store import IndexStore
    from rag.pipeline import build
    from rag_eval.answer_report import summary_markdown, write_answer_report
    from rag_eval.answers import answerer_generator, load_questions, questions_from_dataset
    from rag_eval.judges import make_judge
    from rag_eval.scoring import AnswerScorer, evaluate_answers, parse_answer_metrics

    metrics = parse_answer_metrics(args.metrics)
    embedder = Embedder()
    if args.questions:
        if not args.index:
            raise ValueError("--questions needs --index NAME (the index the questions are asked against)")
        index = IndexStore(args.index_dir).load(args.index)
        samples = load_questions(args.questions, limit=args.limit)
        id_of: Callable[[Any], str] | None = (lambda chunk: chunk.source)
    else:
        if not args.path:
            raise ValueError("give --dataset/--path (a benchmark) or --questions FILE.jsonl --index NAME")
        from rag_eval.datasets import load_dataset
        from rag_eval.retrieval import EvalSettings, build_index

        ds = load_dataset(args.dataset, args.path, split=args.split)
        index = build_index(ds, embedder, EvalSettings(), show_progress=not args.quiet)
        samples = questions_from_dataset(ds, limit=args.limit, seed=args.seed)
        id_of = None
    config = answer_config(args, index.name)
    llm = None if config.generation.extractive else make_llm(config.generation)
    judge = make_judge(args.judge, model=args.judge_model, api_key=os.environ.get(args.judge_api_key_env),
                       max_tokens=args.judge_max_tokens, shared_llm=llm)
    answerer = build(config, IndexStore(args.index_dir), index=index, embedder=embedder, llm=llm).answerer
    scorer = AnswerScorer(judge=judge, embedder=embedder, metrics=metrics, timeout_s=args.timeout)
    settings = {"dataset": args.dataset if not args.questions else str(args.questions), "mode": args.mode,
                "fusion": args.fusion, "contexts": args.contexts, "generator": "extractive" if args.extractive
                else args.generator, "max_tokens": args.max_tokens, "timeout_s": args.timeout,
                "limit": args.limit, "seed": args.seed}
    judge_llm = getattr(judge, "llm", None)
    try:
        report = evaluate_answers(samples, answerer_generator(answerer, id_of), scorer,
                                  show_progress=not args.quiet, settings=settings)
    finally:
        for model in {id(m): m for m in (llm, judge_llm) if m is not None and hasattr(m, "close")}.values():
            model.close()
    if args.out:
        paths = write_answer_report(report, args.out)
        print(f"wrote {len(paths)} files to {Path(args.out)}/", file=sys.stderr)
    if args.format == "json":
        print(json.dumps({"judge": report.judge, "samples": len(report.results),
                          "fully_scored": report.n_fully_scored, "metrics": report.aggregate()}, indent=2))
    else:
        print(summary_markdown(report), end="")
    return 0


def add_answers_command(esub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    from rag_eval.datasets import DATASETS

    r, g = RetrievalConfig(), GenerationConfig()
    a = esub.add_parser("answers", help="generate answers for a question set and score them",
                        description="--dataset qa (an extractive QA folder such as COVID-QA): the full pipeline over "
                                    "the split's questions, judged correct / cited_gold, plus the same questions "
                                    "against the collection without the split's documents (declined vs invented). "
                                    "Other datasets: retrieve -> generate, then score with Ragas: "
                                    "faithfulness, answer relevancy, context precision/recall (LLM judge), "
                                    "ID-based context precision/recall from qrels, non-LLM context recall. "
                                    "A metric that cannot be scored is reported missing with its reason.")
    a.add_argument("--dataset", default="cranfield", choices=DATASETS)
    a.add_argument("--path", default=None, help="benchmark folder (questions, qrels and corpus)")
    a.add_argument("--split", default="test",
                   help="BEIR qrels split, or the QA split: train, dev, test, all (default %(default)s)")
    a.add_argument("--sample", action="store_true",
                   help="qa: a seeded random sample of --limit questions (--seed) instead of the first N")
    a.add_argument("--no-unanswerable", dest="unanswerable", action="store_false",
                   help="qa: skip the unanswerable run (the same questions without their articles)")
    a.add_argument("--questions", default=None,
                   help="JSONL question set instead of a benchmark: {question, reference?, reference_ids?} "
                        "(needs --index)")
    a.add_argument("--index", default=None, help="index to answer --questions from")
    add_index_dir_arg(a)
    a.add_argument("--limit", type=positive_int, default=5,
                   help="questions to evaluate (qa: the split's first N; others: a seeded sample; default %(default)s)")
    a.add_argument("--seed", type=int, default=0, help="sampling seed (default %(default)s)")
    a.add_argument("--mode", choices=MODES, default=str(r.mode), help="retrieval mode (default %(default)s)")
    a.add_argument("--fusion", choices=FUSIONS, default=str(r.fusion), help="hybrid fusion (default %(default)s)")
    a.add_argument("--candidates", type=positive_int, default=r.candidates,
                   help="chunks per retriever before fusion (default %(default)s)")
    a.add_argument("--contexts", type=positive_int, default=None,
                   help=f"chunks given to the generator (default: qa the app's {r.k}, others {RAGAS_CONTEXTS})")
    a.add_argument("--generator", default=g.model, help="generator GGUF: registry name or path (default %(default)s)")
    a.add_argument("--max-tokens", type=positive_int, default=g.max_tokens,
                   help="answer token budget (default: the app's, %(default)s)")
    add_extractive_arg(a)
    add_answer_check_arg(a)
    add_evidence_args(a)
    a.add_argument("--ragas", action="store_true",
                   help="qa: also score each answered question with Ragas (--metrics, --judge): an extra column, "
                        "not the verdict (e.g. --ragas --judge none --metrics semantic_similarity,id_context_recall)")
    a.add_argument("--judge", default="smollm2-135m",
                   help="judge LLM: registry name or .gguf path (llama.cpp), an OpenAI-compatible base URL "
                        "(http://host:port/v1), or 'none' for non-LLM metrics only (default %(default)s)")
    a.add_argument("--judge-model", default=None, help="model name served by the --judge endpoint")
    a.add_argument("--judge-api-key-env", default="OPENAI_API_KEY",
                   help="environment variable holding the endpoint's API key (default %(default)s)")
    a.add_argument("--judge-max-tokens", type=positive_int, default=256, help="judge output budget per call")
    a.add_argument("--timeout", type=positive_float, default=120.0,
                   help="seconds allowed per sample and metric before it is recorded as missing")
    a.add_argument("--metrics", default="auto",
                   help="auto/all, or a comma list of faithfulness, answer_relevancy, context_precision, "
                        "context_recall, id_context_precision, id_context_recall, nonllm_context_recall, "
                        "semantic_similarity")
    a.add_argument("--format", choices=("json", "markdown"), default="markdown")
    a.add_argument("--out", default=None, help="write samples.csv/json, summary.md/json and scores.png here")
    a.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    a.set_defaults(func=cmd_eval_answers)
