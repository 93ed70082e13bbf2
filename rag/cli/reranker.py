"""CLI commands ``rag reranker train`` and ``rag reranker info``.

Wire them into the main parser with :func:`add_commands`::

    parser = argparse.ArgumentParser(prog="rag")
    sub = parser.add_subparsers(dest="command", required=True)
    add_commands(sub)
    args = parser.parse_args(["reranker", "train", "--index", "manuals", "--budget-minutes", "5"])
    raise SystemExit(args.func(args))

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="rag")
    >>> add_commands(parser.add_subparsers(dest="command"))
    >>> parser.parse_args(["reranker", "info", "--index", "docs"]).reranker_command
    'info'
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from rag.cli.common import CommandError, add_index_args, positive_float, positive_int, store
from rag.retrieval.rerank_training.mining import DEFAULT_STRATEGY, STRATEGIES

logger = logging.getLogger(__name__)


def cmd_reranker_train(args: argparse.Namespace) -> int:
    from rag.retrieval.rerank_training.builder import RerankerBuilder
    from rag.retrieval.rerank_training.mining import PairMiner
    from rag.retrieval.rerank_training.training import CrossEncoderTrainer

    builder = RerankerBuilder(
        store(args),
        PairMiner(strategy=args.strategy, max_pairs=args.max_pairs, negatives=args.negatives, seed=args.seed),
        CrossEncoderTrainer(base_model=args.base_model, budget_minutes=args.budget_minutes, epochs=args.epochs,
                            batch_groups=args.batch_size, lr=args.lr, max_length=args.max_length,
                            train_layers=args.train_layers, seed=args.seed, show_progress=not args.quiet))
    m = builder.build(args.index)
    t = m["training"]
    print(f"trained a reranker for index {args.index!r}: {m['pairs']} pairs ({m['strategy']}), "
          f"{t['steps']} steps in {t['seconds']:.0f}s (stopped by {t['stopped_by']}), "
          f"loss {t['loss_start']:.3f} -> {t['loss_end']:.3f}\nsaved to {m['path']}")
    return 0


def cmd_reranker_info(args: argparse.Namespace) -> int:
    from rag.retrieval.rerank_training.store import read_reranker_manifest, trained_reranker_path

    s = store(args)
    s.read_manifest(args.index)
    index_dir = s.path(args.index)
    manifest = read_reranker_manifest(index_dir)
    if manifest is None:
        raise CommandError(f"index {args.index!r} has no trained reranker; train one with "
                           f"`rag reranker train --index {args.index}`")
    path = trained_reranker_path(index_dir)
    if args.format == "json":
        print(json.dumps({**manifest, "path": str(path)}, indent=2))
        return 0
    t, ix = manifest.get("training", {}), manifest.get("index", {})
    print(f"reranker: {path}\n"
          f"base model: {manifest.get('base_model')}\n"
          f"strategy: {manifest.get('strategy')}, {manifest.get('pairs')} pairs\n"
          f"training: {t.get('steps')} steps, {t.get('seconds')}s, stopped by {t.get('stopped_by')}, "
          f"loss {t.get('loss_start')} -> {t.get('loss_end')}\n"
          f"trained on: {ix.get('chunks')} chunks of {ix.get('documents')} documents")
    return 0


def add_commands(subparsers: Any) -> None:
    """Add ``reranker train`` and ``reranker info`` to the ``rag`` parser."""
    p = subparsers.add_parser("reranker", help="train or inspect the index's own cross-encoder reranker")
    rsub = p.add_subparsers(dest="reranker_command", required=True, metavar="WHAT")

    t = rsub.add_parser("train", help="train a cross-encoder on the index's own documents (no labels needed)",
                        description="Mine pseudo-queries (titles, inverse-cloze sentences) and hard negatives "
                                    "from the index, fine-tune a cross-encoder from the packaged MiniLM on CPU "
                                    "within a time budget, and save it to INDEX_DIR/NAME/reranker/.")
    add_index_args(t, required=True)
    t.add_argument("--budget-minutes", type=positive_float, default=5.0,
                   help="stop training after this many minutes (default %(default)s)")
    t.add_argument("--max-pairs", type=positive_int, default=2000,
                   help="training queries to mine (default %(default)s)")
    t.add_argument("--strategy", choices=STRATEGIES, default=DEFAULT_STRATEGY,
                   help="pseudo-queries: ict (a sentence cut from its chunk), title, or mixed (default %(default)s)")
    t.add_argument("--negatives", type=positive_int, default=3, help="hard negatives per query (default %(default)s)")
    t.add_argument("--epochs", type=positive_int, default=1, help="passes over the pairs at most (default %(default)s)")
    t.add_argument("--batch-size", type=positive_int, default=4, help="queries per step (default %(default)s)")
    t.add_argument("--lr", type=positive_float, default=5e-5, help="learning rate (default %(default)s)")
    t.add_argument("--max-length", type=positive_int, default=160, help="training tokens per pair (default %(default)s)")
    t.add_argument("--train-layers", type=positive_int, default=None,
                   help="train only the top N encoder layers (default: all)")
    t.add_argument("--base-model", default="default",
                   help="encoder to start from: default (packaged MiniLM) or a path/name (default %(default)s)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_reranker_train)

    i = rsub.add_parser("info", help="show the index's trained reranker (manifest)")
    add_index_args(i, required=True)
    i.add_argument("--format", choices=("text", "json"), default="text")
    i.set_defaults(func=cmd_reranker_info)
