"""The HTTP API's engine, framework-free: shared models, collections loaded on first use, answers on threads.

:class:`RagService` holds what every request shares — one chat model (a
:class:`~rag.generation.llm.LlamaCppLLM`, whose own lock serialises generation), one
:class:`~rag.embedding.Embedder`, the loaded rerankers — and builds each collection's
:class:`~rag.pipeline.Pipeline` with :func:`rag.pipeline.build` on first use, cached and
rebuilt when the collection's ``manifest.json`` changes (a re-ingest while the server runs).

:class:`AnswerJob` runs one ``Answerer.stream`` on a thread of its own from start to end, so
llama.cpp's lock is taken and released by the same thread, and hands the pieces to asyncio;
:meth:`AnswerJob.cancel` (a client that went away) closes the stream, which stops generation
at the next token.

Example:
    >>> SourcePaths(["/data/manuals/pump.pdf", "/data/manuals/old/valve.md"]).relative("/data/manuals/old/valve.md")
    'old/valve.md'
    >>> SourcePaths(["/data/only.md"]).relative("/data/only.md"), SourcePaths(["notes/a.md"]).relative("notes/a.md")
    ('only.md', 'notes/a.md')
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from rag.answer.stream import AnswerStream
from rag.embedding import DEFAULT_EMBEDDER, Embedder
from rag.index.store import MANIFEST, Index, IndexError_, IndexNotFoundError, IndexStore
from rag.pipeline import (Pipeline, PipelineConfig, RetrievalConfig, build, build_retriever, make_llm,
                          resolve_reranker)
from rag.retrieval.rerank import Reranker
from rag.retrieval.scope import common_folder, resolve_documents, shown_name
from rag.types import Answer, Hit

logger = logging.getLogger(__name__)

PIPELINE_CACHE = 16  # pipelines kept (one per collection and sampling setting)


class UnknownCollectionError(IndexNotFoundError):
    """A collection name that is not an index in the store; the message lists the available ones."""


_PATH_CHARS = r"[^\s'\"()\[\]{},;]"
_ABSOLUTE_PATH = re.compile(rf"(?<![\w.~:/\\-])(?:/|[A-Za-z]:\\){_PATH_CHARS}+")


def hide_paths(text: str, roots: Sequence[str] = ()) -> str:
    """``text`` without the server's absolute paths, for an API client to read.

    A path under one of ``roots`` (the index folder) becomes relative to it, so it starts with the
    collection's name; a root itself becomes "the index folder"; any other absolute path "<path>".

    Example:
        >>> hide_paths("index 'c' at /srv/idx/c/v-1: no part ('/srv/idx/c/v-1/dense.faiss')", ["/srv/idx"])
        "index 'c' at c/v-1: no part ('c/v-1/dense.faiss')"
        >>> hide_paths("no index under /srv/idx/ or /home/me/x.md", ["/srv/idx"])
        'no index under the index folder or <path>'
    """
    for root in sorted({r.rstrip("/\\") for r in roots if os.path.isabs(r)}, key=len, reverse=True):
        text = re.sub(re.escape(root) + rf"(?:[/\\]({_PATH_CHARS}*))?",
                      lambda m: m.group(1) or "the index folder", text)
    return _ABSOLUTE_PATH.sub("<path>", text)


class SourcePaths:
    """Document paths relative to a collection's common folder (paths as ingested if not absolute)."""

    def __init__(self, sources: Sequence[str]) -> None:
        self.root: str | None = common_folder(sources)

    def relative(self, source: str) -> str:
        return shown_name(source, self.root)


@dataclass
class Collection:
    """A loaded collection: its index, the manifest time it was loaded at, and its path mapper."""

    index: Index
    mtime_ns: int
    paths: SourcePaths


