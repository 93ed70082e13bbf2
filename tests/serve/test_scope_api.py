"""``"rag": {"documents": [...]}`` on chat completions and /v1/search, in process (extractive answers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest

from rag.index.store import IndexStore
from rag.ingest.ingestor import Ingestor
from rag.pipeline import GenerationConfig, PipelineConfig
from tests import scoping
from tests.scoping import K, QUERY


@pytest.fixture(scope="module")
def scoped_service(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[Any]:
    from rag.serve.service import RagService

    root = tmp_path_factory.mktemp("scope-api")
    store = IndexStore(root / "indexes")
    assert Ingestor("parts", store=store, embedder=embedder, show_progress=False,
                    **scoping.CHUNKING).ingest([scoping.write(root / "docs")]).ok
    service = RagService(store, PipelineConfig(index="parts", generation=GenerationConfig(mode="extractive")),
                         embedder=embedder).load()
    yield service
    service.close()


@pytest.fixture()
def api(scoped_service: Any) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from rag.serve.api import ApiSettings, create_app

    with TestClient(create_app(scoped_service, ApiSettings()), base_url="http://127.0.0.1:8000") as c:
        yield c


def test_search_scoped_to_a_document_returns_k_hits_from_it(api: Any) -> None:
    body = {"query": QUERY, "k": K, "candidates": K, "mode": "hybrid"}
    assert {h["source"] for h in api.post("/v1/search", json=body).json()["data"]} == {"pumps.md"}
    hits = api.post("/v1/search", json={**body, "rag": {"documents": ["notes.md"]}}).json()["data"]
    assert [h["source"] for h in hits] == ["notes.md"] * K


def test_chat_answers_from_the_chosen_documents_only(api: Any) -> None:
    question = {"model": "rag:parts", "messages": [{"role": "user", "content": "how is a leaking pump seal repaired?"}]}
    whole = api.post("/v1/chat/completions", json=question).json()["rag"]
    assert "pumps.md" in {s["source"] for s in whole["sources"]}
    scoped = api.post("/v1/chat/completions", json={**question, "rag": {"documents": ["pumps.md"]}}).json()["rag"]
    assert scoped["sources"] and {s["source"] for s in scoped["sources"]} == {"pumps.md"}

    with api.stream("POST", "/v1/chat/completions",
                    json={**question, "stream": True, "rag": {"documents": ["pumps.md"]}}) as r:
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]
    final = next(e["rag"] for e in events if e.get("rag"))
    assert {s["source"] for s in final["sources"]} == {"pumps.md"}


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/search"])
def test_unknown_or_malformed_documents_are_a_400_naming_them(api: Any, scoped_service: Any, path: str) -> None:
    base = ({"model": "rag:parts", "messages": [{"role": "user", "content": "pump?"}]} if "chat" in path
            else {"query": "pump?"})
    r = api.post(path, json={**base, "rag": {"documents": ["notes.md", "nope.md"]}})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["param"] == "rag.documents" and error["code"] == "document_not_found"
    assert error["message"] == ("unknown document 'nope.md' in index 'parts'; its documents include notes.md, "
                                "pumps.md, valves.md")
    for bad in ({"documents": []}, {"documents": [""]}, {"documents": "notes.md"}, {"document": ["notes.md"]}):
        r = api.post(path, json={**base, "rag": bad})
        assert r.status_code == 400 and r.json()["error"]["param"].startswith("rag"), bad
    assert str(Path(scoped_service.store.root).parent) not in r.text
