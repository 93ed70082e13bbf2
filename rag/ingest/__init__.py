"""Ingestion stage: load files (loaders), cut them into overlapping token windows (chunking), and write them into an index (ingestor)."""
