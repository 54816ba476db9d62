"""The Dockerfiles and build scripts that ship in ``rules/docker/build/``, read as bytes."""

from __future__ import annotations

from importlib import resources


def docker_file(name: str) -> bytes:
    return resources.files("rules.docker").joinpath("build", name).read_bytes()
