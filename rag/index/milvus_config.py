"""Where a Milvus-backed index lives and how to reach it: :class:`MilvusConfig` and :func:`connect`.

Kept apart from the index itself (:mod:`rag.index.milvus`) because the command line, the
ingestor and the evaluation harness name a server without opening a collection, and because
turning pymilvus and gRPC failures into one line the user can act on (:func:`describe_failure`)
is a job of its own.  pymilvus installs its own stderr handler on import and logs every failed
request with a traceback (and each retry), ~150 lines for a server killed mid-ingest; inside
:func:`quiet_pymilvus` (every request rag makes) those records go to this module's logger at DEBUG
instead, one line each, and rag reports the failure once.

Example:
    >>> MilvusConfig(uri="localhost:19530")
    Traceback (most recent call last):
    ...
    ValueError: Milvus URI must start with http:// or https://, got 'localhost:19530'
    >>> MilvusConfig(uri="http://127.0.0.1:19530", index_type="DISKANN")
    Traceback (most recent call last):
    ...
    ValueError: Milvus index type must be one of FLAT, IVF_FLAT, HNSW; got 'DISKANN'
    >>> collection_name("my-notes.v2")
    'rag_my_notes_v2'
    >>> describe(MilvusConfig(uri="http://db:19530", collection="rag_notes"))
    "Milvus collection 'rag_notes' at http://db:19530"
"""

from __future__ import annotations

import logging
import os
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

from rag.index.errors import IndexError_
from rag.index.manifest import validate_name

if TYPE_CHECKING:  # pragma: no cover
    from pymilvus import MilvusClient

logger = logging.getLogger(__name__)

BACKEND = "milvus"
INDEX_TYPES: tuple[str, ...] = ("FLAT", "IVF_FLAT", "HNSW")
METRICS: tuple[str, ...] = ("IP", "COSINE")
CONSISTENCY: tuple[str, ...] = ("Strong", "Bounded", "Session", "Eventually")
#: the environment variable the token is read from (the manifest records only its name)
TOKEN_ENV = "RAG_MILVUS_TOKEN"
#: rows per insert request
DEFAULT_BATCH = 256


class MilvusError(IndexError_):
    """The Milvus server cannot be used: unreachable, wrong token, or a request it refused."""


def collection_name(index: str) -> str:
    """The default Milvus collection for index ``index``: ``rag_`` + the name, ``-`` and ``.`` as ``_``."""
    return "rag_" + re.sub(r"[^A-Za-z0-9_]", "_", validate_name(index))


def _choice(label: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{label} must be one of {', '.join(choices)}; got {value!r}")
    return value


@dataclass(frozen=True)
class MilvusConfig:
    """Where and how a collection lives on a Milvus server.

    Args:
        uri: ``http://host:19530`` (a standalone server, a cluster's proxy, Milvus Lite's server,
            or ``https://`` for Zilliz Cloud and TLS).
        collection: the collection name (default: :func:`collection_name` of the index).
        index_type: ``FLAT`` (exact), ``IVF_FLAT`` or ``HNSW`` for the dense field.
        metric: ``IP`` or ``COSINE`` (the same ranking: embeddings are unit length).
        token: ``user:password`` or an API key; never written to the manifest. Default: the
            environment variable ``token_env``.
        token_env: the variable the token is read from when ``token`` is not given.
        consistency: the consistency level of searches (``Strong``: a search sees every
            completed write; ingest always reads with ``Strong``).
        batch_size: rows per insert request.
        timeout: seconds to wait for the server on connect and on each request.
    """

    uri: str
    collection: str = ""
    index_type: str = "FLAT"
    metric: str = "IP"
    token: str | None = field(default=None, repr=False, compare=False)
    token_env: str = TOKEN_ENV
    consistency: str = "Strong"
    batch_size: int = DEFAULT_BATCH
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if not isinstance(self.uri, str) or not re.match(r"^https?://[^/\s]+", self.uri):
            raise ValueError(f"Milvus URI must start with http:// or https://, got {self.uri!r}")
        object.__setattr__(self, "uri", self.uri.rstrip("/"))
        if self.collection and not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$", self.collection):
            raise ValueError(f"Milvus collection names are letters, digits and '_' (not starting with a digit), "
                             f"got {self.collection!r}")
        _choice("Milvus index type", self.index_type, INDEX_TYPES)
        _choice("Milvus metric", self.metric, METRICS)
        _choice("Milvus consistency level", self.consistency, CONSISTENCY)
        if not isinstance(self.batch_size, int) or self.batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if not self.timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {self.timeout!r}")

    def for_index(self, index: str) -> "MilvusConfig":
        """This config with the collection name filled in for ``index`` when none was given."""
        if self.collection:
            return self
        return replace(self, collection=collection_name(index), token=self.token)

    def resolved_token(self) -> str:
        return self.token if self.token is not None else os.environ.get(self.token_env, "")

    def to_manifest(self) -> dict[str, Any]:
        """The manifest's ``backend`` section (no token)."""
        return {"kind": BACKEND, "uri": self.uri, "collection": self.collection, "index_type": self.index_type,
                "metric": self.metric, "token_env": self.token_env, "consistency": self.consistency}

    @classmethod
    def from_manifest(cls, m: Mapping[str, Any]) -> "MilvusConfig":
        return cls(uri=m["uri"], collection=m["collection"], index_type=m.get("index_type", "FLAT"),
                   metric=m.get("metric", "IP"), token_env=m.get("token_env", TOKEN_ENV),
                   consistency=m.get("consistency", "Strong"))


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "message", "") or str(exc) or type(exc).__name__
    return " ".join(str(text).split())[:300]


