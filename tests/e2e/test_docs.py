"""Every fenced code block in README.md and docs/*.md runs: as written, or with a documented substitution.

Each block is one test (``README.md#3-bash``: the page, the block's number on it, its language), run
in page order against one workspace: a temporary folder with a copy of ``samples/``, its own index
directory (``RAG_INDEX_DIR``) and upload directory, in which the ``samples`` collection is indexed
first, so that any block can also run alone.  Everything runs offline (``HF_HUB_OFFLINE=1``).

The convention, by kind of block:

* ``python``: the block runs in a subprocess (``python -c``) in the workspace, and must exit 0.  The
  README's ``openai`` client example needs a running API: ``tests/serve/test_api.py``
  (``test_readme_client_example_runs``) runs it against the real server, and this test checks that
  it reads the same block.
* ``toml``: a fragment of the example plugin package's ``pyproject.toml``; it must parse, be in
  ``examples/rag-example-plugins/pyproject.toml`` as written, and every entry point it names must import.
* ``bash``: line by line (a trailing ``\\`` joins lines, ``# ...`` comments are the reader's) from the
  repository root, so ``bench/``, ``eval/``, ``ui/app.py`` and ``../shared/data`` resolve as the pages
  say; each line must exit 0.  ``source .venv/bin/activate`` is a no-op (``.venv/bin`` is on ``PATH``);
  ``export NAME=VALUE`` sets ``NAME`` for the lines after it; ``--out``, ``--data-dir`` and ``/tmp/...``
  paths are moved into the workspace (later lines see the same move); a line ending in ``&`` starts a
  background server (its ``--port`` swapped for a free one, in later lines too), stopped at the block's end.

Substitutions for commands that run long or need what a test cannot have:

==========================================  ================================================================
command                                     run as
==========================================  ================================================================
``make run``                                ``make -o install run`` on a free port (no reinstall); up when
                                            ``/_stcore/health`` answers "ok", then stopped
``make test``                               ``make -n -o install -o browser test`` must run pytest, and the
                                            suite must collect (``pytest --collect-only``): the suite includes
                                            this test
``streamlit run ...``                       on a free ``--server.port``; up when ``/_stcore/health`` answers,
                                            then stopped
``rag serve ...``                           with ``--port 0``; up when the URL it prints answers ``/health``,
                                            then stopped
``rag watch ...``                           up when it prints "watching", then stopped with SIGINT
``rag chat ...``                            asked "How large can a file be?", then ``/quit``, on stdin
``rag models pull`` of a model that is not  offline it must fail in one line that names the manual download
packaged (it downloads)                     (or succeed if the model is already here)
``... pip install ... llama-cpp-python``    not run (it rebuilds llama.cpp, with CUDA); its pin must be
                                            requirements.txt's
``curl http://127.0.0.1:8000/...``          against a ``rag serve --index samples`` on a free port, started
                                            for this module; the reply must be a chat completion
``rag eval retrieval``                      ``--limit 5`` (the first 5 judged queries)
``rag eval answers``                        ``--limit 1`` (one question, asked with and without its article)
``rag eval train``                          ``--help``: a decision needs both answers of tens of questions
                                            from the model to fit its probe (tens of minutes)
``eval/claims.py``                          ``--limit 1``
``eval/own_words.py``                      ``--extractive`` (the same 20 questions, no language model)
``bench/retrieval.py``                      ``--sizes 300 --max-docs 150 --queries 5 --encode-chunks 4``
``bench/embedding.py``                      ``--chunks 8 --repeats 1 --budget-s 30``
``bench/api.py``                            ``--seconds 2 --requests 4 --chat-seconds 5 --chat-requests 1
                                            --max-tokens 4``
``bench/milvus.py``                         ``--chunks 500 --queries 5``
``bench/generation.py``                     ``--runs 1 --questions 1 --max-tokens 8``
``bench/locks.py``                          ``--rounds 20``
``eval/fusion.py``                         ``--help``: no size option (about 5 minutes)
``bench/peer_langchain.py``                 ``--limit 3``
``eval/embedders_qa.py``                   ``--help``: it downloads nomic's packaged weights (a network)
==========================================  ================================================================

A line that reads ``../shared/data/NAME``, or ``data/NAME`` (the collections ``eval/collections.py``
builds in the repository, git-ignored), is skipped, with a warning that names the folder, only when
that folder is absent.  A block of any other language fails: add its convention here first.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.model]

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data"
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
VENV_BIN = Path(sys.executable).parent
PLUGINS = REPO / "examples" / "rag-example-plugins"
LINE_TIMEOUT = 600

#: appended to (or replacing the options of) a benchmark command, by the script it runs
TINY: dict[str, list[str]] = {
    "bench/retrieval.py": ["--sizes", "300", "--max-docs", "150", "--queries", "5", "--encode-chunks", "4"],
    "bench/embedding.py": ["--chunks", "8", "--repeats", "1", "--budget-s", "30"],
    "bench/api.py": ["--seconds", "2", "--requests", "4", "--chat-seconds", "5", "--chat-requests", "1",
                     "--max-tokens", "4"],
    "bench/milvus.py": ["--chunks", "500", "--queries", "5"],
    "bench/generation.py": ["--runs", "1", "--questions", "1", "--max-tokens", "8"],
    "bench/locks.py": ["--rounds", "20"],
    "eval/own_words.py": ["--extractive"],
    "eval/claims.py": ["--limit", "1"],
    "bench/peer_langchain.py": ["--limit", "3"],
}
HELP_ONLY = ("eval/fusion.py", "eval/embedders_qa.py")
#: options whose value a substitution replaces rather than repeats
VALUED = {"--sizes", "--max-docs", "--queries", "--encode-chunks", "--chunks", "--repeats", "--budget-s", "--seconds",
          "--requests", "--chat-seconds", "--chat-requests", "--max-tokens", "--runs", "--questions", "--rounds",
          "--limit"}


@dataclass(frozen=True)
class Block:
    page: Path
    number: int
    lang: str
    code: str

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(REPO)}#{self.number}-{self.lang or 'text'}"


def blocks() -> list[Block]:
    out = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for n, m in enumerate(re.finditer(r"^```([^\n`]*)\n(.*?)^```", text, re.S | re.M), 1):
            out.append(Block(page, n, m.group(1).strip(), m.group(2)))
    return out


BLOCKS = blocks()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # loopback only
        return r.status, r.read()


def wait_for(check, what: str, proc: subprocess.Popen | None = None, timeout: float = 300.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: the process exited with {proc.returncode}")
        time.sleep(0.5)
    raise AssertionError(f"{what}: not up within {timeout:.0f} s")


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Signal the process group :meth:`Workspace.start` made; kill it if it has not ended in 30 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    try:
        os.killpg(proc.pid, signal.SIGTERM)  # what the leader left behind
    except ProcessLookupError:
        pass


@dataclass
class Workspace:
    root: Path
    env: dict[str, str]
    moved: dict[str, str] = field(default_factory=dict)
    api_url: str | None = None
    api_proc: subprocess.Popen | None = None
    log: Path | None = None

    def run(self, cmd: str, *, cwd: Path = REPO, stdin: str | None = None, timeout: int = LINE_TIMEOUT,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-c", cmd], cwd=cwd, env=env or self.env, input=stdin, capture_output=True,
                              text=True, timeout=timeout)

    def start(self, cmd: str, name: str, cwd: Path = REPO) -> tuple[subprocess.Popen, Path]:
        """``cmd`` in the background, in its own process group (``make run`` leaves a child behind otherwise)."""
        log = self.root / f"{name}-{time.monotonic_ns()}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(["bash", "-c", f"exec {cmd}"], cwd=cwd, env=self.env, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        return proc, log

    def api(self) -> str:
        """A ``rag serve --index samples`` on a free port for the ``curl`` examples (started once)."""
        if self.api_url is None:
            proc, log = self.start("rag serve --index samples --port 0", "api")
            self.api_proc, self.log = proc, log
            wait_for(lambda: "http://" in log.read_text(), "rag serve", proc)
            url = re.search(r"(http://127\.0\.0\.1:\d+)/v1", log.read_text()).group(1)  # type: ignore[union-attr]
            wait_for(lambda: get(f"{url}/health")[0] == 200, "rag serve /health", proc)
            self.api_url = url
        return self.api_url


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    import shutil

    root = tmp_path_factory.mktemp("docs")
    shutil.copytree(REPO / "samples", root / "samples")
    (root / "moved").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_") and k not in ("RAG_API_KEY",
                                                                                          "RAG_ACCESS_TOKEN")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", RAGAS_DO_NOT_TRACK="true",
               RAG_INDEX_DIR=str(root / "indexes"), RAG_UPLOAD_DIR=str(root / "uploads"),
               PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}", PYTHONUNBUFFERED="1")
    w = Workspace(root, env)
    # bash lines run from the repository (its samples/), Python blocks in the workspace (the copy), each
    # with its own index directory
    for cwd, indexes in ((REPO, root / "indexes"), (root, root / "py-indexes")):
        done = w.run("rag ingest samples --index samples", cwd=cwd, env={**env, "RAG_INDEX_DIR": str(indexes)})
        assert done.returncode == 0, done.stderr[-2000:]
    yield w
    if w.api_proc is not None:
        stop(w.api_proc)


# -- one line of a bash block ---------------------------------------------------------------------------


def logical_lines(code: str) -> list[str]:
    """The block's commands: continuation lines joined, blank lines and whole-line comments dropped."""
    out, pending = [], ""
    for raw in code.splitlines():
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        line = (pending + raw).strip()
        pending = ""
        if line and not line.startswith("#"):
            out.append(line)
    return out


