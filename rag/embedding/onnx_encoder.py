"""The ONNX Runtime encoder: a cached export run one text at a time, texts spread over threads.

Each text is encoded on its own (no padding, so a text's vector does not depend on the other
texts in the call, which matters because dynamic quantization scales each input tensor by its
own range), and the texts are spread over worker threads; each session uses one intra-op
thread.  The export itself comes from :class:`rag.embedding.cache.OnnxCache`.

Example:
    >>> isinstance(onnx_available(), bool)
    True
"""

from __future__ import annotations

import importlib.util
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from rag.embedding.cache import OnnxCache
from rag.embedding.onnx_export import UnsupportedModelError

logger = logging.getLogger(__name__)


def onnx_available() -> bool:
    """True when ONNX Runtime and the ``onnx`` package (needed to export) are importable."""
    return importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None


class _OnnxEncoder:
    """ONNX Runtime session over a cached export; one text per run, texts spread over threads."""

    def __init__(self, session: Any, tokenizer: Any, meta: dict[str, Any], threads: int,
                 small_batch_threads: int | None) -> None:
        from tokenizers import Tokenizer

        self.session = session
        self.tokenizer = tokenizer
        self.dim = int(meta["dim"])
        self.max_seq_length = int(meta["max_seq_length"])
        self.threads = threads
        self.small_batch_threads = small_batch_threads
        # A private copy of the fast tokenizer, configured once: encode_batch then never mutates
        # shared state (the HF tokenizer is also used by the chunker, from other threads).
        self._tok = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
        self._tok.enable_truncation(self.max_seq_length)
        self._tok.no_padding()

    @classmethod
    def load(cls, target: str, model_id: str, quantize: bool, cache_dir: Path, threads: int,
             small_batch_threads: int | None) -> "_OnnxEncoder":
        from transformers import AutoTokenizer

        if not onnx_available():
            raise RuntimeError("the ONNX backends need onnxruntime and onnx "
                               "(pip install onnxruntime==1.32.0 onnx==1.23.2), or use backend='torch'")
        entry = OnnxCache(cache_dir).entry(target, model_id, quantize)
        path, meta = entry.get_or_build()
        try:
            session = _session(path)
        except Exception as exc:  # noqa: BLE001 - checksum fine but unloadable (e.g. onnxruntime changed)
            logger.warning("embedder cache %s does not load (%s); rebuilding it", entry.path, exc)
            entry.discard()
            path, meta = entry.get_or_build()
            session = _session(path)
        tokenizer = AutoTokenizer.from_pretrained(str(entry.path))
        if not getattr(tokenizer, "is_fast", False):
            raise UnsupportedModelError(f"{model_id} has no fast tokenizer")
        return cls(session, tokenizer, meta, threads, small_batch_threads)

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """Token ids exactly as sentence-transformers feeds them (special tokens, truncation)."""
        return [e.ids for e in self._tok.encode_batch(texts)]

    def _one(self, ids: list[int]) -> np.ndarray:
        a = np.asarray([ids], dtype=np.int64)
        return self.session.run(None, {"input_ids": a, "attention_mask": np.ones_like(a)})[0][0]

    def encode(self, texts: list[str], batch_size: int, small: bool, show_progress: bool) -> np.ndarray:
        ids = self.token_ids(texts)
        workers = self.threads if not small or self.small_batch_threads is None else self.small_batch_threads
        workers = max(1, min(workers, len(ids)))
        if workers == 1:
            rows = [self._one(x) for x in ids]
        else:
            # longest first, so the last texts to finish are the short ones
            order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
            with ThreadPoolExecutor(workers, thread_name_prefix="embed") as pool:
                results = pool.map(lambda i: self._one(ids[i]), order)
                if show_progress:
                    from tqdm import tqdm

                    results = tqdm(results, total=len(order), desc="Embedding")
                out = list(results)
            rows = [np.empty(0)] * len(ids)
            for i, v in zip(order, out):
                rows[i] = v
        vecs = np.stack(rows).astype(np.float32, copy=False)
        return vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)


def _session(path: Path) -> Any:
    """One ONNX Runtime CPU session, one intra-op thread (parallelism comes from our workers)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
