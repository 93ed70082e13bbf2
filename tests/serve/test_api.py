"""The OpenAI-compatible HTTP API (``rag serve``): the real server as a subprocess on a free loopback port,
the real ``openai`` client, the real SmolLM2 and MiniLM; plus in-process checks of the guards (extractive
answers, no LLM) and schemathesis against the running server."""

from __future__ import annotations

import base64
import json
import os
import queue
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import httpx
import numpy as np
import openai
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from rag.cli.main import main
from rag.index.store import IndexStore
from rag.ingest.ingestor import Ingestor
from rag.pipeline import GenerationConfig, PipelineConfig, RetrievalConfig, build_retriever

KEY = "test-key-0123456789"
PUMP_Q = "How do I prime the centrifugal pump?"
TURBINE_Q = "How often must the turbine blades be inspected?"
FILES = {
    "manuals/pump.md": "# Pump manual\n\nTo prime the centrifugal pump, open the bleed valve and fill the casing "
                       "with water until no air escapes.\n\nNever run the pump dry: the mechanical seal overheats "
                       "within seconds.\n",
    "manuals/turbine.txt": "Turbine maintenance. The turbine blades must be inspected for cracks every 500 "
                           "operating hours. Replace any blade with erosion deeper than 2 mm.",
    "notes/fruit.txt": "Bananas are yellow and rich in potassium. Apples grow on trees.",
}


def make_collections(root: Path, embedder: Any) -> Path:
    """``docs`` (manuals/ and notes/ subfolders, so sources are reported relative) and ``fruit``."""
    store = IndexStore(root / "indexes")
    docs = root / "docs"
    for rel, text in FILES.items():
        (docs / rel).parent.mkdir(parents=True, exist_ok=True)
        (docs / rel).write_text(text, encoding="utf-8")
    assert Ingestor("docs", store=store, embedder=embedder).ingest([docs]).ok
    assert Ingestor("fruit", store=store, embedder=embedder).ingest([docs / "notes"]).ok
    return root / "indexes"


