"""Where build outputs go: ``DOCKER_WORKFLOW_CACHE``, else ``cache/`` in the current folder."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("DOCKER_WORKFLOW_CACHE") or "cache").resolve()


def workflow_dir(workflow_id: str) -> Path:
    """Per-workflow outputs: analysis, bundle, rendered runner."""
    return cache_dir() / "workflows" / workflow_id
