"""What every ``rag`` command shares: argument validators, argument groups, config from arguments.

Every default comes from :mod:`rag.pipeline`'s config dataclasses (``RetrievalConfig()``,
``GenerationConfig()``, ...), never typed here, so ``rag ask`` with no options builds exactly
``PipelineConfig()`` (``tests/e2e/test_config_defaults.py`` pins it).

One convention for all commands: ``--index NAME`` and ``--index-dir DIR`` (a :class:`~pathlib.Path`,
default ``$RAG_INDEX_DIR`` or ``./indexes``), numbers checked by the types below (argparse turns
their ``ArgumentTypeError`` into a usage error, exit 2), and errors raised as exceptions that
:func:`rag.cli.main.main` alone turns into one ``error: ...`` line and an exit code.

Example:
    >>> import argparse
    >>> p = argparse.ArgumentParser()
    >>> add_retrieval_args(p)
    >>> retrieval_config(p.parse_args(["--mode", "bm25", "-k", "3"])).k
    3
    >>> positive_int("0")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be a positive integer, got '0'
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
from typing import Any

from rag.generation.memory import MEMORY_TYPES
from rag.generation.models import names as model_names
from rag.pipeline import AUTO, GenerationConfig, MemoryConfig, PipelineConfig, PluginConfig, RetrievalConfig
from rag.types import AnswerMode, ContextMode, Fusion, RetrievalMode

DEFAULT_INDEX = PipelineConfig().index
MODES = tuple(m.value for m in RetrievalMode)
FUSIONS = tuple(f.value for f in Fusion)


class CommandError(Exception):
    """A command failed in a way the user can fix; ``code`` is the exit status (default 1)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _number(value: str, kind: type) -> Any:
    try:
        return kind(value)
    except ValueError:
        return None


def positive_int(value: str) -> int:
    n = _number(value, int)
    if n is None or n <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value!r}")
    return int(n)


def non_negative_int(value: str) -> int:
    n = _number(value, int)
    if n is None or n < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {value!r}")
    return int(n)


def positive_float(value: str) -> float:
    x = _number(value, float)
    if x is None or not x > 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {value!r}")
    return float(x)


def unit_interval(value: str) -> float:
    x = _number(value, float)
    if x is None or not 0.0 <= x <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {value!r}")
    return float(x)


def cosine(value: str) -> float:
    x = _number(value, float)
    if x is None or not -1.0 <= x <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a cosine similarity in [-1, 1], got {value!r}")
    return float(x)


def answer_check(value: str) -> float | str:
    if value == AUTO:
        return value
    x = _number(value, float)
    if x is None or not math.isfinite(x):
        raise argparse.ArgumentTypeError(f"must be 'auto' or a finite number (log-odds), got {value!r}")
    return float(x)


def temperature(value: str) -> float:
    t = _number(value, float)
    if t is None or not 0.0 <= t <= 2.0:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 2], got {value!r}")
    return float(t)


def gpu_layers(value: str) -> int | str:
    if value == "auto":
        return value
    n = _number(value, int)
    if n is None or n < -1:
        raise argparse.ArgumentTypeError(f"must be 'auto' or an integer >= -1, got {value!r}")
    return int(n)


def add_index_dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index-dir", type=Path, default=None,
                   help="where indexes live (default: $RAG_INDEX_DIR or ./indexes)")


def add_index_args(p: argparse.ArgumentParser, required: bool = False) -> None:
    """``--index NAME`` (default ``default`` unless ``required``) and ``--index-dir DIR``."""
    if required:
        p.add_argument("--index", required=True, help="index (collection) name")
    else:
        p.add_argument("--index", default=DEFAULT_INDEX, help="index (collection) name (default: %(default)s)")
    add_index_dir_arg(p)


PDF_PASSWORD_ENV = "RAG_PDF_PASSWORD"


def add_pdf_password_arg(p: argparse.ArgumentParser) -> None:
    """``--pdf-password`` of ``ingest`` and ``watch``: opens encrypted PDFs."""
    p.add_argument("--pdf-password", default=None, metavar="PASSWORD",
                   help=f"password of encrypted PDFs (default: ${PDF_PASSWORD_ENV}; prefer it: arguments are "
                        f"visible to other users). Never logged or written to the index")


def pdf_password(args: argparse.Namespace) -> str | None:
    """``--pdf-password``, else ``$RAG_PDF_PASSWORD``, else ``None``."""
    return args.pdf_password or os.environ.get(PDF_PASSWORD_ENV) or None


