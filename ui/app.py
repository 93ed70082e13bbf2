"""Streamlit chat app: ask questions about your own documents, with checked citations.

Run with ``make run`` (or ``streamlit run ui/app.py``).  Environment:
``RAG_INDEX_DIR`` (default ``./indexes``, as for the CLI), ``RAG_UPLOAD_DIR`` (default ``uploads/``),
``RAG_UPLOAD_MB`` (default 50), ``RAG_ACCESS_TOKEN`` (required to serve on a non-loopback address).

This script only lays out the page; what it shows comes from :mod:`rag.ui` (escaping, uploads,
settings, sources, the passage viewer, the trace; :mod:`rag.ui.answer_view` draws an answer).
Every turn is saved as it completes (:mod:`rag.ui.chats`, ``<index root>/chats.sqlite3``); the URL's
``?chat=ID`` names the open chat, so a reload or a server restart shows it again.

Private by default (README, "Privacy and safety"): ``.streamlit/config.toml`` binds 127.0.0.1; on any
other address the app serves nothing unless ``RAG_ACCESS_TOKEN`` is set, and then only to a session
that typed the token. Every string that comes from a file name, a path, a document or the model is
rendered with :func:`rag.ui.text.md` (Markdown-escaped, URLs as inert code), so it cannot become a
link, an image or HTML.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import streamlit as st  # noqa: E402
import streamlit.net_util as _st_net  # noqa: E402

from rag.answer.chat import ChatSession  # noqa: E402
from rag.chats import ChatHistoryError, chat_store  # noqa: E402
from rag.generation.memory import make_memory  # noqa: E402
from rag.index.store import Index, IndexStore, default_index_root, validate_name  # noqa: E402
from rag.ingest.ingestor import Ingestor, IngestReport  # noqa: E402
from rag.ingest.loaders import SUPPORTED_EXTENSIONS  # noqa: E402
from rag.ingest.ocr import OcrProgress  # noqa: E402
from rag.ingest.watcher import active_watches  # noqa: E402
from rag.pipeline import AUTO_RERANKER, LLM_RERANKER, build, resolve_reranker  # noqa: E402
from rag.retrieval.scope import common_folder, shown_name  # noqa: E402
from rag.types import Answer  # noqa: E402
from rag.ui.access import access_granted  # noqa: E402
from rag.ui.answer_view import render_answer, stream_inert  # noqa: E402
from rag.ui.chats import QUERY_KEY, UNSAVED, messages_of, replay, sidebar_chats  # noqa: E402
from rag.ui.resources import (chunk_lookup, collection_examples, folder_stamp, get_embedder, get_index,  # noqa: E402
                              get_llm, get_reranker, source_names)
from rag.ui.settings import app_config  # noqa: E402
from rag.ui.sidebar import sidebar_settings  # noqa: E402
from rag.ui.sources import SourceView, answer_cosines, passage_cosines, supporting_sources  # noqa: E402
from rag.ui.text import code, md, md_lines  # noqa: E402
from rag.ui.uploads import DEFAULT_UPLOAD_MB, ocr_progress_text, save_uploads  # noqa: E402

logger = logging.getLogger("rag.app")
SCOPE_KEY = "scope_docs"  # the sidebar multi-select: the open chat's documents (source paths)

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
SAMPLE_INDEX = "samples"
INDEX_DIR = default_index_root()  # $RAG_INDEX_DIR or ./indexes, as for the CLI
UPLOAD_DIR = Path(os.environ.get("RAG_UPLOAD_DIR", ROOT / "uploads"))
UPLOAD_MB = float(os.environ.get("RAG_UPLOAD_MB", DEFAULT_UPLOAD_MB))

# Streamlit finds this machine's LAN and public address (a UDP connect to 8.8.8.8 and an HTTP request
# to checkip.amazonaws.com) to vet a cross-origin WebSocket Origin against them. A private app makes
# no outbound connection: pin both to loopback, which that allow-list holds anyway. (Printing the URL
# at startup needs no lookup because .streamlit/config.toml sets server.address and browser.serverAddress.)
_st_net._internal_ip = _st_net._internal_ip or "127.0.0.1"
_st_net._external_ip = _st_net._external_ip or "127.0.0.1"

# an emoji icon is drawn locally (a data: URL); a ":material/...:" favicon is fetched from fonts.gstatic.com
st.set_page_config(page_title="Ask your documents", page_icon="📖", layout="wide")


def store() -> IndexStore:
    return IndexStore(INDEX_DIR)


CHATS = chat_store(INDEX_DIR)  # <index root>/chats.sqlite3, shared with `rag chat` and `rag chats`


def index_stamp(name: str) -> str:
    return folder_stamp(store().path(name))


def load_index(name: str) -> Index:
    return get_index(str(INDEX_DIR), name, index_stamp(name))


def ingestor(name: str, on_ocr_page: Callable[[OcrProgress], None] | None = None) -> Ingestor:
    return Ingestor(name, store=store(), embedder=get_embedder(), show_progress=False, on_ocr_page=on_ocr_page)


def state() -> Any:
    ss = st.session_state
    ss.setdefault("messages", [])
    ss.setdefault("upload_key", 0)
    ss.setdefault("notices", [])
    ss.setdefault("damaged", {})  # collection name -> why it could not be opened
    return ss


def switch_to(name: str) -> None:
    """Show collection ``name`` from the next run on (the selectbox is set before it is drawn)."""
    st.session_state["switch_to"] = name
    st.session_state["auto_selected"] = False


def notify(kind: str, text: str) -> None:
    state()["notices"].append((kind, text))


def run_ingest(name: str, paths: list[Any], on_ocr_page: Callable[[OcrProgress], None] | None = None,
               **kw: Any) -> IngestReport | None:
    """Ingest, reporting any failure as a notice instead of a traceback (the app stays up)."""
    try:
        return ingestor(name, on_ocr_page).ingest(paths, **kw)
    except Exception as exc:  # a damaged index, a busy writer, a full disk: say so, keep serving
        logger.exception("ingest into %r failed", name)
        notify("error", f"Could not index into “{name}”: {exc}")
        return None


# -- saved chats -----------------------------------------------------------------------------
def forget_chat() -> None:
    """Start a new, empty chat (the next question creates it in the history)."""
    ss = state()
    ss["messages"] = []
    for key in ("chat_id", "chat_collection", "memory_key", "confirm_delete", SCOPE_KEY):
        ss.pop(key, None)
    if QUERY_KEY in st.query_params:
        del st.query_params[QUERY_KEY]


def open_chat(chat_id: str | None) -> None:
    """Open a saved chat (None: a new chat) from the next run on: the URL names it, so a reload reopens it."""
    if chat_id is None:
        forget_chat()
    else:
        st.query_params[QUERY_KEY] = chat_id
    st.rerun()


def restore_chat() -> None:
    """Load the chat the URL names (``?chat=ID``) when it is not the one on screen: after a reload, a restart, a click."""
    ss = state()
    wanted = st.query_params.get(QUERY_KEY)
    if not wanted or wanted == ss.get("chat_id"):
        return
    try:
        chat = CHATS.load(wanted)
    except ChatHistoryError as exc:
        logger.warning("cannot open chat %r: %s", wanted, exc)
        del st.query_params[QUERY_KEY]
        notify("error", f"Could not open the saved chat: {exc}")
        return
    forget_chat()
    ss["messages"] = messages_of(chat)
    ss["chat_id"], ss["chat_collection"] = chat.id, chat.collection
    ss[SCOPE_KEY] = list(chat.documents)  # the multi-select shows the chat's scope (set before it is drawn)
    st.query_params[QUERY_KEY] = chat.id
    if ss.get("index_select") != chat.collection:
        switch_to(chat.collection)


def save_turn(index_name: str, question: str, answer: Answer, settings: dict[str, Any], meta: dict[str, Any]) -> None:
    """Save the completed turn (the first creates the chat, titled with the question); a failure is one sidebar line."""
    ss = state()
    if ss.get("history_problem"):
        return
    model = "extractive" if settings["answer_mode"] == "extractive" else settings["model"]
    try:
        if not ss.get("chat_id"):
            ss["chat_id"] = CHATS.create(question, index_name, documents=meta.get("scope", ()))
            ss["chat_collection"] = index_name
            st.query_params[QUERY_KEY] = ss["chat_id"]
        CHATS.append(ss["chat_id"], answer, model=model, timings=meta.get("timing", {}), meta=meta)
    except (ChatHistoryError, ValueError) as exc:
        logger.warning("chat not saved: %s", exc)
        ss["history_problem"] = str(exc)
        st.sidebar.warning(md(str(exc) + UNSAVED))


def save_scope() -> None:
    """Store the multi-select's documents with the open chat (a new chat stores them with its first turn)."""
    ss = state()
    if not ss.get("chat_id") or ss.get("history_problem"):
        return
    try:
        CHATS.set_documents(ss["chat_id"], ss.get(SCOPE_KEY) or [])
    except ChatHistoryError as exc:
        logger.warning("chat scope not saved: %s", exc)
        ss["history_problem"] = str(exc)


