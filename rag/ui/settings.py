"""The sidebar's settings: their defaults (the pipeline config's own), and the pipeline config they make.

The sidebar starts every widget at :data:`DEFAULT_SETTINGS`, which is read from
:class:`~rag.pipeline.PipelineConfig`'s dataclasses, never typed here; :func:`app_config` maps the
settings back, so the defaults make exactly ``PipelineConfig(index=...)`` (``tests/e2e/test_config_defaults.py``).

Example:
    >>> from rag.pipeline import PipelineConfig
    >>> app_config("samples", DEFAULT_SETTINGS) == PipelineConfig(index="samples")
    True
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from rag.pipeline import GenerationConfig, MemoryConfig, PipelineConfig, PluginConfig, RetrievalConfig
from rag.types import AnswerMode

ANSWER_MODES = (AnswerMode.GENERATIVE.value, AnswerMode.EXTRACTIVE.value)
CHITCHAT = "chitchat"  # the router the "small talk" checkbox puts first in the chain
NO_ROUTER = "none"


def _defaults() -> dict[str, Any]:
    r, g, m, p = RetrievalConfig(), GenerationConfig(), MemoryConfig(), PluginConfig()
    chain = [name for name in (p.router or "").split(",") if name]
    routers = [name for name in chain if name != CHITCHAT]
    return {"answer_mode": str(g.mode), "model": g.model, "model_problem": "", "temperature": g.temperature,
            "memory": m.kind, "mode": str(r.mode), "k": r.k, "fusion": str(r.fusion), "rrf_k": r.rrf_k,
            "alpha": r.alpha, "rerank": r.reranker is not None, "reranker_path": r.reranker or "",
            "rewriter": p.rewriter, "router": routers[0] if routers else NO_ROUTER, "chitchat": CHITCHAT in chain}


#: the sidebar's settings as they start: the pipeline config's own defaults (one source for both)
DEFAULT_SETTINGS: dict[str, Any] = _defaults()


def app_config(index: str, s: Mapping[str, Any]) -> PipelineConfig:
    """The sidebar settings as the pipeline's config (the same builder as the CLI, the API and the eval).

    Example:
        >>> cfg = app_config("samples", {**DEFAULT_SETTINGS, "chitchat": True, "router": "rules", "k": 3})
        >>> cfg.index, cfg.retrieval.k, str(cfg.generation.context), cfg.plugins.rewriter, cfg.plugins.router
        ('samples', 3, 'evidence', 'condense', 'chitchat,rules')
    """
    router = ",".join(([CHITCHAT] if s["chitchat"] else []) + ([s["router"]] if s["router"] != NO_ROUTER else []))
    return PipelineConfig(
        index=index,
        retrieval=RetrievalConfig(mode=s["mode"], fusion=s["fusion"], rrf_k=s["rrf_k"], alpha=s["alpha"], k=s["k"],
                                  reranker=s["reranker_path"] if s["rerank"] else None),
        generation=GenerationConfig(mode=s["answer_mode"], model=s["model"], temperature=s["temperature"]),
        memory=MemoryConfig(kind=s["memory"]),
        plugins=PluginConfig(rewriter=s["rewriter"], router=router or None))


def option_index(options: Sequence[Any], value: Any) -> int:
    """Where ``value`` is among a widget's ``options`` (0 when it is not offered).

    Example:
        >>> option_index(["none", "rules"], "rules"), option_index(["none"], "llm")
        (1, 0)
    """
    return list(options).index(value) if value in options else 0