def words(line: str) -> list[str]:
    return shlex.split(line, comments=True)


def with_options(argv: list[str], extra: list[str]) -> list[str]:
    """``argv`` with ``extra``'s options set: an option already there gets extra's value instead."""
    argv = list(argv)
    i = 0
    while i < len(extra):
        opt = extra[i]
        has_value = opt in VALUED
        if opt in argv:
            j = argv.index(opt)
            del argv[j:j + (2 if has_value else 1)]
        argv += extra[i:i + (2 if has_value else 1)]
        i += 2 if has_value else 1
    return argv


def move_paths(argv: list[str], ws: Workspace) -> list[str]:
    """``--out``/``--data-dir`` values and ``/tmp/...`` paths moved into the workspace (remembered)."""
    out = list(argv)
    for i, word in enumerate(out):
        if word.startswith(str(ws.root)):
            continue
        if i and out[i - 1] in ("--out", "--data-dir") or word.startswith("/tmp/"):
            target = str(ws.root / "moved" / word.strip("/").replace("/", "_"))
            ws.moved.setdefault(word, target)
            out[i] = ws.moved[word]
    return out


def apply_moves(line: str, ws: Workspace) -> str:
    for old in sorted(ws.moved, key=len, reverse=True):  # whole paths only: eval-results/qa is not eval-results/qa-dev
        # a whole path only: not the tail of another (../shared/data is not the moved data); a port (":19530")
        # follows its host, so only its end is bounded
        start = "" if old.startswith(":") else r"(?<![\w./-])"
        line = re.sub(start + re.escape(old) + r"(?=$|[/\s'\"])", lambda _m, new=ws.moved[old]: new, line)
    return line