# -- sidebar ---------------------------------------------------------------------------------
def sidebar_collections() -> str | None:
    ss = state()
    try:
        names = store().names()
    except OSError as exc:
        st.sidebar.error(md(f"Cannot list the collections under {INDEX_DIR}: {exc}"))
        names = []
    pending = ss.get("pending_index")
    if pending in names:
        ss.pop("pending_index", None)
        pending = None
    options = names + ([pending] if pending else [])
    damaged = ss["damaged"]

    def label(name: str) -> str:
        return f"{name} (new)" if name == pending else f"{name} (damaged)" if name in damaged else name

    st.sidebar.header("Collection")
    if "switch_to" in ss:
        wanted = ss.pop("switch_to")
        if wanted in options:
            ss["index_select"] = wanted
    current = None
    if options:
        if ss.get("index_select") not in options:
            healthy = [n for n in names if n not in damaged]
            ss["index_select"] = (healthy or options)[0]
            ss["auto_selected"] = True
        current = st.sidebar.selectbox("Index", options, key="index_select", format_func=label,
                                       on_change=lambda: ss.update(auto_selected=False))
    sidebar_new_collection(names)
    if current is not None and current == pending:
        st.sidebar.info(f"Collection “{md(current)}” is created when you add its first file.")
    return current


def sidebar_new_collection(names: list[str]) -> None:
    with st.sidebar.expander("New collection"):
        new = st.text_input("Name", key="new_index_name", placeholder="e.g. manuals")
        if st.button("Create", key="create_index"):
            try:
                validate_name(new)
            except ValueError as exc:
                st.error(md(str(exc)))
            else:
                if new not in names:
                    state()["pending_index"] = new
                switch_to(new)
                st.rerun()


