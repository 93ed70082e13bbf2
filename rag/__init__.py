"""rag: local, private question answering over your own documents.

The stages, one subpackage each, in pipeline order:

* :mod:`rag.ingest`: loaders -> chunking -> ingestor (writes an index);
* :mod:`rag.index`: the on-disk collection (store), BM25 (sparse) and FAISS (dense);
* :mod:`rag.retrieval`: the one :class:`Retriever` (fusion, rerank), multi-query fusion;
* :mod:`rag.generation`: the llama.cpp chat model, model registry, prompts, chat memory;
* :mod:`rag.answer`: planner (route, rewrite, retrieve, gate) -> strategy (generative, extractive,
  direct) -> citation and support check; chat sessions;
* :mod:`rag.plugins`: router and query-rewriter plugins;
* :mod:`rag.pipeline`: the one builder every front end uses; :mod:`rag.cli` the command line.

Example (runs the real embedder)::

    from rag import Ingestor, IndexStore, Retriever
    print(Ingestor("docs").ingest(["./my-notes"]).summary())
    hits = Retriever(IndexStore().load("docs"), mode="hybrid").retrieve("what is X?", k=5)
"""

from __future__ import annotations

import os

from rag.privacy import switch_off_telemetry

# No telemetry, ever: before anything else is imported (onnxruntime reads its switch from C).
switch_off_telemetry(os.environ)
# torch's idle OpenMP threads busy-wait and starve llama.cpp on a small CPU (docs/design.md#running-on-a-small-cpu)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from rag.answer.answerer import Answerer  # noqa: E402
from rag.answer.chat import ChatSession  # noqa: E402
from rag.embedding import Embedder  # noqa: E402
from rag.generation.llm import LlamaCppLLM  # noqa: E402
from rag.index.store import Index, IndexMismatchError, IndexNotFoundError, IndexStore  # noqa: E402
from rag.ingest.chunking import Chunker  # noqa: E402
from rag.ingest.ingestor import Ingestor, IngestReport  # noqa: E402
from rag.ingest.loaders import DocumentLoader, LoadError  # noqa: E402
from rag.pipeline import Pipeline, PipelineConfig, RetrievalConfig, build  # noqa: E402
from rag.retrieval.rerank import Reranker  # noqa: E402
from rag.retrieval.retriever import Retriever  # noqa: E402
from rag.types import (Answer, AnswerMode, Chunk, Citation, Diagnostics, Document, Fusion, Hit,  # noqa: E402
                       RetrievalMode, SentenceSupport)

__all__ = [
    "Answer", "AnswerMode", "Answerer", "ChatSession", "Chunk", "Chunker", "Citation", "Diagnostics", "Document",
    "DocumentLoader", "Embedder", "Fusion", "Hit", "Index", "IndexMismatchError", "IndexNotFoundError", "IndexStore",
    "IngestReport", "Ingestor", "LlamaCppLLM", "LoadError", "Pipeline", "PipelineConfig", "Reranker",
    "RetrievalConfig", "RetrievalMode", "Retriever", "SentenceSupport", "build",
]
__version__ = "0.1.0"
