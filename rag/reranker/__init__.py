"""Self-supervised cross-encoder reranker for one index, trained on its own documents with no labels.

No PyPI package ships pretrained cross-encoder weights and no model hub may be reachable, so
the offline default has no reranker; this package builds one.  One module per job:

* :mod:`rag.reranker.mining` -- :class:`~rag.reranker.mining.PairMiner` mines
  ``(pseudo-query, positive, hard negatives)`` groups (:class:`~rag.reranker.mining.TrainingPair`)
  with the ``ict`` / ``title`` / ``mixed`` strategies; :class:`~rag.reranker.mining.RerankerTrainingError`.
* :mod:`rag.reranker.training` -- :class:`~rag.reranker.training.CrossEncoderTrainer` fine-tunes a
  CrossEncoder within a time budget and reports a :class:`~rag.reranker.training.TrainResult`.
* :mod:`rag.reranker.store` -- the on-disk reranker in ``indexes/NAME/reranker/``:
  :func:`~rag.reranker.store.save_reranker`, :func:`~rag.reranker.store.trained_reranker_path`,
  :func:`~rag.reranker.store.read_reranker_manifest`, :func:`~rag.reranker.store.load_index_reranker`.
* :mod:`rag.reranker.builder` -- :class:`~rag.reranker.builder.RerankerBuilder` runs mine -> train -> save
  (``rag reranker train``).

Import from the modules; this package imports nothing, so loading one part does not load the others.
"""
