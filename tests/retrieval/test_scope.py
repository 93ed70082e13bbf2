"""Retrieval scoped to chosen documents: filtered before ranking, in every mode, through the answer path too."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rag.index.store import IndexStore
from rag.ingest.ingestor import Ingestor
from rag.plugins.base import Rewrite, SearchQuery
from rag.retrieval.multi_query import MultiQuerySearcher
from rag.retrieval.retriever import Retriever
from tests import scoping
from tests.scoping import K, QUERY

MODES = [("bm25", None), ("dense", None), ("hybrid", "zscore"), ("hybrid", "adaptive"), ("hybrid", "rrf"),
         ("hybrid", "weighted")]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, embedder):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("scope")
    docs = scoping.write(root / "docs")
    store = IndexStore(root / "indexes")
    report = Ingestor("scoped", store=store, embedder=embedder, show_progress=False, **scoping.CHUNKING).ingest([docs])
    assert report.ok, report.summary()
    index = store.load("scoped")
    assert scoping.chunks_per_file(index) == {"pumps.md": 12, "valves.md": 6, "notes.md": 6}
    return root, index


def _names(hits) -> list[str]:  # type: ignore[no-untyped-def]
    return [Path(h.chunk.source).name for h in hits]


@pytest.mark.parametrize("mode,fusion", MODES)
def test_scoped_search_returns_k_hits_all_from_the_chosen_document(corpus, embedder, mode, fusion) -> None:  # type: ignore[no-untyped-def]
    _, index = corpus
    # candidates = k: the index itself must rank only the chosen chunks, a filter after it would find none
    r = Retriever(index, mode=mode, fusion=fusion, embedder=embedder, candidates=K)
    unscoped = r.retrieve(QUERY, k=K)
    assert _names(unscoped) == ["pumps.md"] * K
    post_filtered = [h for h in unscoped if Path(h.chunk.source).name == "notes.md"]
    assert len(post_filtered) < K  # what a post-filter of the top k would have returned

    hits = r.retrieve(QUERY, k=K, documents=["notes.md"])
    assert _names(hits) == ["notes.md"] * K
    assert [h.rank for h in hits] == list(range(1, K + 1))
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:]))


def test_several_documents_and_every_way_of_naming_them(corpus, embedder, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    root, index = corpus
    r = Retriever(index, mode="bm25", embedder=embedder)
    hits = r.retrieve(QUERY, k=10, documents=["notes.md", "valves.md"])
    assert len(hits) == 10 and set(_names(hits)) == {"notes.md", "valves.md"}

    recorded = next(s for s in index.documents if s.endswith("notes.md"))
    expected = [h.chunk.id for h in r.retrieve(QUERY, k=K, documents=[recorded])]
    monkeypatch.chdir(root)
    for name in ("notes.md", "docs/notes.md", os.path.join("docs", "..", "docs", "notes.md"), str(root / "docs" /
                                                                                                   "notes.md")):
        assert [h.chunk.id for h in r.retrieve(QUERY, k=K, documents=[name])] == expected, name
    assert r.retrieve(QUERY, k=K, documents=None) == r.retrieve(QUERY, k=K)


def test_unknown_or_empty_scope_is_one_line_naming_it(corpus, embedder) -> None:  # type: ignore[no-untyped-def]
    _, index = corpus
    r = Retriever(index, mode="hybrid", embedder=embedder)
    with pytest.raises(ValueError) as err:
        r.retrieve(QUERY, k=K, documents=["notes.md", "nope.md"])
    assert str(err.value) == ("unknown document 'nope.md' in index 'scoped'; its documents include notes.md, "
                              "pumps.md, valves.md")
    with pytest.raises(ValueError, match="at least one document"):
        r.retrieve(QUERY, k=K, documents=[])
    with pytest.raises(ValueError, match="unknown document"):
        r.retrieve("   ", k=K, documents=["nope.md"])  # checked even when nothing would be searched


def test_every_query_of_a_multi_query_rewrite_is_scoped(corpus, embedder) -> None:  # type: ignore[no-untyped-def]
    _, index = corpus
    r = Retriever(index, mode="hybrid", embedder=embedder, candidates=K)
    rewrite = Rewrite((SearchQuery(QUERY), SearchQuery("pump seal", kind="keywords")))
    found = MultiQuerySearcher(r).search(rewrite, K, "scoped", documents=["valves.md"])
    assert _names(found.hits) == ["valves.md"] * K
    assert all(set(t.location.split()[0] for t in q.hits) == {next(s for s in index.documents
                                                                  if s.endswith("valves.md"))}
               for q in found.retrievals)


def test_answers_and_chat_turns_read_only_the_chosen_documents(corpus, embedder) -> None:  # type: ignore[no-untyped-def]
    from rag.answer.chat import ChatSession
    from tests.conftest import make_answerer

    _, index = corpus
    answerer = make_answerer(Retriever(index, mode="hybrid", embedder=embedder), extractive=True, min_relevance=0.0,
                             condense=False)
    whole = answerer.answer("how is a leaking pump seal repaired?")
    assert {Path(c.chunk.source).name for c in whole.sources} == {"pumps.md"}
    scoped = answerer.answer("how is a leaking pump seal repaired?", documents=["valves.md"])
    assert scoped.sources and {Path(c.chunk.source).name for c in scoped.sources} == {"valves.md"}
    assert any("scoped to 1 document" in note for note in scoped.trace.notes)

    chat = ChatSession(answerer)
    turn = chat.ask("what is greased every month?", documents=["valves.md"])
    assert {Path(c.chunk.source).name for c in turn.sources} == {"valves.md"}
    with pytest.raises(ValueError, match="unknown document 'nope.md'"):
        chat.ask("anything?", documents=["nope.md"])
    assert len(chat.memory.messages()) == 2  # the refused turn left no trace
