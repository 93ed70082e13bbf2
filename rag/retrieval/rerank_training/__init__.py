"""Training a cross-encoder for :mod:`rag.retrieval.rerank`, for one index, on its own documents, with no labels.

No PyPI package ships pretrained cross-encoder weights and no model hub may be reachable, so
the offline default has no reranker; this package trains one (``rag reranker train``), and
:mod:`rag.retrieval.rerank` runs it.  One module per job:

* :mod:`~rag.retrieval.rerank_training.mining` -- :class:`~.mining.PairMiner` mines
  ``(pseudo-query, positive, hard negatives)`` groups (:class:`~.mining.TrainingPair`) with the
  ``ict`` / ``title`` / ``mixed`` strategies; :class:`~.mining.RerankerTrainingError`.
* :mod:`~rag.retrieval.rerank_training.training` -- :class:`~.training.CrossEncoderTrainer`
  fine-tunes a CrossEncoder within a time budget and reports a :class:`~.training.TrainResult`.
* :mod:`~rag.retrieval.rerank_training.store` -- the trained reranker in ``indexes/NAME/reranker/``:
  :func:`~.store.save_reranker`, :func:`~.store.trained_reranker_path`,
  :func:`~.store.read_reranker_manifest`, :func:`~.store.load_index_reranker`.
* :mod:`~rag.retrieval.rerank_training.builder` -- :class:`~.builder.RerankerBuilder` runs
  mine -> train -> save (``rag reranker train``).

Import from the modules; this package imports nothing, so loading one part does not load the others.
"""
