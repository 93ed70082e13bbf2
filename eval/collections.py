"""Classic IR test collections (CACM, NPL, LISA, TIME) converted to BEIR folders that ``load_beir`` reads.

What: for each collection this script holds its source (a public GitHub repository, the commit and the
paths of the original Glasgow/SMART distribution files) and the sha256 of every raw file; it checks the
raw files against those hashes, parses the raw formats and writes ``OUT/<name>/corpus.jsonl`` (``_id``,
``title``, ``text``, optional ``metadata``), ``queries.jsonl`` (``_id``, ``text``) and ``qrels/test.tsv``
(header ``query-id corpus-id score``, every judgement scored 1), each file written to a temporary file and
moved into place with ``os.replace``. Queries without any judgement are left out; judgements naming a
document the collection does not have are dropped with a warning.

Why: four more small, fully judged retrieval collections beside Cranfield, in one format
(``rag_eval.datasets.load_beir``), rebuilt byte-for-byte from pinned inputs; a checksum mismatch stops
the run instead of silently measuring on a different text.

Usage::

    python eval/collections.py --raw data/raw --out data                   # all four
    python eval/collections.py --raw data/raw --out data --only cacm time  # some of them
    python eval/collections.py --from-mirror /work/.mirror --raw data/raw --out data

``--raw DIR`` holds one folder per collection with the raw files under their original names
(``DIR/cacm/cacm.all``, ``DIR/npl/doc-text``, ``DIR/lisa/LISA0.001``, ``DIR/time/TIME.ALL``, ...).

Getting the raw files: mirror each source repository (in an agent session: the ``fetch`` tool with
``github:<owner>/<name>``, which leaves a bare git directory at ``/work/.mirror/<owner>+<name>/repo``; or
``git clone --bare https://github.com/<owner>/<name> <mirror>/<owner>+<name>/repo``), then either pass
``--from-mirror <mirror>`` (it runs ``git show`` for every file below and writes it into ``--raw``), or by
hand, e.g. for CACM::

    G=/work/.mirror/Hamza5+RI-TP/repo
    git --git-dir=$G show b362e149af06f9ed6278d71d36752d66e33b2a9d:cacm/cacm.all > data/raw/cacm/cacm.all

The sources (see ``COLLECTIONS``): CACM from Hamza5/RI-TP (the copy most mirrors agree on), NPL from
stefreschke/Information-Retrieval at its first commit (a later commit deleted three documents), LISA from
HamzaMouaz/AI-powered-information-retrieval-system at its first commit (later commits removed the files),
TIME from Chaplinski/IR-Assignment3.

Raw-format notes:

* CACM: SMART records (``.I .T .W .B .A .N .X .K .C``); title ``.T``, text ``.W`` (1,587 of the 3,204
  documents have one), metadata ``.A`` authors, ``.B`` date, ``.K`` keywords. ``qrels.text`` pads query ids
  (``01``); 12 of the 64 queries have no judgement.
* NPL: records ``<id>`` / text lines / a line holding ``/``; ``rlv-ass`` lists each query's relevant
  documents the same way. No titles.
* LISA: ``LISA0.001`` .. ``LISA5.850`` hold ``Document <id>``, a title, a blank line and the abstract,
  each record ended by a row of ``*``. ``LISA1.501`` is damaged in the original distribution: documents
  1993-1997 are missing, 1992's abstract ends in another document's text, 1998-2001 appear twice
  (identical copies; the second is skipped) and a headerless fragment follows 2001 (skipped): 5,999
  documents. Queries (``LISA.QUE``) end with ``#``; judgements come from ``LISARJ.NUM``
  (``<query> <count> <doc>...``), not from the older, garbled ``LISA.REL``.
* TIME: ``*TEXT <no> <date> PAGE <page>`` opens each article, ``*STOP`` ends the file; ``TIME.REL``
  numbers documents by their position in ``TIME.ALL`` (1-423), not by the ``*TEXT`` number, so ``_id``
  is that position and the header goes to ``metadata``. Three judgements name documents 424 and 425,
  which the collection does not have; they are dropped, and with them query 23's only one (82 queries).

Result: cacm 3204 docs / 52 queries / 796 pairs, npl 11429 / 93 / 2083, lisa 5999 / 35 / 379,
time 423 / 82 / 321 (about 1 s for all four).
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rag.fs import file_sha256, write_file_atomic  # noqa: E402

logger = logging.getLogger(__name__)

QRELS_HEADER = "query-id\tcorpus-id\tscore\n"


class ChecksumError(ValueError):
    """A raw file's sha256 is not the pinned one."""