class Server:
    """``python -m rag serve ... --port 0`` as a subprocess; the URL comes from its first line."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, timeout: float = 120) -> None:
        full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {})}
        self.proc = subprocess.Popen([sys.executable, "-m", "rag", "serve", "--port", "0", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env,
                                     cwd=Path(__file__).resolve().parents[2])
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in self.proc.stdout], daemon=True).start()  # type: ignore[union-attr]
        self.stderr: list[str] = []
        threading.Thread(target=lambda: [self.stderr.append(line) for line in self.proc.stderr], daemon=True).start()  # type: ignore[union-attr]
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                raise RuntimeError(f"server did not start in {timeout}s: {''.join(self.stderr)[-2000:]}") from None
            if "rag API on " in line:
                self.url = line.split("rag API on ", 1)[1].split()[0]  # http://127.0.0.1:PORT/v1
                self.base = self.url.removesuffix("/v1")
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {''.join(self.stderr)[-2000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Path:
    return make_collections(tmp_path_factory.mktemp("api"), embedder)


@pytest.fixture(scope="module")
def server(index_dir: Path) -> Iterator[Server]:
    """The real server with an API key (from RAG_API_KEY), SmolLM2, short answers."""
    srv = Server(["--index", "docs", "--index-dir", str(index_dir), "--model", "smollm2-135m", "--max-tokens", "24",
                  "--max-tokens-limit", "256", "--max-body-mb", "0.25"], env={"RAG_API_KEY": KEY})
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url, api_key=KEY, max_retries=0, timeout=120)


@pytest.fixture()
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {KEY}"}, timeout=120) as c:
        yield c


def ask(client: openai.OpenAI, question: str, **kw: Any) -> Any:
    return client.chat.completions.create(model="rag:docs", messages=[{"role": "user", "content": question}],
                                          max_tokens=kw.pop("max_tokens", 16), temperature=0, **kw)


# -- the real server with the openai client ------------------------------------------------------------

@pytest.mark.model  # the real `rag serve` subprocess (MiniLM, SmolLM2)
def test_health_needs_no_key_and_models_list_collections(server: Server, client: openai.OpenAI) -> None:
    health = httpx.get(f"{server.base}/health", timeout=10).json()
    assert health["status"] == "ok" and health["default_collection"] == "docs"
    assert health["chat_model"] == "smollm2-135m"
    ids = {m.id: m for m in client.models.list()}
    assert {"rag:docs", "rag:fruit", "smollm2-135m", "all-MiniLM-L6-v2"} <= set(ids)
    assert ids["rag:fruit"].rag == {"kind": "collection", "collection": "fruit"}  # type: ignore[attr-defined]


@pytest.mark.model  # the real `rag serve` subprocess (MiniLM, SmolLM2)
def test_grounded_answer_with_sources(client: openai.OpenAI, index_dir: Path) -> None:
    completion = ask(client, PUMP_Q)
    text = completion.choices[0].message.content
    assert text and text.strip()
    assert completion.choices[0].finish_reason in ("stop", "length")
    rag = completion.rag  # type: ignore[attr-defined]
    assert rag["collection"] == "docs" and rag["mode"] == "generative" and not rag["declined"]
    assert rag["text"] == text
    top = rag["sources"][0]
    assert top["source"] == "manuals/pump.md"  # relative to the collection's common folder
    assert top["number"] == 1 and top["page"] is None and 0 <= top["start"] < top["end"]
    chunks = {c.id: c for c in IndexStore(index_dir).load("docs").chunks}
    chunk = chunks[top["chunk_id"]]
    assert (chunk.start, chunk.end, chunk.text) == (top["start"], top["end"], top["text"])
    assert rag["support"] and all(isinstance(s["supported"], bool) for s in rag["support"])
    assert all(s["citation"] is None or 1 <= s["citation"] <= len(rag["sources"]) for s in rag["support"])
    assert {c["number"] for c in rag["citations"]} <= {s["number"] for s in rag["sources"]}
    assert markers(text) == {c["number"] for c in rag["citations"]}, "the text names every source it rests on"
    assert completion.usage.prompt_tokens > 0 and 0 < completion.usage.completion_tokens <= 16


@pytest.mark.model  # the real `rag serve` subprocess (MiniLM, SmolLM2)
def test_streaming(client: openai.OpenAI) -> None:
    pieces, finish, usage = [], None, None
    for chunk in ask(client, TURBINE_Q, stream=True, stream_options={"include_usage": True}):
        if chunk.usage is not None:
            usage = chunk.usage
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk
    assert len(pieces) > 1 and "".join(pieces).strip()
    assert finish is not None and finish.rag["sources"][0]["source"] == "manuals/turbine.txt"  # type: ignore[attr-defined]
    rag = finish.rag  # type: ignore[attr-defined]
    # the markers the support check added after the text streamed come in one more delta (not a model token)
    added = 0 if "".join(pieces).strip() == rag["text"].strip() else 1
    assert usage is not None and usage.completion_tokens == len(pieces) - added
    assert markers("".join(pieces)) >= {c["number"] for c in rag["citations"]}


@pytest.mark.model  # the real `rag serve` subprocess (MiniLM, SmolLM2)
def test_follow_up_uses_the_earlier_turns(client: openai.OpenAI) -> None:
    follow = "What if it runs dry?"
    completion = client.chat.completions.create(model="rag:docs", max_tokens=16, temperature=0, messages=[
        {"role": "system", "content": "Ignored: the grounded prompt is the server's."},
        {"role": "user", "content": PUMP_Q},
        {"role": "assistant", "content": "Open the bleed valve and fill the casing with water [1]."},
        {"role": "user", "content": follow}])
    rag = completion.rag  # type: ignore[attr-defined]
    assert rag["standalone_query"] != follow  # condensed with the history
    assert rag["diagnostics"]["rewrite_method"] != "none"
    assert rag["sources"] and rag["sources"][0]["source"] == "manuals/pump.md"


@pytest.mark.model  # the real `rag serve` subprocess (MiniLM, SmolLM2)
def test_collection_by_model_id_or_extra_body(client: openai.OpenAI) -> None:
    by_model = client.chat.completions.create(model="rag:fruit", max_tokens=8, temperature=0,
                                              messages=[{"role": "user", "content": "What colour are bananas?"}])
    assert by_model.rag["collection"] == "fruit"  # type: ignore[attr-defined]
    assert by_model.rag["sources"][0]["source"] == "fruit.txt"  # type: ignore[attr-defined]
    by_extra = client.chat.completions.create(model="smollm2-135m", max_tokens=8, temperature=0,
                                              messages=[{"role": "user", "content": "What colour are bananas?"}],
                                              extra_body={"collection": "fruit"})
    assert by_extra.rag["collection"] == "fruit"  # type: ignore[attr-defined]


@pytest.mark.model  # the real `rag serve` subprocess (MiniLM, SmolLM2)
def test_unknown_collection_or_model_is_a_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="rag:nope", messages=[{"role": "user", "content": "hi"}])
    assert err.value.code == "model_not_found" and "rag:docs" in err.value.message
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])


@pytest.mark.model  # the real `rag serve` subprocess (MiniLM, SmolLM2)
def test_missing_or_wrong_key_is_a_401(server: Server) -> None:
    wrong = openai.OpenAI(base_url=server.url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as err:
        wrong.models.list()
    assert err.value.code == "invalid_api_key"
    for headers in ({}, {"Authorization": "Basic " + base64.b64encode(KEY.encode()).decode()}):
        r = httpx.post(f"{server.url}/chat/completions", headers=headers, timeout=10,
                       json={"model": "rag:docs", "messages": [{"role": "user", "content": PUMP_Q}]})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert r.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(f"{server.base}/openapi.json", timeout=10).status_code == 401


@pytest.mark.model  # the real `rag serve` subprocess (MiniLM, SmolLM2)
def test_concurrent_requests_are_all_answered(client: openai.OpenAI) -> None:
    def one(i: int) -> tuple[str, str]:
        question, expect = (PUMP_Q, "manuals/pump.md") if i % 2 == 0 else (TURBINE_Q, "manuals/turbine.txt")
        if i % 4 == 3:  # half of the turbine questions stream
            last = [c for c in ask(client, question, max_tokens=8, stream=True)
                    if c.choices and c.choices[0].finish_reason][-1]
            return last.rag["sources"][0]["source"], expect  # type: ignore[attr-defined]
        return ask(client, question, max_tokens=8).rag["sources"][0]["source"], expect  # type: ignore[attr-defined]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(8)))
    assert [got for got, _ in results] == [expect for _, expect in results]


@pytest.mark.model  # the real `rag serve` subprocess (MiniLM, SmolLM2)
def test_client_disconnect_stops_generation(server: Server, http: httpx.Client) -> None:
    before = http.get("/health").json()["generations"]
    body = {"model": "rag:docs", "stream": True, "max_tokens": 256, "temperature": 0,
            "messages": [{"role": "user", "content": "Explain step by step how to prime the pump and why it "
                                                     "must never run dry. Give every detail."}]}
    with http.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: ") and '"content":"' in line and '"content":""' not in line:
                break  # the first real piece: hang up
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = http.get("/health").json()["generations"]
        if now["active"] == 0 and now["cancelled"] > before["cancelled"]:
            break
        time.sleep(0.1)
    assert now["active"] == 0 and now["cancelled"] == before["cancelled"] + 1, (before, now)
    assert ask(openai.OpenAI(base_url=server.url, api_key=KEY), PUMP_Q, max_tokens=4).choices[0].message.content


@pytest.mark.model  # the real `rag serve` subprocess (MiniLM, SmolLM2)
def test_bad_requests_get_openai_error_objects(server: Server, http: httpx.Client, client: openai.OpenAI) -> None:
    url = "/v1/chat/completions"
    cases = [
        (http.post(url, content=b"{not json", headers={"Content-Type": "application/json"}), 400, "invalid_json"),
        (http.post(url, content=b"{}", headers={"Content-Type": "text/plain"}), 415, "unsupported_media_type"),
        (http.post(url, json=[1, 2]), 400, None),
        (http.post(url, json={"model": "rag:docs", "messages": []}), 400, None),
        (http.post(url, json={"model": "rag:docs", "messages": [{"role": "assistant", "content": "x"}]}), 400, None),
        (http.post(url, json={"model": "rag:docs", "messages": [{"role": "user", "content": "x" * 300_000}]}),
         413, "request_too_large"),
        (http.get("/v1/nothing"), 404, "not_found"),
        (http.delete("/v1/models"), 405, "method_not_allowed"),
    ]
    for response, status, code in cases:
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["message"]
        assert "Traceback" not in response.text and (code is None or error["code"] == code)
    with pytest.raises(openai.BadRequestError) as err:
        ask(client, PUMP_Q, max_tokens=257)
    assert err.value.param == "max_tokens" and "256" in err.value.message


@pytest.mark.model  # the real `rag serve` subprocess (MiniLM, SmolLM2)
def test_embeddings_are_the_packaged_embedders(client: openai.OpenAI, http: httpx.Client, embedder: Any) -> None:
    texts = ["prime the pump", "turbine blades"]
    expected = embedder.encode(texts)
    got = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts)  # the client asks for base64
    assert [d.index for d in got.data] == [0, 1] and got.usage.prompt_tokens > 0
    np.testing.assert_allclose(np.array([d.embedding for d in got.data]), expected, atol=1e-5)
    floats = http.post("/v1/embeddings", json={"model": "sentence-transformers/all-MiniLM-L6-v2",
                                               "input": "prime the pump", "encoding_format": "float"}).json()
    np.testing.assert_allclose(floats["data"][0]["embedding"], expected[0], atol=1e-5)
    assert http.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": "x"}).status_code == 404
    r = http.post("/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": "x", "dimensions": 12})
    assert r.status_code == 400 and r.json()["error"]["param"] == "dimensions"


@pytest.mark.model  # the real `rag serve` subprocess (MiniLM, SmolLM2)
def test_search_matches_rag_search(http: httpx.Client, index_dir: Path, embedder: Any) -> None:
    body = {"query": "prime the centrifugal pump", "k": 3, "mode": "hybrid", "fusion": "weighted", "alpha": 0.7}
    result = http.post("/v1/search", json=body).json()
    assert result["collection"] == "docs" and [h["rank"] for h in result["data"]] == [1, 2, 3]
    assert result["data"][0]["source"] == "manuals/pump.md" and {"bm25", "dense"} <= set(result["data"][0]["scores"])
    config = RetrievalConfig(mode="hybrid", fusion="weighted", alpha=0.7, k=3)
    local = build_retriever(config, IndexStore(index_dir).load("docs"), embedder).retrieve(body["query"], k=3)
    assert [h["chunk_id"] for h in result["data"]] == [h.chunk.id for h in local]
    bm25 = http.post("/v1/search", json={"query": "bananas", "collection": "rag:fruit", "mode": "bm25"}).json()
    assert bm25["collection"] == "fruit" and set(bm25["data"][0]["scores"]) == {"bm25"}
    for bad, status in (({"query": "x", "mode": "sparse"}, 400), ({"query": "x", "k": 0}, 400),
                        ({"query": "x", "reranker": "/some/model"}, 400), ({"query": "x", "typo": 1}, 400),
                        ({"query": "x", "collection": "nope"}, 404)):
        r = http.post("/v1/search", json=bad)
        assert r.status_code == status and r.json()["error"]["message"], (bad, r.text)


@pytest.mark.model  # the real `rag serve` subprocess (MiniLM, SmolLM2)
def test_openapi_schema_is_served_and_states_the_contract(http: httpx.Client) -> None:
    schema = http.get("/openapi.json").json()
    assert set(schema["paths"]) == {"/health", "/v1/models", "/v1/chat/completions", "/v1/embeddings",
                                    "/v1/search"}
    components = schema["components"]
    assert components["securitySchemes"] == {"bearer": {"type": "http", "scheme": "bearer"}}
    chat = schema["paths"]["/v1/chat/completions"]["post"]
    assert chat["security"] == [{"bearer": []}] and "security" not in schema["paths"]["/health"]["get"]
    assert set(chat["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
    assert {"400", "401", "404", "413", "415", "429"} <= set(chat["responses"])
    assert components["schemas"]["ChatCompletion"]["properties"]["rag"] == {"$ref": "#/components/schemas/RagExtension"}
    request = components["schemas"]["ChatRequest"]["properties"]
    assert any(t.get("maximum") == 256 for t in request["max_tokens"]["anyOf"])  # the server's limit
    text = json.dumps(schema)
    assert "422" not in json.dumps({p: {m: op["responses"] for m, op in ops.items()}
                                    for p, ops in schema["paths"].items()})
    assert "HTTPValidationError" not in text


def test_refuses_a_public_host_without_a_key(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.delenv("RAG_API_KEY", raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--index", "docs"]) == 2
    err = capsys.readouterr().err
    assert "refusing to listen on '0.0.0.0'" in err and "RAG_API_KEY" in err


def test_a_missing_collection_fails_at_start(index_dir: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["serve", "--index", "nope", "--index-dir", str(index_dir), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: collection 'nope' does not exist") and "rag:docs" in err


@pytest.mark.model  # the real `rag serve` subprocess (MiniLM, SmolLM2)
def test_readme_client_example_runs(server: Server) -> None:
    """The README's ``openai`` example, pointed at this server (collection ``docs``, the test key)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## HTTP API", 1)[1].split("\n## ", 1)[0]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    code = (code.replace("http://127.0.0.1:8000/v1", server.url).replace("rag:samples", "rag:docs")
            .replace('api_key="local"', f'api_key="{KEY}"')
            .replace("Does my data leave the computer?", PUMP_Q))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "[1] manuals/" in out.stdout or "[1] notes/" in out.stdout, out.stdout


