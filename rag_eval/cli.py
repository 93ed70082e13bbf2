"""``rag eval ...`` subcommands (wired into :mod:`rag.cli.main`).

Examples::

    rag eval retrieval --dataset cranfield --path ../shared/data/cranfield --configs bm25,dense,hybrid --format json
    rag eval retrieval --dataset beir --path data/cacm --out results/cacm
    rag eval retrieval --dataset cranfield --path ../shared/data/cranfield --configs hybrid \
        --rewriters none,keyword,multi-query,hyde,decompose --out results/rewriters
    rag eval answers --dataset cranfield --path ../shared/data/cranfield --limit 5 --out results/answers

``rag eval answers`` lives in :mod:`rag_eval.answers_cli`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rag.cli.common import (CommandError, non_negative_int, positive_float, positive_int,  # one CLI convention
                            unit_interval)
from rag.pipeline import GenerationConfig, RetrievalConfig, make_llm
from rag_eval.answers_cli import add_answers_command


def cmd_eval_retrieval(args: argparse.Namespace) -> int:
    from rag_eval.datasets import load_dataset
    from rag_eval.metrics import default_metrics, parse_metrics
    from rag_eval.report import markdown_table
    from rag_eval.retrieval import (CONFIGS, RERANK_CONFIG, CompareSettings, EvalSettings, compare_configs,
                                    parse_configs)

    configs = parse_configs(args.configs)
    metrics = parse_metrics(args.metrics) if args.metrics else default_metrics(args.k, args.depth)
    settings = EvalSettings(chunk_size=args.chunk_size, chunk_overlap=args.chunk_overlap, depth=args.depth,
                            candidates=args.candidates, rrf_k=args.rrf_k, alpha=args.alpha,
                            rerank_candidates=args.rerank_candidates)
    reranker: Any = None
    reranker_llm = None
    if args.reranker:
        from rag.pipeline import LLM_RERANKER, GenerationConfig, make_llm, resolve_reranker

        reranker_llm = make_llm(GenerationConfig()) if args.reranker == LLM_RERANKER else None
        reranker = resolve_reranker(args.reranker, llm=reranker_llm)
        if not any(CONFIGS[c].get("rerank") for c in configs):
            configs.append(RERANK_CONFIG)
    rewriters = [r.strip() for r in (args.rewriters or "").split(",") if r.strip()]
    llm = _rewriter_llm(rewriters, args.llm)
    milvus = None
    if args.backend == "milvus":
        from rag.index.milvus import MilvusConfig

        if not args.uri:
            raise CommandError("--backend milvus needs the server: --uri http://HOST:19530", code=2)
        milvus = MilvusConfig(uri=args.uri, index_type=args.milvus_index)
    ds = load_dataset(args.dataset, args.path, split=args.split)
    try:
        compare = CompareSettings(configs, retrieval=settings, metrics=metrics, baseline=args.baseline,
                                  test=args.test, n_resamples=args.resamples, seed=args.seed, rewriters=rewriters,
                                  limit=args.limit, milvus=milvus)
        cmp = compare_configs(ds, compare, reranker=reranker, llm=llm, show_progress=not args.quiet)
    finally:
        for model in (llm, reranker_llm):
            if model is not None:
                model.close()
    if args.out:
        _write_retrieval_results(cmp, Path(args.out), bool(rewriters))
    if args.format == "json":
        print(json.dumps(cmp.means(with_latency=args.with_latency), indent=2))
    else:
        print(markdown_table(cmp, with_p=cmp.baseline is not None, with_latency=True), end="")
        if rewriters:
            from rag_eval.rewriters import rewriter_table

            print("\n" + rewriter_table(cmp), end="")
    return 0


def _rewriter_llm(rewriters: list[str], model: str) -> Any:
    """The chat model the named query rewriters need (None when none of them asks one)."""
    if not rewriters:
        return None
    from rag.plugins.base import available_rewriters

    unknown = [r for r in rewriters if r not in available_rewriters()]
    if unknown:
        raise ValueError(f"unknown rewriter(s) {', '.join(unknown)}; available: {', '.join(available_rewriters())}")
    if any(r not in ("none", "keyword", "condense") for r in rewriters):
        return make_llm(GenerationConfig(model=model))
    return None


def _write_retrieval_results(cmp: Any, out: Path, rewriters: bool) -> None:
    """The comparison's files under ``out``, with the rewriters' traces and table when there were rewriters."""
    from rag_eval.report import write_comparison

    paths = write_comparison(cmp, out)
    if rewriters:
        from rag_eval.rewriters import rewriter_table, write_traces

        write_traces(cmp, out)
        (out / "rewriters.md").write_text(rewriter_table(cmp), encoding="utf-8")
        paths = {**paths, "traces": out / "traces.jsonl", "rewriters": out / "rewriters.md"}
    print(f"wrote {len(paths)} files to {out}/", file=sys.stderr)


def _add_retrieval(esub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    from rag_eval.datasets import DATASETS
    from rag_eval.retrieval import BASELINE, DEFAULT_CONFIGS, EvalSettings
    from rag_eval.stats import DEFAULT_RESAMPLES, DEFAULT_SEED, SIGNIFICANCE_TESTS

    e = esub.add_parser("retrieval", help="compare retrieval configs on a benchmark (metrics, p-values, latency)")
    e.add_argument("--dataset", default="cranfield", choices=DATASETS, help="dataset format (default %(default)s)")
    e.add_argument("--path", required=True, help="dataset folder (Cranfield files or a BEIR folder)")
    e.add_argument("--split", default="test", help="BEIR qrels split, qrels/SPLIT.tsv (default %(default)s)")
    e.add_argument("--configs", default=DEFAULT_CONFIGS,
                   help="comma-separated: bm25, dense, hybrid(-zscore), hybrid-adaptive, hybrid-rrf, hybrid-weighted, "
                        "hybrid-rerank, hybrid-rrf-rerank, hybrid-weighted-rerank (default %(default)s)")
    e.add_argument("--format", choices=("json", "markdown"), default="markdown",
                   help="stdout format; json prints only {config: {metric: mean}} (default %(default)s)")
    e.add_argument("--out", default=None, help="write tables (md/csv/json), TREC runs and a bar chart here")
    e.add_argument("--metrics", default=None,
                   help="comma-separated labels: nDCG@k, MAP, Recall@k, MRR@k, P@k "
                        "(default nDCG@K,MAP,Recall@DEPTH,MRR@K)")
    e.add_argument("--k", type=positive_int, default=10, help="cutoff of the default nDCG/MRR metrics (default %(default)s)")
    e.add_argument("--with-latency", action="store_true",
                   help="add latency_mean_ms and latency_p95_ms to the --format json output")
    d = EvalSettings()  # the benchmark's defaults live there
    e.add_argument("--chunk-size", type=positive_int, default=d.chunk_size)
    e.add_argument("--chunk-overlap", type=non_negative_int, default=d.chunk_overlap)
    e.add_argument("--depth", type=positive_int, default=d.depth,
                   help="documents per query in the run (default %(default)s)")
    e.add_argument("--candidates", type=positive_int, default=d.candidates,
                   help="chunks per retriever (default %(default)s)")
    e.add_argument("--rrf-k", type=non_negative_int, default=d.rrf_k)
    e.add_argument("--alpha", type=unit_interval, default=d.alpha,
                   help="dense weight of hybrid-weighted (default %(default)s)")
    e.add_argument("--reranker", default=None,
                   help="CrossEncoder name or path, or llm (the default chat model judging each candidate); adds "
                        "the hybrid-rerank config")
    e.add_argument("--rerank-candidates", type=positive_int, default=d.rerank_candidates,
                   help="chunks the reranker rescores")
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
    add_answers_command(esub)
    _add_train(esub)


# scale-free signals only: the cosine, coverage and score levels (and a probe fitted to COVID-QA's questions,
# written looking at their article) decline questions asked in other words (docs/benchmarks.md#answers)
DECISION_FEATURES = "best_share,check"
EXTRACTIVE_FEATURES = "best_score,best_share,max_cos_window,max_coverage_window"


def cmd_eval_train(args: argparse.Namespace) -> int:
    """``rag eval train evidence|decision``: fit the answer stage's models on an extractive QA set."""
    import shlex

    from dataclasses import asdict

    from rag.answer.decision import DEFAULT_YES_NO
    from rag.answer.linear import MODELS_DIR
    from rag.embedding import Embedder
    from rag.pipeline import build_retriever
    from rag_eval.qa import load_qa
    from rag_eval.retrieval import EvalSettings, build_index, default_cache_dir
    from rag_eval.train import load_examples, train_decision, train_ranker

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
        _collect_decision_examples(args, ds, full, retriever_for, embedder, generator, cache)
    train, dev = load_examples(cache, "train"), load_examples(cache, "dev")
    features = [f.strip() for f in (args.features or (DECISION_FEATURES if generator else EXTRACTIVE_FEATURES)
                                     ).split(",") if f.strip()]
    model, probe = train_decision(train, dev, features, f"decision-{key}", keep=args.keep, c=args.c,
                                  probe_c=args.probe_c, command=command, data=f"{ds.name} ({args.path})",
                                  yes_no=asdict(DEFAULT_YES_NO) if generator else None)
    written = [str(model.save(out / f"{model.name}.json"))]
    if probe is not None:
        written.append(str(probe.save(out / f"{probe.name}.json")))
    print(json.dumps({"wrote": written, "threshold": model.threshold, "train": model.meta["train"],
                      "dev": model.meta["dev"], "single_feature_dev_auc": model.meta["single_feature_dev_auc"]},
                     indent=2))
    return 0