def add_ocr_arg(p: argparse.ArgumentParser) -> None:
    """``--ocr`` of ``ingest`` and ``watch``: which PDF pages are read by OCR (:class:`~rag.ingest.ocr.OcrMode`)."""
    from rag.ingest.ocr import OcrMode

    p.add_argument("--ocr", choices=[str(m) for m in OcrMode], default=str(OcrMode.AUTO),
                   help="OCR of scanned PDF pages with Tesseract: auto (pages without a text layer), always "
                        "(every page) or never (default %(default)s)")


def add_retrieval_args(p: argparse.ArgumentParser) -> None:
    """Every retrieval option, shared by ``search``, ``ask`` and ``chat`` (defaults: ``RetrievalConfig()``)."""
    d = RetrievalConfig()
    g = p.add_argument_group("retrieval")
    g.add_argument("--mode", choices=MODES, default=str(d.mode), help="retrieval mode (default: %(default)s)")
    g.add_argument("-k", type=positive_int, default=d.k, help="hits kept (default: %(default)s)")
    g.add_argument("--fusion", choices=FUSIONS, default=str(d.fusion),
                   help="hybrid fusion: zscore (each list's robust z-scores summed), adaptive (RRF, dense weight "
                        "set by the two rankings' agreement), rrf (equal weights) or weighted (default: %(default)s)")
    g.add_argument("--rrf-k", type=non_negative_int, default=d.rrf_k, help="RRF constant (default: %(default)s)")
    g.add_argument("--alpha", type=unit_interval, default=d.alpha,
                   help="dense weight for --fusion weighted (default: %(default)s)")
    g.add_argument("--candidates", type=positive_int, default=d.candidates,
                   help="hits per retriever before fusion (default: %(default)s)")
    g.add_argument("--reranker", default=d.reranker,
                   help="CrossEncoder name or path, 'auto' for the index's trained reranker, or 'llm' for the chat "
                        "model's Yes/No judgement of each candidate (slow on a CPU) (default: none)")
    g.add_argument("--rerank-candidates", type=positive_int, default=d.rerank_candidates,
                   help="fused hits the reranker rescores (default: %(default)s)")


def add_scope_args(p: argparse.ArgumentParser) -> None:
    """``--doc PATH`` (repeatable) of ``search``, ``ask`` and ``chat``: search only those documents of the index."""
    p.add_argument("--doc", action="append", default=None, metavar="PATH",
                   help="search only this document of the index (repeat for several): its path as ingested, as "
                        "typed here, or relative to the index's common folder, as results show it (default: all)")


def retrieval_config(args: argparse.Namespace) -> RetrievalConfig:
    return RetrievalConfig(mode=args.mode, fusion=args.fusion, rrf_k=args.rrf_k, alpha=args.alpha,
                           candidates=args.candidates, reranker=args.reranker,
                           rerank_candidates=args.rerank_candidates, k=args.k)


def add_generation_args(p: argparse.ArgumentParser) -> None:
    """The answer options of ``ask``, ``chat`` and ``serve`` (defaults: ``GenerationConfig()``)."""
    d = GenerationConfig()
    g = p.add_argument_group("answer")
    g.add_argument("--model", default=d.model,
                   help=f"registry name ({', '.join(model_names())}) or path to a .gguf file (default: %(default)s)")
    g.add_argument("--models-dir", type=Path, default=d.models_dir, help="where pulled models live")
    g.add_argument("--temperature", type=temperature, default=d.temperature,
                   help="sampling temperature (default: %(default)s)")
    g.add_argument("--max-tokens", type=positive_int, default=d.max_tokens,
                   help="answer length budget in tokens (default: %(default)s)")
    g.add_argument("--n-ctx", type=positive_int, default=d.n_ctx, help="context window (default: the model's)")
    g.add_argument("--n-gpu-layers", type=gpu_layers, default=d.n_gpu_layers,
                   help="layers offloaded to the GPU: 'auto' (all if supported), -1 (all) or N (default: %(default)s)")
    g.add_argument("--seed", type=int, default=d.seed, help="sampling seed (default: %(default)s)")
    g.add_argument("--min-relevance", type=cosine, default=d.min_relevance,
                   help="minimum dense cosine of a hit to answer from it (default: %(default)s)")
    add_extractive_arg(g)
    add_answer_check_arg(g)
    add_evidence_args(g)


def add_extractive_arg(p: Any) -> None:
    """``--extractive`` (ask, chat, serve and the answer benchmark); without it, ``GenerationConfig``'s mode."""
    p.add_argument("--extractive", action="store_true", default=GenerationConfig().extractive,
                   help="quote the best sentences; no LLM")


