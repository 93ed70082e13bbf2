"""Shared fixtures: the network is blocked, models are loaded once per session."""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from pathlib import Path
from typing import Iterator

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["RAGAS_DO_NOT_TRACK"] = "true"

REPO = Path(__file__).resolve().parent.parent
CRANFIELD = REPO.parent / "shared" / "data" / "cranfield"
COVID_QA = REPO.parent / "shared" / "data" / "covid-qa"


class NetworkBlocked(RuntimeError):
    pass


def _is_local(address: object) -> bool:
    if isinstance(address, tuple) and address:
        host = str(address[0])
        return host in ("localhost", "::1") or host.startswith("127.")
    return isinstance(address, (str, bytes))  # unix sockets


@pytest.fixture(autouse=True)
def block_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any connection to a non-loopback address fails the test loudly."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def guarded_connect(self: socket.socket, address: object) -> object:
        if not _is_local(address):
            raise NetworkBlocked(f"test tried to reach the network: {address!r}")
        return real_connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: object) -> object:
        if not _is_local(address):
            raise NetworkBlocked(f"test tried to reach the network: {address!r}")
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
    yield


#: ``make test-fast`` sets it: the ``embedder`` fixture is then :func:`hashing_embedder`, not MiniLM.
FAKE_EMBEDDER_ENV = "RAG_TEST_FAKE_EMBEDDER"
HASHING_EMBEDDER_ID = "test-hashing-embedder"


