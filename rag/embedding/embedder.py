"""The embedder: one class that loads a model lazily and encodes on torch or ONNX Runtime.

:class:`Embedder` picks the backend (``$RAG_EMBEDDER_BACKEND`` or ``"auto"``) on first use;
the torch path is ``SentenceTransformer.encode`` and the ONNX paths are
:mod:`rag.embedding.onnx_encoder`.

Example:
    >>> Embedder().model_id        # cheap: nothing loaded yet
    'sentence-transformers/all-MiniLM-L6-v2'
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

import numpy as np

from rag.embedding.models import DEFAULT_EMBEDDER, default_cache_dir, resolve_model
from rag.embedding.onnx_encoder import _OnnxEncoder, onnx_available
from rag.embedding.onnx_export import UnsupportedModelError
from rag.validate import positive_int

logger = logging.getLogger(__name__)


BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
DEFAULT_BACKEND = "auto"
BACKEND_ENV = "RAG_EMBEDDER_BACKEND"
SMALL_BATCH = 8


def physical_cores() -> int:
    """Physical cores this process may run on (hyper-thread siblings counted once).

    >>> physical_cores() >= 1
    True
    """
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    cores = set()
    for cpu in cpus:
        topo = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(((topo / "physical_package_id").read_text().strip(), (topo / "core_id").read_text().strip()))
        except OSError:
            cores.add(("cpu", str(cpu)))
    return max(1, len(cores))


def _validate_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    return backend


class _Encoder(Protocol):
    """What a backend provides to :class:`Embedder` once loaded."""

    dim: int
    max_seq_length: int
    tokenizer: Any

    def encode(self, texts: list[str], batch_size: int, small: bool, show_progress: bool) -> np.ndarray: ...


class Embedder:
    """Bi-encoder producing L2-normalised float32 vectors, on torch or ONNX Runtime.

    Args:
        model: ``"default"`` (packaged MiniLM), a local directory, or a hub name.
        device: ``"cpu"``, ``"cuda"`` or ``None`` (let sentence-transformers pick). The ONNX
            backends run on the CPU; ``"auto"`` picks ``torch`` for any other device.
        batch_size: encode batch size (torch backend).
        small_batch_threads: threads for small batches (<= 8 texts, i.e. queries).
            One thread keeps a query fast when other work competes for the cores (a full
            thread pool then stalls), at a small cost on an idle machine;
            ``None`` leaves torch's setting alone (torch) or uses ``threads`` (ONNX).
        backend: one of :data:`BACKENDS`; ``None`` reads ``$RAG_EMBEDDER_BACKEND``, else ``"auto"``.
        threads: worker threads for large batches on the ONNX backends (default: physical cores).
        cache_dir: root of the exported-model cache (default :func:`default_cache_dir`).

    Example:
        >>> Embedder(backend="torch").backend
        'torch'
        >>> Embedder(backend="onnx-fast")
        Traceback (most recent call last):
        ...
        ValueError: backend must be one of auto, torch, onnx, onnx-int8; got 'onnx-fast'
    """

    def __init__(self, model: str = DEFAULT_EMBEDDER, device: str | None = "cpu", batch_size: int = 32,
                 small_batch_threads: int | None = 1, backend: str | None = None, threads: int | None = None,
                 cache_dir: str | Path | None = None) -> None:
        if not isinstance(model, str) or not model:
            raise ValueError(f"model must be a non-empty string, got {model!r}")
        if device not in (None, "cpu", "cuda", "mps") and not str(device).startswith("cuda:"):
            raise ValueError(f"device must be one of None, 'cpu', 'cuda', 'cuda:N', 'mps'; got {device!r}")
        positive_int("batch_size", batch_size)
        positive_int("small_batch_threads", small_batch_threads, optional=True)
        positive_int("threads", threads, optional=True)
        requested = backend if backend is not None else os.environ.get(BACKEND_ENV, DEFAULT_BACKEND)
        self.requested_backend = _validate_backend(requested)
        if self.requested_backend.startswith("onnx") and device not in ("cpu", None):
            raise ValueError(f"backend {self.requested_backend!r} runs on the CPU; got device={device!r}")
        self.small_batch_threads = small_batch_threads
        self.model = model
        self.device = device
        self.batch_size = batch_size
        self.threads = threads
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._impl: _Encoder | None = None
        self._backend: str | None = None
        self._model_id: str | None = None
        self._lock = threading.Lock()

    def load(self) -> "Embedder":
        """Load the weights (idempotent, thread-safe); builds the ONNX cache entry on first use."""
        with self._lock:
            if self._impl is None:
                target, model_id = resolve_model(self.model)
                backend = self.requested_backend
                if backend == "auto":
                    backend = "onnx-int8" if self._on_cpu() and onnx_available() else "torch"
                logger.info("loading embedder %s (%s backend)", model_id, backend)
                if backend == "torch":
                    self._impl = _TorchEncoder(target, self.device, self.small_batch_threads)
                else:
                    try:
                        self._impl = _OnnxEncoder.load(target, model_id, quantize=backend == "onnx-int8",
                                                       cache_dir=self.cache_dir or default_cache_dir(),
                                                       threads=self.threads or physical_cores(),
                                                       small_batch_threads=self.small_batch_threads)
                    except Exception as exc:  # noqa: BLE001 - "auto" must always give a working embedder
                        if self.requested_backend != "auto":
                            raise
                        log = logger.info if isinstance(exc, UnsupportedModelError) else logger.warning
                        log("ONNX backend unavailable for %s (%s: %s); using torch", model_id,
                            type(exc).__name__, exc)
                        backend = "torch"
                        self._impl = _TorchEncoder(target, self.device, self.small_batch_threads)
                self._backend = backend
                self._model_id = model_id
        return self

    def _on_cpu(self) -> bool:
        if self.device == "cpu":
            return True
        if self.device is not None:
            return False
        import torch  # device=None: sentence-transformers would pick a GPU if there is one

        return not (torch.cuda.is_available() or torch.backends.mps.is_available())

    @property
    def model_id(self) -> str:
        """The model's id for index manifests (the same on every backend)."""
        if self._model_id is None:
            self._model_id = resolve_model(self.model)[1]
        return self._model_id

    @property
    def backend(self) -> str:
        """The backend in use: ``torch``, ``onnx`` or ``onnx-int8`` (``auto`` is resolved on load)."""
        if self._backend is not None:
            return self._backend
        return self.requested_backend if self.requested_backend != "auto" else self.load().backend

    def _loaded(self) -> _Encoder:
        impl = self.load()._impl
        if impl is None:  # pragma: no cover - load() always sets it
            raise RuntimeError("embedder failed to load")
        return impl

    @property
    def dim(self) -> int:
        return int(self._loaded().dim)

    @property
    def max_seq_length(self) -> int:
        return int(self._loaded().max_seq_length)

    @property
    def tokenizer(self) -> Any:
        return self._loaded().tokenizer

    def encode(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        """Encode texts into an ``(n, dim)`` float32 array of unit vectors."""
        impl = self._loaded()
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        small = self.small_batch_threads is not None and len(texts) <= SMALL_BATCH
        vecs = impl.encode(list(texts), self.batch_size, small, show_progress and not small)
        return np.ascontiguousarray(vecs, dtype=np.float32)


class _TorchEncoder:
    """``SentenceTransformer.encode``, with queries on ``small_batch_threads`` torch threads."""

    def __init__(self, target: str, device: str | None, small_batch_threads: int | None) -> None:
        from sentence_transformers import SentenceTransformer

        self.st = SentenceTransformer(target, device=device)
        self.small_batch_threads = small_batch_threads
        get = getattr(self.st, "get_embedding_dimension", None) or self.st.get_sentence_embedding_dimension
        self.dim = int(get())
        self.max_seq_length = int(self.st.max_seq_length)
        self.tokenizer = self.st.tokenizer

    def encode(self, texts: list[str], batch_size: int, small: bool, show_progress: bool) -> np.ndarray:
        kwargs = dict(batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
        if small and self.small_batch_threads is not None:
            with _torch_threads(self.small_batch_threads):
                return self.st.encode(texts, show_progress_bar=False, **kwargs)
        return self.st.encode(texts, show_progress_bar=show_progress, **kwargs)


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
