"""Fixtures: the real dev LLM server (one per session) and an isolated build cache per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import LLMServer


@pytest.fixture(scope="session")
def llm_server() -> Iterator[LLMServer]:
    """One real model server for the whole session, on loopback only.

    Containers started by the tests reach it with host networking, where the runner maps
    host.docker.internal to 127.0.0.1: no test traffic leaves loopback.
    """
    server = LLMServer("127.0.0.1")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> Path:
    """The build cache that tests building images share (``DOCKER_WORKFLOW_TEST_CACHE`` or a
    session temp folder), so compiled engines are made once per test run."""
    configured = os.environ.get("DOCKER_WORKFLOW_TEST_CACHE")
    return Path(configured) if configured else tmp_path_factory.mktemp("docker-cache")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch) -> None:
    """Each test writes build outputs into its own cache folder."""
    monkeypatch.setenv("DOCKER_WORKFLOW_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def builder_image() -> str:
    """The builder image for compiles (scripts/test.sh sets it from docker-workflow bases)."""
    image = os.environ.get("DOCKER_WORKFLOW_BUILDER_IMAGE")
    if not image:
        pytest.fail("DOCKER_WORKFLOW_BUILDER_IMAGE is not set: run the tests with scripts/test.sh")
    return image
