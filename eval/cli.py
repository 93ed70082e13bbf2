"""``rag eval ...`` subcommands (wired into :mod:`rag.cli`)."""

from __future__ import annotations

import argparse
import json

from rag.chunking import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE
from rag.fusion import DEFAULT_RRF_K


def cmd_eval_retrieval(args: argparse.Namespace) -> int:
    from eval.datasets import load_dataset
    from eval.retrieval import EvalSettings, evaluate_configs, parse_configs

    configs = parse_configs(args.configs)
    ds = load_dataset(args.dataset, args.path)
    settings = EvalSettings(chunk_size=args.chunk_size, chunk_overlap=args.chunk_overlap,
                            depth=args.depth, candidates=args.candidates, rrf_k=args.rrf_k, alpha=args.alpha)
    reranker = None
    if args.reranker:
        from rag.rerank import Reranker

        reranker = Reranker(args.reranker)
    results = evaluate_configs(ds, configs, settings=settings, reranker=reranker,
                               show_progress=not args.quiet and args.format != "json")
    if args.format == "json":
        print(json.dumps(results, indent=2))
    else:
        metrics = list(next(iter(results.values())))
        print("| config | " + " | ".join(metrics) + " |")
        print("|---|" + "---:|" * len(metrics))
        for name, vals in results.items():
            print(f"| {name} | " + " | ".join(f"{vals[m]:.4f}" for m in metrics) + " |")
    return 0



def add_commands(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = subparsers.add_parser("eval", help="evaluation")
    esub = p.add_subparsers(dest="eval_command", required=True, metavar="WHAT")
    e = esub.add_parser("retrieval", help="score retrieval configs on a benchmark")
    e.add_argument("--dataset", default="cranfield")
    e.add_argument("--path", required=True, help="dataset folder")
    e.add_argument("--configs", default="bm25,dense,hybrid")
    e.add_argument("--format", choices=("json", "markdown"), default="markdown")
    e.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE)
    e.add_argument("--chunk-overlap", type=int, default=DEFAULT_CHUNK_OVERLAP)
    e.add_argument("--depth", type=int, default=100, help="documents per query in the run")
    e.add_argument("--candidates", type=int, default=200, help="chunks per retriever")
    e.add_argument("--rrf-k", type=int, default=DEFAULT_RRF_K)
    e.add_argument("--alpha", type=float, default=0.5)
    e.add_argument("--reranker", default=None)
    e.add_argument("-q", "--quiet", action="store_true")
    e.set_defaults(func=cmd_eval_retrieval)

