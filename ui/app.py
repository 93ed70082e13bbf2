"""Streamlit chat app: ask questions about your own documents, with checked citations.

Run with ``make run`` (or ``streamlit run ui/app.py``).  Environment:
``RAG_INDEX_DIR`` (default ``./indexes``, as for the CLI), ``RAG_UPLOAD_DIR`` (default ``uploads/``),
``RAG_UPLOAD_MB`` (default 50).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Iterator

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")

import streamlit as st  # noqa: E402

from rag.answer.chat import ChatSession  # noqa: E402
from rag.embedding import Embedder  # noqa: E402
from rag.retrieval.fusion import DEFAULT_RRF_K  # noqa: E402
from rag.index.store import Index, IndexStore, default_index_root, validate_name  # noqa: E402
from rag.ingest.ingestor import Ingestor  # noqa: E402
from rag.generation.llm import LlamaCppLLM  # noqa: E402
from rag.ingest.loaders import SUPPORTED_EXTENSIONS  # noqa: E402
from rag.generation.memory import MEMORY_TYPES, make_memory  # noqa: E402
from rag.generation.models import DEFAULT_MODEL, names as model_names  # noqa: E402
from rag.pipeline import (GenerationConfig, MemoryConfig, PipelineConfig, PluginConfig, RetrievalConfig,  # noqa: E402
                          build)
from rag.plugins import available_rewriters, available_routers  # noqa: E402
from rag.retrieval.rerank import Reranker  # noqa: E402
from rag.retrieval.retriever import FUSIONS, MODES  # noqa: E402
from rag.types import Answer  # noqa: E402
from rag.serve.webapp import DEFAULT_UPLOAD_MB, escape_markdown, save_uploads  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
SAMPLE_INDEX = "samples"
INDEX_DIR = default_index_root()  # $RAG_INDEX_DIR or ./indexes, as for the CLI
UPLOAD_DIR = Path(os.environ.get("RAG_UPLOAD_DIR", ROOT / "uploads"))
UPLOAD_MB = float(os.environ.get("RAG_UPLOAD_MB", DEFAULT_UPLOAD_MB))

st.set_page_config(page_title="Ask your documents", page_icon=":material/menu_book:", layout="wide")


# -- shared, cached resources (one copy per server process) --------------------------------
@st.cache_resource(show_spinner="Loading the embedding model…")
def get_embedder() -> Embedder:
    return Embedder().load()


@st.cache_resource(show_spinner="Loading the language model…", max_entries=2)
def get_llm(model: str, n_gpu_layers: int | str) -> LlamaCppLLM:
    # LlamaCppLLM serialises calls with its own lock, so one instance serves all sessions
    return LlamaCppLLM(model, n_gpu_layers=n_gpu_layers).load()


@st.cache_resource(max_entries=8)
def get_index(root: str, name: str, stamp: float) -> Index:
    # `stamp` (manifest mtime) makes a re-ingested index load fresh
    return IndexStore(root).load(name)


@st.cache_resource(max_entries=2)
def get_reranker(path: str) -> Reranker:
    return Reranker(path).load()


def store() -> IndexStore:
    return IndexStore(INDEX_DIR)


def load_index(name: str) -> Index:
    stamp = (store().path(name) / "manifest.json").stat().st_mtime
    return get_index(str(INDEX_DIR), name, stamp)


def ingestor(name: str) -> Ingestor:
    return Ingestor(name, store=store(), embedder=get_embedder(), show_progress=False)


def state() -> Any:
    ss = st.session_state
    ss.setdefault("messages", [])
    ss.setdefault("upload_key", 0)
    ss.setdefault("notices", [])
    return ss


# -- sidebar ---------------------------------------------------------------------------------
def sidebar_collections() -> str | None:
    names = store().names()
    st.sidebar.header("Collection")
    current = st.session_state.get("index")
    if names:
        idx = names.index(current) if current in names else 0
        current = st.sidebar.selectbox("Index", names, index=idx, key="index_select")
        st.session_state["index"] = current
    with st.sidebar.expander("New collection"):
        new = st.text_input("Name", key="new_index_name", placeholder="e.g. manuals")
        if st.button("Create", key="create_index"):
            try:
                validate_name(new)
            except ValueError as exc:
                st.error(str(exc))
            else:
                st.session_state["index"] = new
                st.session_state["pending_index"] = new
                st.rerun()
    pending = st.session_state.get("pending_index")
    if pending and pending not in names:
        st.sidebar.info(f"Collection “{pending}” is created when you add its first file.")
        return pending
    return current


def sidebar_upload(index_name: str) -> None:
    ss = state()
    st.sidebar.subheader("Add documents")
    files = st.sidebar.file_uploader(
        f"Files ({', '.join(e.lstrip('.') for e in SUPPORTED_EXTENSIONS)}; up to {UPLOAD_MB:g} MB each)",
        accept_multiple_files=True, key=f"uploader_{ss['upload_key']}")
    if files and st.sidebar.button(f"Add {len(files)} file(s) to “{index_name}”", key="add_files",
                                   type="primary"):
        progress = st.sidebar.progress(0.0, text="Saving uploads…")
        payload = []
        for i, f in enumerate(files, start=1):
            payload.append((f.name, f.getvalue()))
            progress.progress(i / (len(files) + 1), text=f"Saved {f.name}")
        saved, errors = save_uploads(payload, UPLOAD_DIR / index_name, max_mb=UPLOAD_MB)
        progress.progress(len(files) / (len(files) + 1), text="Indexing…")
        report = ingestor(index_name).ingest(saved, prune=False) if saved else None
        progress.progress(1.0, text="Done")
        notices = []
        if report is not None:
            notices.append(("success", f"Indexed {len(report.added) + len(report.updated)} file(s), "
                                       f"{report.chunks_added} new passages; "
                                       f"{len(report.unchanged)} unchanged."))
            errors += [(Path(p).name, f"{Path(p).name}: {msg}") for p, msg in report.errors]
        for _name, msg in errors:
            notices.append(("error", msg))
        ss["notices"] = notices
        ss["upload_key"] += 1
        st.session_state.pop("pending_index", None)
        st.rerun()
    for kind, msg in ss["notices"]:
        (st.sidebar.success if kind == "success" else st.sidebar.error)(msg)


def sidebar_documents(index: Index) -> None:
    st.sidebar.subheader(f"Documents ({len(index.documents)})")
    for i, rec in enumerate(sorted(index.documents.values(), key=lambda r: r.source)):
        name = Path(rec.source).name
        cols = st.sidebar.columns([6, 2, 2])
        pages = f", {rec.pages} p." if rec.pages else ""
        cols[0].markdown(f"{escape_markdown(name)}  \n:gray[{rec.n_chunks} passages{pages}]")
        if cols[1].button(":material/refresh:", key=f"reindex_{i}", help=f"Re-index {name}",
                          disabled=not Path(rec.source).exists()):
            ing = ingestor(index.name)
            ing.remove(rec.source)
            report = ing.ingest([rec.source], prune=False)
            state()["notices"] = [("success" if report.ok else "error",
                                   f"Re-indexed {name}" if report.ok else report.summary())]
            st.rerun()
        if cols[2].button(":material/delete:", key=f"delete_{i}", help=f"Remove {name} from the index"):
            ingestor(index.name).remove(rec.source)
            state()["notices"] = [("success", f"Removed {name}")]
            st.rerun()


def sidebar_settings() -> dict[str, Any]:
    st.sidebar.header("Settings")
    s: dict[str, Any] = {}
    s["answer_mode"] = st.sidebar.radio("Answer mode", ("generative", "extractive"), horizontal=True,
                                        help="Extractive quotes the best passages and needs no language model.")
    models = model_names()
    s["model"] = st.sidebar.selectbox("Model", models, index=models.index(DEFAULT_MODEL),
                                      disabled=s["answer_mode"] == "extractive")
    custom = st.sidebar.text_input("…or a GGUF file path", key="model_path", placeholder="/models/phi-3.gguf")
    if custom.strip():
        s["model"] = custom.strip()
    s["temperature"] = st.sidebar.slider("Temperature", 0.0, 1.5, 0.0, 0.05)
    s["memory"] = st.sidebar.selectbox("Chat memory", MEMORY_TYPES, index=0)
    with st.sidebar.expander("Retrieval"):
        s["mode"] = st.selectbox("Mode", MODES, index=MODES.index("hybrid"))
        s["k"] = st.slider("Passages (k)", 1, 10, 5)
        s["fusion"] = st.selectbox("Fusion", FUSIONS, index=0, disabled=s["mode"] != "hybrid")
        s["rrf_k"] = int(st.number_input("RRF k", 1, 1000, DEFAULT_RRF_K, disabled=s["fusion"] != "rrf"))
        s["alpha"] = st.slider("Dense weight (weighted fusion)", 0.0, 1.0, 0.5, 0.05,
                               disabled=s["fusion"] != "weighted")
        s["rerank"] = st.checkbox("Rerank with a cross-encoder", value=False)
        s["reranker_path"] = st.text_input("Cross-encoder name or path", key="reranker_path",
                                           disabled=not s["rerank"])
    with st.sidebar.expander("Routing and query rewriting"):
        rewriters = available_rewriters()
        s["rewriter"] = st.selectbox("Query rewriter", rewriters, key="rewriter_select",
                                     index=rewriters.index("condense") if "condense" in rewriters else 0,
                                     help="condense: rewrite follow-ups (default); keyword: no LLM; multi-query, "
                                          "hyde, decompose: the language model writes extra queries, merged by RRF.")
        routers = available_routers()
        s["router"] = st.selectbox("Router", routers, key="router_select",
                                   index=routers.index("none") if "none" in routers else 0,
                                   help="Which collection answers: rules (collection name in the question), "
                                        "embedding (closest collection description), llm (the model picks).")
        s["chitchat"] = st.checkbox("Answer small talk without searching", value=False, key="chitchat",
                                    help="Greetings and thanks get a direct reply (router 'chitchat').")
    return s


# -- answers ---------------------------------------------------------------------------------
def marked_answer(answer: Answer) -> str:
    """Escaped answer text; sentences the citation check could not support are highlighted."""
    if not answer.support:
        return escape_markdown(answer.text)
    parts = []
    for s in answer.support:
        text = escape_markdown(s.sentence)
        parts.append(text if s.supported else f":orange-background[{text}] :material/warning:")
    return " ".join(parts)


def render_trace(answer: Answer) -> None:
    """The routing/rewriting/retrieval trace, as JSON (rendered literally, never as Markdown)."""
    trace = answer.trace
    if trace is not None:
        with st.expander("Trace"):
            st.json(trace.to_dict(), expanded=False)


def render_answer(answer: Answer) -> None:
    st.markdown(marked_answer(answer))
    if any(not s.supported for s in answer.support):
        st.caption(":material/warning: No passage in your documents supports the highlighted sentence(s).")
    if answer.standalone_query and answer.standalone_query != answer.question:
        st.caption(f"Searched for: {escape_markdown(answer.standalone_query)}")
    if answer.citations:
        st.markdown("**Sources**")
        for c in answer.citations:
            page = f" · page {c.chunk.page}" if c.chunk.page is not None else ""
            label = f"[{c.number}] {Path(c.chunk.source).name}{page} · score {c.score:.3f}"
            with st.expander(label):
                st.caption(f"{c.chunk.source} · characters {c.chunk.start}–{c.chunk.end}")
                st.text(c.chunk.text)
    render_trace(answer)


def pipeline_config(index: Index, s: dict[str, Any]) -> PipelineConfig:
    """The sidebar settings as the pipeline's config (the same builder as the CLI and the eval harness)."""
    router = ",".join(n for n in (["chitchat"] if s["chitchat"] else []) +
                      ([s["router"]] if s["router"] != "none" else []))
    return PipelineConfig(
        index=index.name,
        retrieval=RetrievalConfig(mode=s["mode"], fusion=s["fusion"], rrf_k=s["rrf_k"], alpha=s["alpha"], k=s["k"]),
        generation=GenerationConfig(mode=s["answer_mode"], model=s["model"], temperature=s["temperature"]),
        memory=MemoryConfig(kind=s["memory"]),
        plugins=PluginConfig(rewriter=s["rewriter"], router=router or None))