def sidebar_upload(index_name: str) -> None:
    ss = state()
    st.sidebar.subheader("Add documents")
    files = st.sidebar.file_uploader(
        f"Files ({', '.join(e.lstrip('.') for e in SUPPORTED_EXTENSIONS)}; up to {UPLOAD_MB:g} MB each)",
        accept_multiple_files=True, key=f"uploader_{ss['upload_key']}")
    if files and st.sidebar.button(f"Add {len(files)} file(s) to “{md(index_name)}”", key="add_files",
                                   type="primary"):
        ss["notices"] = []
        progress = st.sidebar.progress(0.0, text="Saving uploads…")
        payload = []
        for i, f in enumerate(files, start=1):
            payload.append((f.name, f.getvalue()))
            progress.progress(i / (len(files) + 1), text=f"Saved {md(f.name)}")
        saved, errors = save_uploads(payload, UPLOAD_DIR / index_name, max_mb=UPLOAD_MB)
        at = len(files) / (len(files) + 1)
        progress.progress(at, text="Indexing…")

        def show_ocr(p: OcrProgress) -> None:  # a scan is read at ~2.5 s a page: say which page, not just "Indexing…"
            progress.progress(at, text=ocr_progress_text(p))

        report = run_ingest(index_name, saved, on_ocr_page=show_ocr, prune=False) if saved else None
        progress.progress(1.0, text="Done")
        if report is not None:
            notify("success", f"Indexed {len(report.added) + len(report.updated)} file(s), "
                              f"{report.chunks_added} new passages; {len(report.unchanged)} unchanged.")
            errors += [(Path(p).name, f"{Path(p).name}: {msg}") for p, msg in report.errors]
        for _name, msg in errors:
            notify("error", msg)
        ss["upload_key"] += 1
        if report is not None and store().exists(index_name):
            switch_to(index_name)  # stay on the collection the files went into
        st.rerun()
    for kind, msg in ss["notices"]:
        (st.sidebar.success if kind == "success" else st.sidebar.error)(md_lines(msg))