@pytest.mark.model  # the real `rag serve` subprocess (MiniLM; extractive, no LLM)
def test_a_damaged_collection_is_named_but_the_servers_paths_are_not(tmp_path: Path, embedder: Any) -> None:
    index_dir = make_collections(tmp_path, embedder)
    store = IndexStore(index_dir)
    assert Ingestor("notes", store=store, embedder=embedder).ingest([tmp_path / "docs" / "notes"]).ok
    (store.version_path("fruit") / "dense.faiss").unlink()  # a part lost
    manifest = index_dir / "notes" / "manifest.json"
    manifest.write_bytes(manifest.read_bytes()[:40])  # a manifest cut short
    private = {str(tmp_path), os.path.realpath(tmp_path)}
    srv = Server(["--index", "docs", "--index-dir", str(index_dir), "--extractive"])
    try:
        with httpx.Client(base_url=srv.base, timeout=60) as c:
            for name in ("fruit", "notes"):
                question = {"messages": [{"role": "user", "content": "What colour are bananas?"}]}
                for path, body in (("/v1/search", {"query": "bananas", "collection": name}),
                                   ("/v1/chat/completions", {"model": f"rag:{name}", **question}),
                                   ("/v1/chat/completions", {"model": f"rag:{name}", "stream": True, **question})):
                    r = c.post(path, json=body)
                    assert r.status_code == 503, r.text
                    message = r.json()["error"]["message"]
                    assert f"index {name!r}" in message and "--rebuild" in message, message
                    assert not any(p in r.text for p in private), r.text
            assert c.post("/v1/search", json={"query": "bananas", "collection": "docs"}).status_code == 200
    finally:
        srv.stop()
    assert any(str(index_dir) in line for line in srv.stderr)  # the server's own log keeps the full path


