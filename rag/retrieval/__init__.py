"""Retrieval stage: the one Retriever (BM25 / dense / hybrid, fusion, optional rerank), multi-query fusion, the LangChain adapter."""