def sidebar_documents(index: Index) -> None:
    st.sidebar.subheader(f"Documents ({len(index.documents)})")
    for i, rec in enumerate(sorted(index.documents.values(), key=lambda r: r.source)):
        name = Path(rec.source).name
        cols = st.sidebar.columns([6, 2, 2])
        pages = f", {rec.pages} p." if rec.pages else ""
        cols[0].markdown(f"{md(name)}  \n:gray[{rec.n_chunks} passage{'s' if rec.n_chunks != 1 else ''}{pages}]")
        if cols[1].button(":material/refresh:", key=f"reindex_{i}", help=f"Re-index {md(name)}",
                          disabled=not Path(rec.source).exists()):
            document_action(index.name, rec.source, reindex=True)
        if cols[2].button(":material/delete:", key=f"delete_{i}", help=f"Remove {md(name)} from the index"):
            document_action(index.name, rec.source, reindex=False)


def sidebar_scope(index: Index) -> list[str] | None:
    """The chat's scope: the documents picked in the sidebar (source paths), or None for the whole collection."""
    ss = state()
    sources = sorted(r.source for r in index.documents.values())
    chosen = ss.get(SCOPE_KEY)
    if chosen:
        kept = [d for d in chosen if d in index.documents]
        if len(kept) != len(chosen):  # a document of the saved scope was removed from the collection
            st.sidebar.warning(f"{len(chosen) - len(kept)} document(s) this chat was scoped to are no longer in "
                               f"“{md(index.name)}”; it searches the rest of its scope.")
            ss[SCOPE_KEY] = kept
            save_scope()
    root = common_folder(sources)
    picked = st.sidebar.multiselect("Search only these documents", sources, key=SCOPE_KEY,
                                    format_func=lambda s: shown_name(s, root), on_change=save_scope,
                                    placeholder="All documents",
                                    help="Scope this chat to some documents; leave empty to search them all. "
                                         "Saved with the chat.")
    return list(picked) or None


def scope_caption(scope: list[str], total: int) -> str:
    """ "Searching 1 of 3 documents: manual.pdf" (names escaped)."""
    root = common_folder(scope)
    names = ", ".join(md(shown_name(s, root) if len(scope) > 1 else Path(s).name) for s in scope)
    return f":material/filter_alt: Searching {len(scope)} of {total} document{'s' if total != 1 else ''}: {names}"


def document_action(index_name: str, source: str, reindex: bool) -> None:
    """Re-index one document (remove, then ingest it again) or remove it; report the outcome as a notice."""
    state()["notices"] = []
    name = Path(source).name
    ing = ingestor(index_name)
    try:
        ing.remove(source)
        report = ing.ingest([source], prune=False) if reindex else None
    except Exception as exc:
        logger.exception("%s %s failed", "re-indexing" if reindex else "removing", source)
        notify("error", f"Could not {'re-index' if reindex else 'remove'} {name}: {exc}")
    else:
        if report is None:
            notify("success", f"Removed {name}")
        else:
            notify("success" if report.ok else "error", f"Re-indexed {name}" if report.ok else report.summary())
    st.rerun()


# -- answers ---------------------------------------------------------------------------------
def show_answer(answer: Answer, index: Index | None, key: str, meta: dict[str, Any] | None = None) -> None:
    """Draw ``answer`` with its sources labelled by this collection's names (``meta``: the cosines and timings)."""
    meta = meta or {}
    if meta.get("scope") and index is not None:
        st.caption(scope_caption(list(meta["scope"]), len(index.documents)))
    where = (str(INDEX_DIR), index.name, index_stamp(index.name)) if index is not None else None
    view = SourceView(key, {**answer_cosines(answer), **meta.get("cosines", {})}, supporting_sources(answer),
                      source_names(*where) if where else {}, chunk_lookup(*where) if where else {})
    render_answer(answer, view, meta.get("timing", {}))


