"""mkdocs hook: the README is the site's home page.

``docs/index.md`` is a placeholder; this hook replaces its Markdown with README.md's and turns the
README's links into ``docs/`` (``docs/design.md#privacy``, ``docs/images/...``) into links within the site.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parents[2] / "README.md"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri != "index.md":
        return markdown
    return re.sub(r"\]\(docs/", "](", README.read_text(encoding="utf-8"))
