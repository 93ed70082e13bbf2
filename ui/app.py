"""Streamlit chat app: ask questions about your own documents, with checked citations.

Run with ``make run`` (or ``streamlit run ui/app.py``).  Environment:
``RAG_INDEX_DIR`` (default ``./indexes``, as for the CLI), ``RAG_UPLOAD_DIR`` (default ``uploads/``),
``RAG_UPLOAD_MB`` (default 50), ``RAG_ACCESS_TOKEN`` (required to serve on a non-loopback address).

Private by default (README, "Privacy and safety"): ``.streamlit/config.toml`` binds 127.0.0.1; on any
other address the app serves nothing unless ``RAG_ACCESS_TOKEN`` is set, and then only to a session
that typed the token. Every string that comes from a file name, a path, a document or the model is
rendered with :func:`md` (Markdown-escaped, URLs as inert code), so it cannot become a link, an image
or HTML.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import re
import time
from pathlib import Path
from typing import Any, Iterable, Mapping
from urllib.parse import urlsplit

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")

import streamlit as st  # noqa: E402
import streamlit.net_util as _st_net  # noqa: E402

from rag.answer.chat import ChatSession  # noqa: E402
from rag.answer.strategies import DECLINE_NOTES  # noqa: E402
from rag.embedding import Embedder  # noqa: E402
from rag.index.store import Index, IndexStore, default_index_root, validate_name  # noqa: E402
from rag.ingest.ingestor import Ingestor, IngestReport  # noqa: E402
from rag.generation.llm import LlamaCppLLM  # noqa: E402
from rag.ingest.loaders import SUPPORTED_EXTENSIONS  # noqa: E402
from rag.generation.memory import MEMORY_TYPES, make_memory  # noqa: E402
from rag.generation.models import DEFAULT_MODEL  # noqa: E402
from rag.pipeline import build  # noqa: E402
from rag.plugins import available_rewriters, available_routers  # noqa: E402
from rag.retrieval.rerank import Reranker  # noqa: E402
from rag.retrieval.retriever import FUSIONS, MODES  # noqa: E402
from rag.types import Answer, Chunk, Citation  # noqa: E402
from rag.ingest.watcher import active_watches  # noqa: E402
from rag.serve.service import SourcePaths  # noqa: E402
from rag.serve.viewer import (PageImage, PassageContext, PdfPageRenderer, ViewerError, document_chunks,  # noqa: E402
                              passage_context)
from rag.serve.webapp import (DEFAULT_SETTINGS, DEFAULT_UPLOAD_MB, app_config, escape_markdown,  # noqa: E402
                              example_questions, group_sources,
                              model_choices, passage_cosines, relevance_label, save_uploads, trace_outline)

logger = logging.getLogger("rag.app")

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
SAMPLE_INDEX = "samples"
INDEX_DIR = default_index_root()  # $RAG_INDEX_DIR or ./indexes, as for the CLI
UPLOAD_DIR = Path(os.environ.get("RAG_UPLOAD_DIR", ROOT / "uploads"))
UPLOAD_MB = float(os.environ.get("RAG_UPLOAD_MB", DEFAULT_UPLOAD_MB))
TOKEN_ENV = "RAG_ACCESS_TOKEN"
MIN_TOKEN_CHARS = 16
PAGE_WIDTH = 640  # pixels a rendered PDF page is shown at (a whole page stays in view)
EXAMPLE_CHUNKS = 5000  # starter questions are written from the first passages of a collection

# Streamlit finds this machine's LAN and public address (a UDP connect to 8.8.8.8 and an HTTP request
# to checkip.amazonaws.com) to vet a cross-origin WebSocket Origin against them. A private app makes
# no outbound connection: pin both to loopback, which that allow-list holds anyway. (Printing the URL
# at startup needs no lookup because .streamlit/config.toml sets server.address and browser.serverAddress.)
_st_net._internal_ip = _st_net._internal_ip or "127.0.0.1"
_st_net._external_ip = _st_net._external_ip or "127.0.0.1"

# an emoji icon is drawn locally (a data: URL); a ":material/...:" favicon is fetched from fonts.gstatic.com
st.set_page_config(page_title="Ask your documents", page_icon="📖", layout="wide")


# -- untrusted text --------------------------------------------------------------------------
# What GitHub-flavoured Markdown turns into a link even when every special character is escaped
# (remark-gfm auto-links the unescaped text): scheme://..., www...., mailto:/xmpp:, e-mail addresses.
_LINKISH = re.compile(r"(?:\b[a-z][a-z0-9+.-]*://|\b(?:mailto|xmpp):|\bwww\.)[^\s`<>]+"
                      r"|[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.IGNORECASE)
_TRAILING = ".,;:!?)]}'\"*_~"


def code(text: str) -> str:
    """``text`` as an inline code span (shown verbatim, never a link), whatever backticks it holds."""
    text = text.replace("\n", " ")
    fence = "`" * (max((len(r) for r in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md(text: str) -> str:
    """Untrusted text (a file name, a path, document text, model output) as Markdown shown literally.

    Markdown and HTML are escaped (``escape_markdown``); anything a Markdown renderer would
    auto-link (``http://…``, ``www.…``, ``user@host``) becomes an inert code span, so the host stays
    visible but nothing is clickable or fetched.

    Example:
        >>> md("see [click](https://evil.example/x) or www.evil.example.")
        'see \\\\[click\\\\]\\\\(`https://evil.example/x`\\\\) or `www.evil.example`\\\\.'
    """
    out, pos = [], 0
    for m in _LINKISH.finditer(text):
        link = m.group(0).rstrip(_TRAILING)
        out.append(escape_markdown(text[pos:m.start()]))
        out.append(code(link))
        pos = m.start() + len(link)
    out.append(escape_markdown(text[pos:]))
    return "".join(out)


def md_lines(text: str) -> str:
    """:func:`md` per line, with hard line breaks (for multi-line reports)."""
    return "  \n".join(md(line.strip()) for line in text.splitlines() if line.strip())


def host_of(url: str) -> str:
    """The host a URL points at (what a phishing warning must name), or the URL itself."""
    try:
        host = urlsplit(url if "//" in url else f"//{url}").hostname
    except ValueError:
        host = None
    return host or url


# -- access: loopback only, or a token ---------------------------------------------------------
def is_loopback(address: str | None) -> bool:
    """True for an address only this machine can reach: 127.0.0.0/8, ``::1``, ``localhost``, a unix socket.

    Unset or empty is Streamlit's "every interface", so it is not loopback.

    Example:
        >>> [is_loopback(a) for a in ("127.0.0.1", "::1", "localhost", "", None, "0.0.0.0", "192.168.1.5")]
        [True, True, True, False, False, False, False]
    """
    a = (address or "").strip().strip("[]")
    if a.startswith("unix://") or a.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(a).is_loopback
    except ValueError:
        return False


def access_granted() -> bool:
    """Gate the whole app; False when this session must see nothing but the refusal or the token form."""
    address = st.get_option("server.address")
    token = os.environ.get(TOKEN_ENV, "")
    where = f"“{address}”" if address else "every network interface"
    if not token:
        if is_loopback(address):
            return True
        logger.error("refusing to serve on %s without an access token: set %s or bind 127.0.0.1",
                     address or "0.0.0.0", TOKEN_ENV)
        st.title("Not serving: no access token")
        st.error(f"This app is listening on {md(where)}, which other machines can reach, and no access token "
                 f"is set, so it serves nothing. Run it on this machine only (`make run` binds 127.0.0.1), or "
                 f"set `{TOKEN_ENV}` to a long random secret (at least {MIN_TOKEN_CHARS} characters) and "
                 "restart it to require that token.")
        return False
    if len(token) < MIN_TOKEN_CHARS:
        logger.error("%s is shorter than %d characters: refusing to serve", TOKEN_ENV, MIN_TOKEN_CHARS)
        st.title("Not serving: access token too short")
        st.error(f"`{TOKEN_ENV}` has {len(token)} characters; use at least {MIN_TOKEN_CHARS}, e.g. "
                 "`python -c 'import secrets; print(secrets.token_urlsafe(24))'`, and restart the app.")
        return False
    ss = st.session_state
    if ss.get("access_granted"):
        return True
    st.title("Ask your documents")
    with st.form("access_form"):
        entered = st.text_input("Access token", type="password", key="access_token")
        submitted = st.form_submit_button("Open")
    if submitted:
        if hmac.compare_digest(entered.encode("utf-8"), token.encode("utf-8")):
            ss["access_granted"] = True
            st.rerun()
        time.sleep(1.0)  # slow down guessing
        st.error("Wrong access token.")
    return False


# -- shared, cached resources (one copy per server process) --------------------------------
@st.cache_resource(show_spinner="Loading the embedding model…")
def get_embedder() -> Embedder:
    return Embedder().load()


@st.cache_resource(show_spinner="Loading the language model…", max_entries=2)
def get_llm(model: str, n_gpu_layers: int | str) -> LlamaCppLLM:
    # LlamaCppLLM serialises calls with its own lock, so one instance serves all sessions
    return LlamaCppLLM(model, n_gpu_layers=n_gpu_layers).load()


@st.cache_resource(max_entries=8)
def get_index(root: str, name: str, stamp: str) -> Index:
    # `stamp` (directory and manifest mtimes) makes a re-ingested index load fresh
    return IndexStore(root).load(name)


@st.cache_resource(max_entries=2)
def get_reranker(path: str) -> Reranker:
    return Reranker(path).load()


def store() -> IndexStore:
    return IndexStore(INDEX_DIR)


def index_stamp(name: str) -> str:
    """Directory and manifest mtimes: changes whenever the collection is re-ingested."""
    path = store().path(name)
    stamps = []
    for p in (path, path / "manifest.json"):
        try:
            stamps.append(str(p.stat().st_mtime_ns))
        except OSError:
            stamps.append("-")
    return ":".join(stamps)


def load_index(name: str) -> Index:
    return get_index(str(INDEX_DIR), name, index_stamp(name))


def ingestor(name: str) -> Ingestor:
    return Ingestor(name, store=store(), embedder=get_embedder(), show_progress=False)


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


def run_ingest(name: str, paths: list[Any], **kw: Any) -> IngestReport | None:
    """Ingest, reporting any failure as a notice instead of a traceback (the app stays up)."""
    try:
        return ingestor(name).ingest(paths, **kw)
    except Exception as exc:  # a damaged index, a busy writer, a full disk: say so, keep serving
        logger.exception("ingest into %r failed", name)
        notify("error", f"Could not index into “{name}”: {exc}")
        return None


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
    with st.sidebar.expander("New collection"):
        new = st.text_input("Name", key="new_index_name", placeholder="e.g. manuals")
        if st.button("Create", key="create_index"):
            try:
                validate_name(new)
            except ValueError as exc:
                st.error(md(str(exc)))
            else:
                if new not in names:
                    ss["pending_index"] = new
                switch_to(new)
                st.rerun()
    if current is not None and current == pending:
        st.sidebar.info(f"Collection “{md(current)}” is created when you add its first file.")
    return current


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
        progress.progress(len(files) / (len(files) + 1), text="Indexing…")
        report = run_ingest(index_name, saved, prune=False) if saved else None
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
            state()["notices"] = []
            ing = ingestor(index.name)
            try:
                ing.remove(rec.source)
                report = ing.ingest([rec.source], prune=False)
            except Exception as exc:
                logger.exception("re-indexing %s failed", rec.source)
                notify("error", f"Could not re-index {name}: {exc}")
            else:
                notify("success" if report.ok else "error", f"Re-indexed {name}" if report.ok else report.summary())
            st.rerun()
        if cols[2].button(":material/delete:", key=f"delete_{i}", help=f"Remove {md(name)} from the index"):
            state()["notices"] = []
            try:
                ingestor(index.name).remove(rec.source)
            except Exception as exc:
                logger.exception("removing %s failed", rec.source)
                notify("error", f"Could not remove {name}: {exc}")
            else:
                notify("success", f"Removed {name}")
            st.rerun()


def sidebar_settings() -> dict[str, Any]:
    st.sidebar.header("Settings")
    s: dict[str, Any] = {}
    s["answer_mode"] = st.sidebar.radio("Answer mode", ("generative", "extractive"), horizontal=True,
                                        help="Extractive quotes the best passages and needs no language model.")
    generative = s["answer_mode"] == "generative"
    choices = {m.name: m for m in model_choices()}
    models = list(choices)
    s["model"] = st.sidebar.selectbox("Model", models, index=models.index(DEFAULT_MODEL) if DEFAULT_MODEL in models
                                      else 0, key="model_select", disabled=not generative,
                                      format_func=lambda n: choices[n].label,
                                      help="Models marked “not downloaded” are not on this machine yet.")
    custom = st.sidebar.text_input("…or a GGUF file path", key="model_path", placeholder="/models/phi-3.gguf")
    s["model_problem"] = ""
    if custom.strip():
        s["model"] = custom.strip()
        if generative and not Path(s["model"]).expanduser().is_file():
            s["model_problem"] = f"There is no file at {code(s['model'])}: give the path of a .gguf file."
    elif generative and not choices[s["model"]].available:
        m = choices[s["model"]]
        s["model_problem"] = (f"**{md(m.name)}** is not on this machine ({md(m.description)}). Get it with "
                              f"`{m.get_command}` (needs a network once), then pick it again; or choose "
                              "another model, or extractive answers.")
    if s["model_problem"]:
        st.sidebar.warning(":material/download: " + s["model_problem"])
    d = DEFAULT_SETTINGS  # the pipeline config's own defaults
    s["temperature"] = st.sidebar.slider("Temperature", 0.0, 1.5, d["temperature"], 0.05)
    s["memory"] = st.sidebar.selectbox("Chat memory", MEMORY_TYPES, index=MEMORY_TYPES.index(d["memory"]))
    with st.sidebar.expander("Retrieval"):
        s["mode"] = st.selectbox("Mode", MODES, index=MODES.index(d["mode"]))
        s["k"] = st.slider("Passages (k)", 1, 10, d["k"])
        s["fusion"] = st.selectbox("Fusion", FUSIONS, index=FUSIONS.index(d["fusion"]), disabled=s["mode"] != "hybrid",
                                   help="adaptive: RRF whose dense weight drops when the keyword and the semantic "
                                        "rankings disagree; rrf: equal weights; weighted: a blend of scores")
        s["rrf_k"] = int(st.number_input("RRF k", 1, 1000, d["rrf_k"], disabled=s["fusion"] == "weighted"))
        s["alpha"] = st.slider("Dense weight (weighted fusion)", 0.0, 1.0, d["alpha"], 0.05,
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
        s["chitchat"] = st.checkbox("Answer small talk without searching", value=d["chitchat"], key="chitchat",
                                    help="Greetings and thanks get a direct reply (router 'chitchat').")
    return s


# -- answers ---------------------------------------------------------------------------------
def marked_answer(answer: Answer) -> str:
    """The answer as inert Markdown; unsupported sentences, and those resting on a suspicious source, marked."""
    if not answer.support:
        return md(answer.text)
    suspicious = set(answer.diagnostics.suspicious_sources)
    parts = []
    for s in answer.support:
        text = md(s.sentence)
        if s.citation is not None and s.citation in suspicious:
            parts.append(f":red-background[{text}] :material/gpp_maybe:")
        elif not s.supported:
            parts.append(f":orange-background[{text}] :material/warning:")
        else:
            parts.append(text)
    return " ".join(parts)


@st.cache_resource(max_entries=8)
def source_names(root: str, name: str, stamp: str) -> dict[str, str]:
    """Each document's path relative to the collection's common folder (what the sources are labelled with)."""
    index = get_index(root, name, stamp)
    paths = SourcePaths(list(index.documents))
    return {s: paths.relative(s) for s in index.documents}


@st.cache_resource(max_entries=8)
def chunk_lookup(root: str, name: str, stamp: str) -> dict[str, Chunk]:
    return {c.id: c for c in get_index(root, name, stamp).chunks}


@st.cache_data(max_entries=32, show_spinner="Rendering the page…")
def render_pdf_page(path: str, mtime_ns: int, page: int, passage: str) -> PageImage:
    # `mtime_ns` makes a changed file render fresh
    return PdfPageRenderer().render(path, page, passage)


def answer_cosines(answer: Answer) -> dict[str, float]:
    """Dense cosines the retrievers recorded in the trace (chunk id -> cosine), for answers without their own."""
    out: dict[str, float] = {}
    if answer.trace is not None:
        for hit in [*answer.trace.fused, *(h for r in answer.trace.retrievals for h in r.hits)]:
            if "dense" in hit.scores:
                out.setdefault(hit.chunk_id, float(hit.scores["dense"]))
    return out


def render_trace(answer: Answer, view: "SourceView", timing: Mapping[str, float]) -> None:
    """What happened to the question, step by step, as a readable list (every value rendered inert)."""
    steps = trace_outline(answer, view.describe, timing)
    if not steps:
        return
    with st.expander("Trace"):
        st.markdown("\n".join(f"{'    ' * depth}- **{label}**{': ' + md(text) if text else ''}"
                              for depth, label, text in steps))


def render_warnings(answer: Answer) -> None:
    """Links no cited source contains, and sources that hold instructions or ask for credentials."""
    d = answer.diagnostics
    for url in d.foreign_urls:
        st.warning(f":material/link_off: This answer contains a link to **{md(host_of(url))}** ({code(url)}) "
                   "that none of its cited sources contains. It may be a phishing link: do not open it, and "
                   "never enter a password or other credentials because an answer says so.")
    if d.suspicious_sources:
        numbers = ", ".join(f"[{n}]" for n in d.suspicious_sources)
        st.warning(f":material/gpp_maybe: Source{'s' if len(d.suspicious_sources) > 1 else ''} {numbers} "
                   "contain instruction-like or credential-seeking text (e.g. “enter your password”), and the "
                   "answer relies on it. Check the source yourself; documents are data, not instructions.")


class SourceView:
    """How one message's sources are labelled and opened: names relative to the collection, the index's chunks."""

    def __init__(self, index: Index | None, key: str, cosines: Mapping[str, float],
                 supporting: frozenset[int] = frozenset()) -> None:
        self.index = index
        self.key = key
        self.cosines = cosines
        self.supporting = supporting  # source numbers that support an answer sentence
        if index is not None:
            stamp = index_stamp(index.name)
            self.names = source_names(str(INDEX_DIR), index.name, stamp)
            self.chunks = chunk_lookup(str(INDEX_DIR), index.name, stamp)
        else:
            self.names, self.chunks = {}, {}

    def name(self, source: str) -> str:
        return self.names.get(source) or Path(source).name

    def describe(self, chunk_id: str, location: str) -> str:
        """A trace hit as "faq.md p. 2" (falls back to the recorded location)."""
        c = self.chunks.get(chunk_id)
        if c is None:
            return location
        return self.name(c.source) + (f" p. {c.page}" if c.page is not None else "")


def render_sources(title: str, sources: Iterable[Citation], suspicious: set[int], view: SourceView,
                   section: str) -> None:
    """One expander per document (its passages inside), labelled "[1] [3] name · p. 2 · High relevance"."""
    st.markdown(f"**{title}**")
    for g in group_sources(list(sources), view.names):
        pages = g.pages
        where = f" · p. {pages[0]}" if len(pages) == 1 else f" · pp. {', '.join(map(str, pages))}" if pages else ""
        best = max((view.cosines[c.chunk.id] for c in g.citations if c.chunk.id in view.cosines), default=None)
        text = relevance_label(best, supports=any(n in view.supporting for n in g.numbers))
        cue = f" · {text}" if text else ""
        flagged = [n for n in g.numbers if n in suspicious]
        flag = " · :material/gpp_maybe: suspicious" if flagged else ""
        numbers = " ".join(f"[{n}]" for n in g.numbers)
        details_key = f"details_{view.key}_{section}_{g.numbers[0]}"
        # stays open on the reruns its own toggles and buttons cause (the live answer is redrawn from history)
        opened = bool(state().get(details_key)) or any(state().get(f"view_{view.key}_{section}_{n}") for n in g.numbers)
        with st.expander(f"{numbers} {md(g.name)}{where}{cue}{flag}", expanded=opened):
            for c in g.citations:
                render_passage(c, view, section, several=len(g.citations) > 1)
            if st.toggle("Details", key=details_key):
                st.caption("  \n".join(
                    f"[{c.number}] {md(view.name(c.chunk.source))} · chunk {code(c.chunk.id)} · passage "
                    f"{c.chunk.index + 1} · characters {c.chunk.start}–{c.chunk.end}"
                    + (f" of page {c.chunk.page}" if c.chunk.page is not None else "")
                    + f" · retrieval score {c.score:.4f}"
                    + (f" · dense cosine {view.cosines[c.chunk.id]:.3f}" if c.chunk.id in view.cosines else "")
                    for c in g.citations) + f"  \n{md(g.source)}")


def render_passage(c: Citation, view: SourceView, section: str, several: bool) -> None:
    if several:
        page = f" · page {c.chunk.page}" if c.chunk.page is not None else ""
        cue = relevance_label(view.cosines.get(c.chunk.id), supports=c.number in view.supporting)
        st.markdown(f"**[{c.number}]**{page}{' · ' + cue if cue else ''}")
    st.text(c.quote)  # the cited sentence(s), or the whole chunk
    is_pdf = c.chunk.page is not None and c.chunk.source.lower().endswith(".pdf")
    key = f"{view.key}_{section}_{c.number}"
    if st.toggle("Show on its page" if is_pdf else "Show in the document", key=f"view_{key}"):
        render_viewer(c, view, key)


def render_viewer(citation: Citation, view: SourceView, key: str) -> None:
    """The cited page with the cited sentence highlighted (PDF), or the sentence in its document;
    previous/next passage (then the whole passage is highlighted)."""
    ss = state()
    focus_key = f"focus_{key}"
    cited = citation.chunk
    chunk = view.chunks.get(ss.get(focus_key, cited.id)) or cited
    siblings = document_chunks(view.index.chunks, chunk.source) if view.index is not None else [chunk]
    span = citation.span if chunk.id == cited.id else None
    ctx = passage_context(siblings, chunk, span=span)
    shown = False
    if chunk.page is not None and chunk.source.lower().endswith(".pdf"):
        try:
            image = render_pdf_page(chunk.source, Path(chunk.source).stat().st_mtime_ns, chunk.page, ctx.passage)
        except (ViewerError, OSError) as exc:
            st.info(md(str(exc) if isinstance(exc, ViewerError) else
                       f"{Path(chunk.source).name} cannot be read ({exc}); showing the indexed text instead"))
        else:
            found = "the passage is highlighted" if image.highlighted else "the passage could not be located on it"
            st.image(image.png, caption=f"Page {image.page} of {image.pages} · {found}", width=PAGE_WIDTH,
                     output_format="PNG")
            shown = True
    if not shown:
        st.markdown(highlighted_context(ctx))
    cols = st.columns([3, 4, 3])
    if cols[0].button(":material/arrow_back: Previous passage", key=f"prev_{key}", disabled=ctx.previous is None):
        ss[focus_key] = ctx.previous.id  # type: ignore[union-attr]
        st.rerun()
    here = f"passage {ctx.position} of {ctx.total}" + (f" · page {chunk.page}" if chunk.page is not None else "")
    cols[1].caption(here + (" · the cited one" if chunk.id == cited.id else ""))
    if cols[2].button("Next passage :material/arrow_forward:", key=f"next_{key}", disabled=ctx.next is None):
        ss[focus_key] = ctx.next.id  # type: ignore[union-attr]
        st.rerun()


def highlighted_context(ctx: PassageContext) -> str:
    """The passage in its surrounding text as inert Markdown, the passage itself highlighted (line by line)."""
    lines: list[list[tuple[str, bool]]] = [[]]
    for text, mark in ((ctx.before, False), (ctx.passage, True), (ctx.after, False)):
        for i, part in enumerate(text.split("\n")):
            if i:
                lines.append([])
            if part.strip():
                lines[-1].append((part, mark))
    out: list[str] = []
    for line in lines:
        if not line:
            if out and out[-1]:
                out.append("")  # a blank line in the document: a paragraph break
            continue
        last = len(line) - 1
        out.append("".join(
            (f":orange-background[{md(t.strip())}]" if mark else md(t.strip()))
            + (" " if j < last and (t.endswith(" ") or line[j + 1][0].startswith(" ")) else "")
            for j, (t, mark) in enumerate(line)))
    while out and not out[-1]:
        out.pop()
    return "".join(x + ("  \n" if i + 1 < len(out) and out[i + 1] else "\n\n") for i, x in enumerate(out) if x).rstrip()


def render_answer(answer: Answer, index: Index | None = None, key: str = "live",
                  meta: Mapping[str, Any] | None = None) -> None:
    meta = meta or {}
    if answer.diagnostics.fallback:
        # the streamed text was mostly unsupported: say so, then show the quoted sources instead
        st.info(f":material/format_quote: {md(answer.diagnostics.fallback)}")
    st.markdown(marked_answer(answer))
    if any(not s.supported for s in answer.support):
        st.caption(":material/warning: No passage in your documents supports the highlighted sentence(s).")
    render_warnings(answer)
    if answer.standalone_query and answer.standalone_query != answer.question:
        st.caption(f"Searched for: {md(answer.standalone_query)}")
    view = SourceView(index, key, {**answer_cosines(answer), **meta.get("cosines", {})},
                      frozenset(s.citation for s in answer.support if s.supported and s.citation is not None))
    suspicious = set(answer.diagnostics.suspicious_sources)
    if answer.citations:
        render_sources("Sources", answer.citations, suspicious, view, "cited")
        top = answer.sources[0] if answer.sources else None
        if top is not None and top.number not in {c.number for c in answer.citations}:
            # the best-ranked passage is always visible, even when the answer rests on another one
            render_sources("Top source (not cited)", [top], suspicious, view, "top")
    elif answer.sources and answer.diagnostics.reason in DECLINE_NOTES:
        render_sources("Passages found", answer.sources, suspicious, view, "given")
        st.caption(DECLINE_NOTES[answer.diagnostics.reason])
    elif answer.sources:
        # the answer cites nothing: still show what it was given, so a forged passage is visible
        render_sources("Sources given to the model", answer.sources, suspicious, view, "given")
        st.caption("The answer cites none of these passages.")
    timing = meta.get("timing", {})
    if timing:
        st.caption(timing_caption(timing))
    render_trace(answer, view, timing)


def timing_caption(timing: Mapping[str, float]) -> str:
    """"4.2 s in total: loading the model 2.9 s · searching 0.1 s · writing 0.9 s · checking sources 0.3 s"."""
    steps = [(label, timing[k]) for k, label in (("load_s", "loading models"), ("search_s", "searching"),
                                                 ("write_s", "writing"), ("check_s", "checking sources"))
             if timing.get(k, 0.0) >= 0.05]
    parts = " · ".join(f"{label} {v:.1f} s" for label, v in steps)
    return f":material/timer: {timing['total_s']:.1f} s in total" + (f": {parts}" if parts else "")


def build_chat(index: Index, s: dict[str, Any]) -> ChatSession:
    config = app_config(index.name, s)
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
            ss["memory"] = make_memory(config.memory.kind, llm=llm, k=config.memory.window)
        ss["memory_key"] = mem_key
    return pipeline.chat(ss["memory"])


def stream_inert(pieces: Iterable[str]) -> None:
    """Show streamed model output as it arrives, re-rendered whole through :func:`md` (URLs stay inert)."""
    box = st.empty()
    text = ""
    for piece in pieces:
        text += piece
        box.markdown(md(text))


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


def main() -> None:
    if not access_granted():
        return
    ss = state()
    index_name = sidebar_collections()
    if index_name is None:
        empty_state()
        sidebar_upload("documents")
        return
    sidebar_upload(index_name)
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
        return
    ss["damaged"].pop(index_name, None)
    if index is None:
        st.title(md(index_name))
        st.info(f"Collection “{md(index_name)}” is empty: add files in the sidebar.")
        return
    sidebar_documents(index)
    settings = sidebar_settings()
    st.title(md(index_name))
    for watch in active_watches(store().path(index_name)):
        st.caption(f":material/visibility: Watching {code(watch.folder)}: changed files are re-indexed "
                   "automatically (`rag watch`).")
    for other, why in ss["damaged"].items():
        st.sidebar.warning(f"Collection “{md(other)}” is damaged: rebuild it ({md(why)}).")
    if st.sidebar.button("Clear conversation", key="clear_chat"):
        ss["messages"] = []
        ss.pop("memory_key", None)
        st.rerun()
    pending = ss.pop("pending_question", None)
    messages = ss["messages"]
    for i, msg in enumerate(messages):
        with st.chat_message(msg["role"]):
            if msg.get("error") is not None:
                st.error(f"Could not answer: {md(msg['error'])}")
            elif msg["role"] == "assistant":
                render_answer(msg["answer"], index, key=f"m{i}", meta=msg.get("meta"))
            else:
                st.markdown(md(msg["content"]))
                if i + 1 == len(messages) or messages[i + 1]["role"] != "assistant":
                    st.caption(":material/block: Stopped before the answer was complete (the page was used "
                               "while it was being written). Ask again to get it.")
    examples = st.empty()
    if not messages and pending is None:
        with examples.container():
            render_examples(index)
    blocked = settings["answer_mode"] == "generative" and bool(settings["model_problem"])
    # while an answer is written the box is disabled: a question sent then would stop the answer mid-way
    typed = st.chat_input("Pick a model that is on this machine (see the sidebar)" if blocked else
                          "Answering…" if pending is not None else "Ask a question about your documents",
                          disabled=blocked or pending is not None)
    if pending is not None:
        ask(index, settings, pending)
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


@st.cache_resource(max_entries=8)
def collection_examples(root: str, name: str, stamp: str) -> list[str]:
    index = get_index(root, name, stamp)
    return example_questions(index.chunks[:EXAMPLE_CHUNKS], {s: r.title for s, r in index.documents.items()})


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


def ask(index: Index, settings: dict[str, Any], question: str) -> None:
    """Answer ``question``: search, stream the text, "checking sources…" during the support check, then the answer."""
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
            with st.spinner("Searching your documents…"):
                stream = chat.stream(question)
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
        meta = {"cosines": cosines, "timing": timing}
        live.empty()
        status.empty()
        render_answer(answer, index, key=f"m{len(ss['messages'])}", meta=meta)
    ss["messages"].append({"role": "assistant", "content": answer.text, "answer": answer, "meta": meta})


main()
