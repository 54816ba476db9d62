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


@pytest.fixture(scope="module")
def swarm():
    """A single-node swarm on loopback, for the module that asks; left again afterwards when
    this fixture made it."""
    import docker

    client = docker.from_env()
    made = client.info()["Swarm"]["LocalNodeState"] != "active"
    if made:
        client.swarm.init(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
    yield client
    if made:
        client.swarm.leave(force=True)


@pytest.fixture(scope="session")
def swarm_nodes(tmp_path_factory):
    """Three dockerd worker nodes in privileged containers, joined to this engine's swarm, and
    a TLS registry on the docker bridge's gateway that they pull from (tests/swarm_nodes.py):
    set up once per test run for the tests that ask, torn down at its end. A single-node swarm
    test that runs meanwhile keeps its tasks on this node (an image by ID, or from a registry
    on loopback, places them here)."""
    from swarm_nodes import SwarmNodes

    nodes = SwarmNodes(tmp_path_factory.mktemp("swarm-nodes"))
    yield nodes
    nodes.close()
