"""Where build outputs go: ``DOCKER_WORKFLOW_CACHE``, else ``cache/`` in the current folder."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("DOCKER_WORKFLOW_CACHE") or "cache").resolve()


def target_dir(name: str) -> Path:
    """Per-target outputs: analysis, bundle, rendered runner, step markers."""
    return cache_dir() / "targets" / name
