"""Index stage: one interface (base.SearchIndex) over two backends (memory: FAISS + BM25 in process; milvus: a server), stored as manifest + parts in atomic versions (store)."""