class RagService:
    """Shared models and per-collection pipelines for the HTTP API.

    Args:
        store: where the collections (indexes) live.
        config: the pipeline template (retrieval, generation, plugins); ``config.index`` is the
            default collection, checked by :meth:`load`.
        embedder, llm: shared models (default: the packaged embedder, and the chat model
            :func:`rag.pipeline.make_llm` makes for ``config.generation`` unless it is extractive).

    Example (loads the real models)::

        from rag.index.store import IndexStore
        from rag.pipeline import PipelineConfig
        service = RagService(IndexStore(), PipelineConfig(index="samples")).load()
        print(service.collections(), service.chat_model_id)
        service.close()
    """

    def __init__(self, store: IndexStore, config: PipelineConfig, *, embedder: Embedder | None = None,
                 llm: Any | None = None) -> None:
        if not isinstance(config, PipelineConfig):
            raise ValueError(f"config must be a PipelineConfig, got {type(config).__name__}")
        self.store = store
        self.config = config
        self.embedder = embedder or Embedder(DEFAULT_EMBEDDER)
        self.llm = llm
        self._owns_llm = False
        self._lock = threading.Lock()
        self._collections: dict[str, Collection] = {}
        self._pipelines: OrderedDict[tuple[Any, ...], Pipeline] = OrderedDict()
        self._rerankers: dict[tuple[str, str], Reranker] = {}

    # -- lifecycle ---------------------------------------------------------------------------
    def load(self) -> "RagService":
        """Load the default collection and the models now, so a bad index or model fails at start."""
        self.collection(self.config.index)
        self.embedder.load()
        gen = self.config.generation
        if self.llm is None and not gen.extractive:
            self.llm = make_llm(gen)
            self._owns_llm = True
        if self.llm is not None and hasattr(self.llm, "load"):
            self.llm.load()
        self.pipeline(self.config.index)
        return self

    def close(self) -> None:
        with self._lock:
            self._pipelines.clear()
            self._collections.clear()
        if self._owns_llm and self.llm is not None:
            self.llm.close()
            self.llm = None

    # -- what is served ----------------------------------------------------------------------
    @property
    def default_collection(self) -> str:
        return self.config.index

    @property
    def chat_model_id(self) -> str:
        """The served chat model: its registry name, or the file name of a ``.gguf`` path."""
        model = self.config.generation.model
        return Path(model).stem if model.endswith(".gguf") else model

    @property
    def extractive(self) -> bool:
        return self.config.generation.extractive

    @property
    def embedding_model_ids(self) -> tuple[str, ...]:
        """Names a client may give for the embedder: the short name first, then the full id."""
        full = self.embedder.model_id
        return (full.rsplit("/", 1)[-1], full)

    def collections(self) -> list[str]:
        return self.store.names()

    def public_error(self, exc: BaseException) -> BaseException:
        """``exc`` as an API client may see it: an index or value error's message without the server's
        paths (:func:`hide_paths`: paths in the index folder start with the collection's name); the
        server log keeps the full message."""
        if not isinstance(exc, (IndexError_, ValueError)):
            return exc
        root = str(self.store.root)
        text = hide_paths(str(exc), [os.path.abspath(root), os.path.realpath(root)])
        if text == str(exc):
            return exc
        logger.warning("%s", exc)
        try:
            return type(exc)(text)
        except Exception:  # noqa: BLE001 - an exception type with another constructor
            return IndexError_(text) if isinstance(exc, IndexError_) else ValueError(text)

    def has_collection(self, name: str) -> bool:
        try:
            return self.store.exists(name)
        except ValueError:  # not a valid index name
            return False

    # -- collections and pipelines ---------------------------------------------------------
    def collection(self, name: str) -> Collection:
        """The loaded collection ``name`` (reloaded if its manifest changed on disk)."""
        if not self.has_collection(name):
            raise UnknownCollectionError(self.unknown_message(name))
        manifest = self.store.path(name) / MANIFEST
        with self._lock:
            try:
                mtime = manifest.stat().st_mtime_ns
            except OSError:
                raise UnknownCollectionError(self.unknown_message(name)) from None
            current = self._collections.get(name)
            if current is None or current.mtime_ns != mtime:
                try:
                    index = self.store.load(name, expect_embedder=self.embedder.model_id)
                except IndexNotFoundError:
                    raise UnknownCollectionError(self.unknown_message(name)) from None
                current = Collection(index, mtime, SourcePaths(list(index.documents)))
                self._collections[name] = current
                for key in [k for k in self._pipelines if k[0] == name and k[1] != mtime]:
                    del self._pipelines[key]  # built over the old version of the collection
            return current

    def unknown_message(self, name: str) -> str:
        names = ", ".join(f"rag:{n}" for n in self.collections()) or "none"
        return (f"collection {name!r} does not exist (models with collections: {names}); "
                f"create it with `rag ingest DIR --index {name}`")

    def _reranker(self, spec: str | None, name: str) -> Reranker | None:
        if not spec:
            return None
        key = (spec, name if spec == "auto" else "")
        with self._lock:
            if key not in self._rerankers:
                self._rerankers[key] = resolve_reranker(spec, self.store.path(name))  # type: ignore[assignment]
            return self._rerankers[key]

    def pipeline(self, name: str, *, max_tokens: int | None = None, temperature: float | None = None,
                 seed: int | None = None) -> Pipeline:
        """The pipeline answering from collection ``name`` with these sampling settings (cached)."""
        coll = self.collection(name)
        gen = self.config.generation
        gen = replace(gen, max_tokens=max_tokens if max_tokens is not None else gen.max_tokens,
                      temperature=temperature if temperature is not None else gen.temperature,
                      seed=seed if seed is not None else gen.seed)
        key = (name, coll.mtime_ns, gen.max_tokens, gen.temperature, gen.seed)
        with self._lock:
            found = self._pipelines.get(key)
            if found is not None:
                self._pipelines.move_to_end(key)
                return found
        reranker = self._reranker(self.config.retrieval.reranker, name)
        config = replace(self.config, index=name, generation=gen)
        pipeline = build(config, self.store, index=coll.index, embedder=self.embedder, llm=self.llm,
                         reranker=reranker, load_index=lambda other: self.collection(other).index)
        with self._lock:
            self._pipelines[key] = pipeline
            while len(self._pipelines) > PIPELINE_CACHE:
                self._pipelines.popitem(last=False)
        return pipeline

    # -- the work ----------------------------------------------------------------------------
    def documents(self, name: str, documents: Sequence[str] | None) -> frozenset[str] | None:
        """The documents of collection ``name`` that ``documents`` names (recorded sources; None for None).

        An unknown or ambiguous document is a ValueError naming it and a few valid ones (paths relative
        to the collection's common folder, as the API shows them).
        """
        if documents is None:
            return None
        return resolve_documents(self.collection(name).index.documents, documents, index=name)

    def search(self, name: str, query: str, config: RetrievalConfig,
               documents: Sequence[str] | None = None) -> tuple[list[Hit], SourcePaths]:
        """Ranked hits for ``query`` in collection ``name``, retrieved as ``config`` says (``rag search``),
        from ``documents`` only when given."""
        try:
            coll = self.collection(name)
            retriever = build_retriever(config, coll.index, self.embedder, self._reranker(config.reranker, name))
            return retriever.retrieve(query, k=config.k, documents=documents), coll.paths
        except (IndexError_, ValueError) as exc:
            raise self.public_error(exc) from None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors of ``texts`` from the shared embedder."""
        return self.embedder.encode(list(texts))

    def answer_job(self, name: str, question: str, history: Sequence[dict[str, str]], *,
                   max_tokens: int | None = None, temperature: float | None = None,
                   seed: int | None = None, documents: Sequence[str] | None = None) -> "AnswerJob":
        """A not-yet-started :class:`AnswerJob` answering ``question`` from collection ``name``
        (from ``documents`` only, when given)."""
        def make() -> tuple[AnswerStream, SourcePaths]:
            pipeline = self.pipeline(name, max_tokens=max_tokens, temperature=temperature, seed=seed)
            stream = pipeline.answerer.stream(question, list(history), documents=documents)
            return stream, self.collection(name).paths

        return AnswerJob(make, public_error=self.public_error)


# Events an AnswerJob hands to asyncio: ("piece", str), ("done", (Answer, SourcePaths)), ("error", exc),
# ("cancelled", None)
Event = tuple[str, Any]


class AnswerJob:
    """One answer on its own thread; iterate :meth:`events` from asyncio.

    The thread plans (route, rewrite, retrieve, gate), streams the model's pieces and runs the
    support check, all on itself (llama.cpp's lock is thread-owned).  :meth:`cancel` makes it
    close the stream at the next piece: generation stops, the model is free for the next request.
    An error is handed on as ``public_error`` makes it (e.g. :meth:`RagService.public_error`).
    """

    def __init__(self, make: Callable[[], tuple[AnswerStream, SourcePaths]],
                 public_error: Callable[[BaseException], BaseException] | None = None) -> None:
        self._make = make
        self._public_error = public_error
        self._cancel = threading.Event()
        self._queue: asyncio.Queue[Event] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.pieces = 0
        self.cancelled = False
        self.failed = False
        self.finished = threading.Event()

    def start(self) -> "AnswerJob":
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        threading.Thread(target=self._run, name="rag-answer", daemon=True).start()
        return self

    def cancel(self) -> None:
        self._cancel.set()

    def _put(self, event: Event) -> None:
        assert self._loop is not None and self._queue is not None
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, event)
        except RuntimeError:  # the event loop is gone (server shutting down)
            self._cancel.set()

    def _run(self) -> None:
        stream: AnswerStream | None = None
        try:
            if self._cancel.is_set():
                self.cancelled = True
                self._put(("cancelled", None))
                return
            stream, paths = self._make()
            for piece in stream:
                if self._cancel.is_set():
                    break
                self.pieces += 1
                self._put(("piece", piece))
            if self._cancel.is_set():
                self.cancelled = True
                stream.close()  # on this thread: the model's lock is released by its owner
                self._put(("cancelled", None))
                return
            answer: Answer = stream.answer
            self._put(("done", (answer, paths)))
        except BaseException as exc:  # noqa: BLE001 - handed to the request, which maps it to a status
            if stream is not None:
                stream.close()
            self.failed = True
            self._put(("error", self._public_error(exc) if self._public_error else exc))
        finally:
            self.finished.set()

    async def next_event(self) -> Event:
        assert self._queue is not None, "start() the job first"
        return await self._queue.get()
