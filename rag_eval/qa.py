"""Answer benchmark over an extractive QA set (COVID-QA layout): correct, cited, declined, invented.

The dataset folder holds ``documents/<doc_id>.txt`` (the article, title on line 1) and
``questions.jsonl`` (``id``, ``question``, ``answers`` [one reference span], ``doc_id``,
``answer_start``, ``split``); see ``../shared/data/covid-qa/README.md``.

:func:`run_qa_benchmark` runs the real pipeline twice over the same questions:

* **answerable**: against an index of the whole collection.  ``correct`` judges the answer by
  *recall* of the reference, because generated answers are verbose (:func:`judge`);
  ``cited_gold`` asks whether a cited chunk overlaps the gold span in the gold document.
* **unanswerable**: against the same collection without the gold documents of the evaluated
  questions (:func:`without_documents`; same embeddings, so nothing is re-embedded).  A decline is right; an answer that still matches the
  reference came from another article (``answered_elsewhere``, not counted as invented);
  any other answer is ``invented``.

Questions that only make sense with their article known ("How do many viruses resolve
this?") are flagged (:func:`context_dependent`) and reported separately, never dropped.

Example:
    >>> judge("The incubation period is 5 days [1].", "5 days").correct
    True
    >>> normalize_answer("The  Valley of Death!")
    'valley of death'
    >>> round(token_f1("a valley of death", "valley of death between strides"), 3)
    0.75
"""

from __future__ import annotations

import json
import logging
import re
import statistics
import string
import time
from collections import Counter
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from rag.answer.citecheck import strip_citations
from rag.answer.safety import strip_scaffolding
from rag.text import CITE_RE, STOPWORDS, english_stemmer

from .answers import dataset_doc_id
from .datasets import BenchDocument, Dataset, read_jsonl

logger = logging.getLogger(__name__)

CONTEXT_WORDS_RE = re.compile(r"\b(this|these|those)\b", re.IGNORECASE)
RECALL_THRESHOLD = 0.5
_ARTICLES_RE = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)
_PUNCT_SPLIT_RE = re.compile(f"[{re.escape(string.punctuation)}]")
#: a parenthetical that cites literature: "(Kim et al., 2008; Stolz et al., 2019)", "(Becker, 2006)";
#: COVID-QA's reference spans keep them, and an answer is not expected to repeat them.  Unclosed at the
#: end of a span too ("... (Pattemore et al.").  "(in 2002)" or "(range 5-27 days)" stay.
_BIBLIO_RE = re.compile(r"\s*\((?=[^()]*(?:\bet al\b|\b[A-Z][a-z]+,? (?:1[89]|20)\d\d[a-z]?\b))[^()]*\)?")
_NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}


# -- data ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QAQuestion:
    """One question with its single extractive reference span in its gold document."""

    qid: str
    question: str
    answer: str
    doc_id: str
    answer_start: int
    split: str

    @property
    def answer_end(self) -> int:
        return self.answer_start + len(self.answer)

    @property
    def context_dependent(self) -> bool:
        """Written while reading one article ("this", "these", "those"): ambiguous against a corpus."""
        return bool(CONTEXT_WORDS_RE.search(self.question))

    def in_chunk(self, chunk: Any) -> bool:
        """Whether ``chunk`` comes from this question's article and overlaps its reference span."""
        return (dataset_doc_id(chunk.source) == self.doc_id
                and overlaps(chunk.start, chunk.end, self.answer_start, self.answer_end))

    def in_span(self, citation: Any) -> bool:
        """Whether a citation's own span (its sentence, or its whole chunk) overlaps the reference span."""
        start, end = citation.span
        return (dataset_doc_id(citation.chunk.source) == self.doc_id
                and overlaps(start, end, self.answer_start, self.answer_end))


@dataclass(frozen=True)
class QADataset:
    name: str
    documents: tuple[BenchDocument, ...]
    questions: tuple[QAQuestion, ...]

    def corpus(self) -> Dataset:
        """The documents as a retrieval :class:`Dataset` (no queries) for :func:`rag_eval.retrieval.build_index`."""
        return Dataset(name=self.name, documents=self.documents, queries={}, qrels={})


