"""``rag eval ...`` subcommands (wired into :mod:`rag.cli.main`).

Examples::

    rag eval retrieval --dataset cranfield --path ../shared/data/cranfield --configs bm25,dense,hybrid --format json
    rag eval retrieval --dataset beir --path datasets/scifact --out results/scifact
    rag eval retrieval --dataset cranfield --path ../shared/data/cranfield --configs hybrid \
        --rewriters none,keyword,multi-query,hyde,decompose --out results/rewriters
    rag eval answers --dataset cranfield --path ../shared/data/cranfield --limit 5 --out results/answers
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

from rag.cli.common import (FUSIONS, MODES, CommandError, add_answer_check_arg, add_evidence_args, add_index_dir_arg, non_negative_int,  # one CLI convention
                            positive_float, positive_int, unit_interval)
from rag.ingest.chunking import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE
from rag.retrieval.fusion import DEFAULT_RRF_K


def cmd_eval_retrieval(args: argparse.Namespace) -> int:
    from rag_eval.datasets import load_dataset
    from rag_eval.metrics import default_metrics, parse_metrics
    from rag_eval.report import markdown_table, write_comparison
    from rag_eval.retrieval import CONFIGS, RERANK_CONFIG, EvalSettings, compare_configs, parse_configs

    configs = parse_configs(args.configs)
    metrics = parse_metrics(args.metrics) if args.metrics else default_metrics(args.k, args.depth)
    settings = EvalSettings(chunk_size=args.chunk_size, chunk_overlap=args.chunk_overlap, depth=args.depth,
                            candidates=args.candidates, rrf_k=args.rrf_k, alpha=args.alpha,
                            rerank_candidates=args.rerank_candidates)
    reranker = None
    if args.reranker:
        from rag.retrieval.rerank import Reranker

        reranker = Reranker(args.reranker)
        if not any(CONFIGS[c].get("rerank") for c in configs):
            configs.append(RERANK_CONFIG)
    rewriters = [r.strip() for r in (args.rewriters or "").split(",") if r.strip()]
    llm = None
    if rewriters:
        from rag.plugins.base import available_rewriters

        unknown = [r for r in rewriters if r not in available_rewriters()]
        if unknown:
            raise ValueError(f"unknown rewriter(s) {', '.join(unknown)}; available: {', '.join(available_rewriters())}")
        if any(r not in ("none", "keyword", "condense") for r in rewriters):
            from rag.generation.llm import LlamaCppLLM

            llm = LlamaCppLLM(args.llm, seed=0)
    milvus = None
    if args.backend == "milvus":
        from rag.index.milvus import MilvusConfig

        if not args.uri:
            raise CommandError("--backend milvus needs the server: --uri http://HOST:19530", code=2)
        milvus = MilvusConfig(uri=args.uri, index_type=args.milvus_index)
    ds = load_dataset(args.dataset, args.path, split=args.split)
    try:
        cmp = compare_configs(ds, configs, settings=settings, reranker=reranker, metrics=metrics,
                              baseline=args.baseline, test=args.test, n_resamples=args.resamples, seed=args.seed,
                              show_progress=not args.quiet, rewriters=rewriters, llm=llm, limit=args.limit,
                              milvus=milvus)
    finally:
        if llm is not None:
            llm.close()
    if args.out:
        paths = write_comparison(cmp, args.out)
        if rewriters:
            from rag_eval.rewriters import rewriter_table, write_traces

            write_traces(cmp, args.out)
            (Path(args.out) / "rewriters.md").write_text(rewriter_table(cmp), encoding="utf-8")
            paths = {**paths, "traces": Path(args.out) / "traces.jsonl", "rewriters": Path(args.out) / "rewriters.md"}
        print(f"wrote {len(paths)} files to {Path(args.out)}/", file=sys.stderr)
    if args.format == "json":
        print(json.dumps(cmp.means(with_latency=args.with_latency), indent=2))
    else:
        print(markdown_table(cmp, with_p=cmp.baseline is not None, with_latency=True), end="")
        if rewriters:
            from rag_eval.rewriters import rewriter_table

            print("\n" + rewriter_table(cmp), end="")
    return 0


def cmd_eval_qa(args: argparse.Namespace) -> int:
    """``rag eval answers --dataset qa``: correct / cited_gold / declined / invented over an extractive QA set."""
    from rag.embedding import Embedder
    from rag.index.store import IndexStore
    from rag.pipeline import GenerationConfig, PipelineConfig, RetrievalConfig, build
    from rag_eval.qa import (add_cosines, load_qa, report_markdown, row_json, run_qa_benchmark, select, summarize,
                             without_documents, write_rows)
    from rag_eval.retrieval import EvalSettings, build_index

    if not args.path:
        raise ValueError("--dataset qa needs --path FOLDER (documents/ and questions.jsonl, e.g. ../shared/data/covid-qa)")
    ds = load_qa(args.path)
    questions = select(ds, args.split, args.limit, seed=args.seed if args.sample else None)
    embedder = Embedder()
    settings = EvalSettings()
    full = build_index(ds.corpus(), embedder, settings, show_progress=not args.quiet)
    without = None
    if args.unanswerable:
        gold_docs = {q.doc_id for q in questions}
        without = without_documents(full, gold_docs, f"{full.name}-without-gold")
    retrieval = RetrievalConfig(mode=args.mode, fusion=args.fusion, candidates=args.candidates,
                                **({"k": args.contexts} if args.contexts else {}))
    generation = GenerationConfig(mode="extractive" if args.extractive else "generative", model=args.generator,
                                  max_tokens=args.max_tokens, answer_check=args.answer_check, context=args.context,
                                  evidence_pool=args.evidence_pool, evidence_budget=args.evidence_budget)
    llm = None
    if not args.extractive:
        from rag.generation.llm import LlamaCppLLM

        llm = LlamaCppLLM(args.generator, seed=0)
    store = IndexStore(args.index_dir)
    scorer = judge = None
    if args.ragas:  # the optional extra column; the verdict stays correct / cited_gold / declined
        from rag_eval.judges import make_judge
        from rag_eval.scoring import AnswerScorer, parse_answer_metrics

        judge = make_judge(args.judge, model=args.judge_model, api_key=os.environ.get(args.judge_api_key_env),
                           max_tokens=args.judge_max_tokens, shared_llm=llm)
        scorer = AnswerScorer(judge=judge, embedder=embedder, metrics=parse_answer_metrics(args.metrics),
                              timeout_s=args.timeout)

    def answerer(index):  # one builder for both settings; the model and embedder are shared; the app's plugins
        config = PipelineConfig(index=index.name, retrieval=retrieval, generation=generation)
        return build(config, store, index=index, embedder=embedder, llm=llm).answerer

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
    model = "extractive" if args.extractive else args.generator
    summary = summarize(rows, model)
    summary["settings"] = {"split": args.split, "limit": args.limit,
                           "questions": f"seeded sample (seed {args.seed})" if args.sample else "first N",
                           "mode": args.mode, "k": retrieval.k, "context": str(generation.context),
                           "evidence_pool": generation.evidence_pool, "evidence_budget": generation.evidence_budget,
                           "max_tokens": args.max_tokens, "unanswerable": "same questions, index without their gold documents"
                           if without is not None else "off"}
    if args.out:
        out = Path(args.out)
        write_rows(rows, out / "rows.jsonl")
        (out / "rows.partial.jsonl").unlink(missing_ok=True)
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        (out / "report.md").write_text(report_markdown(summary, rows), encoding="utf-8")
        print(f"wrote rows.jsonl, summary.json and report.md to {out}/", file=sys.stderr)
    if args.format == "json":
        print(json.dumps(summary, indent=2))
    else:
        print(report_markdown(summary, rows), end="")
    return 0


def cmd_eval_answers(args: argparse.Namespace) -> int:
    """``rag eval answers``: build the pipeline, generate, score, print and write the report."""
    if args.dataset == "qa":
        return cmd_eval_qa(args)
    from rag.embedding import Embedder
    from rag.index.store import IndexStore
    from rag.pipeline import GenerationConfig, PipelineConfig, PluginConfig, RetrievalConfig, build
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
    config = PipelineConfig(
        index=index.name,
        retrieval=RetrievalConfig(mode=args.mode, fusion=args.fusion, candidates=args.candidates, k=args.contexts or 3),
        generation=GenerationConfig(mode="extractive" if args.extractive else "generative", model=args.generator,
                                    max_tokens=args.max_tokens),
        plugins=PluginConfig(rewriter="none"))  # single questions: no follow-up condensation
    llm = None
    if not args.extractive:
        from rag.generation.llm import LlamaCppLLM

        llm = LlamaCppLLM(args.generator)
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


def _add_retrieval(esub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    from rag_eval.datasets import DATASETS
    from rag_eval.retrieval import BASELINE, DEFAULT_CONFIGS
    from rag_eval.stats import DEFAULT_RESAMPLES, DEFAULT_SEED, SIGNIFICANCE_TESTS

    e = esub.add_parser("retrieval", help="compare retrieval configs on a benchmark (metrics, p-values, latency)")
    e.add_argument("--dataset", default="cranfield", choices=DATASETS, help="dataset format (default %(default)s)")
    e.add_argument("--path", required=True, help="dataset folder (Cranfield files or a BEIR folder)")
    e.add_argument("--split", default="test", help="BEIR qrels split, qrels/SPLIT.tsv (default %(default)s)")
    e.add_argument("--configs", default=DEFAULT_CONFIGS,
                   help="comma-separated: bm25, dense, hybrid(-adaptive), hybrid-rrf, hybrid-weighted, hybrid-rrf-rerank, "
                        "hybrid-weighted-rerank (default %(default)s)")
    e.add_argument("--format", choices=("json", "markdown"), default="markdown",
                   help="stdout format; json prints only {config: {metric: mean}} (default %(default)s)")
    e.add_argument("--out", default=None, help="write tables (md/csv/json), TREC runs and a bar chart here")
    e.add_argument("--metrics", default=None,
                   help="comma-separated labels: nDCG@k, MAP, Recall@k, MRR@k, P@k "
                        "(default nDCG@K,MAP,Recall@DEPTH,MRR@K)")
    e.add_argument("--k", type=positive_int, default=10, help="cutoff of the default nDCG/MRR metrics (default %(default)s)")
    e.add_argument("--with-latency", action="store_true",
                   help="add latency_mean_ms and latency_p95_ms to the --format json output")
    e.add_argument("--chunk-size", type=positive_int, default=DEFAULT_CHUNK_SIZE)
    e.add_argument("--chunk-overlap", type=non_negative_int, default=DEFAULT_CHUNK_OVERLAP)
    e.add_argument("--depth", type=positive_int, default=100, help="documents per query in the run (default %(default)s)")
    e.add_argument("--candidates", type=positive_int, default=200, help="chunks per retriever (default %(default)s)")
    e.add_argument("--rrf-k", type=non_negative_int, default=DEFAULT_RRF_K)
    e.add_argument("--alpha", type=unit_interval, default=0.5, help="dense weight of hybrid-weighted (default %(default)s)")
    e.add_argument("--reranker", default=None,
                   help="CrossEncoder name or path; adds the hybrid-rrf-rerank config")
    e.add_argument("--rerank-candidates", type=positive_int, default=50, help="chunks the reranker rescores")
    e.add_argument("--baseline", default=BASELINE, help="config the others are tested against (default %(default)s)")
    e.add_argument("--test", choices=SIGNIFICANCE_TESTS, default="randomization",
                   help="paired significance test (default %(default)s)")
    e.add_argument("--resamples", type=positive_int, default=DEFAULT_RESAMPLES, help="randomization test samples")
    e.add_argument("--seed", type=int, default=DEFAULT_SEED, help="randomization test seed")
    e.add_argument("--rewriters", default=None,
                   help="comma-separated query rewriters to compare with each config, e.g. "
                        "none,keyword,multi-query,hyde,decompose (rows config+rewriter; the plain config is "
                        "the baseline); with --out, per-query traces go to traces.jsonl")
    e.add_argument("--llm", default="smollm2-135m",
                   help="chat model of the LLM rewriters: registry name or .gguf path (default %(default)s)")
    e.add_argument("--limit", type=positive_int, default=None,
                   help="evaluate only the first N judged queries (same N for every row)")
    e.add_argument("--backend", choices=("local", "milvus"), default="local",
                   help="run the configs in process (local) or on a Milvus server (default %(default)s)")
    e.add_argument("--uri", default=None, help="Milvus server for --backend milvus (token: $RAG_MILVUS_TOKEN)")
    e.add_argument("--milvus-index", choices=("FLAT", "IVF_FLAT", "HNSW"), default="FLAT",
                   help="Milvus dense index type (default %(default)s)")
    e.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    e.set_defaults(func=cmd_eval_retrieval)


def add_commands(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = subparsers.add_parser("eval", help="evaluation")
    esub = p.add_subparsers(dest="eval_command", required=True, metavar="WHAT")
    _add_retrieval(esub)
    _add_answers(esub)
    _add_train(esub)


DECISION_FEATURES = "best_score,best_share,max_cos,max_coverage,top_dense,check,probe"
EXTRACTIVE_FEATURES = "best_score,best_share,max_cos,max_coverage,top_dense"


def cmd_eval_train(args: argparse.Namespace) -> int:
    """``rag eval train evidence|decision``: fit the answer stage's models on an extractive QA set."""
    import shlex

    from rag.answer.evidence import EvidenceSelector
    from rag.answer.linear import MODELS_DIR
    from rag.embedding import Embedder
    from rag.pipeline import GenerationConfig, RetrievalConfig, build_retriever
    from rag_eval.qa import load_qa, select
    from rag_eval.retrieval import EvalSettings, build_index, default_cache_dir
    from rag_eval.train import decision_examples, load_examples, save_examples, train_decision, train_ranker

    command = "python -m rag " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    ds = load_qa(args.path)
    embedder = Embedder()
    full = build_index(ds.corpus(), embedder, EvalSettings(), show_progress=not args.quiet)
    retrievers: dict[int, Any] = {}

    def retriever_for(index: Any) -> Any:
        return retrievers.setdefault(id(index), build_retriever(RetrievalConfig(), index, embedder))

    out = Path(args.out) if args.out else MODELS_DIR
    if args.what == "evidence":
        model = train_ranker(ds, retriever_for(full), embedder, args.train_split, args.dev_split, args.train_limit,
                             args.pool, command=command, show_progress=not args.quiet)
        path = model.save(out / "evidence-ranker.json")
        print(json.dumps({"wrote": str(path), **model.meta["dev"]}, indent=2))
        return 0
    generator = None if args.generator == "none" else args.generator
    key = generator or "extractive"
    cache = Path(args.cache) if args.cache else default_cache_dir() / "train" / f"decision-{ds.name}-{key}"
    if args.recollect or not (cache / "train.jsonl").is_file():
        llm = prompts = None
        if generator is not None:
            from rag.generation.llm import LlamaCppLLM
            from rag.generation.prompting import EVIDENCE_SYSTEM_PROMPT, PromptBuilder

            llm = LlamaCppLLM(generator, seed=0).load()
            prompts = PromptBuilder(llm, max_tokens=GenerationConfig.max_tokens,
                                    system_prompt=EVIDENCE_SYSTEM_PROMPT)
        selector = EvidenceSelector(embedder, budget=args.budget,
                                    count_tokens=llm.count_tokens if llm is not None else None)
        try:
            for split, limit, name in ((args.train_split, args.train_limit, "train"), (args.dev_split, None, "dev")):
                questions = select(ds, split, limit, seed=0 if limit else None)
                examples = list(decision_examples(questions, full, retriever_for, selector, llm, args.pool, prompts,
                                                  show_progress=not args.quiet))
                save_examples(examples, cache, name)
        finally:
            if llm is not None:
                llm.close()
    train, dev = load_examples(cache, "train"), load_examples(cache, "dev")
    features = [f.strip() for f in (args.features or (DECISION_FEATURES if generator else EXTRACTIVE_FEATURES)
                                     ).split(",") if f.strip()]
    model, probe = train_decision(train, dev, features, f"decision-{key}", keep=args.keep, c=args.c,
                                  probe_c=args.probe_c, command=command, data=f"{ds.name} ({args.path})")
    written = [str(model.save(out / f"{model.name}.json"))]
    if probe is not None:
        written.append(str(probe.save(out / f"{probe.name}.json")))
    print(json.dumps({"wrote": written, "threshold": model.threshold, "train": model.meta["train"],
                      "dev": model.meta["dev"], "single_feature_dev_auc": model.meta["single_feature_dev_auc"]},
                     indent=2))
    return 0