# -- in process: the guards, with extractive answers (no LLM) ---------------------------------------------

@pytest.fixture(scope="module")
def local_service(index_dir: Path, embedder: Any) -> Iterator[Any]:
    from rag.serve.service import RagService

    config = PipelineConfig(index="docs", generation=GenerationConfig(mode="extractive"))
    service = RagService(IndexStore(index_dir), config, embedder=embedder).load()
    yield service
    service.close()


def local_client(service: Any, **settings: Any) -> Any:
    from fastapi.testclient import TestClient

    from rag.serve.api import ApiSettings, create_app

    return TestClient(create_app(service, ApiSettings(**settings)), base_url="http://127.0.0.1:8000")


def test_without_a_key_only_loopback_host_names_are_served(local_service: Any) -> None:
    with local_client(local_service) as c:
        body = {"model": "rag:docs", "messages": [{"role": "user", "content": PUMP_Q}]}
        answer = c.post("/v1/chat/completions", json=body).json()
        assert answer["rag"]["mode"] == "extractive" and answer["rag"]["citations"]
        assert c.get("/v1/models", headers={"Host": "localhost:8000"}).status_code == 200
        assert c.get("/v1/models", headers={"Host": "[::1]:8000"}).status_code == 200
        rebound = c.get("/v1/models", headers={"Host": "attacker.example:8000"})  # DNS rebinding
        assert rebound.status_code == 400 and rebound.json()["error"]["code"] == "invalid_host"