def build_chat(index: Index, s: dict[str, Any]) -> ChatSession:
    config = pipeline_config(index, s)
    extractive = config.generation.extractive
    reranker = get_reranker(s["reranker_path"]) if s["rerank"] and s["reranker_path"].strip() else None
    llm = None if extractive else get_llm(s["model"], "auto")
    pipeline = build(config, store(), index=index, embedder=get_embedder(), llm=llm, reranker=reranker,
                     load_index=load_index)
    ss = state()
    mem_key = (s["memory"], s["model"] if not extractive else None)
    if ss.get("memory_key") != mem_key:
        if s["memory"] == "summary" and llm is None:
            st.warning("Summary memory needs a language model; using the full buffer in extractive mode.")
            ss["memory"] = make_memory("buffer")
        else:
            ss["memory"] = pipeline.new_memory()
        ss["memory_key"] = mem_key
    return pipeline.chat(ss["memory"])


def escaped(pieces: Iterator[str]) -> Iterator[str]:
    for piece in pieces:
        yield escape_markdown(piece)


def empty_state() -> None:
    st.title("Ask your documents")
    st.info("There is no collection yet. Upload files in the sidebar, or start with the sample documents "
            "that ship with the app (a user guide, an FAQ and a glossary).")
    if st.button("Index the sample documents", type="primary", key="index_samples"):
        with st.spinner("Indexing the sample documents…"):
            report = ingestor(SAMPLE_INDEX).ingest([SAMPLES])
        st.session_state["index"] = SAMPLE_INDEX
        state()["notices"] = [("success" if report.ok else "error", report.summary())]
        st.rerun()


