"""The sidebar's settings widgets (Streamlit), each starting at :data:`~rag.ui.settings.DEFAULT_SETTINGS`.

:func:`sidebar_settings` returns the settings as a dict that :func:`rag.ui.settings.app_config`
turns into the pipeline's config; each widget has a key (``setting_*`` or its own) so a test can read it.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from rag.generation.memory import MEMORY_TYPES
from rag.plugins import available_rewriters, available_routers
from rag.retrieval.retriever import FUSIONS, MODES
from rag.ui.models import model_choices, model_problem
from rag.ui.settings import ANSWER_MODES, DEFAULT_SETTINGS, option_index


def sidebar_settings() -> dict[str, Any]:
    """The settings widgets, each starting at :data:`~rag.ui.settings.DEFAULT_SETTINGS` (the pipeline's defaults)."""
    d = DEFAULT_SETTINGS
    st.sidebar.header("Settings")
    s: dict[str, Any] = {}
    s["answer_mode"] = st.sidebar.radio("Answer mode", ANSWER_MODES, index=option_index(ANSWER_MODES, d["answer_mode"]),
                                        horizontal=True, key="setting_answer_mode",
                                        help="Extractive quotes the best passages and needs no language model.")
    s["model"], s["model_problem"] = sidebar_model(generative=s["answer_mode"] == "generative")
    s["temperature"] = st.sidebar.slider("Temperature", 0.0, 1.5, d["temperature"], 0.05, key="setting_temperature")
    s["memory"] = st.sidebar.selectbox("Chat memory", MEMORY_TYPES, index=option_index(MEMORY_TYPES, d["memory"]),
                                       key="setting_memory")
    with st.sidebar.expander("Retrieval"):
        s.update(retrieval_settings())
    with st.sidebar.expander("Routing and query rewriting"):
        s.update(routing_settings())
    return s


def sidebar_model(generative: bool) -> tuple[str, str]:
    """The model picker and the GGUF path box: the model, and why it cannot answer ("" when it can)."""
    choices = {m.name: m for m in model_choices()}
    models = list(choices)
    model = st.sidebar.selectbox("Model", models, index=option_index(models, DEFAULT_SETTINGS["model"]),
                                 key="model_select", disabled=not generative, format_func=lambda n: choices[n].label,
                                 help="Models marked “not downloaded” are not on this machine yet.")
    custom = st.sidebar.text_input("…or a GGUF file path", key="model_path", placeholder="/models/phi-3.gguf")
    problem = model_problem(choices.get(model), custom, generative)
    if problem:
        st.sidebar.warning(":material/download: " + problem)
    return (custom.strip() or model), problem


def retrieval_settings() -> dict[str, Any]:
    d = DEFAULT_SETTINGS
    s: dict[str, Any] = {}
    s["mode"] = st.selectbox("Mode", MODES, index=option_index(MODES, d["mode"]), key="setting_mode")
    s["k"] = st.slider("Passages (k)", 1, 10, d["k"], key="setting_k")
    s["fusion"] = st.selectbox("Fusion", FUSIONS, index=option_index(FUSIONS, d["fusion"]), key="setting_fusion",
                               disabled=s["mode"] != "hybrid",
                               help="zscore: each ranking counts by how far a passage stands out in it; "
                                    "adaptive: RRF whose dense weight drops when the keyword and the semantic "
                                    "rankings disagree; rrf: equal weights; weighted: a blend of scores")
    s["rrf_k"] = int(st.number_input("RRF k", 1, 1000, d["rrf_k"], key="setting_rrf_k",
                                     disabled=s["fusion"] not in ("rrf", "adaptive")))
    s["alpha"] = st.slider("Dense weight (weighted fusion)", 0.0, 1.0, d["alpha"], 0.05, key="setting_alpha",
                           disabled=s["fusion"] != "weighted")
    s["rerank"] = st.checkbox("Rerank the passages", value=d["rerank"], key="setting_rerank")
    s["reranker_path"] = st.text_input("Reranker", value=d["reranker_path"], key="reranker_path",
                                       disabled=not s["rerank"],
                                       help="a cross-encoder's name or folder, auto (this collection's trained one), "
                                            "or llm (the language model judges each passage: slow without a GPU)")
    return s


def routing_settings() -> dict[str, Any]:
    d = DEFAULT_SETTINGS
    s: dict[str, Any] = {}
    rewriters = available_rewriters()
    s["rewriter"] = st.selectbox("Query rewriter", rewriters, key="rewriter_select",
                                 index=option_index(rewriters, d["rewriter"]),
                                 help="condense: rewrite follow-ups (default); keyword: no LLM; multi-query, "
                                      "hyde, decompose: the language model writes extra queries, merged by RRF.")
    routers = available_routers()
    s["router"] = st.selectbox("Router", routers, key="router_select", index=option_index(routers, d["router"]),
                               help="Which collection answers: rules (collection name in the question), "
                                    "embedding (closest collection description), llm (the model picks).")
    s["chitchat"] = st.checkbox("Answer small talk without searching", value=d["chitchat"], key="chitchat",
                                help="Greetings and thanks get a direct reply (router 'chitchat').")
    return s