def _add_train(esub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    from rag.generation.models import DEFAULT_MODEL

    t = esub.add_parser("train", help="train the evidence ranker or the answer decision on an extractive QA set",
                        description="evidence: the sentence ranker of the evidence stage (gold-span sentences as "
                                    "positives). decision: the answer decision, from each question asked against "
                                    "the collection and against it without the question's article; its threshold "
                                    "keeps --keep of the answerable dev questions. Writes rag/answer/models/*.json.")
    t.add_argument("what", choices=("evidence", "decision"))
    t.add_argument("--path", required=True, help="QA folder (documents/ and questions.jsonl), e.g. ../shared/data/covid-qa")
    t.add_argument("--train-split", default="train")
    t.add_argument("--dev-split", default="dev")
    t.add_argument("--train-limit", type=positive_int, default=None,
                   help="a seeded sample of this many train questions (default: all)")
    t.add_argument("--generator", default=DEFAULT_MODEL,
                   help="decision: the chat model whose check and hidden state it reads, or 'none' for the "
                        "extractive decision (default %(default)s)")
    t.add_argument("--pool", type=positive_int, default=20, help="retrieved chunks ranked for evidence")
    t.add_argument("--budget", type=positive_int, default=300, help="evidence tokens")
    t.add_argument("--features", default=None,
                   help=f"decision features (default with a generator: {DECISION_FEATURES}; without: "
                        f"{EXTRACTIVE_FEATURES})")
    t.add_argument("--keep", type=unit_interval, default=0.92,
                   help="share of answerable dev questions the threshold keeps answered (default %(default)s)")
    t.add_argument("--c", type=positive_float, default=1.0, help="inverse L2 strength of the decision")
    t.add_argument("--probe-c", type=positive_float, default=0.01, help="inverse L2 strength of the hidden-state probe")
    t.add_argument("--cache", default=None, help="where the collected examples are kept (re-fits reuse them)")
    t.add_argument("--recollect", action="store_true", help="ask the questions again even if the cache exists")
    t.add_argument("--out", default=None, help="folder to write the model files (default: rag/answer/models)")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    t.set_defaults(func=cmd_eval_train)


def _add_answers(esub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    from rag_eval.datasets import DATASETS

    from rag.generation.models import DEFAULT_MODEL
    from rag.pipeline import GenerationConfig

    a = esub.add_parser("answers", help="generate answers for a question set and score them",
                        description="--dataset qa (an extractive QA folder such as COVID-QA): the full pipeline over "
                                    "the split's questions, judged correct / cited_gold, plus the same questions "
                                    "against the collection without the split's documents (declined vs invented). "
                                    "Other datasets: retrieve -> generate, then score with Ragas: "
                                    "faithfulness, answer relevancy, context precision/recall (LLM judge), "
                                    "ID-based context precision/recall from qrels, non-LLM context recall. "
                                    "A metric that cannot be scored is reported missing with its reason.")
    a.add_argument("--dataset", default="cranfield", choices=(*DATASETS, "qa"))
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
    a.add_argument("--mode", choices=MODES, default="hybrid")
    a.add_argument("--fusion", choices=FUSIONS, default="adaptive")
    a.add_argument("--candidates", type=positive_int, default=100, help="chunks per retriever before fusion")
    a.add_argument("--contexts", type=positive_int, default=None,
                   help="chunks given to the generator (default: qa the app's 5, others 3)")
    a.add_argument("--generator", default=DEFAULT_MODEL, help="generator GGUF: registry name or path (default %(default)s)")
    a.add_argument("--max-tokens", type=positive_int, default=GenerationConfig.max_tokens,
                   help="answer token budget (default: the app's, %(default)s)")
    a.add_argument("--extractive", action="store_true", help="quote retrieved sentences instead of generating")
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
