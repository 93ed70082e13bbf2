"""No telemetry, from any library the package loads: the switches, set once where the package starts.

``rag/__init__.py`` calls :func:`switch_off_telemetry` before it imports anything else, so every
front end (CLI, app, API, watcher, eval, bench) gets it, however it was started. The switches are
environment variables because several libraries read them from C or at their own import time, where
no Python call can reach: onnxruntime's telemetry (``mobile.events.data.microsoft.com``, sent from
C++ when the embedder's session starts) listens to ``ORT_DISABLE_TELEMETRY`` only.

A variable the user already set is left as it is (an explicit choice); ``tests/e2e/test_no_egress.py``
checks every long-running command at the system-call level.

Example:
    >>> env = {"HF_HUB_DISABLE_TELEMETRY": "0"}
    >>> switch_off_telemetry(env)
    >>> env["ORT_DISABLE_TELEMETRY"], env["HF_HUB_DISABLE_TELEMETRY"], env["RAGAS_DO_NOT_TRACK"]
    ('1', '0', 'true')
"""

from __future__ import annotations

from collections.abc import MutableMapping

#: variable -> value that switches a library's telemetry (or outbound tracing) off.
TELEMETRY_OFF: dict[str, str] = {
    "ORT_DISABLE_TELEMETRY": "1",  # onnxruntime (the default embedder's runtime)
    "HF_HUB_DISABLE_TELEMETRY": "1",  # huggingface_hub, hence transformers and sentence-transformers
    "DISABLE_TELEMETRY": "1",  # transformers' and datasets' older name for it
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",  # never send a stored Hub token along
    "RAGAS_DO_NOT_TRACK": "true",  # ragas (eval only)
    "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",  # streamlit (also in .streamlit/config.toml)
    "LANGSMITH_TRACING": "false",  # langchain's tracing to LangSmith
    "LANGCHAIN_TRACING_V2": "false",
    "DO_NOT_TRACK": "1",  # the cross-tool convention (consoledonottrack.com)
}


def switch_off_telemetry(environ: MutableMapping[str, str]) -> None:
    """Set every :data:`TELEMETRY_OFF` variable the user has not set (``os.environ`` at package start)."""
    for name, value in TELEMETRY_OFF.items():
        environ.setdefault(name, value)
