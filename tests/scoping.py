"""A corpus for scoped retrieval tests: one document that dominates every ranking, two others with enough chunks.

``pumps.md`` has 12 paragraphs dense in the query's words, so an unscoped top 5 is all pumps.md;
``valves.md`` and ``notes.md`` have 6 paragraphs each that mention the query's words once or
twice.  A search scoped to ``notes.md`` must still return ``k`` = 5 hits, all from ``notes.md``;
the unscoped top 5 filtered to ``notes.md`` (a post-filter) is empty or short.
"""

from __future__ import annotations

from pathlib import Path

QUERY = "pump seal leak repair"
K = 5
#: chunk paragraph by paragraph (each paragraph is well under 40 tokens, two do not fit in one chunk)
CHUNKING = {"chunk_size": 40, "chunk_overlap": 0}

_PUMP = ("Pump seal leak {i}: a leaking pump seal needs repair; repair the pump seal leak by replacing the "
         "pump seal, then test the pump for a seal leak again before repair is signed off.")
_VALVE = "Valve note {i}: the inlet valve sits beside the pump and is greased every month with lithium grease."
_NOTE = ("Office note {i}: the {day} meeting covers budgets, holidays and the seal on the visitors' "
         "book, which people forget.")
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday")


def files() -> dict[str, str]:
    return {
        "pumps.md": "# Pumps\n\n" + "\n\n".join(_PUMP.format(i=i) for i in range(12)) + "\n",
        "valves.md": "# Valves\n\n" + "\n\n".join(_VALVE.format(i=i) for i in range(6)) + "\n",
        "notes.md": "# Notes\n\n" + "\n\n".join(_NOTE.format(i=i, day=d) for i, d in enumerate(DAYS)) + "\n",
    }


def write(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files().items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def chunks_per_file(index) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {Path(s).name: r.n_chunks for s, r in index.documents.items()}
