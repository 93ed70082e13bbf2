"""Index stage: the on-disk collection (store: manifest + parts, atomic versions), BM25 (sparse) and FAISS (dense)."""
