"""eval/collections.py: tiny inline samples of each raw format (CACM, NPL, LISA, TIME) -> BEIR folders."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import re
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from rag_eval.datasets import load_beir
from tests.conftest import REPO


def _load_script() -> ModuleType:
    if "eval_collections" in sys.modules:
        return sys.modules["eval_collections"]
    spec = importlib.util.spec_from_file_location("eval_collections", REPO / "eval" / "collections.py")
    if spec is None or spec.loader is None:
        raise ImportError("eval/collections.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


ec = _load_script()

CACM = {
    "cacm.all": """.I 1
.T
Preliminary Report-International Algebraic Language
.B
CACM December, 1958
.A
Perlis, A. J.
Samelson,K.
.N
CA581203 JB March 22, 1978  8:28 PM
.X
100\t5\t1
1\t5\t1
.I 2
.T
Extraction of Roots by
Repeated Subtractions
.W
An abstract that
spans two lines.
.B
CACM December, 1958
.A
Sugai, I.
.K
roots, subtraction
.N
CA581202 JB March 22, 1978  9:02 PM
.X
2\t5\t2
""",
    "query.text": """.I 1
.W
 What articles exist which deal with TSS (Time Sharing System)?
.N
 1. Richard Alexander, Comp Serv, Langmuir Lab (TSS)
 
.I 2
.W
 I am interested in articles written by Pooch
.A
Pooch, U.
.N
 2. Richard Alexander
.I 3
.W
 A query nobody judged
.N
 3. Nobody
""",
    "qrels.text": "01 0002  0 0\n01 0002  0 0\n02 0001  0 0\n02 0009  0 0\n",
}

NPL = {
    "doc-text": """1
compact memories have flexible capacities  a digital data storage
system
   /
2
an electronic analogue computer
   /
3
electronic coordinate transformer
   /
""",
    "query-text": "1\nMEASUREMENT OF DIELECTRIC CONSTANT\n/\n2\nA QUERY NOBODY JUDGED\n/\n",
    "rlv-ass": "1\n    1     3\n   /\n2\n   /\n",
}

LISA_RECORD = "Document 1998\nVIDEODISC TECHNOLOGY.\n     \nDESCRIBES THE TECHNOLOGY.\n" + "*" * 44 + "\n"
LISA = {
    **{name: "" for name in ec.LISA_DOC_FILES},
    "LISA0.001": ("\nDocument    1\nTHE INDIAN COUNCIL OF LIBRARY\nAND INFORMATION SERVICES.\n     \n"
                  "CRITICALLY EXAMINES THE INDIAN\nLIBRARY SCENE.\n" + "*" * 44 + "\n"
                  "Document    2\nA TITLE ONLY.\n" + "*" * 44 + "\n"),
    # the damage of the original LISA1.501: a headerless fragment and a repeated (identical) record
    "LISA1.501": LISA_RECORD + "POTENTIAL APPLICATIONS OF SUCH DISCS.\n" + "*" * 44 + "\n" + LISA_RECORD,
    "LISA.QUE": "1\nI AM INTERESTED IN THE IDENTIFICATION\nOF NOVEL COMPUTER ARCHITECTURES. #\n"
                "2\nNON-USERS OF LIBRARIES. #\n",
    "LISARJ.NUM": "           1           2        1998           1\n           2           1\n        2\n",
}

TIME = {
    "TIME.ALL": ("*TEXT 017 01/04/63 PAGE 020\n\nTHE ALLIES AFTER NASSAU IN DECEMBER 1960, THE U.S . FIRST\n\n"
                 "PROPOSED TO HELP NATO .\n\n*TEXT 019 01/04/63 PAGE 021\n\nSECOND ARTICLE .\n\n*STOP\n"),
    "TIME.QUE": ("*FIND      1\n\n KENNEDY ADMINISTRATION PRESSURE ON NGO DINH DIEM .\n\n"
                 "*FIND      2\n\n A QUERY WHOSE ONLY JUDGEMENT NAMES A MISSING DOCUMENT .\n\n*STOP\n"),
    "TIME.REL": "1  2 1\n\n2  3\n\n",
}


def write_raw(root: Path, name: str, files: dict[str, str]) -> Path:
    folder = root / "raw" / name
    folder.mkdir(parents=True)
    for file_name, text in files.items():
        (folder / file_name).write_text(text, encoding="utf-8")
    return folder


def pinned(name: str, files: dict[str, str]) -> Any:
    """The real collection, its checksums swapped for the sample files' own."""
    real = ec.COLLECTIONS[name]
    raws = tuple(ec.RawFile(n, f"sample/{n}", hashlib.sha256(t.encode()).hexdigest()) for n, t in files.items())
    return replace(real, source=replace(real.source, files=raws))


