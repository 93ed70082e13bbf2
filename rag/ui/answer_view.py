"""Streamlit drawing of one answer: its text, warnings, sources by document, the passage viewer and the trace.

Only layout lives here; what is drawn comes from the framework-free modules (:mod:`rag.ui.answers`,
:mod:`rag.ui.sources`, :mod:`rag.ui.viewer`, :mod:`rag.ui.trace`), every untrusted string through
:func:`rag.ui.text.md`. Widget keys carry the message's :attr:`~rag.ui.sources.SourceView.key`, so
each message's toggles stay apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping

import streamlit as st

from rag.answer.strategies import DECLINE_NOTES
from rag.types import Answer, Citation
from rag.ui.answers import (foreign_link_warning, marked_answer, suspicious_sources_warning, withheld_label,
                            withheld_warning)
from rag.ui.sources import SourceView, group_details, group_label, group_sources, passage_heading
from rag.ui.text import md
from rag.ui.trace import timing_caption, trace_markdown, trace_outline
from rag.ui.viewer import PageImage, PdfPageRenderer, ViewerError, document_chunks, highlighted_context, passage_context

PAGE_WIDTH = 640  # pixels a rendered PDF page is shown at (a whole page stays in view)


def render_answer(answer: Answer, view: SourceView, timing: Mapping[str, float] | None = None) -> None:
    """The answer with its marks and warnings, its sources (cited, top, or those it was given), timings and trace."""
    if answer.diagnostics.fallback:
        # the streamed text was mostly unsupported: say so, then show the quoted sources instead
        st.info(f":material/format_quote: {md(answer.diagnostics.fallback)}")
    st.markdown(marked_answer(answer))
    if any(not s.supported for s in answer.support):
        st.caption(":material/warning: No passage in your documents supports the highlighted sentence(s).")
    render_warnings(answer)
    if answer.standalone_query and answer.standalone_query != answer.question:
        st.caption(f"Searched for: {md(answer.standalone_query)}")
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
    render_withheld(answer, view)
    if timing:
        st.caption(timing_caption(timing))
    render_trace(answer, view, timing or {})


def render_warnings(answer: Answer) -> None:
    """Links no cited source contains, and sources that hold instructions or ask for credentials."""
    d = answer.diagnostics
    for url in d.foreign_urls:
        st.warning(foreign_link_warning(url))
    if d.suspicious_sources:
        st.warning(suspicious_sources_warning(d.suspicious_sources))


def render_withheld(answer: Answer, view: SourceView) -> None:
    """The passages kept out of the answer (flagged suspicious at ingest), their text shown as plain text."""
    hits = answer.diagnostics.withheld
    if not hits:
        return
    st.markdown("**Suspicious, not used**")
    st.warning(withheld_warning(len(hits)))
    for h in hits:
        with st.expander(withheld_label(h, view.name(h.chunk.source))):
            st.text(h.chunk.text)  # untrusted: never Markdown or HTML


def render_trace(answer: Answer, view: SourceView, timing: Mapping[str, float]) -> None:
    """What happened to the question, step by step, as a readable list (every value rendered inert)."""
    steps = trace_outline(answer, view.describe, timing)
    if not steps:
        return
    with st.expander("Trace"):
        st.markdown(trace_markdown(steps))


def render_sources(title: str, sources: Iterable[Citation], suspicious: set[int], view: SourceView,
                   section: str) -> None:
    """One expander per document (its passages inside), labelled "[1] [3] name · p. 2 · High relevance"."""
    st.markdown(f"**{title}**")
    ss = st.session_state
    for g in group_sources(list(sources), view.names):
        details_key = f"details_{view.key}_{section}_{g.numbers[0]}"
        # stays open on the reruns its own toggles and buttons cause (the live answer is redrawn from history)
        opened = bool(ss.get(details_key)) or any(ss.get(f"view_{view.key}_{section}_{n}") for n in g.numbers)
        with st.expander(group_label(g, view, suspicious), expanded=opened):
            for c in g.citations:
                render_passage(c, view, section, several=len(g.citations) > 1)
            if st.toggle("Details", key=details_key):
                st.caption(group_details(g, view))


def render_passage(c: Citation, view: SourceView, section: str, several: bool) -> None:
    """One cited passage (its heading when the document has several), and the toggle that shows it in place."""
    if several:
        st.markdown(passage_heading(c, view))
    if c.chunk.context:  # rows of a table: its header, which lies earlier in the document, above them
        st.text(c.chunk.context)
    st.text(c.quote)  # the cited sentence(s), or the whole chunk
    is_pdf = c.chunk.page is not None and c.chunk.source.lower().endswith(".pdf")
    key = f"{view.key}_{section}_{c.number}"
    if st.toggle("Show on its page" if is_pdf else "Show in the document", key=f"view_{key}"):
        render_viewer(c, view, key)


@st.cache_data(max_entries=32, show_spinner="Rendering the page…")
def render_pdf_page(path: str, mtime_ns: int, page: int, passage: str) -> PageImage:
    # `mtime_ns` makes a changed file render fresh
    return PdfPageRenderer().render(path, page, passage)


def render_viewer(citation: Citation, view: SourceView, key: str) -> None:
    """The cited page with the cited sentence highlighted (PDF), or the sentence in its document;
    previous/next passage (then the whole passage is highlighted)."""
    ss = st.session_state
    focus_key = f"focus_{key}"
    cited = citation.chunk
    chunk = view.chunks.get(ss.get(focus_key, cited.id)) or cited
    siblings = document_chunks(list(view.chunks.values()), chunk.source) or [chunk]
    ctx = passage_context(siblings, chunk, span=citation.span if chunk.id == cited.id else None)
    if not (chunk.page is not None and chunk.source.lower().endswith(".pdf") and _show_page(chunk.source, chunk.page,
                                                                                           ctx.passage)):
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


def _show_page(source: str, page: int, passage: str) -> bool:
    """Draw a PDF page with the passage highlighted; False (after saying why) when it cannot be rendered."""
    try:
        image = render_pdf_page(source, Path(source).stat().st_mtime_ns, page, passage)
    except (ViewerError, OSError) as exc:
        st.info(md(str(exc) if isinstance(exc, ViewerError) else
                   f"{Path(source).name} cannot be read ({exc}); showing the indexed text instead"))
        return False
    found = "the passage is highlighted" if image.highlighted else "the passage could not be located on it"
    st.image(image.png, caption=f"Page {image.page} of {image.pages} · {found}", width=PAGE_WIDTH, output_format="PNG")
    return True


def stream_inert(pieces: Iterable[str]) -> None:
    """Show streamed model output as it arrives, re-rendered whole through :func:`~rag.ui.text.md` (URLs stay inert)."""
    box = st.empty()
    text = ""
    for piece in pieces:
        text += piece
        box.markdown(md(text))
