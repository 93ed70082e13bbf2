"""Framework-free helpers for the Streamlit app (``ui/app.py``): upload safety, escaping, readable sources.

Kept out of the app script so they are unit-tested without a browser. Besides uploads (below):
:func:`relevance` turns a dense cosine into High/Medium/Low, :func:`group_sources` collapses an
answer's sources by document, :func:`example_questions` writes a collection's starter questions
from its own headings and titles, :func:`model_choices` says which registry models are on this
machine and how to get the others, and :func:`trace_outline` lays an answer's trace out as readable
steps. Seeing a passage on its page: :mod:`rag.serve.viewer`.

Upload names come from the browser and are untrusted. :func:`safe_filename` keeps only the
last path component, normalises it (NFKC), keeps letters, marks and digits of any script
plus ``space . _ -``, replaces everything else (controls, bidi overrides, ``/ \\ : * ? < >``)
with ``_``, strips leading and trailing dots and spaces (no hidden files) and shortens the
stem, never the extension, to :data:`MAX_NAME_BYTES` UTF-8 bytes. :func:`save_uploads` never
overwrites a different upload: a name already taken by other bytes gets ``-2``, ``-3``, ...

Example:
    >>> from pathlib import Path
    >>> safe_upload_path(Path("/data/uploads"), "../../etc/passwd.txt").as_posix()
    '/data/uploads/passwd.txt'
    >>> safe_filename("議事録 2024?.md")
    '議事録 2024_.md'
    >>> print(escape_markdown("**bold** <b>x</b>"))
    \\*\\*bold\\*\\* &lt;b&gt;x&lt;/b&gt;
"""

from __future__ import annotations

import html
import logging
import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

from rag.answer.gate import DEFAULT_MIN_DENSE
from rag.ingest.loaders import SUPPORTED_EXTENSIONS
from rag.types import Choice, Chunk, Citation

if TYPE_CHECKING:  # pragma: no cover
    from rag.pipeline import PipelineConfig

logger = logging.getLogger(__name__)

DEFAULT_UPLOAD_MB = 50
MAX_NAME_BYTES = 200  # file systems allow 255 bytes per name; this leaves room for "-N" suffixes
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~$:])")
_EXTENSION = re.compile(r"\.[^\W_]{1,16}")
_KEPT_PUNCTUATION = frozenset(" ._-")


class UploadError(ValueError):
    """An uploaded file that is refused; the message names the file and what to do."""


def _base_name(name: str) -> str:
    """The last path component, NFKC-normalised, without leading/trailing dots and spaces."""
    base = unicodedata.normalize("NFKC", name).replace("\\", "/").split("/")[-1]
    return base.strip(" .")


def _clean(text: str) -> str:
    """Keep letters, marks, digits (any script) and ``space . _ -``; each other run becomes ``_``."""
    marked = "".join(ch if ch in _KEPT_PUNCTUATION or unicodedata.category(ch)[0] in "LMN" else "\0"
                     for ch in text)
    return re.sub("\0+", "_", marked)


def _fit(stem: str, tail: str) -> str:
    """``stem + tail`` with the stem shortened (on a character boundary) to fit MAX_NAME_BYTES."""
    room = MAX_NAME_BYTES - len(tail.encode())
    short = stem.encode()[:room].decode(errors="ignore").rstrip(" .")
    return (short or "upload") + tail


def _split(safe_name: str) -> tuple[str, str]:
    stem, dot, ext = safe_name.rpartition(".")
    return (stem, dot + ext) if dot and stem and _EXTENSION.fullmatch(dot + ext) else (safe_name, "")


def safe_filename(name: str) -> str:
    """A file name with no directory parts, no surprising characters and its extension kept.

    Example:
        >>> safe_filename("C:\\\\Users\\\\me\\\\ｒｅｐｏｒｔ．ｔｘｔ")
        'report.txt'
        >>> long = safe_filename("x" * 300 + ".pdf")
        >>> long.endswith(".pdf"), len(long.encode()) <= MAX_NAME_BYTES
        (True, True)
    """
    stem, ext = _split(_base_name(name))
    stem = _clean(stem).strip(" .")
    if not stem:
        raise UploadError(f"file name {name!r} is not usable; rename the file and upload it again")
    return _fit(stem, ext)