def hashing_embedder():  # type: ignore[no-untyped-def]
    """A deterministic stand-in for MiniLM: content words, Snowball-stemmed, hashed into 384 signed buckets
    and unit-normalised; MiniLM's own tokenizer, so chunks are cut exactly as with the real model.

    Lexical, not semantic: texts that share stems are close. Its model id is its own, so an index it built
    and a real embedder never meet silently (the retriever raises ``IndexMismatchError``).
    """
    import hashlib
    import json

    import numpy as np
    from transformers import AutoTokenizer

    from rag.embedding import Embedder
    from rag.embedding.models import packaged_embedder_path
    from rag.text import content_stems, words

    model_dir = packaged_embedder_path()

    class HashingEncoder:
        dim = 384
        max_seq_length = int(json.loads((model_dir / "sentence_bert_config.json").read_text())["max_seq_length"])
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))

        def encode(self, texts: list[str], batch_size: int, small: bool, show_progress: bool) -> np.ndarray:
            out = np.zeros((len(texts), self.dim), dtype=np.float32)
            for row, text in enumerate(texts):
                terms = content_stems(text) or [w.lower() for w in words(text)] or [text]
                for term in terms:
                    h = int.from_bytes(hashlib.blake2b(term.encode("utf-8"), digest_size=8).digest(), "little")
                    out[row, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
                out[row] /= np.linalg.norm(out[row]) or 1.0
            return out

    class HashingEmbedder(Embedder):
        @property
        def model_id(self) -> str:
            return HASHING_EMBEDDER_ID

        @property
        def backend(self) -> str:
            return "hashing"

        def load(self) -> "HashingEmbedder":
            with self._lock:
                if self._impl is None:
                    self._impl = HashingEncoder()
            return self

    return HashingEmbedder().load()


@pytest.fixture(scope="session")
def embedder():  # type: ignore[no-untyped-def]
    """The real packaged MiniLM embedder, loaded once; with ``RAG_TEST_FAKE_EMBEDDER=1`` (``make test-fast``)
    the hashing stand-in instead. Tests that need MiniLM's semantics are marked ``model``."""
    if os.environ.get(FAKE_EMBEDDER_ENV) == "1":
        return hashing_embedder()
    from rag.embedding import Embedder

    return Embedder().load()


@pytest.fixture(scope="session")
def smol():  # type: ignore[no-untyped-def]
    """The real packaged SmolLM2, loaded once for the whole run and closed at the end."""
    from rag.generation.llm import LlamaCppLLM

    with LlamaCppLLM("smollm2-135m", seed=0) as llm:
        yield llm


def build_index(root: Path, name: str, files: dict[str, str], embedder, **kw):  # type: ignore[no-untyped-def]
    """Write ``files`` under ``root`` and ingest them into a fresh index ``name``; return it loaded."""
    from rag.index.store import IndexStore
    from rag.ingest.ingestor import Ingestor

    docs = root / f"{name}-docs"
    docs.mkdir(parents=True)
    for fname, text in files.items():
        (docs / fname).write_text(text, encoding="utf-8")
    store = IndexStore(root / "indexes")
    report = Ingestor(name, store=store, embedder=embedder, **kw).ingest([docs])
    assert report.ok, report.summary()
    return store.load(name)


@pytest.fixture()
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    from rag.index.store import IndexStore

    return IndexStore(tmp_path / "indexes")


@pytest.fixture()
def docs_dir(tmp_path: Path) -> Path:
    """A small real corpus on disk."""
    d = tmp_path / "docs"
    d.mkdir()
    (d / "pump.md").write_text(
        "# Pump manual\n\nTo prime the centrifugal pump, open the bleed valve and fill the casing with water "
        "until no air escapes.\n\nNever run the pump dry: the mechanical seal overheats within seconds.\n",
        encoding="utf-8")
    (d / "turbine.txt").write_text(
        "Turbine maintenance. The turbine blades must be inspected for cracks every 500 operating hours. "
        "Replace any blade with erosion deeper than 2 mm.", encoding="utf-8")
    (d / "fruit.html").write_text(
        "<html><head><title>Fruit facts</title><script>var x = 'secret script';</script>"
        "<style>body{color:red}</style></head><body><h1>Bananas</h1><p>Bananas are yellow and rich in "
        "potassium.</p></body></html>", encoding="utf-8")
    return d


def make_answerer(retriever, llm=None, *, store=None, k=5, max_tokens=256, temperature=0.0, seed=0,  # type: ignore[no-untyped-def]
                  min_relevance=None, extractive=False, condense=True, max_quotes=3, embedder=None, rewriter=None,
                  router=None, check=None, fallback_min_similarity=None):
    """The :class:`~rag.answer.answerer.Answerer` that :func:`rag.pipeline.build` assembles, with the test's fakes.

    ``retriever``'s index, embedder, reranker and settings, the (scripted) ``llm`` and ``embedder`` go to
    ``build`` as objects, everything else as its :class:`~rag.pipeline.PipelineConfig`: answers from whole
    chunks (these tests drive the chunk path; the evidence path is tested in answer/test_evidence.py and
    e2e/test_pipeline.py), no answer check unless ``check`` is given.  ``store`` holds the collections a
    router may pick (default: none but the retriever's own).

    What ``build`` takes only by name, or not at all, is set on the parts it built, unchecked (the parts'
    own checks are tested on the parts): plugin objects (``rewriter``, ``router``), the ``check`` object
    itself (build makes ``AnswerCheck(check.min_log_odds)``; this keeps e.g. an uncalibrated one) and the
    quote fallback's ``fallback_min_similarity``.
    """
    from rag.answer.gate import DEFAULT_MIN_DENSE
    from rag.answer.generative import GenerativeStrategy
    from rag.index.store import IndexStore
    from rag.pipeline import GenerationConfig, PipelineConfig, PluginConfig, RetrievalConfig, build
    from rag.types import AnswerMode, ContextMode

    if llm is None and not extractive:  # build would load the packaged default model; a test gets the error
        GenerativeStrategy(llm, embedder)  # raises "generative answers need an llm"
    config = PipelineConfig(
        index=retriever.index.name,
        retrieval=RetrievalConfig(mode=retriever.mode, fusion=retriever.fusion, rrf_k=retriever.rrf_k,
                                  alpha=retriever.alpha, candidates=retriever.candidates,
                                  rerank_candidates=retriever.rerank_candidates, k=k),
        generation=GenerationConfig(mode=AnswerMode.EXTRACTIVE if extractive else AnswerMode.GENERATIVE,
                                    max_tokens=max_tokens, temperature=temperature, seed=seed, max_quotes=max_quotes,
                                    min_relevance=DEFAULT_MIN_DENSE if min_relevance is None else min_relevance,
                                    answer_check=None if check is None else check.min_log_odds,
                                    context=ContextMode.CHUNKS),
        plugins=PluginConfig(rewriter="condense" if condense else "none"))
    if store is None:  # an empty store: no collection but the retriever's own (never created on disk)
        store = IndexStore(Path(tempfile.gettempdir()) / f"rag-tests-no-store-{uuid.uuid4().hex}")
    answerer = build(config, store, index=retriever.index, embedder=embedder or retriever.embedder, llm=llm,
                     reranker=retriever.reranker).answerer
    if rewriter is not None:
        answerer.planner.rewriter = rewriter
    if router is not None:
        answerer.planner.router = router
    if check is not None:
        answerer.strategy.decider.check = check
    if fallback_min_similarity is not None:
        answerer.strategy.fallback_min_similarity = fallback_min_similarity
    return answerer
