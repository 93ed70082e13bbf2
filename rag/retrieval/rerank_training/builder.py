"""Build an index's reranker: mine pairs, train within a budget, save -- what ``rag reranker train`` runs.

The steps are :class:`~rag.retrieval.rerank_training.mining.PairMiner` (self-supervised groups from the
index's own chunks), :class:`~rag.retrieval.rerank_training.training.CrossEncoderTrainer` (fine-tune on CPU
within a time budget) and :func:`~rag.retrieval.rerank_training.store.save_reranker` (atomic write to
``indexes/NAME/reranker/`` with its ``rag_reranker.json`` manifest).  This is the
unsupervised domain-adaptation recipe of GPL (Wang et al., "GPL: Generative Pseudo Labeling
for Unsupervised Domain Adaptation of Dense Retrieval", NAACL 2022) without its query
generator and teacher, neither of which exists offline.

Example (runs the real model; a few minutes on 2 CPU cores)::

    from rag.index.store import IndexStore
    from rag.retrieval.rerank_training.builder import RerankerBuilder
    from rag.retrieval.rerank_training.store import load_index_reranker
    from rag.retrieval.rerank_training.training import CrossEncoderTrainer
    store = IndexStore("indexes")
    manifest = RerankerBuilder(store, trainer=CrossEncoderTrainer(budget_minutes=5)).build("manuals")
    reranker = load_index_reranker(store.path("manuals"))   # a rag.retrieval.rerank.Reranker
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from rag.fs import library_versions
from rag.index.store import IndexStore
from rag.retrieval.rerank_training.mining import PairMiner, RerankerTrainingError
from rag.retrieval.rerank_training.store import FORMAT_VERSION, save_reranker
from rag.retrieval.rerank_training.training import CrossEncoderTrainer


#: distributions whose versions go into the reranker manifest
LIBRARIES: tuple[str, ...] = ("rag-local", "sentence-transformers", "transformers", "torch")


class RerankerBuilder:
    """Mine, train and save a reranker for one named index: what ``rag reranker train`` runs.

    Args:
        store: where the index lives.
        miner: a :class:`PairMiner` (default: ``mixed`` strategy, 2000 groups).
        trainer: a :class:`CrossEncoderTrainer` (default: 5 minute budget).

    Example (runs the real model; a few minutes on 2 CPU cores)::

        from rag.index.store import IndexStore
        from rag.retrieval.rerank_training.builder import RerankerBuilder
        from rag.retrieval.rerank_training.training import CrossEncoderTrainer
        m = RerankerBuilder(IndexStore(), trainer=CrossEncoderTrainer(budget_minutes=3)).build("manuals")
        print(m["training"]["steps"], m["path"])

    Cheap to construct (nothing is loaded until :meth:`build`):

        >>> RerankerBuilder(miner=PairMiner(strategy="title")).miner.strategy
        'title'
    """

    def __init__(self, store: IndexStore | None = None, miner: PairMiner | None = None,
                 trainer: CrossEncoderTrainer | None = None) -> None:
        self.store = store or IndexStore()
        self.miner = miner or PairMiner()
        self.trainer = trainer or CrossEncoderTrainer()

    def build(self, name: str) -> dict[str, Any]:
        """Train a reranker on index ``name`` and save it to ``<index dir>/reranker``; returns its manifest."""
        index_manifest = self.store.read_manifest(name)  # clear error for an unknown index
        if int(index_manifest.get("counts", {}).get("chunks", 0)) == 0:
            raise RerankerTrainingError(f"index {name!r} is empty; add documents first with "
                                        f"`rag ingest DIR --index {name}`")
        if "backend" in index_manifest:  # the miner reads every chunk and vector in memory
            raise RerankerTrainingError(f"index {name!r} lives on Milvus; training a reranker needs the embedded "
                                        f"backend: ingest the same files into a local index and train on that")
        index = self.store.load(name)
        t0 = time.perf_counter()
        pairs = self.miner.mine(index)
        mining_seconds = time.perf_counter() - t0
        ce, result = self.trainer.train(pairs)
        _, base_id = self.trainer.base_model_id()
        manifest = {
            "format_version": FORMAT_VERSION,
            "kind": "cross-encoder",
            "base_model": base_id,
            "strategy": self.miner.strategy,
            "mining": {**self.miner.params, "pairs": len(pairs),
                       "by_kind": {k: sum(p.kind == k for p in pairs) for k in ("ict", "title")},
                       "seconds": round(mining_seconds, 2)},
            "training": {**self.trainer.params, **asdict(result)},
            "pairs": len(pairs),
            "steps": result.steps,
            "seconds": result.seconds,
            "index": {"name": name, "chunks": index_manifest["counts"]["chunks"],
                      "documents": index_manifest["counts"]["documents"],
                      "created_at": index_manifest.get("created_at"),
                      "updated_at": index_manifest.get("updated_at"),
                      "embedder": index_manifest.get("embedder", {}).get("id")},
            "versions": library_versions(LIBRARIES),
            "created_at": time.time(),
        }
        with self.store.writer(name, create=False):  # serialised with ingests of the same index
            path = save_reranker(ce, manifest, self.store.path(name))
        return {**manifest, "path": str(path)}