def build_chat(index: Index, s: dict[str, Any]) -> ChatSession:
    config = app_config(index.name, s)
    extractive = config.generation.extractive
    spec = config.retrieval.reranker
    llm = None if extractive and spec != LLM_RERANKER else get_llm(config.generation)
    reranker = (resolve_reranker(spec, store().path(index.name), llm) if spec in (LLM_RERANKER, AUTO_RERANKER)
                else get_reranker(spec) if spec else None)
    llm = None if extractive else llm
    pipeline = build(config, store(), index=index, embedder=get_embedder(), llm=llm, reranker=reranker,
                     load_index=load_index)
    ss = state()
    mem_key = (s["memory"], s["model"] if not extractive else None)
    if ss.get("memory_key") != mem_key:
        if s["memory"] == "summary" and llm is None:
            st.warning("Summary memory needs a language model; using the full buffer in extractive mode.")
            ss["memory"] = make_memory("buffer")
        else:
            ss["memory"] = make_memory(config.memory.kind, llm=llm, k=config.memory.window)
        replay(ss["memory"], ss["messages"])  # the chat so far (an opened saved chat, or one before a settings change)
        ss["memory_key"] = mem_key
    return pipeline.chat(ss["memory"])


def ask(index: Index, settings: dict[str, Any], question: str, scope: list[str] | None = None) -> None:
    """Answer ``question`` from the ``scope`` documents (None: all): search, stream the text, "checking sources…"
    during the support check, then the answer."""
    ss = state()
    ss["messages"].append({"role": "user", "content": question})
    with st.chat_message("user"):
        st.markdown(md(question))
    with st.chat_message("assistant"):
        t0 = time.perf_counter()
        live, status = st.empty(), st.empty()
        marks: dict[str, float] = {}

        def text_ended() -> None:
            marks["text_end"] = time.perf_counter()
            status.caption(":material/fact_check: Checking sources…")

        def decided(decision: Any) -> None:
            marks["decided"] = time.perf_counter()
            status.caption(":material/edit_note: Writing the answer…" if decision.answers else "")

        try:
            chat = build_chat(index, settings)
            loaded = time.perf_counter()
            searching = (f"Searching {len(scope)} of {len(index.documents)} documents…" if scope
                         else "Searching your documents…")
            with st.spinner(searching):
                stream = chat.stream(question, documents=scope)
            stream.on("text_end", text_ended)
            stream.on("decided", decided)
            searched = time.perf_counter()
            if settings["answer_mode"] == "generative":
                status.caption(":material/rule: Reading the evidence…")
            with live.container():
                stream_inert(iter(stream))
            answer = stream.answer
            query = get_embedder().encode([answer.standalone_query or question])[0]
            cosines = passage_cosines(index, query, [c.chunk.id for c in (*answer.sources, *answer.citations)])
        except (ValueError, RuntimeError, OSError) as exc:
            status.empty()
            st.error(f"Could not answer: {md(str(exc))}")
            ss["messages"].append({"role": "assistant", "content": "", "error": str(exc)})
            return
        done = time.perf_counter()
        text_end = marks.get("text_end", done)
        timing = {"total_s": done - t0, "load_s": loaded - t0, "search_s": searched - loaded,
                  "write_s": text_end - searched, "check_s": done - text_end}
        meta = {"cosines": cosines, "timing": timing, **({"scope": list(scope)} if scope else {})}
        live.empty()
        status.empty()
        show_answer(answer, index, key=f"m{len(ss['messages'])}", meta=meta)
    save_turn(index.name, question, answer, settings, meta)  # saved as soon as it is complete
    ss["messages"].append({"role": "assistant", "content": answer.text, "answer": answer, "meta": meta})


# -- pages -----------------------------------------------------------------------------------
def empty_state() -> None:
    st.title("Ask your documents")
    st.info("There is no collection yet. Upload files in the sidebar, or start with the sample documents "
            "that ship with the app (a user guide, an FAQ and a glossary).")
    if st.button("Index the sample documents", type="primary", key="index_samples"):
        state()["notices"] = []
        with st.spinner("Indexing the sample documents…"):
            report = run_ingest(SAMPLE_INDEX, [SAMPLES])
        if report is not None:
            notify("success" if report.ok else "error", report.summary())
            switch_to(SAMPLE_INDEX)
        st.rerun()


def damaged_state(name: str, reason: str) -> None:
    others = [n for n in store().names() if n != name and n not in state()["damaged"]]
    st.title(md(name))
    st.error(f"**This collection is damaged: rebuild it.** “{md(name)}” could not be opened: {md(reason)}  \n"
             f"Rebuild it from its documents with `rag ingest DIR --index {name} --rebuild`, or delete "
             f"{code(str(store().path(name)))}.")
    if others:
        st.info(f"Your other collections still work: {', '.join(md(n) for n in others)}. "
                "Pick one under “Collection” in the sidebar.")