@dataclass(frozen=True)
class RawFile:
    name: str       # file name under --raw/<collection>/
    repo_path: str  # path inside the source repository at the pinned commit
    sha256: str


@dataclass(frozen=True)
class Source:
    repo: str    # owner/name on GitHub
    commit: str
    files: tuple[RawFile, ...]

    def file(self, name: str) -> RawFile:
        for raw in self.files:
            if raw.name == name:
                return raw
        raise KeyError(f"{self.repo}: no raw file named {name!r}")


@dataclass
class Parsed:
    """A collection as read from its raw files, before the unjudged queries are left out."""

    docs: list[dict[str, Any]]
    queries: dict[str, str]
    pairs: list[tuple[str, str]]  # (query id, document id) of every judgement, in file order
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Collection:
    name: str
    source: Source
    parse: Callable[[Path], Parsed]


@dataclass(frozen=True)
class Counts:
    docs: int
    queries: int
    pairs: int


# ---------------------------------------------------------------------------------------------------- helpers

def squash(text: str) -> str:
    """Collapse every run of whitespace (line breaks included) to one space."""
    return " ".join(text.split())


def read_text(path: Path) -> str:
    """A raw file's text; the originals are ASCII, anything else is replaced rather than fatal."""
    return path.read_text(encoding="utf-8", errors="replace")



def as_int(token: str, where: str) -> int:
    """``int(token)``, or a ValueError that says where the bad token was."""
    try:
        return int(token)
    except ValueError:
        raise ValueError(f"{where}: expected a number, got {token!r}") from None


def unique(items: Iterable[tuple[str, str]], where: str) -> dict[str, str]:
    """A dict of ``(id, text)`` pairs; a repeated id is an error, not a silent overwrite."""
    out: dict[str, str] = {}
    for key, value in items:
        if key in out:
            raise ValueError(f"{where}: id {key} appears twice")
        out[key] = value
    return out


