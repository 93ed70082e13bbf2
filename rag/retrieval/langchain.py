"""LangChain adapter: our :class:`~rag.retrieval.retriever.Retriever` as a ``BaseRetriever``.

Example (runs the real embedder)::

    from rag import IndexStore, Retriever
    from rag.retrieval.langchain import LangChainRetriever
    lc = LangChainRetriever(retriever=Retriever(IndexStore().load("docs")), k=4)
    docs = lc.invoke("how do I prime the pump?")
    docs[0].metadata["source"], docs[0].metadata["page"]
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document as LCDocument
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from rag.retrieval.retriever import Retriever
from rag.types import Hit


def hit_to_document(hit: Hit) -> LCDocument:
    """A LangChain Document carrying the chunk text and full provenance as metadata."""
    c = hit.chunk
    return LCDocument(page_content=c.text, id=c.id, metadata={
        "chunk_id": c.id, "doc_id": c.doc_id, "source": c.source, "page": c.page, "start": c.start,
        "end": c.end, "index": c.index, "title": c.title, "score": hit.score, "rank": hit.rank,
        "scores": dict(hit.scores),
    })


class LangChainRetriever(BaseRetriever):
    """Wraps a :class:`Retriever`; ``k`` hits per query."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: Any
    k: int = 5

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[LCDocument]:
        r: Retriever = self.retriever
        return [hit_to_document(h) for h in r.retrieve(query, k=self.k)]
