"""A disk that fills while an index is written (a real tmpfs): one line naming ENOSPC, where and how much
is needed; the previous version stays current and nothing partial is left."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from rag.fs import TMP_PREFIX, tree_bytes
from rag.index.dense import FaissIndex
from rag.index.manifest import DocRecord, IndexSettings
from rag.index.store import Index, IndexStore, IndexWriteError
from rag.types import Chunk
from tests.small_disk import fill, small_disk


@pytest.fixture()
def disk(tmp_path: Path) -> Iterator[Path]:
    with small_disk(tmp_path / "disk", size="4m") as d:
        yield d


def index_of(n: int, dim: int = 64) -> Index:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    chunks = [Chunk(f"c{i}", f"note {i} on priming pump {i % 7} through valve {i % 11}", "d", "/a.md", None,
                    0, 40, i) for i in range(n)]
    docs = {"/a.md": DocRecord("d", "/a.md", "h", "a", n, None, 0.0)}
    settings = IndexSettings(embedder_id="e", dim=dim, chunker={})
    return Index.empty("notes", settings).write(docs, [], chunks, vectors)


def test_a_full_disk_keeps_the_previous_version_and_says_so(disk: Path) -> None:
    store = IndexStore(disk / "idx")
    store.save(index_of(3))
    filler = fill(disk, leave=64 * 1024)
    big = index_of(2000)  # about 1 MB of vectors alone
    with pytest.raises(IndexWriteError) as caught:
        store.save(big)
    message = str(caught.value)
    assert "\n" not in message
    assert "disk full (ENOSPC)" in message and str(disk) in message and "needs about" in message, message
    assert "requested and" not in message  # numpy's short write is not the message
    assert len(store.load("notes")) == 3  # the previous version is current
    left = [p.name for p in store.path("notes").iterdir()]
    assert not [n for n in left if n.startswith(TMP_PREFIX)], left
    assert len([n for n in left if n.startswith("v-")]) == 1, left

    filler.unlink()  # space is back
    store.save(big)
    assert len(store.load("notes")) == 2000
    written = tree_bytes(store.version_path("notes"))
    assert written / 2 <= big.bytes_needed() <= written * 2, (big.bytes_needed(), written)


def test_faiss_reports_a_full_disk_as_enospc(disk: Path) -> None:
    """faiss raises RuntimeError with the errno only in its text; the store catches OSError."""
    dense = FaissIndex.build(np.eye(64, dtype=np.float32).repeat(40, axis=0), "flat")
    fill(disk, leave=0)
    with pytest.raises(OSError) as caught:
        dense.save(disk / "dense.faiss")
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(disk / "dense.faiss")