def add_evidence_args(p: Any) -> None:
    """``--context``, ``--evidence-pool``, ``--evidence-budget`` (ask, chat and the answer benchmark)."""
    defaults = GenerationConfig()
    p.add_argument("--context", choices=tuple(m.value for m in ContextMode), default=str(defaults.context),
                   help="answer from the best sentences of the top --evidence-pool chunks (evidence), or from "
                        "the k relevant chunks whole (chunks, the slower path before evidence) (default: %(default)s)")
    p.add_argument("--evidence-pool", type=positive_int, default=defaults.evidence_pool,
                   help="retrieved chunks whose sentences are ranked as evidence (default: %(default)s)")
    p.add_argument("--evidence-budget", type=positive_int, default=defaults.evidence_budget,
                   help="tokens of evidence in the prompt at most (default: %(default)s)")


def add_answer_check_arg(p: Any) -> None:
    """``--answer-check LOG_ODDS`` / ``--no-answer-check`` (shared by ask, chat and the answer benchmark)."""
    p.add_argument("--answer-check", type=answer_check, default=GenerationConfig().answer_check, metavar="LOG_ODDS",
                   help="the answer decision's threshold: decline when its log-odds that the evidence answers the "
                        "question is below this; 'auto' = the trained decision's own threshold (for a model "
                        "without one: its calibrated Y/N answer check) (default: %(default)s)")
    p.add_argument("--no-answer-check", dest="answer_check", action="store_const", const=None,
                   help="answer whenever a source is relevant (no decision before answering)")


def add_plugin_args(p: argparse.ArgumentParser) -> None:
    """``--rewriter``, ``--router`` and their JSON options (defaults: ``PluginConfig()``)."""
    d = PluginConfig()
    g = p.add_argument_group("routing and rewriting")
    g.add_argument("--rewriter", default=None,
                   help=f"query rewriter (default: {d.rewriter}); built-in: none, condense (follow-ups made "
                        "standalone), keyword, multi-query, hyde, decompose, or a 'rag.rewriters' entry point")
    g.add_argument("--router", default=d.router,
                   help="router, or a comma-separated chain (default: none); built-in: chitchat, rules, "
                        "embedding, llm, or a 'rag.routers' entry point. Collections: all indexes in --index-dir")
    g.add_argument("--router-config", type=Path, default=None,
                   help='JSON options for the router, e.g. {"rules": {"pump|valve": "manuals"}, "threshold": 0.3}')
    g.add_argument("--rewriter-config", type=Path, default=None, help="JSON options for the rewriter")


def add_memory_args(p: argparse.ArgumentParser) -> None:
    """``--memory``, ``--window`` and ``--no-condense`` of ``chat`` (defaults: ``MemoryConfig()``)."""
    d = MemoryConfig()
    g = p.add_argument_group("memory")
    g.add_argument("--memory", choices=MEMORY_TYPES, default=d.kind, help="chat memory (default: %(default)s)")
    g.add_argument("--window", type=positive_int, default=d.window,
                   help="turns kept by --memory window (default: %(default)s)")
    g.add_argument("--no-condense", action="store_true",
                   help="do not rewrite follow-up questions into standalone queries (same as --rewriter none)")


def read_options(path: Path | None) -> dict[str, Any]:
    """A plugin's JSON options file (``--router-config`` / ``--rewriter-config``); ``{}`` without one."""
    if path is None:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object of options, got {type(data).__name__}")
    return data


def pipeline_config(args: argparse.Namespace) -> PipelineConfig:
    """The :class:`~rag.pipeline.PipelineConfig` of an ``ask`` / ``chat`` / ``serve`` command line."""
    plugins, memory = PluginConfig(), MemoryConfig()
    rewriter = args.rewriter or ("none" if getattr(args, "no_condense", False) else plugins.rewriter)
    return PipelineConfig(
        index=args.index,
        retrieval=retrieval_config(args),
        generation=GenerationConfig(
            mode=AnswerMode.EXTRACTIVE if args.extractive else AnswerMode.GENERATIVE, model=args.model,
            models_dir=str(args.models_dir) if args.models_dir else None, n_ctx=args.n_ctx,
            n_gpu_layers=args.n_gpu_layers, temperature=args.temperature, seed=args.seed,
            max_tokens=args.max_tokens, min_relevance=args.min_relevance, answer_check=args.answer_check,
            context=args.context, evidence_pool=args.evidence_pool, evidence_budget=args.evidence_budget),
        memory=MemoryConfig(kind=getattr(args, "memory", memory.kind), window=getattr(args, "window", memory.window)),
        plugins=PluginConfig(rewriter=rewriter, router=args.router,
                             rewriter_options=read_options(args.rewriter_config),
                             router_options=read_options(args.router_config)))


def store(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The :class:`~rag.index.store.IndexStore` at ``--index-dir``."""
    from rag.index.store import IndexStore

    return IndexStore(args.index_dir)
