"""Serving: the OpenAI-compatible HTTP API (:mod:`rag.serve.api` on :mod:`rag.serve.service`, wire
format in :mod:`rag.serve.schemas`). The Streamlit app's parts live in :mod:`rag.ui`."""