def _collect_decision_examples(args: argparse.Namespace, ds: Any, full: Any, retriever_for: Any, embedder: Any,
                               generator: str | None, cache: Path) -> None:
    """Ask the train and dev questions (the decision's examples) and cache what the answer stage saw."""
    from rag.answer.evidence import EvidenceSelector
    from rag_eval.qa import select
    from rag_eval.train import decision_examples, save_examples

    llm = prompts = None
    if generator is not None:
        from rag.generation.prompting import EVIDENCE_SYSTEM_PROMPT, PromptBuilder

        llm = make_llm(GenerationConfig(model=generator)).load()
        prompts = PromptBuilder(llm, max_tokens=GenerationConfig().max_tokens, system_prompt=EVIDENCE_SYSTEM_PROMPT)
    selector = EvidenceSelector(embedder, budget=args.budget, count_tokens=llm.count_tokens if llm is not None else None)
    try:
        for split, limit, name in ((args.train_split, args.train_limit, "train"), (args.dev_split, args.dev_limit, "dev")):
            questions = select(ds, split, limit, seed=0 if limit else None)
            examples = list(decision_examples(questions, full, retriever_for, selector, llm, args.pool, prompts,
                                              show_progress=not args.quiet))
            save_examples(examples, cache, name)
    finally:
        if llm is not None:
            llm.close()


def _add_train(esub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
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
    t.add_argument("--dev-limit", type=positive_int, default=None,
                   help="a seeded sample of this many dev questions (default: all)")
    t.add_argument("--generator", default=GenerationConfig().model,
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


