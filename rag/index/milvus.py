"""The Milvus backend: a collection's chunks, vectors and BM25 on a Milvus server instead of local files.

Selected per collection at ingest (``rag ingest DIR --index NAME --backend milvus --uri URI``) and
recorded in the collection's ``manifest.json`` (``backend``: kind, URI, collection, index type,
metric, the name of the token's environment variable; never the token itself), so ``rag search``,
``rag ask``, the app and the API use it with no extra flag.  The local directory
``indexes/NAME/`` keeps the manifest and ``documents.json`` (one record per ingested file, with
its content hash, for incremental ingest) under the same versions and writer lock as the
embedded backend (:mod:`rag.index.store`); the chunks live only in the server's collection.

Schema of the collection (one row per chunk):

=============  ======================  ===================================================
field          type                    what
=============  ======================  ===================================================
``id``         VARCHAR, primary key    the chunk id (a content hash)
``text``       VARCHAR                 the chunk text, as shown to the user
``terms``      VARCHAR, analyzer on    the text BM25 sees: rag's analyzer output (below)
``sparse``     SPARSE_FLOAT_VECTOR     made by the server's BM25 Function from ``terms``
``dense``      FLOAT_VECTOR (dim)      the unit-length embedding; IP or COSINE index
``doc_id``     VARCHAR                 the file's id (delete by it on re-ingest)
``source``,    VARCHAR / INT64         provenance: path, title, page (nullable),
``title``,                             character offsets, position in the file
``page``,
``char_start``,
``char_end``,
``chunk_index``
=============  ======================  ===================================================

A chunk's ingest-time ``suspicious`` flag (:attr:`rag.types.Chunk.suspicious`) has no field: it is a
pure function of the text (:func:`rag.answer.safety.is_suspicious`), recomputed when a row is read,
so collections made before the flag existed need no new schema and get it too.

The BM25 input is the chunk's indexed text run through rag's own analyzer (lowercase, stop
words, Snowball stemming; :class:`rag.index.sparse.Analyzer`) and joined with spaces, and a
query is analysed the same way before the server's full-text search: Milvus Lite's analyzer
has no stemmer, and a cluster's stemmers differ by version, so this keeps BM25 ranking the
same on every engine (the server's standard tokenizer only splits the terms again).

Retrieval runs on the server: ``dense`` is an ANN search on ``dense``, ``bm25`` a full-text
search on ``sparse``, ``hybrid`` one ``hybrid_search`` with ``RRFRanker(k)`` (``rrf``) or
``WeightedRanker(1 - alpha, alpha)`` (``weighted``); the methods are those of
:class:`~rag.index.base.SearchIndex`, like the in-process index's.  Hybrid hits carry the dense cosine
(computed from the returned vectors, which the relevance gate needs) and the fused score.
A search returns only chunks of documents in the local records: rows an ingest killed midway left
on the server (or an ingest still running) are skipped, with a server-side ``doc_id`` filter when
:meth:`MilvusIndex.open` finds the counts disagree, until the ingest is re-run.
BM25 scores are reported as positive numbers: Milvus Lite returns them negated (as
distances), the C++ engine positive; fusion never uses their sign, only the server's ranks.

The server's address and settings are :mod:`rag.index.milvus_config` (re-exported here; its
examples show the checks).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection, Mapping, Sequence

import numpy as np

from rag.answer.safety import is_suspicious
from rag.fs import library_versions
from rag.index.base import SearchResult, without_sources
from rag.index.errors import IndexError_, IndexMismatchError
from rag.index.manifest import (FORMAT_VERSION, LIBRARIES, PARTS, DocRecord, IndexSettings, indexed_text,
                                validate_name, write_documents)
from rag.index.milvus_config import (BACKEND, CONSISTENCY, DEFAULT_BATCH, INDEX_TYPES, METRICS, TOKEN_ENV,
                                     MilvusConfig, MilvusError, collection_name, connect, describe,
                                     describe_failure, quiet_pymilvus)
from rag.types import Chunk, Fusion, RetrievalMode

if TYPE_CHECKING:  # pragma: no cover
    from pymilvus import MilvusClient

__all__ = ["BACKEND", "CONSISTENCY", "DEFAULT_BATCH", "INDEX_TYPES", "METRICS", "TOKEN_ENV", "MilvusConfig",
           "MilvusError", "MilvusIndex", "collection_name", "connect", "describe", "describe_failure"]

logger = logging.getLogger(__name__)

#: what a chunk's row returns besides its id
CHUNK_FIELDS: tuple[str, ...] = ("text", "doc_id", "source", "title", "page", "char_start", "char_end",
                                 "chunk_index")
#: identifies collections made by rag: a collection property holding the tag, embedder, dim and analyzer
SCHEMA_PROPERTY = "rag.schema"
SCHEMA_TAG = "rag-local"
#: 2: inner apostrophes dropped from ``terms``
SCHEMA_VERSION = 2
_MAX_VARCHAR = 65535
_IVF_NLIST = 128
_HNSW = {"M": 16, "efConstruction": 200}
_LIBRARIES = ("rag-local", "pymilvus", "numpy")


def _schema_description(settings: IndexSettings) -> str:
    return json.dumps({"tag": SCHEMA_TAG, "schema": SCHEMA_VERSION, "embedder": settings.embedder_id,
                       "dim": settings.dim, "analyzer": dict(settings.analyzer),
                       "title_prefix": settings.title_prefix}, sort_keys=True)


class MilvusIndex:
    """A collection on a Milvus server: a :class:`~rag.index.base.SearchIndex`, like the in-process index.

    It has what the retriever, the planner and the front ends read (``name``, ``settings``,
    ``documents``, ``analyzer``, ``len()``) and runs the searches on the server
    (:meth:`search_sparse`, :meth:`search_dense`, :meth:`search_hybrid`); :meth:`write` applies an
    ingest.  Hit keys are chunk ids.  Open one with :meth:`create` (new
    collection) or :meth:`open` (from a manifest; :meth:`rag.index.store.IndexStore.load`
    does this for a Milvus-backed index).

    Example (needs a running server)::

        from rag import IndexStore, Retriever
        index = IndexStore().load("manuals")          # manifest says: milvus at http://db:19530
        hits = Retriever(index, mode="hybrid").retrieve("how do I prime the pump?", k=5)
    """

    backend = BACKEND

    def __init__(self, name: str, settings: IndexSettings, config: MilvusConfig, documents: Mapping[str, DocRecord],
                 client: "MilvusClient", created_at: float | None = None) -> None:
        self.name = validate_name(name)
        self.settings = settings
        self.config = config
        self.documents: dict[str, DocRecord] = dict(documents)
        self.client = client
        self.created_at = created_at or time.time()
        self.analyzer = settings.make_analyzer()
        self._doc_ids = frozenset(r.doc_id for r in self.documents.values())
        # set by open() when the server holds rows the records do not (an ingest running or killed):
        # searches then ask the server only for chunks of recorded documents
        self._filter = ""

    def __len__(self) -> int:
        return sum(r.n_chunks for r in self.documents.values())

    @property
    def where(self) -> str:
        return describe(self.config)

    # -- opening -------------------------------------------------------------------------

    @classmethod
    def create(cls, name: str, settings: IndexSettings, config: MilvusConfig, drop: bool = False) -> "MilvusIndex":
        """A new, empty index in ``config``'s collection (created now; ``drop`` replaces an existing one).

        An existing collection is refused unless it is empty and has this index's schema:
        its rows would not be in the local records, and re-ingest could not replace them.
        """
        config = config.for_index(name)
        client = connect(config)
        index = cls(name, settings, config, {}, client)
        exists = index._call("check the collection", client.has_collection, config.collection)
        if exists and drop:
            index._call("drop the collection", client.drop_collection, config.collection)
            exists = False
        if exists:
            index._check_schema()
            rows = index.count()
            if rows:
                raise IndexMismatchError(
                    f"{index.where} already holds {rows} chunks that index {name!r} here has no record of; "
                    f"pass --rebuild to replace it, or choose another --collection")
            return index
        index._create_collection()
        return index

    @classmethod
    def open(cls, name: str, settings: IndexSettings, manifest: Mapping[str, Any],
             documents: Mapping[str, DocRecord], token: str | None = None) -> "MilvusIndex":
        """The index a manifest describes; checks the server's collection matches it (embedder, dim, analyzer)."""
        config = MilvusConfig.from_manifest(manifest["backend"])
        if token is not None:
            config = replace(config, token=token)
        index = cls(name, settings, config, documents, connect(config), created_at=manifest.get("created_at"))
        if not index._call("check the collection", index.client.has_collection, config.collection):
            raise IndexMismatchError(
                f"index {name!r}: {index.where} does not exist (dropped, or another server); re-create it with "
                f"`rag ingest DIR --index {name} --backend milvus --uri {config.uri} --rebuild`")
        index._check_schema()
        index._ensure_loaded()
        rows = index.count()
        if rows != len(index):
            # an ingest is writing the collection now (readers see its rows as they land), or one was
            # interrupted: the next ingest of the same files deletes and re-inserts them, so no error;
            # until then a search returns only chunks of documents in the records
            index._filter = index.recorded_filter()
            logger.warning("index %r: %s holds %d chunks, the records here say %d (an ingest is running or was "
                           "interrupted; re-run it to repair); searches skip chunks of documents not in the records",
                           name, index.where, rows, len(index))
        return index

    def recorded_filter(self) -> str:
        """A filter expression matching the rows of the recorded documents (none when nothing is recorded).

        Example:
            >>> from rag.index.manifest import IndexSettings
            >>> records = {"/a.md": DocRecord("d1", "/a.md", "h", "a", 2, None, 0.0)}
            >>> MilvusIndex("n", IndexSettings(embedder_id="e", dim=2, chunker={}),
            ...             MilvusConfig(uri="http://db:19530"), records, None).recorded_filter()
            'doc_id in ["d1"]'
        """
        return doc_filter(self._doc_ids)

    def _where(self, doc_ids: Collection[str] | None) -> str:
        """The search filter: the chosen documents' rows (recorded ones only), else the recorded-rows filter if set."""
        if doc_ids is None:
            return self._filter
        return doc_filter(self._doc_ids.intersection(doc_ids))

    def _recorded(self, hits: list[Any]) -> list[Any]:
        """``hits`` without chunks of documents the records do not name (rows of an ingest running or killed)."""
        kept = [h for h in hits if h["entity"].get("doc_id") in self._doc_ids]
        if len(kept) < len(hits):
            logger.debug("index %r: %d hits of documents not in the records skipped", self.name, len(hits) - len(kept))
        return kept

    def _create_collection(self) -> None:
        from pymilvus import DataType, Function, FunctionType

        c, cfg = self.client, self.config
        schema = c.create_schema(auto_id=False, enable_dynamic_field=False, description="rag-local chunks")
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("text", DataType.VARCHAR, max_length=_MAX_VARCHAR)
        schema.add_field("terms", DataType.VARCHAR, max_length=_MAX_VARCHAR, enable_analyzer=True,
                         analyzer_params={"tokenizer": "standard"})
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_field("dense", DataType.FLOAT_VECTOR, dim=self.settings.dim)
        schema.add_field("doc_id", DataType.VARCHAR, max_length=64)
        schema.add_field("source", DataType.VARCHAR, max_length=_MAX_VARCHAR)
        schema.add_field("title", DataType.VARCHAR, max_length=_MAX_VARCHAR)
        schema.add_field("page", DataType.INT64, nullable=True)
        for name in ("char_start", "char_end", "chunk_index"):
            schema.add_field(name, DataType.INT64)
        schema.add_function(Function(name="bm25", function_type=FunctionType.BM25, input_field_names=["terms"],
                                     output_field_names=["sparse"]))
        params = c.prepare_index_params()
        dense_params: dict[str, Any] = {"FLAT": {}, "IVF_FLAT": {"nlist": _IVF_NLIST}, "HNSW": dict(_HNSW)}[
            cfg.index_type]
        params.add_index("dense", index_type=cfg.index_type, metric_type=cfg.metric, params=dense_params)
        params.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25",
                         params={"bm25_k1": self.settings.bm25_k1, "bm25_b": self.settings.bm25_b})
        self._call("create the collection", c.create_collection, cfg.collection, schema=schema,
                   index_params=params, consistency_level="Strong",
                   properties={SCHEMA_PROPERTY: _schema_description(self.settings)})
        logger.info("created Milvus %s (dim %d, %s/%s)", self.where, self.settings.dim, cfg.index_type, cfg.metric)

    def _check_schema(self) -> None:
        info = self._call("describe the collection", self.client.describe_collection, self.config.collection)
        rebuild = (f"re-create it with `rag ingest DIR --index {self.name} --backend milvus --uri {self.config.uri} "
                   f"--rebuild`, or choose another --collection")
        try:
            theirs = json.loads((info.get("properties") or {}).get(SCHEMA_PROPERTY) or "")
        except ValueError:
            theirs = None
        if not isinstance(theirs, dict) or theirs.get("tag") != SCHEMA_TAG:
            raise IndexMismatchError(f"index {self.name!r}: {self.where} was not made by rag; {rebuild}")
        dims = [f.get("params", {}).get("dim") for f in info.get("fields", []) if f.get("name") == "dense"]
        ours = json.loads(_schema_description(self.settings))
        for key, label in (("schema", "rag schema version"), ("embedder", "embedder"), ("dim", "dim"),
                           ("analyzer", "BM25 analyzer"), ("title_prefix", "title_prefix")):
            if theirs.get(key) != ours[key]:
                raise IndexMismatchError(f"index {self.name!r}: {self.where} was built with {label} "
                                         f"{theirs.get(key)!r}, this index uses {ours[key]!r}; {rebuild}")
        if dims and int(dims[0]) != self.settings.dim:
            raise IndexMismatchError(f"index {self.name!r}: {self.where} has a dense field of dim {dims[0]}, "
                                     f"the embedder gives {self.settings.dim}; {rebuild}")

    # -- requests ----------------------------------------------------------------------

    def _call(self, doing: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            with quiet_pymilvus():  # pymilvus would log the failure with a traceback per retry; we say it once
                return fn(*args, timeout=self.config.timeout, **kwargs)
        except IndexError_:
            raise
        except Exception as exc:  # noqa: BLE001 - one line naming the URI, not a gRPC traceback
            raise describe_failure(exc, self.config.uri, f"{doing} ({self.config.collection})") from None

    def _ensure_loaded(self) -> None:
        """Load the collection into the query nodes' memory if it is not (after a server restart, or a release)."""
        state = self._call("read the load state", self.client.get_load_state, self.config.collection)
        if "loaded" != str(state.get("state", "")).rsplit(".", 1)[-1].lower():
            logger.info("loading Milvus %s", self.where)
            self._call("load the collection", self.client.load_collection, self.config.collection)

    def count(self) -> int:
        """Rows in the collection, read with ``Strong`` consistency (sees every completed write)."""
        rows = self._call("count the rows", self.client.query, self.config.collection, filter="",
                          output_fields=["count(*)"], consistency_level="Strong")
        return int(rows[0]["count(*)"]) if rows else 0

    def terms(self, text: str) -> str:
        """The text the server's BM25 sees for ``text``: rag's analyzer output joined by spaces.

        An inner apostrophe is dropped (``don't`` -> ``dont``): the server's tokenizer would split there.
        """
        return " ".join(t.replace("'", "") for t in self.analyzer.tokenize(text))

    # -- writing -----------------------------------------------------------------------

    def write(self, documents: Mapping[str, DocRecord], delete_doc_ids: Sequence[str], chunks: Sequence[Chunk],
              vectors: np.ndarray, show_progress: bool = False) -> "MilvusIndex":
        """Delete the rows of ``delete_doc_ids``, insert ``chunks`` in batches; the index with ``documents``.

        Deleting first makes a re-run after a crash idempotent: a file whose rows were written
        but whose record was not is deleted and inserted again, never duplicated.
        """
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        c, name = self.client, self.config.collection
        ids = sorted(set(delete_doc_ids))
        for start in range(0, len(ids), 512):
            group = ids[start:start + 512]
            self._call("delete replaced documents", c.delete, name, filter=f"doc_id in {json.dumps(group)}")
        rows = [self._row(ch, vec) for ch, vec in zip(chunks, np.asarray(vectors, dtype=np.float32))]
        starts = range(0, len(rows), self.config.batch_size)
        if show_progress and len(rows) > self.config.batch_size:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(rows), desc="inserting", unit="chunk")
        else:
            bar = None
        try:
            for start in starts:
                batch = rows[start:start + self.config.batch_size]
                self._call("insert chunks", c.insert, name, batch)
                if bar is not None:
                    bar.update(len(batch))
        finally:
            if bar is not None:
                bar.close()
        if ids or rows:
            # seal the segments: the server builds their indexes now (Milvus Lite otherwise scans its
            # write-ahead log in Python on every search: 10x slower) and the rows are on disk
            self._call("flush", c.flush, name)
        updated = MilvusIndex(self.name, self.settings, self.config, documents, c, self.created_at)
        expected, found = len(updated), updated.count()
        if found != expected:  # read-after-write check (Strong)
            raise MilvusError(f"index {self.name!r}: {self.where} holds {found} chunks after the write, the "
                              f"records say {expected}; re-ingest with --rebuild")
        logger.info("Milvus %s: %d deleted documents, %d chunks inserted, %d in total", self.where, len(ids),
                    len(rows), found)
        return updated

    def _row(self, chunk: Chunk, vector: np.ndarray) -> dict[str, Any]:
        return {"id": chunk.id, "text": chunk.text, "terms": self.terms(indexed_text(chunk, self.settings.title_prefix)),
                "dense": vector.tolist(), "doc_id": chunk.doc_id, "source": chunk.source, "title": chunk.title,
                "page": chunk.page, "char_start": chunk.start, "char_end": chunk.end, "chunk_index": chunk.index}

    def drop(self) -> None:
        """Drop the server's collection (``rag delete-index``)."""
        self._call("drop the collection", self.client.drop_collection, self.config.collection)

    def manifest(self) -> dict[str, Any]:
        """The local ``manifest.json``: settings (no FAISS part), counts, and the ``backend`` section."""
        settings = self.settings.to_manifest()
        settings.pop("faiss", None)
        return {
            "format_version": FORMAT_VERSION, "name": self.name, "created_at": self.created_at,
            "updated_at": time.time(), **settings,
            "counts": {"documents": len(self.documents), "chunks": len(self),
                       "pages": sum(d.pages or 1 for d in self.documents.values())},
            "versions": library_versions(tuple(dict.fromkeys((*LIBRARIES[:1], *_LIBRARIES)))),
            "parts": {"documents": PARTS["documents"]},
            "backend": self.config.to_manifest(),
        }

    def save_parts(self, directory: Path) -> None:
        """Only the file records are local; the chunks, vectors and BM25 live in the collection."""
        write_documents(directory, self.documents)

    def delete(self, sources: Sequence[str]) -> "MilvusIndex":
        return without_sources(self, sources)  # type: ignore[return-value]

    # -- searching ---------------------------------------------------------------------

    def term_idf(self, terms: Sequence[str]) -> None:
        """None: the server keeps its BM25 statistics to itself (callers use an IDF over their hits)."""
        return None

    def search(self, query: str, vector: np.ndarray | None, mode: RetrievalMode, fusion: Fusion = Fusion.RRF,
               rrf_k: int = 60, alpha: float = 0.5, n: int = 100,
               doc_ids: Collection[str] | None = None) -> SearchResult:
        """The top ``n`` chunks for ``mode``: :meth:`search_sparse`, :meth:`search_dense` or :meth:`search_hybrid`."""
        if mode is RetrievalMode.BM25:
            return self.search_sparse(query, n, doc_ids)
        if mode is RetrievalMode.DENSE:
            return self.search_dense(np.asarray(vector, np.float32), n, doc_ids)
        return self.search_hybrid(query, np.asarray(vector, np.float32), fusion, rrf_k, alpha, n, doc_ids)

    def search_sparse(self, query: str, n: int, doc_ids: Collection[str] | None = None) -> SearchResult:
        """The server's full-text BM25 over the analysed ``query`` (no hits when no term survives analysis).

        ``doc_ids`` (every search takes it) becomes a server-side ``doc_id in [...]`` filter: the
        server ranks only those documents' rows.
        """
        terms = self.terms(query)
        if not terms:
            return SearchResult.empty("bm25")
        return self._search_one("bm25", [terms], "sparse", "BM25", n, doc_ids)

    def search_dense(self, vector: np.ndarray, n: int, doc_ids: Collection[str] | None = None) -> SearchResult:
        return self._search_one("dense", [np.asarray(vector, np.float32).tolist()], "dense", self.config.metric, n,
                                doc_ids)

    def search_hybrid(self, query: str, vector: np.ndarray, fusion: Fusion, rrf_k: int, alpha: float,
                      n: int, doc_ids: Collection[str] | None = None) -> SearchResult:
        """One ``hybrid_search``, fused by the server; ``per`` holds the dense cosines (from the returned vectors).

        ``fusion`` is ``rrf`` or ``weighted`` here: zscore and adaptive fusion need both scored
        lists, so the :class:`~rag.retrieval.retriever.Retriever` asks for each and fuses them.
        """
        from pymilvus import AnnSearchRequest, RRFRanker, WeightedRanker

        c, cfg = self.client, self.config
        terms = self.terms(query)
        if not terms:  # no query term survives analysis: only the dense side can match
            return self.search_dense(vector, n, doc_ids)
        if fusion in (Fusion.ADAPTIVE, Fusion.ZSCORE):
            raise ValueError(f"{fusion} fusion is the retriever's: search bm25 and dense here and fuse them")
        if fusion is Fusion.RRF:
            if not 0 < rrf_k < 16384:
                raise ValueError(f"Milvus' RRFRanker needs 0 < rrf_k < 16384, got {rrf_k}")
            ranker: Any = RRFRanker(rrf_k)
        else:
            ranker = WeightedRanker(1.0 - alpha, alpha, norm_score=True)
        q = np.asarray(vector, np.float32)
        expr = self._where(doc_ids)
        where = {"expr": expr} if expr else {}
        requests = [AnnSearchRequest(data=[terms], anns_field="sparse", param={"metric_type": "BM25"}, limit=n,
                                     **where),
                    AnnSearchRequest(data=[q.tolist()], anns_field="dense", param={"metric_type": cfg.metric},
                                     limit=n, **where)]
        result = self._call("search (hybrid)", c.hybrid_search, cfg.collection, requests, ranker, limit=n,
                            output_fields=[*CHUNK_FIELDS, "dense"], consistency_level=cfg.consistency)
        hits = self._recorded(list(result[0]) if result else [])
        dense = {h["id"]: float(np.dot(np.asarray(h["entity"]["dense"], np.float32), q)) for h in hits}
        fused = {h["id"]: float(h["distance"]) for h in hits}
        return SearchResult({"dense": dense}, fused, {h["id"]: _chunk(h["id"], h["entity"]) for h in hits})

    def _search_one(self, retriever: str, data: list[Any], field: str, metric: str, n: int,
                    doc_ids: Collection[str] | None = None) -> SearchResult:
        cfg = self.config
        result = self._call(f"search ({retriever})", self.client.search, cfg.collection, data=data,
                            anns_field=field, search_params={"metric_type": metric}, limit=n,
                            filter=self._where(doc_ids),
                            output_fields=list(CHUNK_FIELDS), consistency_level=cfg.consistency)
        # the server's filter is set when open() saw the records disagree; rows landing later are dropped here
        hits = self._recorded(list(result[0]) if result else [])
        # BM25: Milvus Lite returns -score (a distance), the C++ engine +score; BM25 is never negative
        scores = {h["id"]: abs(float(h["distance"])) if retriever == "bm25" else float(h["distance"]) for h in hits}
        return SearchResult({retriever: scores}, scores, {h["id"]: _chunk(h["id"], h["entity"]) for h in hits})


def doc_filter(doc_ids: Collection[str]) -> str:
    """A filter expression matching the rows of ``doc_ids`` (no row when there are none).

    Example:
        >>> doc_filter({"d2", "d1"}), doc_filter(())
        ('doc_id in ["d1", "d2"]', 'doc_id == ""')
    """
    return f"doc_id in {json.dumps(sorted(doc_ids))}" if doc_ids else 'doc_id == ""'


def _chunk(chunk_id: str, e: Mapping[str, Any]) -> Chunk:
    return Chunk(id=str(chunk_id), text=e["text"], doc_id=e["doc_id"], source=e["source"], page=e.get("page"),
                 start=int(e["char_start"]), end=int(e["char_end"]), index=int(e["chunk_index"]),
                 title=e.get("title") or "", suspicious=is_suspicious(e["text"]))
