"""The model picker: which registry models work on this machine now, and what to do about the others."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rag.generation.models import REGISTRY, availability, install_hint, names
from rag.ui.text import code, md


@dataclass(frozen=True)
class ModelChoice:
    """A registry model as the picker shows it: usable offline now or not, why, and the command that gets it."""

    name: str
    description: str
    available: bool
    status: str
    get_command: str
    packaged: bool = False

    @property
    def label(self) -> str:
        if self.available:
            return self.name
        return f"{self.name} ({'not installed' if self.packaged else 'not downloaded'})"


def model_choices(models_dir: str | Path | None = None) -> list[ModelChoice]:
    """Every registry model, with whether it works offline now (packaged, assembled or pulled) and how to get it.

    Reads :func:`rag.generation.models.availability` and :func:`~rag.generation.models.install_hint`.

    Example:
        >>> {m.name: m.available for m in model_choices()}["smollm2-135m"]  # packaged with the app
        True
    """
    out = []
    for name in names():
        spec = REGISTRY[name]
        ok, status = availability(spec, models_dir)
        out.append(ModelChoice(name, spec.description, ok, status, install_hint(spec), spec.packaged))
    return out


def model_problem(choice: ModelChoice | None, custom_path: str = "", generative: bool = True) -> str:
    """Why a question cannot be answered with the picked model (Markdown), or "" when it can.

    ``custom_path`` is a GGUF path typed instead of a registry model (it wins when given); an
    extractive answer needs no model at all.

    Example:
        >>> model_problem(None, "/nowhere/model.gguf")
        'There is no file at `/nowhere/model.gguf`: give the path of a .gguf file.'
        >>> model_problem(ModelChoice("phi-3-mini", "Phi-3", False, "", "rag models pull phi-3-mini"), generative=False)
        ''
    """
    if not generative:
        return ""
    if custom_path.strip():
        path = custom_path.strip()
        return "" if Path(path).expanduser().is_file() else \
            f"There is no file at {code(path)}: give the path of a .gguf file."
    if choice is None or choice.available:
        return ""
    return (f"**{md(choice.name)}** is not on this machine ({md(choice.description)}). Get it with "
            f"`{choice.get_command}` (needs a network once), then pick it again; or choose "
            "another model, or extractive answers.")