def safe_upload_path(upload_dir: Path, name: str) -> Path:
    """Where an upload is written: always directly inside ``upload_dir`` (no traversal)."""
    root = Path(os.path.abspath(upload_dir))
    path = Path(os.path.abspath(root / safe_filename(name)))
    if path.parent != root:
        raise UploadError(f"file name {name!r} escapes the upload folder")
    return path


def check_upload(name: str, size: int, max_mb: float = DEFAULT_UPLOAD_MB) -> None:
    """Raise :class:`UploadError` for an unsupported type or an oversized file."""
    ext = Path(_base_name(name)).suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        raise UploadError(f"{name}: unsupported file type {ext or '(none)'!r}; "
                          f"supported: {', '.join(SUPPORTED_EXTENSIONS)}")
    if size > max_mb * 1024 * 1024:
        raise UploadError(f"{name}: {size / 1048576:.1f} MB is over the {max_mb:g} MB upload limit; "
                          "split the file or ingest it with `rag ingest` (limit --max-file-mb)")
    if size == 0:
        raise UploadError(f"{name}: the file is empty")


def escape_markdown(text: str) -> str:
    """Render untrusted text (documents, model output) literally in Markdown.

    HTML is entity-escaped and Markdown syntax backslash-escaped, so a document cannot
    inject links, images (which could leak data to a remote server) or HTML.
    """
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def save_uploads(files: "list[tuple[str, bytes]]", upload_dir: Path, max_mb: float = DEFAULT_UPLOAD_MB,
                 replace: bool = False) -> "tuple[list[Path], list[tuple[str, str]]]":
    """Write accepted uploads under ``upload_dir``; return ``(saved paths, (name, error) pairs)``.

    A refused file never stops the others. Each file is written to a temporary name and
    renamed, so a failure never leaves a half-written document behind. A different upload is
    never overwritten: identical bytes reuse the existing file, other bytes get a numbered
    name (``notes-2.md``). ``replace=True`` overwrites an existing file only when the upload's
    name is exactly that file's name and no upload in this batch wrote it.

    Example:
        >>> d = Path(tempfile.mkdtemp())
        >>> saved, errors = save_uploads([("報告.txt", b"a"), ("報告.txt", b"b"), ("x.exe", b"c")], d)
        >>> [p.name for p in saved], [n for n, _ in errors]
        (['報告.txt', '報告-2.txt'], ['x.exe'])
    """
    upload_dir.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []
    errors: list[tuple[str, str]] = []
    for name, data in files:
        try:
            check_upload(name, len(data), max_mb)
            base = safe_upload_path(upload_dir, name)
            may_replace = replace and base not in saved and _same_name(name, base.name)
            path = _store(data, base, may_replace)
            if path not in saved:
                saved.append(path)
        except UploadError as exc:
            errors.append((name, str(exc)))
        except OSError as exc:
            errors.append((name, f"{name}: could not be saved ({exc.strerror or exc})"))
    return saved, errors


def _same_name(name: str, safe_name: str) -> bool:
    """True if the upload's own name (last component, NFC) needed no cleaning at all."""
    return unicodedata.normalize("NFC", name.replace("\\", "/").split("/")[-1]) == safe_name


def _numbered(base: Path, n: int) -> Path:
    if n == 1:
        return base
    stem, ext = _split(base.name)
    return base.with_name(_fit(stem, f"-{n}{ext}"))


def _holds(path: Path, data: bytes) -> bool:
    try:
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False


