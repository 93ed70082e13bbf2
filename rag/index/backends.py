"""The one place that knows both index backends by name: opening, creating and locating an index.

Everything else holds a :class:`~rag.index.base.SearchIndex` and never asks which class it
is; a backend is chosen only here, from a manifest's ``backend`` section (on load) or from a
:class:`~rag.index.milvus_config.MilvusConfig` (when an ingest creates an index).

Example:
    >>> from rag.index.manifest import IndexSettings
    >>> index = create_index("notes", IndexSettings(embedder_id="e", dim=4, chunker={}))
    >>> type(index).__name__, len(index), index.where == location(None)
    ('Index', 0, True)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from rag.index.base import LOCAL_FILES, SearchIndex
from rag.index.manifest import IndexSettings, backend_kind, read_documents, verify_digests
from rag.index.memory import Index
from rag.index.milvus import MilvusIndex
from rag.index.milvus_config import MilvusConfig, describe


def _open_milvus(name: str, manifest: Mapping[str, Any], settings: IndexSettings, d: Path) -> SearchIndex:
    """A Milvus-backed index: the file records from ``d``, the chunks on the server the manifest names."""
    verify_digests(name, manifest, d)
    return MilvusIndex.open(name, settings, manifest, read_documents(name, d))


#: how to open a version, by the backend its manifest names (None: the in-process parts)
_OPENERS: dict[str | None, Callable[[str, Mapping[str, Any], IndexSettings, Path], SearchIndex]] = {
    None: Index.open, "milvus": _open_milvus,
}


def open_version(name: str, manifest: Mapping[str, Any], settings: IndexSettings, directory: Path) -> SearchIndex:
    """The index stored in version ``directory``, by the backend ``manifest`` records."""
    return _OPENERS[backend_kind(manifest)](name, manifest, settings, directory)


def create_index(name: str, settings: IndexSettings, milvus: MilvusConfig | None = None,
                 drop: bool = False) -> SearchIndex:
    """A new, empty index: on the Milvus server ``milvus`` names (``drop`` replaces its collection), else in process."""
    if milvus is not None:
        return MilvusIndex.create(name, settings, milvus, drop=drop)
    return Index.empty(name, settings)


def location(milvus: MilvusConfig | None) -> str:
    """Where :func:`create_index` would put an index, in the words of :attr:`SearchIndex.where`."""
    return describe(milvus) if milvus is not None else LOCAL_FILES