def _is_auth(exc: BaseException) -> bool:
    text = _reason(exc).lower()
    return getattr(exc, "code", None) in (1800, 16) or any(
        w in text for w in ("auth", "unauthenticated", "permission denied", "token", "credential"))


def describe_failure(exc: BaseException, uri: str, doing: str) -> MilvusError:
    """One line for a failed request to the server at ``uri``: unreachable, wrong token, or the server's reason.

    Example:
        >>> from pymilvus import MilvusException
        >>> str(describe_failure(MilvusException(code=1800, message="auth check failure"), "http://db:19530", "connect"))
        'Milvus at http://db:19530 refused the credentials (auth check failure); set the right token in $RAG_MILVUS_TOKEN (user:password or an API key)'
    """
    if _is_auth(exc):
        return MilvusError(f"Milvus at {uri} refused the credentials ({_reason(exc)}); set the right token in "
                           f"${TOKEN_ENV} (user:password or an API key)")
    text = _reason(exc).lower()
    if any(w in text for w in ("fail connecting", "unavailable", "connection refused", "deadline", "timeout",
                               "failed to connect")) or isinstance(exc, (ConnectionError, TimeoutError)):
        return MilvusError(f"cannot reach the Milvus server at {uri} (while trying to {doing}); start it or "
                           f"fix the URI (e.g. `milvus-lite server --data-dir DIR --host 127.0.0.1 --port 19530`, "
                           f"then --uri http://127.0.0.1:19530)")
    return MilvusError(f"Milvus at {uri} failed to {doing}: {_reason(exc)}")


class _InsideOurCall(logging.Filter):
    """Turns a pymilvus record made while this thread is in :func:`quiet_pymilvus` into one DEBUG line of ours."""

    def __init__(self) -> None:
        super().__init__("pymilvus")
        self.depth = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(self.depth, "n", 0):
            return True
        if logger.isEnabledFor(logging.DEBUG):
            first = (record.getMessage().strip().splitlines() or [""])[0]
            logger.debug("pymilvus %s: %s", record.levelname.lower(), first[:300])
        return False


_FILTER = _InsideOurCall()


@contextmanager
def quiet_pymilvus() -> Iterator[None]:
    """Requests to the server made in this block log nothing through pymilvus (its tracebacks, its retries).

    The caller reports a failure itself, in one line (:func:`describe_failure`); what pymilvus
    would have printed goes to this module's logger at DEBUG.  Other threads' requests are untouched.

    Example:
        >>> import logging
        >>> with quiet_pymilvus():
        ...     logging.getLogger("pymilvus.decorators").error("RPC error: [flush]\\nTraceback: ...")
    """
    import pymilvus  # noqa: F401 - its loggers exist once it is imported

    for name, item in list(logging.root.manager.loggerDict.items()):
        if (name == "pymilvus" or name.startswith("pymilvus.")) and isinstance(item, logging.Logger) \
                and _FILTER not in item.filters:
            item.addFilter(_FILTER)  # a filter on each logger: records are dropped where they are made
    _FILTER.depth.n = getattr(_FILTER.depth, "n", 0) + 1
    try:
        yield
    finally:
        _FILTER.depth.n -= 1


def connect(config: MilvusConfig) -> "MilvusClient":
    """A client for ``config.uri`` (checked with one request); :class:`MilvusError` in one line if it fails."""
    from pymilvus import MilvusClient

    try:
        # no keepalive pings on an idle channel: milvus-lite (and gRPC servers by default) answer pings
        # without calls with GOAWAY "too_many_pings", which dropped the connection during long uploads
        with quiet_pymilvus():
            client = MilvusClient(uri=config.uri, token=config.resolved_token(), timeout=config.timeout,
                                  grpc_options={"grpc.keepalive_time_ms": 60000,
                                                "grpc.keepalive_permit_without_calls": 0})
            client.list_collections(timeout=config.timeout)
    except Exception as exc:  # noqa: BLE001 - pymilvus raises MilvusException and grpc errors
        raise describe_failure(exc, config.uri, "connect") from None
    return client


def describe(config: MilvusConfig) -> str:
    """``Milvus collection 'rag_x' at http://host:19530``: where ``config`` puts an index, for messages."""
    return f"Milvus collection {config.collection!r} at {config.uri}"
