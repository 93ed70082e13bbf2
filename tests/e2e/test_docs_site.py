"""The documentation: a short README for users, docs/ for the rest, and a site that builds and stays private.

The code blocks themselves are run by ``tests/e2e/test_docs.py``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")
PAGES = ("architecture.md", "evaluation.md", "benchmarks.md", "design.md")


def test_the_readme_is_short_and_links_to_the_docs() -> None:
    assert len(README) <= 15_000, f"README.md is {len(README):,} characters; move details to docs/"
    for target in re.findall(r"\]\((docs/[^)#\s]+)", README):
        assert (REPO / target).is_file(), target
    assert {f"docs/{p}" for p in PAGES} <= set(re.findall(r"\]\((docs/[^)#\s]+)", README))
    image = REPO / "docs" / "images" / "app-answer.png"
    assert image.stat().st_size < 300_000 and image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_answer_benchmark_has_its_places() -> None:
    assert len(re.findall(r"^<!-- ANSWERS-LINE -->$", README, re.M)) == 1
    benchmarks = (REPO / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    answers = benchmarks.split("## Answers", 1)[1].split("\n## ", 1)[0]
    assert "<!-- ANSWERS-TABLES -->" in answers


class _Loads(HTMLParser):
    """Every URL a page makes the browser fetch (not the links a reader may follow)."""

    def __init__(self) -> None:
        super().__init__()
        self.fetched: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag in ("script", "img", "iframe", "source", "video", "audio") and a.get("src"):
            self.fetched.append(a["src"])
        if tag == "link" and a.get("href") and not {"canonical", "alternate"} & set(a.get("rel", "").split()):
            self.fetched.append(a["href"])


def test_the_site_builds_with_the_readme_as_home_and_loads_nothing_from_the_network(tmp_path: Path) -> None:
    mkdocs = Path(sys.executable).parent / "mkdocs"
    if not mkdocs.exists():
        pytest.fail("mkdocs is not installed: `make install` (requirements.txt pins mkdocs and mkdocs-material)")
    done = subprocess.run([str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env={"PATH": "/usr/bin:/bin",
                                                                            "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    site = tmp_path / "site"
    home = (site / "index.html").read_text(encoding="utf-8")
    assert "private question answering over your own documents" in home and 'src="images/app-answer.png"' in home
    assert (site / "images" / "app-answer.png").is_file()
    assert 'href="architecture/#http-api"' in home, "the README's docs/ links point into the site"
    for page in PAGES:
        assert (site / page.removesuffix(".md") / "index.html").is_file(), page
    for html in site.rglob("*.html"):
        parser = _Loads()
        parser.feed(html.read_text(encoding="utf-8"))
        remote = [u for u in parser.fetched if re.match(r"^(https?:)?//", u)]
        assert not remote, f"{html.relative_to(site)} loads {remote}"
    styles = " ".join(p.read_text(encoding="utf-8") for p in site.rglob("*.css"))
    assert "fonts.googleapis" not in styles and "fonts.gstatic" not in styles
    # the theme's script fetches mermaid from a CDN only for a mermaid diagram: keep them out of the docs
    assert not any("```mermaid" in p.read_text(encoding="utf-8") for p in (REPO / "docs").glob("*.md"))
