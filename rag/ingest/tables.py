"""Tables as Markdown text: every loader that meets a table (PDF, DOCX, HTML, spreadsheets) writes it this way,
so the chunker can recognise one and never cut a row from its header.

Example:
    >>> print(markdown_table(["Item", "Price"], [["Plot fee", "45 €"], ["Hose | 15 m", ""]]))
    | Item | Price |
    | --- | --- |
    | Plot fee | 45 € |
    | Hose \\| 15 m |  |
"""

from __future__ import annotations

import re
from typing import Sequence

_SPACE = re.compile(r"\s+")


def cell_text(value: object) -> str:
    """One cell as a single line: whitespace squashed, pipes escaped (a cell may not break the table)."""
    text = "" if value is None else str(value)
    return _SPACE.sub(" ", text).strip().replace("|", "\\|")


def markdown_table(header: Sequence[object], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table; short rows are padded, so every row has the header's width."""
    width = max([len(header), *(len(r) for r in rows)] or [0])
    if width == 0:
        return ""

    def line(cells: Sequence[object]) -> str:
        padded = [cell_text(c) for c in cells] + [""] * (width - len(cells))
        return "| " + " | ".join(padded) + " |"

    return "\n".join([line(header), "| " + " | ".join(["---"] * width) + " |", *(line(r) for r in rows)])
