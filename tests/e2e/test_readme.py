"""The README's first lines and its Python example stay true."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_one() -> None:
    first = README.split("```")[1].splitlines()
    commands = [line.split("#")[0].strip() for line in first[1:] if line.strip()]
    assert commands == ["make run", "make test"]
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^run: install", makefile, re.M) and re.search(r"^test: install", makefile, re.M)
    assert "make test" in (REPO / ".ci" / "run").read_text(encoding="utf-8")


@pytest.mark.model  # a subprocess runs the README with the real models
def test_readme_python_examples_run(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert len(blocks) >= 2  # ingest + search, then the pipeline builder
    shutil.copytree(REPO / "samples", tmp_path / "samples")
    out = subprocess.run([sys.executable, "-c", blocks[0] + "\n" + blocks[1]], cwd=tmp_path, capture_output=True,
                         text=True,
                         timeout=300, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin",
                                           "HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "3 added" in out.stdout
    assert re.search(r"^1 -?\d+\.\d+ .*samples/.*\.md", out.stdout, re.M)  # a fused score: z-scores summed, not a probability
    assert (tmp_path / "indexes" / "samples" / "manifest.json").exists()
    assert "100 MB" in out.stdout and "faq.md" in out.stdout  # the pipeline's extractive answer, cited
