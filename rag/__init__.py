"""rag: local, private question answering over your own documents.

Pipeline stages, one module each: :mod:`rag.loaders` -> :mod:`rag.chunking` ->
:mod:`rag.embedding` / :mod:`rag.sparse` / :mod:`rag.dense` (persisted by :mod:`rag.index`)
-> :mod:`rag.retrieval` (+ :mod:`rag.fusion`, :mod:`rag.rerank`).

Example (runs the real embedder)::

    from rag import Ingestor, IndexStore, Retriever
    print(Ingestor("docs").ingest(["./my-notes"]).summary())
    hits = Retriever(IndexStore().load("docs"), mode="hybrid").retrieve("what is X?", k=5)
"""

from __future__ import annotations

import os

# No telemetry, ever: set before any optional import of ragas / streamlit.
os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")
os.environ.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# torch's OpenMP threads otherwise spin after each query embedding and starve llama.cpp on a
# small CPU (prompt eval measured 4-8x slower); only effective before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .answer import Answerer  # noqa: E402
from .chat import ChatSession  # noqa: E402
from .chunking import Chunker  # noqa: E402
from .embedding import Embedder  # noqa: E402
from .index import Index, IndexMismatchError, IndexNotFoundError, IndexStore  # noqa: E402
from .ingest import Ingestor, IngestReport  # noqa: E402
from .llm import LlamaCppLLM  # noqa: E402
from .loaders import DocumentLoader, LoadError  # noqa: E402
from .rerank import Reranker  # noqa: E402
from .retrieval import Retriever  # noqa: E402
from .types import Answer, Chunk, Citation, Document, Hit, SentenceSupport  # noqa: E402

__all__ = [
    "Answer", "Answerer", "ChatSession", "Chunk", "Chunker", "Citation", "Document", "DocumentLoader", "Embedder", "Hit", "Index",
    "IndexMismatchError", "IndexNotFoundError", "IndexStore", "Ingestor", "IngestReport", "LlamaCppLLM", "LoadError",
    "Reranker", "Retriever", "SentenceSupport",
]
__version__ = "0.1.0"