def _store(data: bytes, base: Path, may_replace: bool) -> Path:
    """Write ``data`` at ``base`` or the first free numbered name; never clobber other bytes."""
    fd, tmp_name = tempfile.mkstemp(dir=base.parent, prefix=".upload-", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        n = 0
        while True:
            n += 1
            path = _numbered(base, n)
            if _holds(path, data):
                return path
            if n == 1 and may_replace:
                os.replace(tmp, path)
                logger.info("replaced upload %s", path)
                return path
            if _publish(tmp, path):
                if n > 1:
                    logger.info("%s is taken by another upload; saved as %s", base.name, path.name)
                return path
    finally:
        tmp.unlink(missing_ok=True)


def _publish(tmp: Path, path: Path) -> bool:
    """Give the complete ``tmp`` the name ``path`` only if that name is free (atomic); else False."""
    try:
        os.link(tmp, path)  # fails if path exists, and never shows a half-written file
        return True
    except FileExistsError:
        return False
    except OSError:  # no hard links on this file system: reserve the name, then rename over it
        pass
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return False
    try:
        os.replace(tmp, path)
    except OSError:
        path.unlink(missing_ok=True)
        raise
    return True


# -- the chat model, with a signal at the end of its text ------------------------------------
# -- readable sources ------------------------------------------------------------------------
HIGH_RELEVANCE = 0.5  # all-MiniLM-L6-v2: a passage that answers the question scores 0.4-0.8 (rag.answer.gate)


class Relevance(Choice):
    """A human cue for how well a passage matches the question, from its dense cosine.

    ``High`` at cosine >= 0.5, ``Medium`` from the relevance gate's 0.3, ``Low`` below (it can
    still be shown: the gate also lets a passage through on the question's terms).
    """

    HIGH = "High"
    MEDIUM = "Medium"
    LOW = "Low"


def relevance(cosine: float | None) -> Relevance | None:
    """The :class:`Relevance` of a dense cosine (None when there is none).

    Example:
        >>> [str(relevance(x)) for x in (0.71, 0.42, 0.12)], relevance(None)
        (['High', 'Medium', 'Low'], None)
    """
    if cosine is None:
        return None
    if cosine >= HIGH_RELEVANCE:
        return Relevance.HIGH
    return Relevance.MEDIUM if cosine >= DEFAULT_MIN_DENSE else Relevance.LOW


def relevance_label(cosine: float | None, supports: bool = False) -> str:
    """The source list's cue: "High relevance" ... from the passage's cosine to the question.

    A passage that the support check matched to an answer sentence is never called "Low" (an FAQ
    chunk that covers several questions scores a low cosine against any one of them, yet holds the
    answer): it reads "Supports the answer".

    Example:
        >>> relevance_label(0.71), relevance_label(0.12), relevance_label(0.12, supports=True), relevance_label(None)
        ('High relevance', 'Low relevance', 'Supports the answer', '')
    """
    cue = relevance(cosine)
    if supports and cue in (None, Relevance.LOW):
        return "Supports the answer"
    return "" if cue is None else f"{cue} relevance"


def passage_cosines(index: object, query_vector: "object", chunk_ids: Iterable[str]) -> dict[str, float]:
    """Dense cosine of each chunk (by id) in ``index`` to a unit query vector (what dense retrieval scores).

    ``index`` is a loaded :class:`~rag.index.store.Index`; ids not in it are left out.
    """
    import numpy as np

    rows = {c.id: i for i, c in enumerate(index.chunks)}  # type: ignore[attr-defined]
    wanted = [cid for cid in dict.fromkeys(chunk_ids) if cid in rows]
    if not wanted:
        return {}
    vectors = index.embeddings[[rows[cid] for cid in wanted]]  # type: ignore[attr-defined]
    sims = vectors @ np.asarray(query_vector, dtype=np.float32)
    return {cid: float(s) for cid, s in zip(wanted, sims)}


@dataclass(frozen=True)
class SourceGroup:
    """An answer's sources from one document: its name relative to the collection and its passages."""

    source: str
    name: str
    citations: tuple[Citation, ...]

    @property
    def numbers(self) -> tuple[int, ...]:
        return tuple(c.number for c in self.citations)

    @property
    def pages(self) -> tuple[int, ...]:
        return tuple(sorted({c.chunk.page for c in self.citations if c.chunk.page is not None}))


def group_sources(citations: Sequence[Citation], relative: "Mapping[str, str] | None" = None) -> list[SourceGroup]:
    """Collapse citations by document, in the order each document first appears.

    ``relative`` maps a source path to the name shown (the path relative to the collection's
    folder, :class:`rag.serve.service.SourcePaths`); by default the file name.

    Example:
        >>> a = Chunk("a", "x", "d1", "/docs/manual.pdf", 3, 0, 1, 4)
        >>> b = Chunk("b", "y", "d2", "/docs/faq.md", None, 0, 1, 0)
        >>> c = Chunk("c", "z", "d1", "/docs/manual.pdf", 1, 0, 1, 0)
        >>> groups = group_sources([Citation(1, a, 0.1), Citation(2, b, 0.1), Citation(3, c, 0.1)])
        >>> [(g.name, g.numbers, g.pages) for g in groups]
        [('manual.pdf', (1, 3), (1, 3)), ('faq.md', (2,), ())]
    """
    groups: dict[str, list[Citation]] = {}
    for c in citations:
        groups.setdefault(c.chunk.source, []).append(c)
    names = relative or {}
    return [SourceGroup(src, names.get(src) or Path(src).name, tuple(cs)) for src, cs in groups.items()]


# -- starter questions -----------------------------------------------------------------------
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$", re.MULTILINE)
_TERM = re.compile(r"^\s{0,3}\*\*([^*\n]{2,40})\*\*\s*[:\u2014-]", re.MULTILINE)
MAX_QUESTION_CHARS = 90


def _plain(text: str) -> str:
    return " ".join(re.sub(r"[*_`]+", "", text).split()).strip(" :.-")


def _lower_first(text: str) -> str:
    """``Adding documents`` -> ``adding documents``; ``FAISS index`` and ``PDF`` stay as they are."""
    return text if len(text) > 1 and text[1].isupper() else text[:1].lower() + text[1:]


def _doc_title(source: str, doc_chunks: Sequence[Chunk], titles: Mapping[str, str]) -> str:
    """A document's title, else its first line when that reads like one (short, no full stop), else its file stem."""
    title = _plain(titles.get(source) or (doc_chunks[0].title if doc_chunks else ""))
    stem = Path(source).stem
    if title and title != stem:
        return title
    first = min(doc_chunks, key=lambda c: c.index).text.strip().split("\n", 1)[0] if doc_chunks else ""
    first = _plain(first)
    if 3 <= len(first) <= 60 and not first.endswith((".", ",", ";")):
        return first
    return title or stem


def example_questions(chunks: Sequence[Chunk], titles: Mapping[str, str] | None = None, n: int = 3) -> list[str]:
    """Up to ``n`` starter questions written from a collection's own headings, terms and titles.

    Markdown headings that are questions are kept as they are; other sub-headings become "What
    should I know about …?", bold glossary terms (``**Term**:``) "What does “Term” mean?", and a
    document with nothing else its title or title-like first line ("What does “Title” cover?").
    Documents take turns, so the questions come from different documents; the order is deterministic.

    Example:
        >>> c1 = Chunk("1", "# Guide\\n\\n## Adding documents\\nText.", "d1", "/g.md", None, 0, 30, 0)
        >>> c2 = Chunk("2", "## How large can a file be?\\n50 MB.", "d2", "/faq.md", None, 0, 30, 0)
        >>> c3 = Chunk("3", "**BM25**: a ranking function.", "d3", "/gloss.md", None, 0, 30, 0)
        >>> example_questions([c1, c2, c3])
        ['How large can a file be?', 'What should I know about adding documents?', 'What does “BM25” mean?']
    """
    per_doc: dict[str, list[str]] = {}
    for c in sorted(chunks, key=lambda c: (c.source, c.index)):
        found = per_doc.setdefault(c.source, [])
        for m in _HEADING.finditer(c.text):
            level, heading = len(m.group(1)), _plain(m.group(2))
            if not heading:
                continue
            if heading.endswith("?"):
                found.append(heading)
            elif level > 1:
                found.append(f"What should I know about {_lower_first(heading)}?")
        for m in _TERM.finditer(c.text):
            term = _plain(m.group(1))
            if term:
                found.append(f"What does “{term}” mean?")
    for source, found in per_doc.items():
        if not found:
            title = _doc_title(source, [c for c in chunks if c.source == source], titles or {})
            if title:
                found.append(f"What does “{title}” cover?")
    queues = [list(dict.fromkeys(q for q in qs if len(q) <= MAX_QUESTION_CHARS)) for qs in per_doc.values()]
    out: list[str] = []
    while len(out) < n and any(queues):
        for q in queues:
            if q and len(out) < n:
                question = q.pop(0)
                if question not in out:
                    out.append(question)
    return out


# -- models ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelChoice:
    """A registry model as the picker shows it: usable offline now or not, why, and the command that gets it."""

    name: str
    description: str
    available: bool
    status: str
    get_command: str
    packaged: bool = False

    @property
    def label(self) -> str:
        if self.available:
            return self.name
        return f"{self.name} ({'not installed' if self.packaged else 'not downloaded'})"


def model_choices(models_dir: str | Path | None = None) -> list[ModelChoice]:
    """Every registry model, with whether it works offline now (packaged, assembled or pulled) and how to get it.

    Reads :func:`rag.generation.models.availability` and :func:`~rag.generation.models.install_hint`.

    Example:
        >>> {m.name: m.available for m in model_choices()}["smollm2-135m"]  # packaged with the app
        True
    """
    from rag.generation.models import REGISTRY, availability, install_hint, names

    out = []
    for name in names():
        spec = REGISTRY[name]
        ok, status = availability(spec, models_dir)
        out.append(ModelChoice(name, spec.description, ok, status, install_hint(spec), spec.packaged))
    return out


# -- the app's settings -----------------------------------------------------------------------------
def _defaults() -> dict[str, Any]:
    from rag.pipeline import GenerationConfig, MemoryConfig, RetrievalConfig  # noqa: PLC0415

    r, g, m = RetrievalConfig(), GenerationConfig(), MemoryConfig()
    return {"answer_mode": str(g.mode), "model": g.model, "model_problem": "", "temperature": g.temperature,
            "memory": m.kind, "mode": str(r.mode), "k": r.k, "fusion": str(r.fusion), "rrf_k": r.rrf_k,
            "alpha": r.alpha, "rerank": False, "reranker_path": "", "rewriter": "condense", "router": "none",
            "chitchat": False}


#: the sidebar's settings as they start: the pipeline config's own defaults (one source for both)
DEFAULT_SETTINGS: dict[str, Any] = _defaults()


def app_config(index: str, s: Mapping[str, Any]) -> "PipelineConfig":
    """The sidebar settings as the pipeline's config (the same builder as the CLI, the API and the eval).

    Example:
        >>> cfg = app_config("samples", DEFAULT_SETTINGS)
        >>> cfg.index, cfg.retrieval.k, str(cfg.generation.context), cfg.plugins.rewriter
        ('samples', 5, 'evidence', 'condense')
    """
    from rag.pipeline import (GenerationConfig, MemoryConfig, PipelineConfig, PluginConfig,  # noqa: PLC0415
                              RetrievalConfig)

    router = ",".join(n for n in (["chitchat"] if s["chitchat"] else []) +
                      ([s["router"]] if s["router"] != "none" else []))
    return PipelineConfig(
        index=index,
        retrieval=RetrievalConfig(mode=s["mode"], fusion=s["fusion"], rrf_k=s["rrf_k"], alpha=s["alpha"], k=s["k"]),
        generation=GenerationConfig(mode=s["answer_mode"], model=s["model"], temperature=s["temperature"]),
        memory=MemoryConfig(kind=s["memory"]),
        plugins=PluginConfig(rewriter=s["rewriter"], router=router or None))


# -- the trace, readable ---------------------------------------------------------------------
_TIMING_LABELS = {"load_s": "loading models", "route_s": "route", "rewrite_s": "rewrite", "retrieve_s": "search",
                  "fuse_s": "fusion", "evidence_s": "evidence", "answer_check_s": "answer decision",
                  "generate_s": "writing", "check_s": "checking sources", "total_s": "total"}
# listed in this order (the labels' order), whatever order the steps recorded them in


def _ms(seconds: float) -> str:
    return f"{1000 * seconds:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _scores_text(scores: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {v:.3f}" if k == "dense" else f"{k} {v:.4g}" for k, v in scores.items())


