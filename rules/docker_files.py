"""The Dockerfiles and build scripts that ship in ``runner_template/docker/``, read as bytes."""

from __future__ import annotations

from importlib import resources


def docker_file(name: str) -> bytes:
    return resources.files("runner_template").joinpath("docker", name).read_bytes()
