"""The trained reranker on disk: ``<index dir>/reranker/`` with its ``rag_reranker.json`` manifest.

The directory is the index's :data:`~rag.index.store.KEPT_SUBDIR`, so it survives
re-ingests; it is written atomically with :func:`rag.fs.atomic_directory` (temp dir, manifest
last, rename into place) and a crash between the renames is undone on the next read
(:func:`rag.fs.recover`).  An index without a trained reranker has no reranker: the readers
return None.

Example:
    >>> import tempfile
    >>> index_dir = Path(tempfile.mkdtemp())
    >>> class Weights:  # anything with a ``save(path)``, like a sentence-transformers CrossEncoder
    ...     def save(self, path: str) -> None:
    ...         _ = (Path(path) / "model.bin").write_bytes(b"w")
    >>> save_reranker(Weights(), {"format_version": FORMAT_VERSION}, index_dir).name
    'reranker'
    >>> read_reranker_manifest(index_dir)
    {'format_version': 1}
    >>> sorted(p.name for p in trained_reranker_path(index_dir).iterdir())
    ['model.bin', 'rag_reranker.json']
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from rag.fs import atomic_directory, recover
from rag.index.store import KEPT_SUBDIR
from rag.index.store import MANIFEST as INDEX_MANIFEST

if TYPE_CHECKING:
    from rag.retrieval.rerank import Reranker

logger = logging.getLogger(__name__)

RERANKER_DIR = KEPT_SUBDIR
RERANKER_MANIFEST = "rag_reranker.json"
FORMAT_VERSION = 1


def save_reranker(model: Any, manifest: Mapping[str, Any], index_dir: Path) -> Path:
    """Write ``model`` (via ``model.save(path)``) and its manifest to ``index_dir/reranker`` atomically."""
    final = Path(index_dir) / RERANKER_DIR
    with atomic_directory(final) as tmp:
        model.save(str(tmp))
        # the manifest goes last: a directory without one is never loaded
        (tmp / RERANKER_MANIFEST).write_text(json.dumps(dict(manifest), indent=2), encoding="utf-8")
    logger.info("saved reranker to %s", final)
    return final


def trained_reranker_path(index_dir: Path) -> Path | None:
    """``index_dir/reranker`` if a trained reranker with a manifest is there, else None.

    Example:
        >>> import tempfile
        >>> trained_reranker_path(Path(tempfile.mkdtemp())) is None
        True
    """
    path = Path(index_dir) / RERANKER_DIR
    recover(path, RERANKER_MANIFEST)
    return path if (path / RERANKER_MANIFEST).is_file() else None


def read_reranker_manifest(index_dir: Path) -> dict[str, Any] | None:
    """The trained reranker's manifest, or None if there is none (or it is unreadable)."""
    path = trained_reranker_path(index_dir)
    if path is None:
        return None
    try:
        return dict(json.loads((path / RERANKER_MANIFEST).read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError) as exc:
        logger.warning("ignoring unreadable reranker manifest in %s (%s)", path, exc)
        return None


def load_index_reranker(index_dir: Path, batch_size: int = 32, max_length: int = 256) -> Reranker | None:
    """A :class:`~rag.retrieval.rerank.Reranker` for the index's trained reranker, or None if it has none.

    Cheap: the weights load on first use.  Logs a warning when the index changed after
    training (the reranker still works; retrain to adapt it to the new documents).

    Example:
        >>> import tempfile
        >>> load_index_reranker(Path(tempfile.mkdtemp())) is None
        True
    """
    index_dir = Path(index_dir)
    manifest = read_reranker_manifest(index_dir)
    if manifest is None:
        return None
    if manifest.get("format_version") != FORMAT_VERSION:
        logger.warning("ignoring reranker in %s: format version %r, expected %d", index_dir,
                       manifest.get("format_version"), FORMAT_VERSION)
        return None
    try:
        current = json.loads((index_dir / INDEX_MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        current = {}
    trained_on = manifest.get("index", {})
    if current and (current.get("counts", {}).get("chunks") != trained_on.get("chunks")
                    or current.get("updated_at") != trained_on.get("updated_at")):
        logger.warning("the reranker in %s was trained before the index last changed; "
                       "retrain with `rag reranker train --index %s`", index_dir, index_dir.name)
    from rag.retrieval.rerank import Reranker

    return Reranker(str(index_dir / RERANKER_DIR), batch_size=batch_size, max_length=max_length)