def missing_data(line: str) -> Path | None:
    for name in re.findall(r"\.\./shared/data/([\w.-]+)", line):
        if not (DATA / name).is_dir():
            return DATA / name
    for name in re.findall(r"(?<![\w./-])data/([\w.-]+)", line):  # the repository's own, git-ignored collections
        if not (REPO / "data" / name).is_dir():
            return REPO / "data" / name
    return None


def check(done: subprocess.CompletedProcess[str], line: str) -> str:
    assert done.returncode == 0, f"{line}\nexit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def run_server(ws: Workspace, cmd: str, url_of, name: str) -> None:  # type: ignore[no-untyped-def]
    proc, log = ws.start(cmd, name)
    try:
        wait_for(lambda: url_of(log) is not None, f"{cmd} (log: {log})", proc)
    finally:
        stop(proc)


def run_line(line: str, ws: Workspace, background: list[subprocess.Popen]) -> None:
    line = apply_moves(line, ws)
    if (data := missing_data(line)) is not None:
        warnings.warn(f"skipped because {data} is absent: {line}")
        return
    argv = words(line)
    env_prefix = []
    while argv and re.match(r"^[A-Z_][A-Z0-9_]*=", argv[0]):
        env_prefix.append(argv.pop(0))
    if not argv:
        return
    head, rest = argv[0], argv[1:]
    quoted = " ".join(shlex.quote(a) for a in env_prefix)
    prefix = f"{quoted} " if quoted else ""

    if argv[:2] == ["source", ".venv/bin/activate"]:
        return
    if head == "export":
        name, _, _ = rest[0].partition("=")
        done = ws.run(f'{line}; printf %s "${name}"')
        ws.env[name] = check(done, line)
        return
    if line.endswith("&"):
        argv = words(line[:-1])
        if "--port" in argv:
            j = argv.index("--port") + 1
            port = str(free_port())
            ws.moved[f":{argv[j]}"] = f":{port}"
            argv[j] = port
        argv = move_paths(argv, ws)
        proc, log = ws.start(shlex.join(argv), "background")
        background.append(proc)
        if "--port" in argv:
            port = int(argv[argv.index("--port") + 1])
            wait_for(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() is None,
                     f"{line} (log: {log})", proc, timeout=120)
        return
    if argv[:2] == ["make", "run"]:
        port = free_port()
        ws.env["STREAMLIT_SERVER_PORT"] = str(port)
        try:
            run_server(ws, "make -o install run", lambda _log: _health(port), "make-run")
        finally:
            del ws.env["STREAMLIT_SERVER_PORT"]
        return
    if argv[:2] == ["make", "test"]:
        dry = check(ws.run("make -n -o install -o browser test"), line)
        assert "pytest" in dry, dry
        collected = check(ws.run(f"{sys.executable} -m pytest --collect-only -q -p no:cacheprovider", timeout=900),
                          line)
        assert re.search(r"\d+ tests? collected", collected), collected[-2000:]
        return
    if head.endswith("streamlit") and rest[:1] == ["run"]:
        port = free_port()
        run_server(ws, f"{prefix}{shlex.join([*argv, '--server.port', str(port)])}", lambda _log: _health(port),
                   "streamlit")
        return
    if head == "rag" and rest[:1] == ["serve"]:
        def url(log: Path) -> str | None:
            m = re.search(r"(http://127\.0\.0\.1:\d+)/v1", log.read_text())
            return m.group(1) if m and get(f"{m.group(1)}/health")[0] == 200 else None
        run_server(ws, f"{prefix}{shlex.join([*argv, '--port', '0'])}", url, "serve")
        return
    if head == "rag" and rest[:1] == ["watch"]:
        proc, log = ws.start(f"{prefix}{shlex.join(argv)}", "watch")
        try:
            wait_for(lambda: "watching" in log.read_text(), f"{line} (log: {log})", proc)
        finally:
            stop(proc, signal.SIGINT)
        assert proc.returncode == 0, log.read_text()[-2000:]
        return
    if head == "rag" and rest[:1] == ["chat"]:
        out = check(ws.run(f"{prefix}{shlex.join(argv)}", stdin="How large can a file be?\n/quit\n"), line)
        assert out.strip(), "rag chat answered nothing"
        return
    if head == "rag" and rest[:2] == ["models", "pull"]:
        from rag.generation.models import get_spec

        if not get_spec(rest[2]).packaged:  # a download: offline it must fail in one clear line
            done = ws.run(f"{prefix}{shlex.join(argv)}")
            assert done.returncode == 0 or ("could not download" in done.stderr and "manually" in done.stderr), \
                done.stderr[-2000:]
            return
    if any(a == "pip" or a.endswith("/pip") for a in argv) and "install" in argv:
        pins = [a for a in argv if a.startswith("llama-cpp-python==")]
        assert pins, f"only the llama.cpp GPU rebuild is documented as a pip command: {line}"
        assert pins[0] in (REPO / "requirements.txt").read_text(encoding="utf-8").splitlines(), pins[0]
        return
    if head == "curl":
        line = line.replace("http://127.0.0.1:8000", ws.api())
        out = check(ws.run(line), line)
        assert '"chat.completion"' in out and '"rag"' in out, out[-2000:]
        return
    if head == "python" and rest[:3] in (["-m", "rag", "eval"],):
        argv = move_paths(argv, ws)
        what = argv[4] if len(argv) > 4 else ""
        if what == "train":
            argv = argv[:6] + ["--help"]
        elif what == "retrieval":
            argv = with_options(argv, ["--limit", "5"])
        elif what == "answers":
            argv = with_options(argv, ["--limit", "1"])
        check(ws.run(f"{prefix}{shlex.join(argv)}"), line)
        return
    if head == "python" and rest and rest[0] in (*TINY, *HELP_ONLY):
        script = rest[0]
        argv = ["python", script, "--help"] if script in HELP_ONLY else with_options(move_paths(argv, ws), TINY[script])
        check(ws.run(f"{prefix}{shlex.join(argv)}"), line)
        return
    check(ws.run(f"{prefix}{shlex.join(move_paths(argv, ws))}"), line)


