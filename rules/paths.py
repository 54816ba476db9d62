"""Where build outputs go: the folder a command was given (``-o DIR``), else
``DOCKER_WORKFLOW_CACHE``, else ``cache/`` in the current folder.

A command's folder is set for the extent of its build with :func:`cache_root` (a context
variable, not the process environment, so nothing leaks into child processes or later calls).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

_chosen: ContextVar[Path | None] = ContextVar("docker_workflow_cache", default=None)


def cache_dir() -> Path:
    chosen = _chosen.get()
    if chosen is not None:
        return chosen
    return Path(os.environ.get("DOCKER_WORKFLOW_CACHE") or "cache").resolve()


@contextmanager
def cache_root(folder: Path | None) -> Iterator[None]:
    """Build outputs under ``folder`` inside the block (None: the default)."""
    if folder is None:
        yield
        return
    token = _chosen.set(Path(folder).resolve())
    try:
        yield
    finally:
        _chosen.reset(token)


def target_dir(name: str) -> Path:
    """Per-target outputs: analysis, bundle, rendered runner, step markers."""
    return cache_dir() / "targets" / name