def test_no_cors_unless_origins_are_given(local_service: Any) -> None:
    origin = {"Origin": "http://localhost:3000"}
    with local_client(local_service) as c:
        assert "access-control-allow-origin" not in c.get("/v1/models", headers=origin).headers
        preflight = c.options("/v1/chat/completions", headers={**origin, "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in preflight.headers
    with local_client(local_service, cors_origins=("http://localhost:3000",), api_key=KEY) as c:
        preflight = c.options("/v1/chat/completions", headers={**origin, "Access-Control-Request-Method": "POST",
                                                              "Access-Control-Request-Headers": "authorization"})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "http://localhost:3000"
        assert c.get("/v1/models", headers=origin).status_code == 401  # CORS is no way around the key


def test_too_many_answers_at_once_get_a_429() -> None:
    from rag.serve.errors import ApiError
    from rag.serve.routes.context import Generations

    gens = Generations(limit=2)
    gens.begin()
    gens.begin()
    with pytest.raises(ApiError) as err:
        gens.begin()
    assert err.value.status == 429 and err.value.code == "server_busy"


def test_request_defaults_are_the_pipeline_defaults() -> None:
    """Every request field that mirrors a pipeline setting defaults to the pipeline dataclass's value
    (chat: the server's GenerationConfig; search: RetrievalConfig, like ``rag search``)."""
    import dataclasses

    from rag.serve.schemas import Limits, request_models

    def mirrored(model: Any, config: Any) -> dict[str, tuple[Any, Any]]:
        ours = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
        return {name: (field.default, ours[name]) for name, field in model.model_fields.items()
                if name in ours and not field.is_required()}  # a chat request's required `model` is no setting

    def plain(value: Any) -> Any:
        return value.value if hasattr(value, "value") else value  # enums are strings on the wire

    req = request_models(Limits())
    chat = mirrored(req.ChatRequest, GenerationConfig())
    search = mirrored(req.SearchRequest, RetrievalConfig())
    assert {"max_tokens", "temperature", "seed"} <= set(chat)
    assert {"k", "mode", "fusion", "rrf_k", "alpha", "candidates", "reranker", "rerank_candidates"} <= set(search)
    for name, (api, pipeline) in {**chat, **search}.items():
        assert api == plain(pipeline), f"the API's default {name}={api!r} is not the pipeline's {pipeline!r}"
    served = request_models(Limits(), generation=GenerationConfig(max_tokens=24, temperature=0.5, seed=7))
    assert [served.ChatRequest.model_fields[n].default for n in ("max_tokens", "temperature", "seed")] == [24, 0.5, 7]


def test_responses_off_the_schema_fail_in_the_server(local_service: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A body that does not match the schema is a logged 500 (or an error event in a stream), never sent."""
    from rag.serve import responses

    def broken(*args: Any, **kwargs: Any) -> Any:
        return responses.schemas.RagExtension.model_validate({"collection": "docs"})  # fields missing

    monkeypatch.setattr("rag.serve.responses.rag_extension_model", broken)
    monkeypatch.setattr("rag.serve.routes.chat_stream.rag_extension_model", broken)
    body = {"model": "rag:docs", "messages": [{"role": "user", "content": PUMP_Q}]}
    from fastapi.testclient import TestClient

    from rag.serve.api import ApiSettings, create_app

    with TestClient(create_app(local_service, ApiSettings()), base_url="http://127.0.0.1:8000",
                    raise_server_exceptions=False) as c:
        r = c.post("/v1/chat/completions", json=body)
        assert r.status_code == 500 and r.json()["error"]["type"] == "server_error" and "rag" not in r.json()
        events = [line for line in c.post("/v1/chat/completions", json={**body, "stream": True}).text.split("\n\n")
                  if line]
        assert events[-1] == "data: [DONE]" and json.loads(events[-2][6:])["error"]["type"] == "server_error"
        assert not any('"finish_reason":"stop"' in e for e in events)
        assert c.get("/health").json()["generations"]["failed"] == 2


def test_a_reingested_collection_is_reloaded(tmp_path: Path, embedder: Any) -> None:
    from rag.serve.service import RagService

    store = IndexStore(tmp_path / "indexes")
    docs = tmp_path / "d"
    docs.mkdir()
    (docs / "a.txt").write_text("Bananas are yellow.", encoding="utf-8")
    Ingestor("c", store=store, embedder=embedder).ingest([docs])
    service = RagService(store, PipelineConfig(index="c", generation=GenerationConfig(mode="extractive")),
                         embedder=embedder).load()
    first = service.pipeline("c")
    assert service.pipeline("c") is first  # cached
    (docs / "b.txt").write_text("Turbine blades are inspected every 500 hours.", encoding="utf-8")
    time.sleep(0.01)
    Ingestor("c", store=store, embedder=embedder).ingest([docs])
    assert service.pipeline("c") is not first and len(service.collection("c").index.documents) == 2


def markers(text: str) -> set[int]:
    import re

    from rag.text import CITE_RE

    return {int(n) for m in CITE_RE.finditer(text) for n in re.findall(r"\d+", m.group(1))}


def chat_texts(c: Any, question: str) -> tuple[dict[str, Any], str]:
    """The non-streamed completion, and the content of the same request streamed, joined."""
    body = {"model": "rag:docs", "messages": [{"role": "user", "content": question}]}
    completion = c.post("/v1/chat/completions", json=body).json()
    events = [json.loads(line[6:]) for line in c.post("/v1/chat/completions", json={**body, "stream": True})
              .text.split("\n\n") if line.startswith("data: {")]
    streamed = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
    return completion, streamed


def test_answer_text_names_its_sources_streamed_or_not(local_service: Any) -> None:
    """A client that ignores the ``rag`` field (LangChain's ChatOpenAI, Open WebUI) still gets the
    ``[n]`` markers, numbered as the ``rag`` field's citations."""
    with local_client(local_service) as c:
        completion, streamed = chat_texts(c, PUMP_Q)
    text, rag = completion["choices"][0]["message"]["content"], completion["rag"]
    assert "[1]" in text and markers(text) == {s["number"] for s in rag["citations"]}
    assert streamed == text == rag["text"]


def test_generated_answer_without_markers_gets_them_streamed_or_not(index_dir: Path, embedder: Any) -> None:
    """The model wrote no marker: the non-streamed content has ``[n]`` after the supported sentence, and the
    streamed content, sent before the support check, is followed by a delta with the marker."""
    from rag.generation.llm import ScriptedLLM
    from rag.serve.service import RagService

    raw = "To prime the centrifugal pump, open the bleed valve and fill the casing with water until no air escapes."
    service = RagService(IndexStore(index_dir), PipelineConfig(index="docs"), embedder=embedder,
                         llm=ScriptedLLM([raw])).load()
    try:
        with local_client(service) as c:
            completion, streamed = chat_texts(c, PUMP_Q)
    finally:
        service.close()
    text, rag = completion["choices"][0]["message"]["content"], completion["rag"]
    (cited,) = rag["citations"]
    n = cited["number"]
    assert cited["source"] == "manuals/pump.md" and rag["sources"][n - 1]["chunk_id"] == cited["chunk_id"]
    assert text == rag["text"] == f"{raw[:-1]} [{n}]." and rag["diagnostics"]["inferred_citations"] == [n]
    assert streamed == f"{raw} [{n}]"


# -- schemathesis against the running server ---------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_schemathesis(server: Server, mode: Any) -> None:
    """Generated requests for every operation, checked against the served schema (no 5xx, documented
    statuses, content types and bodies); loopback only, a few examples each."""
    assert server.base.startswith("http://127.0.0.1:")
    auth = {"Authorization": f"Bearer {KEY}"}
    schema = schemathesis.openapi.from_url(f"{server.base}/openapi.json", headers=auth, timeout=30)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 5

    def run(strategy: Any, examples: int) -> None:
        @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def call(case: Any) -> None:
            # not ignored_auth: it sends a wrong key per case, and ten in a minute lock this address out (429);
            # wrong keys are tested in test_missing_or_wrong_key_is_a_401 and the lockout test
            case.call_and_validate(headers=auth, timeout=60, excluded_checks=[schemathesis.checks.ignored_auth])

        call()

    for operation in operations:
        if mode is GenerationMode.NEGATIVE and operation.method.upper() != "POST":
            continue  # nothing to make invalid in a GET without parameters
        run(operation.as_strategy(generation_mode=mode), 10)
        if mode is GenerationMode.POSITIVE:  # the schema's own examples: real answers, searches, embeddings
            for strategy in schema.get_strategies_from_examples(operation):
                run(strategy, 2)


# -- the API key's rules, guessing, slow headers ------------------------------------------------------------

@pytest.mark.parametrize(("key", "says"), [("a", "RAG_API_KEY has 1 character"),
                                           (KEY + " ", "RAG_API_KEY ends or starts with whitespace"),
                                           ("\t" + KEY, "RAG_API_KEY ends or starts with whitespace")])
def test_a_weak_key_is_refused_at_start(key: str, says: str, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("RAG_API_KEY", key)
    assert main(["serve", "--host", "0.0.0.0", "--index", "nope", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {says}") and err.count("\n") == 1, err
    assert key.strip() not in err or len(key.strip()) < 2  # the key itself is never printed


def test_generate_key_prints_a_strong_key_and_the_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture) -> None:
    from rag.net import secret_problem

    assert main(["serve", "--generate-key"]) == 0
    keys = {capsys.readouterr().out.strip()}
    assert main(["serve", "--generate-key"]) == 0
    keys.add(capsys.readouterr().out.strip())
    assert len(keys) == 2 and all(len(k) >= 40 and secret_problem(k, "k") is None for k in keys)
    monkeypatch.delenv("RAG_API_KEY", raising=False)
    short = tmp_path / "short.key"
    short.write_text("abc\n", encoding="utf-8")
    assert main(["serve", "--api-key-file", str(short), "--index", "nope", "--port", "0"]) == 2
    assert capsys.readouterr().err.startswith("error: --api-key-file has 3 characters")
    empty = tmp_path / "empty.key"
    empty.write_text("", encoding="utf-8")
    assert main(["serve", "--api-key-file", str(empty), "--index", "nope", "--port", "0"]) == 2
    assert "is empty" in capsys.readouterr().err


@pytest.mark.model  # the real `rag serve` subprocess (MiniLM; extractive, no LLM)
def test_guessing_the_key_is_slowed_then_locked_out_and_slow_headers_are_cut(index_dir: Path, tmp_path: Path) -> None:
    import socket

    key_file = tmp_path / "key.txt"
    key_file.write_text(KEY + "\n", encoding="utf-8")  # the newline a file keeps is not part of the key
    srv = Server(["--index", "docs", "--index-dir", str(index_dir), "--extractive", "--api-key-file", str(key_file),
                  "--header-timeout", "2", "--max-connections", "6"])
    try:
        right = {"Authorization": f"Bearer {KEY}"}
        assert httpx.get(f"{srv.url}/models", headers=right, timeout=30).status_code == 200
        # slow headers: the request line, then one header byte a second; the server hangs up after 2 s
        slow = [socket.create_connection(("127.0.0.1", int(srv.base.rsplit(":", 1)[1])), timeout=10) for _ in range(5)]
        for s in slow:
            s.sendall(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        full = httpx.get(f"{srv.url}/models", headers=right, timeout=30)  # 5 held + this one: at the cap
        assert full.status_code == 503, full.text
        started, closed = time.monotonic(), []
        for s in slow:
            s.settimeout(0.5)
            while time.monotonic() - started < 8:
                try:
                    s.sendall(b"x")
                    if s.recv(1024) == b"":
                        break
                except TimeoutError:
                    continue
                except OSError:  # reset by the server
                    break
            closed.append(time.monotonic() - started)
        for s in slow:
            s.close()
        assert len(closed) == 5 and max(closed) < 8, closed
        assert httpx.get(f"{srv.url}/models", headers=right, timeout=30).status_code == 200  # slots are free again
        # wrong keys: each answered later than the one before, then a lockout that the right key does not lift
        waits = []
        for i in range(10):
            t0 = time.monotonic()
            r = httpx.get(f"{srv.url}/models", headers={"Authorization": f"Bearer wrong-guess-{i:010d}"}, timeout=30)
            waits.append(time.monotonic() - t0)
            assert r.status_code == 401, r.text
        assert waits[-1] > 0.5 > waits[0] and waits[4] > waits[1], waits
        locked = httpx.get(f"{srv.url}/models", headers=right, timeout=30)
        assert locked.status_code == 429 and locked.json()["error"]["code"] == "too_many_failures"
        assert httpx.get(f"{srv.base}/health", timeout=30).status_code == 200
    finally:
        srv.stop()
    assert KEY not in "".join(srv.stderr)