def doc(doc_id: str, title: str, text: str, metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {"_id": doc_id, "title": title, "text": text}
    if metadata:
        record["metadata"] = dict(metadata)
    return record


# ---------------------------------------------------------------------------------------------------- CACM (SMART)

SMART_TAG = re.compile(r"^\.([A-Z])(?:\s+(.*?))?\s*$")


def parse_smart(text: str, where: str) -> list[dict[str, str]]:
    """SMART records: ``.I <id>`` opens one, ``.<letter>`` opens a field whose lines follow it."""
    records: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    tag: str | None = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        m = SMART_TAG.match(line)
        if m and m.group(1) == "I":
            current, tag = {"I": (m.group(2) or "").strip()}, None
            records.append(current)
        elif m:
            if current is None:
                raise ValueError(f"{where}:{lineno}: field .{m.group(1)} before the first .I")
            tag = m.group(1)
            current.setdefault(tag, "")
        elif current is not None and tag is not None:
            current[tag] = f"{current[tag]}\n{line}" if current[tag] else line
        elif line.strip():
            raise ValueError(f"{where}:{lineno}: text outside a field: {line[:60]!r}")
    return records


def cacm_doc(record: Mapping[str, str], where: str) -> dict[str, Any]:
    authors = [a.strip() for a in record.get("A", "").splitlines() if a.strip()]
    meta = {"authors": authors, "date": squash(record.get("B", "")), "keywords": squash(record.get("K", ""))}
    return doc(str(as_int(record["I"], where)), squash(record.get("T", "")), squash(record.get("W", "")),
               {k: v for k, v in meta.items() if v})


def read_pairs(path: Path) -> Iterator[tuple[str, str]]:
    """``<query> <doc> ...`` per line (CACM's ``qrels.text``: ``01 1410  0 0``); ids lose their padding."""
    for lineno, line in enumerate(read_text(path).splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2:
            raise ValueError(f"{path}:{lineno}: expected '<query> <document> ...', got {line!r}")
        where = f"{path}:{lineno}"
        yield str(as_int(parts[0], where)), str(as_int(parts[1], where))


def parse_cacm(raw: Path) -> Parsed:
    docs_path, queries_path = raw / "cacm.all", raw / "query.text"
    docs = [cacm_doc(r, str(docs_path)) for r in parse_smart(read_text(docs_path), str(docs_path))]
    queries = unique(((str(as_int(r["I"], str(queries_path))), squash(r.get("W", "")))
                      for r in parse_smart(read_text(queries_path), str(queries_path))), str(queries_path))
    return Parsed(docs, queries, list(read_pairs(raw / "qrels.text")))


# ---------------------------------------------------------------------------------------------------- NPL

def slash_records(path: Path) -> Iterator[tuple[str, list[str]]]:
    """NPL records: an id line, body lines, then a line holding only ``/``."""
    record_id: str | None = None
    body: list[str] = []
    for lineno, line in enumerate(read_text(path).splitlines(), start=1):
        if line.strip() == "/":
            if record_id is None:
                raise ValueError(f"{path}:{lineno}: '/' closes a record that has no id line")
            yield record_id, body
            record_id, body = None, []
        elif record_id is None and line.strip():
            record_id = str(as_int(line.strip(), f"{path}:{lineno}"))
        elif record_id is not None:
            body.append(line)
    if record_id is not None:
        raise ValueError(f"{path}: the last record ({record_id}) is not closed by a '/' line")


def parse_npl(raw: Path) -> Parsed:
    docs = [doc(i, "", squash("\n".join(body))) for i, body in slash_records(raw / "doc-text")]
    queries = unique(((i, squash("\n".join(body))) for i, body in slash_records(raw / "query-text")),
                     str(raw / "query-text"))
    rlv = raw / "rlv-ass"
    pairs = [(q, str(as_int(d, f"{rlv} (query {q})"))) for q, body in slash_records(rlv)
             for d in " ".join(body).split()]
    return Parsed(docs, queries, pairs)


# ---------------------------------------------------------------------------------------------------- LISA

LISA_DOC_FILES = ("LISA0.001", "LISA0.501", "LISA1.001", "LISA1.501", "LISA2.001", "LISA2.501", "LISA3.001",
                  "LISA3.501", "LISA4.001", "LISA4.501", "LISA5.001", "LISA5.501", "LISA5.627", "LISA5.850")
LISA_SEPARATOR = re.compile(r"^\*{10,}[ \t]*$", re.M)
LISA_HEADER = re.compile(r"\s*Document\s+(\d+)[ \t]*\n")
LISA_BLANK_LINE = re.compile(r"\n[ \t]*\n")  # ends the title (the originals hold five spaces)


def lisa_record(chunk: str) -> tuple[str, str, str] | None:
    """``(id, title, abstract)`` of one ``Document <id>`` record; None for a chunk without that header."""
    m = LISA_HEADER.match(chunk)
    if not m:
        return None
    title, *abstract = LISA_BLANK_LINE.split(chunk[m.end():], maxsplit=1)
    return str(int(m.group(1))), squash(title), squash(abstract[0] if abstract else "")


def lisa_docs(raw: Path, notes: list[str]) -> list[dict[str, Any]]:
    docs: dict[str, dict[str, Any]] = {}
    for name in LISA_DOC_FILES:
        for chunk in LISA_SEPARATOR.split(read_text(raw / name)):
            if not chunk.strip():
                continue
            record = lisa_record(chunk)
            if record is None:
                notes.append(f"{name}: skipped a fragment without a 'Document' header: {squash(chunk)[:50]!r}")
                continue
            add_lisa_doc(docs, record, name, notes)
    return list(docs.values())


def add_lisa_doc(docs: dict[str, dict[str, Any]], record: tuple[str, str, str], name: str,
                 notes: list[str]) -> None:
    doc_id, title, abstract = record
    new = doc(doc_id, title, abstract)
    if doc_id not in docs:
        docs[doc_id] = new
    elif docs[doc_id] == new:
        notes.append(f"{name}: document {doc_id} repeated (identical copy skipped)")
    else:
        raise ValueError(f"{name}: document {doc_id} appears twice with different text")


def lisa_queries(path: Path) -> dict[str, str]:
    """``LISA.QUE``: an id line, then text lines up to the one ending in ``#``."""
    queries: dict[str, str] = {}
    current: str | None = None
    lines: list[str] = []
    for lineno, line in enumerate(read_text(path).splitlines(), start=1):
        if current is None:
            if line.strip():
                current, lines = str(as_int(line.strip(), f"{path}:{lineno}")), []
            continue
        lines.append(line)
        if line.rstrip().endswith("#"):
            if current in queries:
                raise ValueError(f"{path}:{lineno}: query {current} appears twice")
            queries[current] = squash("\n".join(lines).rstrip().rstrip("#"))
            current = None
    if current is not None:
        raise ValueError(f"{path}: query {current} is not ended by '#'")
    return queries


def lisa_pairs(path: Path) -> list[tuple[str, str]]:
    """``LISARJ.NUM``: ``<query> <count> <doc> x count``, repeated, line breaks anywhere."""
    tokens = read_text(path).split()
    pairs: list[tuple[str, str]] = []
    i = 0
    while i < len(tokens):
        if i + 1 >= len(tokens):
            raise ValueError(f"{path}: query {tokens[i]} has no document count")
        query, count = str(as_int(tokens[i], str(path))), as_int(tokens[i + 1], f"{path} (query {tokens[i]})")
        docs = tokens[i + 2:i + 2 + count]
        if len(docs) != count:
            raise ValueError(f"{path}: query {query} announces {count} documents, the file ends after {len(docs)}")
        pairs += [(query, str(as_int(d, f"{path} (query {query})"))) for d in docs]
        i += 2 + count
    return pairs


def parse_lisa(raw: Path) -> Parsed:
    notes: list[str] = []
    docs = lisa_docs(raw, notes)
    return Parsed(docs, lisa_queries(raw / "LISA.QUE"), lisa_pairs(raw / "LISARJ.NUM"), notes)


# ---------------------------------------------------------------------------------------------------- TIME

def star_records(path: Path, tag: str) -> Iterator[tuple[str, list[str]]]:
    """``*<tag> <rest>`` opens a record, ``*STOP`` ends the file: ``(rest, body lines)`` per record."""
    head: str | None = None
    body: list[str] = []
    for lineno, line in enumerate(read_text(path).splitlines(), start=1):
        if line.startswith("*"):
            if head is not None:
                yield head, body
            head, body = None, []
            if line.strip() == "*STOP":
                return
            if not line.startswith(f"*{tag}"):
                raise ValueError(f"{path}:{lineno}: expected '*{tag}' or '*STOP', got {line[:40]!r}")
            head = line[len(tag) + 1:].strip()
        elif head is not None:
            body.append(line)
        elif line.strip():
            raise ValueError(f"{path}:{lineno}: text before the first '*{tag}'")
    if head is not None:
        yield head, body
    logger.warning("%s: no '*STOP' line at the end", path)


def time_pairs(path: Path) -> list[tuple[str, str]]:
    """``TIME.REL``: ``<query> <doc> <doc> ...`` per line; documents by their position in ``TIME.ALL``."""
    pairs: list[tuple[str, str]] = []
    for lineno, line in enumerate(read_text(path).splitlines(), start=1):
        ids = [str(as_int(t, f"{path}:{lineno}")) for t in line.split()]
        if not ids:
            continue
        pairs += [(ids[0], d) for d in ids[1:]]
    return pairs


def time_queries(path: Path) -> dict[str, str]:
    """``TIME.QUE``: ``*FIND <id>`` then the query's lines."""
    return unique(((str(as_int(head, f"{path} (*FIND {head!r})")), squash("\n".join(body)))
                   for head, body in star_records(path, "FIND")), str(path))


def parse_time(raw: Path) -> Parsed:
    docs = [doc(str(pos), "", squash("\n".join(body)), {"header": f"*TEXT {head}"})
            for pos, (head, body) in enumerate(star_records(raw / "TIME.ALL", "TEXT"), start=1)]
    return Parsed(docs, time_queries(raw / "TIME.QUE"), time_pairs(raw / "TIME.REL"))


# ---------------------------------------------------------------------------------------------------- sources

def _files(pairs: Iterable[tuple[str, str, str]]) -> tuple[RawFile, ...]:
    return tuple(RawFile(name, path, sha) for name, path, sha in pairs)


LISA_SHA256 = {
    "LISA.QUE": "d2f042f4f68f8c67546dc44aba073e6acd3582be6e88c7f41a948b760eaea935",
    "LISARJ.NUM": "bdd5db47eec2d193fe94a9ef4b0b64e2688e0fc1e4cb5617f2237e5b7afce3d4",
    "LISA0.001": "fa0c58d8a489ad7de4f930d2b4a42f33c7fd9e9e947f3c6900fc99906ce4c261",
    "LISA0.501": "edea7bc2ee70458931952e7094071b9687669ab9265476457c63009d1aff6de5",
    "LISA1.001": "5607c12adba7d536345b6f6af8e47d1fa7f70b5588a29470e08cde600d3601e5",
    "LISA1.501": "d3e1cc75c5f0e1fda0203951d9afaceaa6acdca8fbc7f9d2c921edad04e157ae",
    "LISA2.001": "25e3b410db0d78e34dbc370da49307748ccbc51521d28e7f057fcde4856ef3e6",
    "LISA2.501": "8894940c4bf2a363aa9490064cb620cc4056120e5ffc47da7afe199a7a4ccc26",
    "LISA3.001": "7abad5a2fe410a96ac30d0cfc9bbd4a8e108ad339e900fe502c2ea5687481de4",
    "LISA3.501": "e1b658aaa45cfcc71bc30c24e43601c014a6d1cad9d94f6db09a3f6863a2f481",
    "LISA4.001": "ba5dbe032b1973de2add02ddc3a3f9a86076153239fd34ce73176852b86fbdd4",
    "LISA4.501": "ab1d6de7e40c2b1f9649d0e4de169e8e1b48e2afc2167a956386c4237a3cf589",
    "LISA5.001": "fb3d6335ed2385803811496aff189ac04edfb1868956e7b972658ea7f313abec",
    "LISA5.501": "496e645526acbe06b0f5d2a740424d456da9c826cfe421204f1fb39b88096410",
    "LISA5.627": "53bb3e04023fa3b65924582879d2c9d5daa358cad4731c99fba58adf5635b492",
    "LISA5.850": "195854175de7cda61fb04b402d863ad32f78c53732846e83939c8620abb0c9e3",
}

CACM_SOURCE = Source("Hamza5/RI-TP", "b362e149af06f9ed6278d71d36752d66e33b2a9d", _files((
    ("cacm.all", "cacm/cacm.all", "34bdd3eb27a92e5f8068a785b53ef40b9dc0b800dbafc5bac79a80dd999cdc17"),
    ("query.text", "cacm/query.text", "ca004f06b57cb8a298c73bf55793174e50ff32fc83c5bb5f10ed2ed559f621e6"),
    ("qrels.text", "cacm/qrels.text", "da4202b0c70cad7d91c9a028eaf8cbd0a4ca981ebdc3955eb75ba7b6de6f185c"),
)))
NPL_SOURCE = Source("stefreschke/Information-Retrieval", "e42b633316d596f520a6ece6e6e19a3894795730", _files((
    ("doc-text", "npl/doc-text", "9a9a396da453eb0a6c659b1399ae6c551d11d04a68b6f0a4e21fc757e77c398f"),
    ("query-text", "npl/query-text", "0f5e9a179334183cc3b04fe24d9bdfc3f656b08330e6798d8df5dc621bf8e6d5"),
    ("rlv-ass", "npl/rlv-ass", "1af78732abed49055218c1548c27cfa354c5d02a9b6c9cb854b9d0b74fcce24c"),
)))
LISA_SOURCE = Source("HamzaMouaz/AI-powered-information-retrieval-system", "9b403e8cde7fe9c7d2ec0feaca19a1198d87579d",
                     _files((name, name if name in ("LISA.QUE", "LISARJ.NUM") else f"Collections/{name}", sha)
                            for name, sha in LISA_SHA256.items()))
TIME_SOURCE = Source("Chaplinski/IR-Assignment3", "62fe0939662f793e48ac91f7b99d1cf724d7e862", _files((
    ("TIME.ALL", "time/TIME.ALL", "b8ae908cff6f1d5d1ed77958accc2b890c6a94ab2d15748af80c2b2ac7466ab6"),
    ("TIME.QUE", "time/TIME.QUE", "959fd8a1e2096ad5b0d0570cf7938555f42e66443cc89972e2638eb623d36fad"),
    ("TIME.REL", "time/TIME.REL", "e7f3c69bde95fe05e757db6c60f262608028945cd0f9c1fcba4cb116abcc1539"),
)))

COLLECTIONS: dict[str, Collection] = {c.name: c for c in (
    Collection("cacm", CACM_SOURCE, parse_cacm),
    Collection("npl", NPL_SOURCE, parse_npl),
    Collection("lisa", LISA_SOURCE, parse_lisa),
    Collection("time", TIME_SOURCE, parse_time),
)}


# ---------------------------------------------------------------------------------------------------- checks

def fix_hint(collection: Collection, raw: RawFile) -> str:
    src = collection.source
    return (f"re-extract it from github:{src.repo} with `git --git-dir=<mirror>/{src.repo.replace('/', '+')}/repo "
            f"show {src.commit}:{raw.repo_path} > <raw>/{collection.name}/{raw.name}` or run with --from-mirror")


def verify(collection: Collection, raw_dir: Path) -> None:
    """Every raw file exists and has its pinned sha256; else one error naming the file and the fix."""
    for raw in collection.source.files:
        if not (raw_dir / raw.name).is_file():
            raise FileNotFoundError(f"{raw_dir / raw.name}: missing raw file of {collection.name}; "
                                    f"{fix_hint(collection, raw)}")
    for raw in collection.source.files:
        actual = file_sha256(raw_dir / raw.name)
        if actual != raw.sha256:
            raise ChecksumError(f"{raw_dir / raw.name}: sha256 mismatch (expected {raw.sha256}, got {actual}); "
                                f"{fix_hint(collection, raw)}")


def judged(parsed: Parsed, name: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The queries that keep a judgement and their relevant documents (duplicates and unknown documents out)."""
    doc_ids = {d["_id"] for d in parsed.docs}
    if len(doc_ids) != len(parsed.docs):
        raise ValueError(f"{name}: duplicate document ids in the corpus")
    unknown_queries = sorted({q for q, _ in parsed.pairs} - set(parsed.queries), key=int)
    if unknown_queries:
        raise ValueError(f"{name}: judgements for queries the query file does not have: {unknown_queries[:5]}")
    qrels: dict[str, list[str]] = {}
    dangling, repeated = [], 0
    for q, d in parsed.pairs:
        if d not in doc_ids:
            dangling.append(f"{q}:{d}")
        elif d in qrels.get(q, []):
            repeated += 1
        else:
            qrels.setdefault(q, []).append(d)
    log_dropped(name, dangling, repeated)
    queries = {q: t for q, t in parsed.queries.items() if q in qrels}
    unjudged = [q for q in parsed.queries if q not in qrels]
    if unjudged:
        logger.info("%s: %d queries have no judgement and are left out: %s", name, len(unjudged), " ".join(unjudged))
    return queries, {q: qrels[q] for q in queries}


def log_dropped(name: str, dangling: Sequence[str], repeated: int) -> None:
    if dangling:
        logger.warning("%s: dropped %d judgements of documents the corpus does not have (query:doc %s)",
                       name, len(dangling), " ".join(dangling[:10]))
    if repeated:
        logger.warning("%s: dropped %d repeated judgements", name, repeated)


# ---------------------------------------------------------------------------------------------------- writing

def write_lines(path: Path, lines: Iterable[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file_atomic(path, "".join(lines))


def write_beir(out: Path, docs: Sequence[Mapping[str, Any]], queries: Mapping[str, str],
               qrels: Mapping[str, Sequence[str]]) -> None:
    write_lines(out / "corpus.jsonl", (json.dumps(d, ensure_ascii=False) + "\n" for d in docs))
    write_lines(out / "queries.jsonl",
                 (json.dumps({"_id": q, "text": t}, ensure_ascii=False) + "\n" for q, t in queries.items()))
    write_lines(out / "qrels" / "test.tsv",
                 [QRELS_HEADER, *(f"{q}\t{d}\t1\n" for q, ds in qrels.items() for d in ds)])


def check_loads(out: Path, counts: Counts) -> None:
    """Read the folder back with ``rag_eval.datasets.load_beir`` and compare the counts."""
    from rag_eval.datasets import load_beir

    ds = load_beir(out, split="test")
    got = Counts(len(ds.documents), len(ds.queries), sum(len(v) for v in ds.qrels.values()))
    if got != counts:
        raise RuntimeError(f"{out}: load_beir reads {got}, the conversion wrote {counts}")


def convert(collection: Collection, raw_root: Path, out_root: Path, check: bool = True) -> Counts:
    """Verify, parse and write one collection; returns what was written."""
    raw_dir = raw_root / collection.name
    verify(collection, raw_dir)
    parsed = collection.parse(raw_dir)
    for note in parsed.notes:
        logger.info("%s: %s", collection.name, note)
    queries, qrels = judged(parsed, collection.name)
    out = out_root / collection.name
    write_beir(out, parsed.docs, queries, qrels)
    counts = Counts(len(parsed.docs), len(queries), sum(len(v) for v in qrels.values()))
    if check:
        check_loads(out, counts)
    return counts


# ---------------------------------------------------------------------------------------------------- mirror

def mirror_git_dir(mirror_root: Path, repo: str) -> Path:
    base = mirror_root / repo.replace("/", "+")
    for candidate in (base / "repo", base / "repo" / ".git", base, base / ".git"):
        if (candidate / "HEAD").is_file() and (candidate / "objects").is_dir():
            return candidate
    raise FileNotFoundError(f"{base}: no git mirror of {repo}; fetch github:{repo} first "
                            f"(or git clone --bare https://github.com/{repo} {base}/repo)")


def extract_from_mirror(collection: Collection, mirror_root: Path, raw_root: Path) -> None:
    """``git show <commit>:<path>`` of every raw file into ``raw_root/<name>/``."""
    git_dir = mirror_git_dir(mirror_root, collection.source.repo)
    for raw in collection.source.files:
        spec = f"{collection.source.commit}:{raw.repo_path}"
        result = subprocess.run(["git", f"--git-dir={git_dir}", "show", spec], capture_output=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"git --git-dir={git_dir} show {spec}: {result.stderr.decode(errors='replace').strip()}")
        target = raw_root / collection.name / raw.name
        target.parent.mkdir(parents=True, exist_ok=True)
        write_file_atomic(target, result.stdout)
    logger.info("%s: %d raw files extracted from %s", collection.name, len(collection.source.files), git_dir)


# ---------------------------------------------------------------------------------------------------- CLI

def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--raw", type=Path, required=True, help="folder with one sub-folder of raw files per collection")
    ap.add_argument("--out", type=Path, default=ROOT / "data", help="where the BEIR folders go (default: data/)")
    ap.add_argument("--only", nargs="+", choices=sorted(COLLECTIONS), help="convert only these collections")
    ap.add_argument("--from-mirror", type=Path, metavar="MIRROR",
                    help="first extract the raw files into --raw from bare git mirrors under MIRROR "
                         "(MIRROR/<owner>+<name>/repo, as the fetch tool leaves them)")
    ap.add_argument("--no-check", action="store_true", help="skip reading each folder back with load_beir")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args = parse_args(argv)
    for name in args.only or list(COLLECTIONS):
        collection = COLLECTIONS[name]
        try:
            if args.from_mirror:
                extract_from_mirror(collection, args.from_mirror, args.raw)
            counts = convert(collection, args.raw, args.out, check=not args.no_check)
        except (OSError, ValueError, RuntimeError) as exc:
            logger.error("%s: %s", name, exc)
            return 1
        print(f"{name}: {counts.docs} docs, {counts.queries} queries, {counts.pairs} judged pairs "
              f"-> {args.out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