def load_qa(path: str | Path, name: str | None = None) -> QADataset:
    """Read ``documents/*.txt`` and ``questions.jsonl``; each document's text is the file, exactly.

    Offsets in ``answer_start`` index that text, so chunk offsets line up with the gold span;
    a span that does not sit at its offset is an error naming the question.
    """
    root = Path(path)
    qfile, ddir = root / "questions.jsonl", root / "documents"
    if not qfile.is_file() or not ddir.is_dir():
        raise FileNotFoundError(f"{root} is not a QA folder: it needs questions.jsonl and documents/<doc_id>.txt")
    docs: dict[str, BenchDocument] = {}
    for f in sorted(ddir.glob("*.txt")):
        text = f.read_text(encoding="utf-8")
        docs[f.stem] = BenchDocument(doc_id=f.stem, title=text.split("\n", 1)[0].strip(), text=text)
    questions = []
    need = ("id", "question", "answers", "doc_id", "answer_start")
    for lineno, r in read_jsonl(qfile, what="id, question, answers, doc_id and answer_start",
                                check=lambda r: all(k in r for k in need)):
        answers = r["answers"]
        if not isinstance(answers, list) or not answers or not isinstance(answers[0], str):
            raise ValueError(f"{qfile}:{lineno}: 'answers' must be a non-empty list of strings")
        doc_id, start = str(r["doc_id"]), int(r["answer_start"])  # type: ignore[call-overload]
        if doc_id not in docs:
            raise ValueError(f"{qfile}:{lineno}: question {r['id']} names document {doc_id}, "
                             f"but {ddir}/{doc_id}.txt does not exist")
        text = docs[doc_id].text
        if text[start:start + len(answers[0])] != answers[0]:
            raise ValueError(f"{qfile}:{lineno}: question {r['id']}'s answer is not at offset {start} of {doc_id}.txt")
        questions.append(QAQuestion(qid=str(r["id"]), question=str(r["question"]).strip(), answer=answers[0],
                                    doc_id=doc_id, answer_start=start, split=str(r.get("split", "all"))))
    return QADataset(name=name or root.resolve().name, documents=tuple(docs.values()), questions=tuple(questions))


def select(ds: QADataset, split: str | None, limit: int | None = None, seed: int | None = None) -> list[QAQuestion]:
    """The split's questions in file order: the first ``limit``, or with ``seed`` a seeded random
    sample of ``limit`` (spread over the articles; kept in file order).  ``split`` None or "all" = every question."""
    splits = sorted({q.split for q in ds.questions})
    if split not in (None, "all") and split not in splits:
        raise ValueError(f"unknown split {split!r}; this dataset has: {', '.join(splits)} (or 'all')")
    chosen = [q for q in ds.questions if split in (None, "all") or q.split == split]
    if limit and seed is not None and limit < len(chosen):
        import random  # noqa: PLC0415

        keep = sorted(random.Random(seed).sample(range(len(chosen)), limit))
        return [chosen[i] for i in keep]
    return chosen[:limit] if limit else chosen


def without_documents(index: Any, doc_ids: Iterable[str], name: str) -> Any:
    """A copy of a benchmark ``index`` (sources ``dataset:doc_id``) without the given documents, in memory.

    Reuses the stored embeddings, so the unanswerable setting costs no re-embedding.
    """
    from rag.index.store import Index  # noqa: PLC0415

    drop = set(doc_ids)
    keep = [i for i, c in enumerate(index.chunks) if dataset_doc_id(c.source) not in drop]
    docs = {k: v for k, v in index.documents.items() if dataset_doc_id(v.source) not in drop}
    return Index(name, index.settings, [index.chunks[i] for i in keep], index.embeddings[keep],
                 [index.tokens[i] for i in keep], docs)