def main() -> None:
    ss = state()
    index_name = sidebar_collections()
    if index_name is None:
        empty_state()
        sidebar_upload("documents")
        return
    sidebar_upload(index_name)
    if not store().exists(index_name):
        st.title("Ask your documents")
        st.info(f"Collection “{index_name}” is empty: add files in the sidebar.")
        return
    index = load_index(index_name)
    sidebar_documents(index)
    settings = sidebar_settings()
    st.title(index_name)
    if st.sidebar.button("Clear conversation", key="clear_chat"):
        ss["messages"] = []
        ss.pop("memory_key", None)
        st.rerun()
    for msg in ss["messages"]:
        with st.chat_message(msg["role"]):
            if msg["role"] == "assistant":
                render_answer(msg["answer"])
            else:
                st.markdown(escape_markdown(msg["content"]))
    question = st.chat_input("Ask a question about your documents")
    if not question:
        return
    ss["messages"].append({"role": "user", "content": question})
    with st.chat_message("user"):
        st.markdown(escape_markdown(question))
    with st.chat_message("assistant"):
        try:
            chat = build_chat(index, settings)
            t0 = time.perf_counter()
            with st.spinner("Searching your documents…"):
                stream = chat.stream(question)
            live = st.empty()
            with live.container():
                st.write_stream(escaped(iter(stream)))
            answer = stream.answer
            live.empty()
            render_answer(answer)
            st.caption(f"{time.perf_counter() - t0:.1f}s")
        except (ValueError, RuntimeError, OSError) as exc:
            st.error(f"Could not answer: {exc}")
            return
    ss["messages"].append({"role": "assistant", "content": answer.text, "answer": answer})


main()
