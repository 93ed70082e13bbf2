"""`python -m rag ingest` on a folder with one file of each office, e-book and mail format."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.formatgen import write_csv, write_eml, write_epub, write_pptx, write_xlsx

REPO = Path(__file__).resolve().parents[2]


def test_ingest_reports_each_new_format_indexed(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    write_pptx(docs / "rota.pptx")
    write_xlsx(docs / "accounts.xlsx")
    write_csv(docs / "plots.csv")
    write_epub(docs / "book.epub", ["Compost needs air and water.", "Slugs will not cross copper tape."])
    write_eml(docs / "note.eml")
    (docs / "broken.xlsx").write_bytes(b"PK\x03\x04 cut short")
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    idx = tmp_path / "idx"

    def rag(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "rag", *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=300)

    done = rag("ingest", str(docs), "--index", "x", "--index-dir", str(idx))
    assert done.returncode == 1, done.stderr  # the broken file fails; the rest are indexed
    assert "index 'x': 5 added" in done.stdout and "1 failed, 0 skipped" in done.stdout, done.stdout
    assert f"error: {docs / 'broken.xlsx'}: corrupt or unreadable .xlsx (BadZipFile: " in done.stdout
    assert "warning: " in done.stdout and "minutes.pdf" in done.stdout  # the mail's attachment, not read
    assert "Traceback" not in done.stdout + done.stderr

    done = rag("docs", "--index", "x", "--index-dir", str(idx))
    assert done.returncode == 0 and "5 documents" in done.stdout, done.stdout
    done = rag("search", "Alan Turing rhubarb", "--index", "x", "--index-dir", str(idx), "--mode", "bm25",
               "--format", "json", "-k", "1")
    hit = json.loads(done.stdout)[0]
    assert Path(hit["source"]).name == "plots.csv" and "| 4 | 12 | Alan Turing | rhubarb |" in hit["text"]
