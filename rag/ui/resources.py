"""What the app loads once per server process and shares across sessions (Streamlit's resource cache).

Every function takes what it depends on as arguments (the index folder, the collection and its
stamp, the model's config), so one server process serves any folder and a re-ingested collection
loads fresh.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from rag.embedding import Embedder
from rag.generation.llm import LlamaCppLLM
from rag.index.store import Index, IndexStore
from rag.pipeline import LLM_FIELDS, GenerationConfig, make_llm
from rag.retrieval.rerank import Reranker
from rag.serve.service import SourcePaths
from rag.types import Chunk
from rag.ui.examples import example_questions

EXAMPLE_CHUNKS = 5000  # starter questions are written from the first passages of a collection


@st.cache_resource(show_spinner="Loading the embedding model…")
def get_embedder() -> Embedder:
    return Embedder().load()


@st.cache_resource(show_spinner="Loading the language model…", max_entries=2,
                   hash_funcs={GenerationConfig: lambda g: tuple(getattr(g, f) for f in LLM_FIELDS)})
def get_llm(config: GenerationConfig) -> LlamaCppLLM:
    # one model per LLM_FIELDS (a new temperature reuses it); LlamaCppLLM serialises calls with its own
    # lock, so one instance serves all sessions
    return make_llm(config).load()


@st.cache_resource(max_entries=8)
def get_index(root: str, name: str, stamp: str) -> Index:
    # `stamp` (directory and manifest mtimes) makes a re-ingested index load fresh
    return IndexStore(root).load(name)


@st.cache_resource(max_entries=2)
def get_reranker(path: str) -> Reranker:
    return Reranker(path).load()


@st.cache_resource(max_entries=8)
def source_names(root: str, name: str, stamp: str) -> dict[str, str]:
    """Each document's path relative to the collection's common folder (what the sources are labelled with)."""
    index = get_index(root, name, stamp)
    paths = SourcePaths(list(index.documents))
    return {s: paths.relative(s) for s in index.documents}


@st.cache_resource(max_entries=8)
def chunk_lookup(root: str, name: str, stamp: str) -> dict[str, Chunk]:
    return {c.id: c for c in get_index(root, name, stamp).chunks}


@st.cache_resource(max_entries=8)
def collection_examples(root: str, name: str, stamp: str) -> list[str]:
    index = get_index(root, name, stamp)
    return example_questions(index.chunks[:EXAMPLE_CHUNKS], {s: r.title for s, r in index.documents.items()})


def folder_stamp(path: Path) -> str:
    """A collection folder's and its manifest's mtimes: changes whenever the collection is re-ingested."""
    stamps = []
    for p in (path, path / "manifest.json"):
        try:
            stamps.append(str(p.stat().st_mtime_ns))
        except OSError:
            stamps.append("-")
    return ":".join(stamps)
