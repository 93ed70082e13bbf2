"""How often the ingest-time safety flag (:func:`rag.answer.safety.is_suspicious`) fires on genuine documents.

A flagged chunk is withheld from every answer, so a false positive costs an answer. This chunks each
text file the way ``rag ingest`` does (the packaged MiniLM tokenizer, the default 200/40-token windows)
and prints, per folder, the files and chunks flagged and the text that matched, so every flag can be
read and judged. Nothing is copied or indexed; the files are read in place.

Usage: python eval/suspicious_rate.py [FOLDER ...]
(default: samples/ and ../shared/data/covid-qa/documents; ~20 s on 2 cores)
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

DEFAULT_FOLDERS = (ROOT / "samples", ROOT.parent / "shared" / "data" / "covid-qa" / "documents")
SUFFIXES = (".md", ".txt")


def main(argv: list[str] | None = None) -> int:
    from transformers import AutoTokenizer

    from rag.answer.safety import SUSPICIOUS_PATTERNS, is_suspicious
    from rag.embedding.models import packaged_embedder_path
    from rag.ingest.chunking import Chunker
    from rag.types import Document

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path, default=list(DEFAULT_FOLDERS))
    args = parser.parse_args(argv)
    chunker = Chunker(tokenizer=AutoTokenizer.from_pretrained(str(packaged_embedder_path())))
    print("| folder | files | flagged files | chunks | flagged chunks | rate |")
    print("|---|---:|---:|---:|---:|---:|")
    matches: list[str] = []
    for folder in args.folders:
        files = sorted(p for p in folder.rglob("*") if p.suffix in SUFFIXES and p.is_file())
        n_chunks = flagged = 0
        flagged_files = set()
        for f in files:
            doc = Document.from_text(f.read_text(encoding="utf-8", errors="replace"), str(f))
            for c in chunker.split([doc], doc_id="d"):
                n_chunks += 1
                if is_suspicious(c.text):
                    flagged += 1
                    flagged_files.add(f)
                    hit = next((m.group() for p in SUSPICIOUS_PATTERNS if (m := p.search(c.text))), "")
                    matches.append(f"{c.location}: {hit!r}")
        rate = f"{flagged / n_chunks:.2%}" if n_chunks else "-"
        print(f"| {folder.name} | {len(files)} | {len(flagged_files)} | {n_chunks} | {flagged} | {rate} |")
    for line in matches:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
