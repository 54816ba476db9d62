"""Fixtures for tests through the real Docker engine, buildx and QEMU.

Images are built once per session into one shared build cache (``DOCKER_WORKFLOW_TEST_CACHE``
or a session temp folder), so every test after the first reuses the compiled engines; the
builder image comes from ``DOCKER_WORKFLOW_BUILDER_IMAGE`` (set by scripts/test.sh).
"""

from __future__ import annotations

import pytest
from helpers import run_cli


@pytest.fixture(scope="session")
def dw(shared_cache, builder_image):
    """Run the CLI with the shared build cache and the test builder image."""

    def call(*args: str, input_text: str | None = None, env: dict | None = None, timeout=3000):
        return run_cli(
            *args,
            input_text=input_text,
            env={
                "DOCKER_WORKFLOW_CACHE": str(shared_cache),
                "DOCKER_WORKFLOW_BUILDER_IMAGE": builder_image,
                **(env or {}),
            },
            timeout=timeout,
        )

    return call
