"""Small learned scorers shipped as JSON: a linear model over named features.

The evidence ranker (which sentences answer the question) and the answer decision (do they) are
linear models trained by the evaluation harness (``rag eval train``) and shipped as small,
versioned JSON files under ``rag/answer/models/``. At run time a score is a dot product; nothing
is trained or downloaded.

Example:
    >>> m = LinearModel("demo", ("cos", "cov"), coef=(2.0, 1.0), intercept=-1.0, mean=(0.5, 0.0), scale=(0.5, 1.0))
    >>> m.score({"cos": 0.75, "cov": 0.5})
    0.5
    >>> LinearModel("demo", ("cos",), coef=(1.0, 2.0))
    Traceback (most recent call last):
    ...
    ValueError: linear model 'demo': 1 features but 2 coefficients
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

FORMAT = "rag-linear-v1"
MODELS_DIR = Path(__file__).resolve().parent / "models"


@dataclass(frozen=True)
class LinearModel:
    """``score(x) = intercept + sum(coef * (x - mean) / scale)`` over :attr:`features`.

    ``threshold`` is the decision point on the score (for a classifier), ``meta`` records how the
    file was made (training command, data, date, held-out metrics).
    """

    name: str
    features: tuple[str, ...]
    coef: tuple[float, ...]
    intercept: float = 0.0
    mean: tuple[float, ...] = ()
    scale: tuple[float, ...] = ()
    threshold: float | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.features)
        object.__setattr__(self, "mean", tuple(self.mean) or (0.0,) * n)
        object.__setattr__(self, "scale", tuple(self.scale) or (1.0,) * n)
        for label, values in (("coefficients", self.coef), ("means", self.mean), ("scales", self.scale)):
            if len(values) != n:
                raise ValueError(f"linear model {self.name!r}: {n} features but {len(values)} {label}")
            if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
                raise ValueError(f"linear model {self.name!r}: its {label} must be finite numbers")
        if any(s <= 0 for s in self.scale):
            raise ValueError(f"linear model {self.name!r}: scales must be > 0")
        if not math.isfinite(self.intercept) or (self.threshold is not None and not math.isfinite(self.threshold)):
            raise ValueError(f"linear model {self.name!r}: intercept and threshold must be finite")

    @property
    def weights(self) -> np.ndarray:
        """The coefficients on the raw (unscaled) features."""
        return np.asarray(self.coef) / np.asarray(self.scale)

    @property
    def offset(self) -> float:
        """The intercept on the raw features."""
        return float(self.intercept - float(np.dot(self.weights, np.asarray(self.mean))))

    def score(self, x: Mapping[str, float]) -> float:
        """The score of one feature mapping (a missing feature is an error naming it)."""
        missing = [f for f in self.features if f not in x]
        if missing:
            raise ValueError(f"linear model {self.name!r} needs features {missing}")
        return float(self.offset + float(np.dot(self.weights, [float(x[f]) for f in self.features])))

    def scores(self, rows: np.ndarray) -> np.ndarray:
        """Scores of a ``(n, len(features))`` matrix whose columns are in :attr:`features` order."""
        return np.asarray(rows, dtype=np.float64) @ self.weights + self.offset

    def to_json(self) -> str:
        data = {"format": FORMAT, **asdict(self)}
        data["meta"] = dict(self.meta)
        return json.dumps(data, indent=1) + "\n"

    def save(self, path: str | Path) -> Path:
        """Write the model atomically (a temporary file renamed into place)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.to_json(), encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "LinearModel":
        """Read a file :meth:`save` wrote; a bad file is a ``ValueError`` naming it."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a readable model file ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"{path}: not a {FORMAT} file")
        try:
            return cls(name=str(data["name"]), features=tuple(map(str, data["features"])),
                       coef=tuple(map(float, data["coef"])), intercept=float(data.get("intercept", 0.0)),
                       mean=tuple(map(float, data.get("mean", ()))), scale=tuple(map(float, data.get("scale", ()))),
                       threshold=None if data.get("threshold") is None else float(data["threshold"]),
                       meta=dict(data.get("meta", {})))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{path}: missing or malformed field {exc}") from None


def packaged(name: str) -> LinearModel | None:
    """The model file ``rag/answer/models/<name>.json`` shipped with the package, or None."""
    path = MODELS_DIR / f"{name}.json"
    return LinearModel.load(path) if path.is_file() else None


def sigmoid(x: float) -> float:
    """The logistic function, safe for large ``|x|``.

    Example:
        >>> round(sigmoid(0.0), 2), round(sigmoid(800.0), 2), round(sigmoid(-800.0), 2)
        (0.5, 1.0, 0.0)
    """
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def columns(rows: Sequence[Mapping[str, float]], features: Sequence[str]) -> np.ndarray:
    """Feature mappings as a matrix in ``features`` order."""
    return np.asarray([[float(r[f]) for f in features] for r in rows], dtype=np.float64).reshape(len(rows),
                                                                                                len(features))
