"""The ``rag`` command line.

Examples::

    rag ingest ~/Documents/manuals --index manuals
    rag search "how do I prime the pump?" --index manuals --mode hybrid -k 5
    rag docs --index manuals
    rag remove ~/Documents/manuals/old.pdf --index manuals
    rag indexes
    rag eval retrieval --dataset cranfield --path ../shared/data/cranfield --configs bm25,dense,hybrid
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Callable, Sequence

logger = logging.getLogger(__name__)

DEFAULT_INDEX = "default"


def _add_index_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", default=DEFAULT_INDEX, help="index (collection) name (default: %(default)s)")
    p.add_argument("--index-dir", default=None,
                   help="where indexes live (default: $RAG_INDEX_DIR or ./indexes)")


def _store(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from .index import IndexStore

    return IndexStore(args.index_dir)


def cmd_ingest(args: argparse.Namespace) -> int:
    from .embedding import Embedder
    from .ingest import Ingestor

    ing = Ingestor(args.index, store=_store(args), embedder=Embedder(args.embedder),
                   chunk_size=args.chunk_size, chunk_overlap=args.chunk_overlap,
                   title_prefix=not args.no_title_prefix, faiss_kind=args.faiss, stemmer=args.stemmer,
                   max_file_mb=args.max_file_mb, show_progress=not args.quiet)
    report = ing.ingest(args.paths, rebuild=args.rebuild, prune=not args.no_prune)
    print(report.summary())
    return 0 if report.ok else 1


def cmd_remove(args: argparse.Namespace) -> int:
    from .ingest import Ingestor

    ing = Ingestor(args.index, store=_store(args))
    failed = 0
    for p in args.paths:
        if ing.remove(p):
            print(f"removed {Path(p).expanduser().resolve()} from index {args.index!r}")
        else:
            print(f"error: {p} is not in index {args.index!r} (see `rag docs --index {args.index}`)",
                  file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def cmd_search(args: argparse.Namespace) -> int:
    from .retrieval import Retriever

    index = _store(args).load(args.index)
    reranker = None
    if args.reranker == "auto":
        from .reranker_train import load_index_reranker

        reranker = load_index_reranker(_store(args).path(args.index))
        if reranker is None:
            raise ValueError(f"index {args.index!r} has no trained reranker; train one with "
                             f"`rag reranker train --index {args.index}` or pass a CrossEncoder path")
    elif args.reranker:
        from .rerank import Reranker

        reranker = Reranker(args.reranker)
    retriever = Retriever(index, mode=args.mode, fusion=args.fusion, rrf_k=args.rrf_k, alpha=args.alpha,
                          candidates=args.candidates, reranker=reranker)
    hits = retriever.retrieve(args.query, k=args.k)
    if args.format == "json":
        print(json.dumps([{"rank": h.rank, "score": h.score, "scores": dict(h.scores), **h.chunk.to_dict()}
                          for h in hits], indent=2, ensure_ascii=False))
        return 0
    if not hits:
        print("no results")
        return 0
    for h in hits:
        page = f"  page {h.chunk.page}" if h.chunk.page is not None else ""
        print(f"{h.rank:>2}. {h.score:.4f}  {h.chunk.source}{page}  [{h.chunk.start}:{h.chunk.end}]")
        snippet = " ".join(h.chunk.text.split())
        print(f"    {snippet[:200]}{'…' if len(snippet) > 200 else ''}")
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    index = _store(args).load(args.index)
    for r in sorted(index.documents.values(), key=lambda r: r.source):
        pages = f", {r.pages} pages" if r.pages else ""
        print(f"{r.source}  ({r.n_chunks} chunks{pages})")
    print(f"{len(index.documents)} documents, {len(index)} chunks in index {args.index!r}")
    return 0


def cmd_indexes(args: argparse.Namespace) -> int:
    store = _store(args)
    names = store.names()
    if not names:
        print(f"no indexes under {store.root}/ yet; create one with `rag ingest DIR --index NAME`")
        return 0
    for name in names:
        m = store.read_manifest(name)
        c = m["counts"]
        print(f"{name}: {c['documents']} documents, {c['chunks']} chunks, embedder {m['embedder']['id']}, "
              f"faiss {m['faiss']['kind']}")
    return 0


def cmd_delete_index(args: argparse.Namespace) -> int:
    _store(args).delete(args.name)
    print(f"deleted index {args.name!r}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .chunking import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE
    from .dense import INDEX_KINDS
    from .fusion import DEFAULT_RRF_K
    from .loaders import DEFAULT_MAX_FILE_MB
    from .retrieval import FUSIONS, MODES

    parser = argparse.ArgumentParser(prog="rag", description="Local, private question answering over your documents.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("ingest", help="index files and folders (incremental)")
    p.add_argument("paths", nargs="+", help="files or directories (recursive)")
    _add_index_args(p)
    p.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE, help="tokens per chunk (default %(default)s)")
    p.add_argument("--chunk-overlap", type=int, default=DEFAULT_CHUNK_OVERLAP,
                   help="tokens shared by neighbouring chunks (default %(default)s)")
    p.add_argument("--no-title-prefix", action="store_true", help="do not prefix chunks with the document title")
    p.add_argument("--faiss", choices=INDEX_KINDS, default="flat", help="FAISS index kind (default %(default)s)")
    p.add_argument("--stemmer", choices=("english", "none"), default="english", help="BM25 stemmer")
    p.add_argument("--embedder", default="default", help="sentence-transformers model name or path")
    p.add_argument("--max-file-mb", type=float, default=DEFAULT_MAX_FILE_MB, help="skip larger files")
    p.add_argument("--rebuild", action="store_true", help="re-create the index from scratch")
    p.add_argument("--no-prune", action="store_true", help="keep documents whose files were deleted")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("remove", help="remove documents from an index")
    p.add_argument("paths", nargs="+")
    _add_index_args(p)
    p.set_defaults(func=cmd_remove)

    p = sub.add_parser("search", help="ranked chunks for a query")
    p.add_argument("query")
    _add_index_args(p)
    p.add_argument("--mode", choices=MODES, default="hybrid")
    p.add_argument("-k", type=int, default=5, help="number of hits (default %(default)s)")
    p.add_argument("--fusion", choices=FUSIONS, default="rrf")
    p.add_argument("--rrf-k", type=int, default=DEFAULT_RRF_K)
    p.add_argument("--alpha", type=float, default=0.5, help="dense weight for --fusion weighted")
    p.add_argument("--candidates", type=int, default=100, help="hits per retriever before fusion")
    p.add_argument("--reranker", default=None,
                   help="CrossEncoder name or path, or 'auto' for the index's trained reranker (default: none)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("docs", help="list the documents in an index")
    _add_index_args(p)
    p.set_defaults(func=cmd_docs)

    p = sub.add_parser("indexes", help="list indexes")
    p.add_argument("--index-dir", default=None)
    p.set_defaults(func=cmd_indexes)

    p = sub.add_parser("delete-index", help="delete a whole index")
    p.add_argument("name")
    p.add_argument("--index-dir", default=None)
    p.set_defaults(func=cmd_delete_index)

    from eval.cli import add_commands as add_eval_commands

    add_eval_commands(sub)

    from .cli_answer import add_commands as add_answer_commands
    from .cli_reranker import add_commands as add_reranker_commands

    add_answer_commands(sub)
    add_reranker_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    func: Callable[[argparse.Namespace], int] = args.func
    from .index import IndexError_
    from .loaders import LoadError

    try:
        return func(args)
    except (ValueError, IndexError_, LoadError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the index on disk is unchanged unless a save had completed", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
