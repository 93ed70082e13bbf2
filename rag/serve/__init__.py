"""Serving: the OpenAI-compatible HTTP API (:mod:`rag.serve.api` on :mod:`rag.serve.service`, wire
format in :mod:`rag.serve.schemas`) and the Streamlit app's helpers (:mod:`rag.serve.webapp`: upload safety, escaping)."""
