"""One answer path: the app, ``rag ask``, ``rag serve`` and ``rag eval answers`` give the same answer.

The same question over the same index with the same (real, default) model, through each door a
user has: the app's settings as the pipeline config, the CLI (``rag ask --json``), the HTTP API with
the real ``openai`` client, and the answer benchmark's rows.  The text, the cited sentences and the
answer decision's score must agree: before, the app wrapped the model in a class that hid its
log-probabilities, so it never ran the answer check that ``rag eval answers`` measured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.serve.test_api import Server

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
QUESTION = "How large can a file be?"


def run(args: list[str], env: dict[str, str]) -> str:
    out = subprocess.run([sys.executable, "-m", "rag", *args], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def answer_key(text: str, citations: list[tuple[str, int, int]], score: float | None) -> tuple[Any, ...]:
    return text, sorted(citations), None if score is None else round(score, 2)


@pytest.fixture(scope="module")
def qa_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The samples as a one-question QA folder (what ``rag eval answers --dataset qa`` reads)."""
    root = tmp_path_factory.mktemp("one-path")
    docs = root / "qa" / "documents"
    docs.mkdir(parents=True)
    for f in sorted((REPO / "samples").glob("*.md")):
        (docs / f"{f.stem}.txt").write_text(f.read_text(encoding="utf-8"), encoding="utf-8")
    faq = (docs / "faq.txt").read_text(encoding="utf-8")
    row = {"id": "1", "question": QUESTION, "answers": ["100 MB"], "doc_id": "faq", "answer_start": faq.index("100 MB"),
           "split": "test"}
    (root / "qa" / "questions.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    return root


def test_the_app_cli_api_and_eval_give_the_same_answer(qa_folder: Path, embedder: Any) -> None:
    import openai

    from rag.generation.llm import LlamaCppLLM
    from rag.index.store import IndexStore
    from rag.pipeline import build
    from rag.ui.settings import DEFAULT_SETTINGS, app_config

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAG_CACHE_DIR": str(qa_folder / "cache")}
    # the answer benchmark (it builds and caches the index the other doors then read)
    out = qa_folder / "eval"
    run(["eval", "answers", "--dataset", "qa", "--path", str(qa_folder / "qa"), "--split", "test", "--limit", "1",
         "--no-unanswerable", "--out", str(out), "--format", "json", "-q"], env)
    row = json.loads((out / "rows.jsonl").read_text(encoding="utf-8").splitlines()[0])
    store = IndexStore(qa_folder / "cache" / "eval-indexes")
    (name,) = store.names()
    index = store.load(name)

    # the app: its settings as the pipeline config, the same builder, a fresh model
    with LlamaCppLLM(DEFAULT_SETTINGS["model"], seed=0) as llm:
        pipeline = build(app_config(name, DEFAULT_SETTINGS), store, index=index, embedder=embedder, llm=llm)
        app = pipeline.answerer.answer(QUESTION)
    assert not app.declined and app.diagnostics.decision == "answer", app.text
    assert app.diagnostics.decision_score is not None, "the app runs the answer decision"
    app_key = answer_key(app.text, [(c.chunk.id, *c.span) for c in app.citations], app.diagnostics.decision_score)

    # the CLI
    cli = json.loads(run(["ask", QUESTION, "--index-dir", str(store.root), "--index", name, "--json"], env))
    cli_key = answer_key(cli["text"], [(c["chunk_id"], c["quote_start"], c["quote_end"]) for c in cli["citations"]],
                         cli["diagnostics"]["decision_score"])

    # the API, with the real openai client
    server = Server(["--index", name, "--index-dir", str(store.root)], env={"RAG_CACHE_DIR": env["RAG_CACHE_DIR"]})
    try:
        client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=600)
        completion = client.chat.completions.create(model=f"rag:{name}", temperature=0,
                                                    messages=[{"role": "user", "content": QUESTION}])
    finally:
        server.stop()
    rag = completion.rag  # type: ignore[attr-defined]
    api_key = answer_key(rag["text"], [(c["chunk_id"], c["quote_start"], c["quote_end"]) for c in rag["citations"]],
                         rag["diagnostics"]["decision_score"])

    # the benchmark's row names its citations by article and chunk offsets, and keeps the decision's score
    from rag_eval.answers import dataset_doc_id

    assert app_key == cli_key == api_key, (app_key, cli_key, api_key)
    assert row["answer"] == app.text and round(row["decision_score"], 2) == app_key[2]
    assert sorted(row["citations"]) == sorted(f"{dataset_doc_id(c.chunk.source)}[{c.chunk.start}:{c.chunk.end}]"
                                              for c in app.citations)