def open_collection(index_name: str) -> Index | None:
    """The collection's index; None, with the page saying why, when it is damaged or has no file yet."""
    ss = state()
    try:
        index = load_index(index_name) if store().exists(index_name) else None
    except Exception as exc:  # one damaged collection must not take the app down
        logger.warning("collection %r is damaged: %s", index_name, exc)
        ss["damaged"][index_name] = str(exc)
        healthy = [n for n in store().names() if n not in ss["damaged"]]
        if ss.get("auto_selected") and healthy:
            switch_to(healthy[0])
            ss["auto_selected"] = True  # still the app's choice, not the user's
            st.rerun()
        damaged_state(index_name, str(exc))
        return None
    ss["damaged"].pop(index_name, None)
    if index is None:
        st.title(md(index_name))
        st.info(f"Collection “{md(index_name)}” is empty: add files in the sidebar.")
    return index


def collection_header(index: Index) -> None:
    ss = state()
    st.title(md(index.name))
    for watch in active_watches(store().path(index.name)):
        st.caption(f":material/visibility: Watching {code(watch.folder)}: changed files are re-indexed "
                   "automatically (`rag watch`).")
    for other, why in ss["damaged"].items():
        st.sidebar.warning(f"Collection “{md(other)}” is damaged: rebuild it ({md(why)}).")


def history(index: Index) -> None:
    """The conversation so far (a question whose answer was cut off says so)."""
    messages = state()["messages"]
    for i, msg in enumerate(messages):
        with st.chat_message(msg["role"]):
            if msg.get("error") is not None:
                st.error(f"Could not answer: {md(msg['error'])}")
            elif msg["role"] == "assistant":
                show_answer(msg["answer"], index, key=f"m{i}", meta=msg.get("meta"))
            else:
                st.markdown(md(msg["content"]))
                if i + 1 == len(messages) or messages[i + 1]["role"] != "assistant":
                    st.caption(":material/block: Stopped before the answer was complete (the page was used "
                               "while it was being written). Ask again to get it.")


def render_examples(index: Index) -> None:
    """Three starter questions written from this collection's own headings and titles; a click asks one."""
    questions = collection_examples(str(INDEX_DIR), index.name, index_stamp(index.name))
    if not questions:
        return
    st.markdown("**Try asking**")
    cols = st.columns(len(questions))
    for i, q in enumerate(questions):
        if cols[i].button(md(q), key=f"example_{i}", width="stretch"):
            state()["example_question"] = q
            st.rerun()


def chat(index: Index, settings: dict[str, Any], scope: list[str] | None = None) -> None:
    """Starter questions, the question box, and the answer to a question asked on the previous run (from ``scope``)."""
    ss = state()
    pending = ss.pop("pending_question", None)
    history(index)
    examples = st.empty()
    if not ss["messages"] and pending is None:
        with examples.container():
            render_examples(index)
    blocked = settings["answer_mode"] == "generative" and bool(settings["model_problem"])
    # while an answer is written the box is disabled: a question sent then would stop the answer mid-way
    typed = st.chat_input("Pick a model that is on this machine (see the sidebar)" if blocked else
                          "Answering…" if pending is not None else "Ask a question about your documents",
                          disabled=blocked or pending is not None)
    if pending is not None:
        ask(index, settings, pending, scope)
        st.rerun()  # enables the box again
    question = typed or ss.pop("example_question", None)
    if not question:
        return
    examples.empty()
    if blocked:
        st.warning(settings["model_problem"])
        return
    ss["pending_question"] = question
    st.rerun()  # draw the box disabled, then answer


def main() -> None:
    if not access_granted():
        return
    restore_chat()
    index_name = sidebar_collections()
    if index_name is None:
        empty_state()
        sidebar_upload("documents")
        return
    ss = state()
    if ss.get("chat_id") and ss.get("chat_collection") != index_name:
        forget_chat()  # another collection was picked: a new chat there
    sidebar_chats(st, CHATS, ss, open_chat)
    sidebar_upload(index_name)
    index = open_collection(index_name)
    if index is None:
        return
    sidebar_documents(index)
    scope = sidebar_scope(index)
    settings = sidebar_settings()
    collection_header(index)
    chat(index, settings, scope)


main()