def read_out(out: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    corpus = [json.loads(line) for line in (out / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    queries = [json.loads(line) for line in (out / "queries.jsonl").read_text(encoding="utf-8").splitlines()]
    return corpus, queries, (out / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()


def convert(tmp_path: Path, name: str, files: dict[str, str]) -> tuple[Any, Path]:
    write_raw(tmp_path, name, files)
    counts = ec.convert(pinned(name, files), tmp_path / "raw", tmp_path / "out")
    return counts, tmp_path / "out" / name


def test_cacm_smart_records(tmp_path: Path) -> None:
    counts, out = convert(tmp_path, "cacm", CACM)

    corpus, queries, qrels = read_out(out)
    assert corpus == [
        {"_id": "1", "title": "Preliminary Report-International Algebraic Language", "text": "",
         "metadata": {"authors": ["Perlis, A. J.", "Samelson,K."], "date": "CACM December, 1958"}},
        {"_id": "2", "title": "Extraction of Roots by Repeated Subtractions",
         "text": "An abstract that spans two lines.",
         "metadata": {"authors": ["Sugai, I."], "date": "CACM December, 1958", "keywords": "roots, subtraction"}},
    ]
    # query 3 has no judgement: left out; the padded ids lose their zeros; the repeat and document 9 are dropped
    assert queries == [{"_id": "1", "text": "What articles exist which deal with TSS (Time Sharing System)?"},
                       {"_id": "2", "text": "I am interested in articles written by Pooch"}]
    assert qrels == ["query-id\tcorpus-id\tscore", "1\t2\t1", "2\t1\t1"]
    assert (counts.docs, counts.queries, counts.pairs) == (2, 2, 2)


def test_npl_slash_records(tmp_path: Path) -> None:
    counts, out = convert(tmp_path, "npl", NPL)

    corpus, queries, qrels = read_out(out)
    assert corpus[0] == {"_id": "1", "title": "",
                         "text": "compact memories have flexible capacities a digital data storage system"}
    assert [d["_id"] for d in corpus] == ["1", "2", "3"]
    assert queries == [{"_id": "1", "text": "MEASUREMENT OF DIELECTRIC CONSTANT"}]
    assert qrels[1:] == ["1\t1\t1", "1\t3\t1"]
    assert (counts.docs, counts.queries, counts.pairs) == (3, 1, 2)


def test_lisa_records_skip_the_damage_of_lisa1_501(tmp_path: Path) -> None:
    counts, out = convert(tmp_path, "lisa", LISA)

    corpus, queries, qrels = read_out(out)
    assert corpus == [
        {"_id": "1", "title": "THE INDIAN COUNCIL OF LIBRARY AND INFORMATION SERVICES.",
         "text": "CRITICALLY EXAMINES THE INDIAN LIBRARY SCENE."},
        {"_id": "2", "title": "A TITLE ONLY.", "text": ""},
        {"_id": "1998", "title": "VIDEODISC TECHNOLOGY.", "text": "DESCRIBES THE TECHNOLOGY."},
    ]
    assert queries == [
        {"_id": "1", "text": "I AM INTERESTED IN THE IDENTIFICATION OF NOVEL COMPUTER ARCHITECTURES."},
        {"_id": "2", "text": "NON-USERS OF LIBRARIES."},
    ]
    assert qrels[1:] == ["1\t1998\t1", "1\t1\t1", "2\t2\t1"]  # LISARJ.NUM's counts hold across line breaks
    assert (counts.docs, counts.queries, counts.pairs) == (3, 2, 3)


def test_lisa_document_repeated_with_other_text_is_an_error(tmp_path: Path) -> None:
    files = {**LISA, "LISA2.001": LISA_RECORD.replace("DESCRIBES", "REPORTS")}
    write_raw(tmp_path, "lisa", files)

    with pytest.raises(ValueError, match="LISA2.001: document 1998 appears twice with different text"):
        ec.convert(pinned("lisa", files), tmp_path / "raw", tmp_path / "out")


def test_time_documents_are_numbered_by_position(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        counts, out = convert(tmp_path, "time", TIME)

    corpus, queries, qrels = read_out(out)
    # TIME.REL counts documents by their place in TIME.ALL, not by the *TEXT number
    assert corpus == [
        {"_id": "1", "title": "",
         "text": "THE ALLIES AFTER NASSAU IN DECEMBER 1960, THE U.S . FIRST PROPOSED TO HELP NATO .",
         "metadata": {"header": "*TEXT 017 01/04/63 PAGE 020"}},
        {"_id": "2", "title": "", "text": "SECOND ARTICLE .", "metadata": {"header": "*TEXT 019 01/04/63 PAGE 021"}},
    ]
    assert queries == [{"_id": "1", "text": "KENNEDY ADMINISTRATION PRESSURE ON NGO DINH DIEM ."}]
    assert qrels[1:] == ["1\t2\t1", "1\t1\t1"]
    assert (counts.docs, counts.queries, counts.pairs) == (2, 1, 2)
    assert "dropped 1 judgements of documents the corpus does not have (query:doc 2:3)" in caplog.text
    assert "1 queries have no judgement and are left out: 2" in caplog.text


def test_output_loads_and_replaces_an_older_folder_atomically(tmp_path: Path) -> None:
    stale = tmp_path / "out" / "time"
    (stale / "qrels").mkdir(parents=True)
    (stale / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n9\t9\t1\n", encoding="utf-8")

    convert(tmp_path, "time", TIME)

    ds = load_beir(stale, split="test")
    assert (len(ds.documents), dict(ds.qrels)) == (2, {"1": {"2": 1, "1": 1}})
    assert not [p for p in stale.rglob("*") if p.name.endswith(".tmp")]


def test_checksum_mismatch_names_the_file_both_hashes_and_the_fix(tmp_path: Path) -> None:
    raw = write_raw(tmp_path, "time", TIME)
    expected = ec.COLLECTIONS["time"].source.file("TIME.ALL").sha256
    actual = hashlib.sha256(TIME["TIME.ALL"].encode()).hexdigest()

    with pytest.raises(ec.ChecksumError) as err:
        ec.convert(ec.COLLECTIONS["time"], tmp_path / "raw", tmp_path / "out")

    message = str(err.value)
    assert message.startswith(f"{raw / 'TIME.ALL'}: sha256 mismatch (expected {expected}, got {actual})")
    assert "github:Chaplinski/IR-Assignment3" in message and "--from-mirror" in message
    assert "show 62fe0939662f793e48ac91f7b99d1cf724d7e862:time/TIME.ALL" in message
    assert not (tmp_path / "out").exists()  # nothing is written from unverified input


def test_cli_reports_a_missing_raw_file_on_one_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    files = dict(NPL)
    del files["rlv-ass"]
    write_raw(tmp_path, "npl", files)

    with caplog.at_level(logging.ERROR):
        rc = ec.main(["--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "out"), "--only", "npl"])

    assert rc == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0]
    assert errors[0].startswith(f"npl: {tmp_path / 'raw' / 'npl' / 'rlv-ass'}: missing raw file of npl")


def test_sources_are_pinned() -> None:
    assert set(ec.COLLECTIONS) == {"cacm", "npl", "lisa", "time"}
    for collection in ec.COLLECTIONS.values():
        source = collection.source
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", source.repo) and re.fullmatch(r"[0-9a-f]{40}", source.commit)
        assert all(re.fullmatch(r"[0-9a-f]{64}", f.sha256) for f in source.files)
        assert len({f.name for f in source.files}) == len(source.files)
    assert {f.name for f in ec.COLLECTIONS["lisa"].source.files} == {*ec.LISA_DOC_FILES, "LISA.QUE", "LISARJ.NUM"}