# -- judging (pure) ----------------------------------------------------------------------------


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces
    (Rajpurkar et al. 2016, the official SQuAD v1.1 evaluation script)."""
    text = _ARTICLES_RE.sub(" ", text.lower().translate(_PUNCT))
    return " ".join(text.split())


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token F1 between normalised prediction and reference."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    common = sum((Counter(pred) & Counter(ref)).values())
    if not pred or not ref or common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def strip_references(text: str) -> str:
    """``text`` without literature citations ("(Kim et al., 2008)") or citation markers ("[3]", "[23, 24]").

    Example:
        >>> strip_references("occur after clearance (Kim et al., 2008; Stolz et al., 2019) in part [4].")
        'occur after clearance in part.'
    """
    return strip_citations(_BIBLIO_RE.sub("", text))


def content_tokens(text: str) -> list[str]:
    """Content tokens for recall: lower case, split at punctuation, number words as digits, no stop
    words, Snowball-stemmed (the BM25 analyzer's stemmer: "infections" counts as "infection").

    Unlike :func:`normalize_answer` (SQuAD deletes punctuation, so "11-13" becomes "1113"), a range,
    a hyphenated term or "(TNF)-α" is split into its parts, and "five" counts as "5", so a correct
    answer worded differently ("11 to 13 days, from five to 27") is not judged wrong.

    Example:
        >>> content_tokens("The median is 11-13 days (range five-27).")
        ['median', '11', '13', 'day', 'rang', '5', '27']
    """
    text = _ARTICLES_RE.sub(" ", _PUNCT_SPLIT_RE.sub(" ", text.lower()))
    return english_stemmer().stemWords([_NUMBER_WORDS.get(t, t) for t in text.split() if t not in STOPWORDS])


def content_recall(prediction: str, reference: str) -> float:
    """Share of the reference's content tokens (with multiplicity) found in the prediction."""
    ref = Counter(content_tokens(reference))
    if not ref:
        return 0.0
    got = Counter(content_tokens(prediction))
    return sum((ref & got).values()) / sum(ref.values())


@dataclass(frozen=True)
class Verdict:
    correct: bool
    contains: bool
    recall: float
    f1: float


def judge(answer: str, reference: str, recall_threshold: float = RECALL_THRESHOLD) -> Verdict:
    """Correct when the answer contains the normalised reference or covers ``recall_threshold`` of
    its content tokens.  Citation markers and literature citations are removed from both first
    (:func:`strip_references`)."""
    plain = strip_references(answer)
    reference = strip_references(reference) or reference
    contains = bool(normalize_answer(reference)) and normalize_answer(reference) in normalize_answer(plain)
    recall = content_recall(plain, reference)
    return Verdict(correct=contains or recall >= recall_threshold, contains=contains, recall=recall,
                   f1=token_f1(plain, reference))


def opening_verdict(text: str) -> str:
    """"yes" or "no" when an answer opens with that word, else "" (pure).

    Example:
        >>> opening_verdict("No: hidden files are skipped [1]."), opening_verdict("Nobody knows."), opening_verdict("")
        ('no', '', '')
    """
    m = re.match(r"\W*(yes|no)\b", text, re.I)
    return m.group(1).lower() if m else ""


def overlaps(start: int, end: int, gold_start: int, gold_end: int) -> bool:
    return start < gold_end and gold_start < end


# -- running -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class QARow:
    """One judged answer (what the report shows and writes)."""

    qid: str
    setting: str            # "answerable" | "unanswerable"
    question: str
    reference: str
    answer: str
    declined: bool
    correct: bool
    recall: float
    f1: float
    cosine: float | None
    cited_gold: bool
    retrieved_gold: bool
    scaffolding: bool
    context_dependent: bool
    citations: tuple[str, ...]
    ttft_s: float
    answer_s: float
    mode: str = ""
    reason: str = ""
    fallback: bool = False
    generated_correct: bool | None = None   # the generated text's verdict when a fallback replaced it
    answer_check: float | None = None       # the model's Y/N log-odds that the sources answer it
    prompt_tokens: int = 0                  # the answer prompt's length (0: no prompt, e.g. extractive)
    cited_gold_span: bool = False           # a cited sentence (or chunk) itself overlaps the gold span
    decision_score: float | None = None     # the answer decision's log-odds that the evidence answers it
    ragas: tuple[tuple[str, float | None], ...] = ()   # (metric, value or None if missing), with --ragas

    @property
    def invented(self) -> bool:
        return self.setting == "unanswerable" and not self.declined and not self.correct


def ask(answerer: Any, q: QAQuestion, setting: str, scorer: Any | None = None) -> QARow:
    """Stream one answer through the real pipeline, timing the first piece and the whole answer.

    With a :class:`rag_eval.scoring.AnswerScorer`, an answered (not declined) answerable question is
    also scored with its Ragas metrics (:func:`ragas_scores`), after the timings.
    """
    t0 = time.perf_counter()
    stream = answerer.stream(q.question)
    ttft = None
    for _piece in stream:
        if ttft is None:
            ttft = time.perf_counter() - t0
    answer = stream.answer
    total = time.perf_counter() - t0
    verdict = judge(answer.text, q.answer) if not answer.declined else Verdict(False, False, 0.0, 0.0)

    cited = tuple(f"{dataset_doc_id(c.chunk.source)}[{c.chunk.start}:{c.chunk.end}]" for c in answer.citations)
    d = answer.diagnostics
    generated = judge(strip_scaffolding(d.raw)[0], q.answer).correct if d.fallback else None
    ragas = ragas_scores(scorer, q, answer) if scorer is not None and setting == "answerable" else ()
    return QARow(qid=q.qid, setting=setting, question=q.question, reference=q.answer.strip(), answer=answer.text,
                 declined=answer.declined, correct=verdict.correct, recall=round(verdict.recall, 4),
                 f1=round(verdict.f1, 4), cosine=None,
                 cited_gold=not answer.declined and any(q.in_chunk(c.chunk) for c in answer.citations),
                 retrieved_gold=any(q.in_chunk(c.chunk) for c in answer.sources),
                 scaffolding=bool(getattr(d, "scaffolding_removed", 0)), context_dependent=q.context_dependent,
                 citations=cited, ttft_s=round(ttft if ttft is not None else total, 3), answer_s=round(total, 3),
                 mode=str(answer.mode), reason=str(d.reason or ""), fallback=bool(d.fallback),
                 generated_correct=generated, answer_check=d.answer_check, ragas=ragas,
                 prompt_tokens=int(d.prompt_tokens or 0), decision_score=d.decision_score,
                 cited_gold_span=not answer.declined and any(q.in_span(c) for c in answer.citations))


def ragas_scores(scorer: Any, q: QAQuestion, answer: Any) -> tuple[tuple[str, float | None], ...]:
    """``(metric, value)`` of ``scorer``'s Ragas metrics for one answer (value None when missing);
    nothing for a decline.  The reference is the gold span, the reference id its article, and the
    contexts are the prompt's chunks with their article ids (so ``id_context_recall`` is "the gold
    article was in the prompt")."""
    from .answers import GeneratedAnswer, QuestionSample  # noqa: PLC0415

    if answer.declined:
        return ()
    sample = QuestionSample(q.qid, q.question, reference=q.answer.strip(), reference_ids=(q.doc_id,))
    generated = GeneratedAnswer(answer.text, tuple(c.chunk.text for c in answer.sources),
                                tuple(dataset_doc_id(c.chunk.source) for c in answer.sources))
    return tuple((name, score.value) for name, score in scorer.score(sample, generated).items())


def with_answer_check(rows: Sequence[QARow], threshold: float) -> list[QARow]:
    """The rows as the answerability check at ``threshold`` would have left them (pure).

    Needs rows from a run whose check scored every question but declined none
    (``--answer-check -1000``): a row scored below ``threshold`` becomes a decline.  The check runs
    before generation and does not change it, so this equals a run at ``threshold``.

    Example:
        >>> r = QARow("1", "unanswerable", "q", "ref", "an answer", False, False, 0.0, 0.0, None, False, False,
        ...           False, False, (), 1.0, 2.0, answer_check=0.4)
        >>> [x.declined for x in with_answer_check([r], 0.5) + with_answer_check([r], 0.3)]
        [True, False]
    """
    return [declined(r, "answer check") if not r.declined and r.answer_check is not None
            and r.answer_check < threshold else r for r in rows]


def declined(row: QARow, reason: str) -> QARow:
    """``row`` as a decline for ``reason`` would have left it (pure): no answer, nothing correct or cited."""
    return replace(row, answer="", declined=True, correct=False, recall=0.0, f1=0.0, cosine=None, cited_gold=False,
                   scaffolding=False, citations=(), fallback=False, generated_correct=None, reason=reason)


def rejudged(rows: Sequence[QARow]) -> list[QARow]:
    """The rows judged again by today's :func:`judge` (pure): a run's answers need no re-generation
    when the judge changes.  Declined rows stay declined and unjudged.

    Example:
        >>> r = QARow("1", "answerable", "q", "11-13 days", "It is 11 to 13 days.", False, False, 0.0, 0.0, None,
        ...           False, False, False, False, (), 1.0, 2.0)
        >>> rejudged([r])[0].correct
        True
    """
    out = []
    for r in rows:
        if not r.declined:
            v = judge(r.answer, r.reference)
            r = replace(r, correct=v.correct, recall=round(v.recall, 4), f1=round(v.f1, 4))
        out.append(r)
    return out


def add_cosines(rows: Sequence[QARow], encode: Callable[[list[str]], Any]) -> list[QARow]:
    """Second opinion: the embedder's cosine between each (non-declined) answer and its reference."""
    todo = [i for i, r in enumerate(rows) if not r.declined]
    out = list(rows)
    if not todo:
        return out
    plain = [CITE_RE.sub(" ", rows[i].answer) for i in todo]
    vecs = encode(plain + [rows[i].reference for i in todo])
    n = len(todo)
    for j, i in enumerate(todo):
        out[i] = replace(rows[i], cosine=round(float(vecs[j] @ vecs[n + j]), 4))
    return out


def _rate(rows: Iterable[QARow], pred: Callable[[QARow], bool]) -> float | None:
    rows = list(rows)
    return round(sum(1 for r in rows if pred(r)) / len(rows), 4) if rows else None


def _p50(values: Iterable[float]) -> float | None:
    values = list(values)
    return round(statistics.median(values), 3) if values else None


def summarize(rows: Sequence[QARow], model: str) -> dict[str, Any]:
    """The benchmark's JSON object: rates over all questions, and over the standalone ones only."""
    ans = [r for r in rows if r.setting == "answerable"]
    una = [r for r in rows if r.setting == "unanswerable"]

    def block(a: Sequence[QARow], u: Sequence[QARow]) -> dict[str, Any]:
        cos = [r.cosine for r in a if r.cosine is not None]
        return {"n": len(a), "correct": _rate(a, lambda r: r.correct), "cited_gold": _rate(a, lambda r: r.cited_gold),
                "cited_gold_span": _rate(a, lambda r: r.cited_gold_span),
                "retrieved_gold": _rate(a, lambda r: r.retrieved_gold),
                "declined_answerable": _rate(a, lambda r: r.declined),
                "mean_f1": round(statistics.fmean(r.f1 for r in a), 4) if a else None,
                "fallback": _rate(a, lambda r: r.fallback),
                "correct_without_fallback": _rate(a, lambda r: r.generated_correct if r.fallback else r.correct),
                "mean_cosine": round(statistics.fmean(cos), 4) if cos else None,
                "n_unanswerable": len(u), "declined_unanswerable": _rate(u, lambda r: r.declined),
                "invented_unanswerable": _rate(u, lambda r: r.invented),
                "answered_elsewhere_unanswerable": _rate(u, lambda r: not r.declined and r.correct)}

    out: dict[str, Any] = {"model": model, **block(ans, una),
                           "scaffolding": _rate(rows, lambda r: r.scaffolding),
                           "ttft_p50_s": _p50(r.ttft_s for r in rows if not r.declined),
                           "prompt_tokens_p50": _p50(r.prompt_tokens for r in rows if r.prompt_tokens),
                           "answer_p50_s": _p50(r.answer_s for r in rows)}
    out["standalone"] = block([r for r in ans if not r.context_dependent], [r for r in una if not r.context_dependent])
    out["context_dependent"] = sum(1 for r in ans if r.context_dependent)
    scored = [r for r in ans if r.ragas]
    if scored:  # the optional Ragas column: mean over the answered questions that got a value
        values: dict[str, list[float]] = {}
        for r in scored:
            for name, value in r.ragas:
                values.setdefault(name, [])
                if value is not None:
                    values[name].append(value)
        out["ragas"] = {name: {"mean": round(statistics.fmean(v), 4) if v else None, "scored": len(v),
                               "answered": len(scored)} for name, v in values.items()}
    return out


def run_qa_benchmark(questions: Sequence[QAQuestion], answerable: Any, unanswerable: Any | None,
                     show_progress: bool = False, on_row: Callable[[QARow], None] | None = None,
                     scorer: Any | None = None) -> list[QARow]:
    """Ask every question of ``questions`` through ``answerable`` (and ``unanswerable`` if given);
    ``on_row`` sees each row as soon as it is judged (so an interrupted run keeps its rows); a
    ``scorer`` adds the Ragas column (:func:`ask`)."""
    from tqdm import tqdm  # noqa: PLC0415

    rows = []
    jobs = [("answerable", answerable)] + ([("unanswerable", unanswerable)] if unanswerable is not None else [])
    for setting, answerer in jobs:
        for q in tqdm(questions, desc=f"{setting} questions", disable=not show_progress, unit="q"):
            rows.append(ask(answerer, q, setting, scorer))
            if on_row is not None:
                on_row(rows[-1])
    return rows


def report_markdown(summary: Mapping[str, Any], rows: Sequence[QARow], sample: int = 8) -> str:
    """A summary table plus a sample of judged rows, so a reader can check the verdicts."""
    keys = ("correct", "cited_gold", "cited_gold_span", "retrieved_gold", "declined_answerable", "mean_f1", "mean_cosine",
            "declined_unanswerable", "invented_unanswerable", "answered_elsewhere_unanswerable")
    lines = [f"## Answers: {summary['model']} ({summary['n']} questions, {summary['context_dependent']} of them "
             f"context-dependent)", "", "| measure | all | standalone |", "|---|---:|---:|"]
    for k in keys:
        lines.append(f"| {k} | {summary.get(k)} | {summary['standalone'].get(k)} |")
    lines += [f"| scaffolding | {summary['scaffolding']} | |", f"| ttft_p50_s | {summary['ttft_p50_s']} | |",
              f"| prompt_tokens_p50 | {summary.get('prompt_tokens_p50')} | |",
              f"| answer_p50_s | {summary['answer_p50_s']} | |"]
    for name, m in summary.get("ragas", {}).items():
        lines.append(f"| ragas {name} (scored {m['scored']} of {m['answered']} answered) | {m['mean']} | |")
    lines += ["", "### Sample of judged rows", ""]
    for r in list(rows)[:sample]:
        verdict = ("declined" if r.declined else "correct" if r.correct else
                   "INVENTED" if r.invented else "wrong")
        lines.append(f"- **{r.setting} {r.qid}: {verdict}** (recall {r.recall}, F1 {r.f1}, cited gold "
                     f"{r.cited_gold}) Q: {_one_line(r.question)} | ref: {_one_line(r.reference)} | "
                     f"answer: {_one_line(r.answer)}")
    return "\n".join(lines) + "\n"


def _one_line(text: str, width: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


def row_json(row: QARow) -> str:
    return json.dumps({**asdict(row), "invented": row.invented}, ensure_ascii=False)


def read_rows(path: str | Path) -> list[QARow]:
    """Rows written by :func:`write_rows` (``rows.jsonl`` of ``--out``), or ``rows.partial.jsonl``."""
    names = {f.name for f in fields(QARow)}
    rows = []
    for _, data in read_jsonl(Path(path), required="qid", what="a 'qid' field (rows of `rag eval answers --out DIR`)"):
        data = {k: v for k, v in data.items() if k in names}
        data["citations"] = tuple(data.get("citations", ()))  # type: ignore[arg-type]
        data["ragas"] = tuple((str(n), v) for n, v in data.get("ragas", ()))  # type: ignore[misc]
        rows.append(QARow(**data))  # type: ignore[arg-type]
    return rows


def write_rows(rows: Sequence[QARow], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(row_json(r) + "\n")


__all__ = ["QADataset", "QAQuestion", "QARow", "Verdict", "add_cosines", "ask", "content_recall", "declined", "judge",
           "load_qa", "normalize_answer", "overlaps", "ragas_scores", "read_rows", "strip_references", "report_markdown", "row_json", "run_qa_benchmark", "select", "with_answer_check",
           "summarize", "token_f1", "write_rows"]