def trace_outline(answer: object, describe: "Callable[[str, str], str] | None" = None,
                  app_timings: Mapping[str, float] | None = None) -> list[tuple[int, str, str]]:
    """An answer's path as ``(depth, label, text)``: query, route, rewrites, hits per retriever, gate, prompt, timings.

    ``label`` is fixed wording; ``text`` holds untrusted strings (the query, file names) and must
    be escaped by whoever renders it. ``describe(chunk_id, location)`` names a hit (default: its
    recorded location); ``app_timings`` adds what the app measured (``load_s``, ``check_s``, ``total_s``).

    Example:
        >>> from rag.types import Answer, Diagnostics
        >>> steps = trace_outline(Answer(question="q?", text="a", diagnostics=Diagnostics(retrieved=5, relevant=2)))
        >>> [label for _, label, _ in steps]
        ['Question', 'Relevance gate']
        >>> steps[1][2]
        '2 of 5 passages are relevant enough to answer from'
    """
    from rag.answer.gate import DEFAULT_MIN_DENSE as gate_cosine

    name = describe or (lambda _cid, location: location)
    trace = getattr(answer, "trace", None)
    d = answer.diagnostics  # type: ignore[attr-defined]
    steps: list[tuple[int, str, str]] = [(0, "Question", answer.question)]  # type: ignore[attr-defined]
    if trace is not None:
        if trace.router is not None and trace.route is not None:
            route = trace.route
            target = "answer directly" if str(route.action) == "direct" else (route.collection or "default collection")
            score = f", score {route.score:.3f}" if route.score is not None else ""
            steps.append((0, "Route", f"{trace.router} → {target} ({route.reason}{score})"))
        n = len(trace.queries)
        steps.append((0, "Rewrite", f"{trace.rewriter} ({trace.rewrite_method}), {n} quer{'y' if n == 1 else 'ies'}"))
        for i, q in enumerate(trace.queries, 1):
            steps.append((1, f"q{i} ({q.kind})", q.text + (f" | dense side: {q.dense}" if q.dense else "")))
        for i, r in enumerate(trace.retrievals, 1):
            steps.append((0, f"Search q{i}", f"{r.retriever} on {r.collection}, {len(r.hits)} hits, {_ms(r.seconds)}"))
            for h in r.hits:
                steps.append((1, f"#{h.rank}", f"{name(h.chunk_id, h.location)} ({_scores_text(h.scores)})"))
        if len(trace.retrievals) > 1 and trace.fused:
            steps.append((0, "Fused over the queries (RRF)", f"{len(trace.fused)} hits"))
            for h in trace.fused:
                steps.append((1, f"#{h.rank}", f"{name(h.chunk_id, h.location)} ({_scores_text(h.scores)})"))
    if d.retrieved or d.relevant:
        steps.append((0, "Relevance gate",
                      f"{d.relevant} of {d.retrieved} passages are relevant enough to answer from"))
        if d.top_dense is not None:
            steps.append((1, "best dense cosine", f"{d.top_dense:.3f} (gate {gate_cosine:g})"))
    if d.reason:
        steps.append((1, "outcome", d.reason))
    if d.prompt_tokens:
        extra = (f", {d.chunks_dropped} dropped for the token budget" if d.chunks_dropped else "") + \
                (", the last one truncated" if d.truncated else "")
        steps.append((0, "Prompt", f"{d.prompt_tokens} tokens, {d.sources_in_prompt} sources{extra}"))
    if d.decision:
        said = {"answer": "the sources answer the question", "contradicted": "the sources contradict the question's "
                "premise: answered No", "not found": "the sources do not answer the question: declined"}
        score = f" (score {d.decision_score:+.2f}, threshold {d.decision_threshold:+.2f})" \
            if d.decision_score is not None and d.decision_threshold is not None else ""
        steps.append((0, "Answer decision", f"{said.get(d.decision, d.decision)}{score}"))
        steps.append((1, "rule", d.decision_rule))
    if d.answer_check is not None:
        steps.append((1 if d.decision else 0, "Answer check",
                      f"the model's log-odds that the sources answer the question, beyond a content-free one: "
                      f"{d.answer_check:+.2f}"))
    cites = [(label, nums) for label, nums in (("cited by the model", d.explicit_citations),
                                                ("matched by the support check", d.inferred_citations),
                                                ("removed (no such source)", d.invalid_citations)) if nums]
    if cites:
        steps.append((0, "Citations",
                      "; ".join(f"{label} {', '.join(f'[{n}]' for n in nums)}" for label, nums in cites)))
    timings = {**(trace.timings if trace is not None else {}), **d.timings, **(app_timings or {})}
    shown = [(k, timings[k]) for k in _TIMING_LABELS if k in timings]
    if shown:
        steps.append((0, "Timings", " · ".join(f"{_TIMING_LABELS[k]} {_ms(float(v))}" for k, v in shown)))
    for note in (trace.notes if trace is not None else ()):
        steps.append((0, "Note", note))
    return steps