def _health(port: int) -> bool:
    return get(f"http://127.0.0.1:{port}/_stcore/health")[1].strip() == b"ok"


# -- the tests ------------------------------------------------------------------------------------------


def test_every_block_has_a_convention() -> None:
    assert len(BLOCKS) >= 20
    unknown = [b.id for b in BLOCKS if b.lang not in ("bash", "python", "toml")]
    assert not unknown, f"blocks without a convention (see this module's docstring): {unknown}"


def _openai_example() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## HTTP API", 1)[1].split("\n## ", 1)[0]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_block_runs(block: Block, ws: Workspace) -> None:
    if block.lang == "python":
        if block.code == _openai_example():
            api_test = (REPO / "tests" / "serve" / "test_api.py").read_text(encoding="utf-8")
            assert "def test_readme_client_example_runs" in api_test and '"## HTTP API"' in api_test
            return  # run against the real server by tests/serve/test_api.py
        done = subprocess.run([sys.executable, "-c", block.code], cwd=ws.root, capture_output=True, text=True,
                              env={**ws.env, "RAG_INDEX_DIR": str(ws.root / "py-indexes")}, timeout=LINE_TIMEOUT)
        assert done.returncode == 0, f"{block.id}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        assert done.stdout.strip(), f"{block.id} printed nothing"
    elif block.lang == "toml":
        tomllib.loads(block.code)
        assert block.code in (PLUGINS / "pyproject.toml").read_text(encoding="utf-8")
        targets = re.findall(r'=\s*"([\w.]+):([\w.]+)"', block.code)
        assert targets
        for module, attr in targets:
            done = subprocess.run([sys.executable, "-c", f"import {module} as m, functools; "
                                   f"functools.reduce(getattr, {attr.split('.')!r}, m)"],
                                  env={**ws.env, "PYTHONPATH": str(PLUGINS)}, capture_output=True, text=True)
            assert done.returncode == 0, done.stderr[-2000:]
    elif block.lang == "bash":
        background: list[subprocess.Popen] = []
        try:
            for line in logical_lines(block.code):
                run_line(line, ws, background)
        finally:
            for proc in background:
                stop(proc)
    else:
        pytest.fail(f"{block.id}: no convention for {block.lang!r} blocks")
