"""Exported ONNX models on disk: one directory per model, variant and key, built atomically.

An entry ``root/embedders/<model>-<variant>-<key>/`` holds ``model.onnx`` and ``meta.json``
(key, checksum, dim, max length) plus the tokenizer files.  The key hashes the model id, its
files, the export recipe and the package versions, so any change builds a new entry; an entry
that fails its checksum is rebuilt.  A new entry is exported into a temporary directory and
renamed into place.

Example:
    >>> OnnxCache(Path("/tmp/rag-cache")).root.name
    'embedders'
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from rag.fs import file_sha256
from rag.embedding.models import _PACKAGE
from rag.embedding.onnx_export import _QUANTIZATION, OnnxExporter

logger = logging.getLogger(__name__)


# Bump when the export recipe changes: old cache entries are then ignored (new key).
ONNX_FORMAT = 1
_ONNX_FILE = "model.onnx"
_META_FILE = "meta.json"


_VERSIONED_PACKAGES = ("torch", "transformers", "sentence-transformers", "onnx", "onnxruntime", _PACKAGE.replace("_", "-"))


def _versions() -> dict[str, str]:
    out = {}
    for name in _VERSIONED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "-"
    return out



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
            if file_sha256(model) != meta.get("sha256"):
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
                        sha256=file_sha256(tmp / _ONNX_FILE), created_at=time.time())
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
