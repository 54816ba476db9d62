"""The Docker engine, as this tool needs it: reachable, with buildx, or one clear error.

``python_on_whales`` drives the docker CLI (builds, images); the ``docker`` SDK talks to the
engine's API (running containers). Both report failures as exceptions with long multi-line
texts; :func:`docker_error` turns them into a :class:`UserError` with the lines that matter.
"""

from __future__ import annotations

import os
import shutil
from functools import cache

from rules.errors import UserError

BUILDER_IMAGE_ENV = "DOCKER_WORKFLOW_BUILDER_IMAGE"


def require_docker_cli() -> None:
    if shutil.which("docker") is None:
        raise UserError(
            "docker is not installed (no 'docker' command on PATH): install Docker, or run"
            " scripts/setup.sh on Debian (docker-workflow doctor says what else is missing)"
        )


@cache
def docker_client():
    """A Docker SDK client for the engine; a clear error when the engine is down."""
    import docker
    from docker.errors import DockerException

    require_docker_cli()
    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except DockerException as error:
        raise UserError(
            f"the Docker engine is not reachable ({_first_line(str(error))}): start it"
            " (scripts/setup.sh starts one) or set DOCKER_HOST (docker-workflow doctor)"
        ) from None
    return client


def ensure_engine() -> None:
    """Fail early, with one message, when the engine cannot be used."""
    docker_client()


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), text)


def docker_error(what: str, error: Exception, hint: str = "") -> UserError:
    """A one-paragraph error from a python_on_whales/SDK failure: what failed, its key lines."""
    text = str(getattr(error, "stderr", None) or error)
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    interesting = [
        line
        for line in lines
        if any(word in line.lower() for word in ("error", "failed", "fatal", "not found", "denied"))
    ] or lines
    detail = "\n  ".join(interesting[-12:])
    message = f"{what} failed:\n  {detail}"
    if hint:
        message += f"\n{hint}"
    return UserError(message)


def default_builder_image(option: str | None) -> str | None:
    return option or os.environ.get(BUILDER_IMAGE_ENV) or None
