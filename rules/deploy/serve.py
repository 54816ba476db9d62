"""``docker-workflow serve``: the workflow as an HTTP service, in a container or locally.

In a container: the image is built if needed, then runs ``--serve`` locked down the way
``run`` is (read-only, no capabilities, limits), with its port published on ``--bind``
(127.0.0.1 unless told otherwise). The URL goes to the caller (the CLI prints it on stdout).
Without ``--detach`` the service's log lines follow on stderr until Ctrl-C, which stops the
container gracefully (the service finishes running requests first) and removes it. With
``--detach`` the container keeps running, and ``docker stop`` ends it the same way.

``--local`` serves with this machine's Python instead (``rules/deploy/local.py``): the fast loop
while writing a workflow.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable

from rules.deploy.container import RunLimits
from rules.docker.containers import host_mapping
from rules.docker.engine import docker_client, docker_error
from rules.errors import UserError

CONTAINER_PORT = 8080
STOP_SECONDS = 30


def serve_container(
    image: str,
    *,
    port: int,
    bind: str,
    service_args: list[str],
    endpoint: str | None,
    network: str | None,
    limits: RunLimits,
    detach: bool,
    announce: Callable[[str], None],
) -> int:
    """Start the service container; follow it unless ``detach``. ``announce`` gets the URL
    (and, detached, the container's id) for the user; ``service_args`` are the runner's serve
    options (``-j N``, ``--auth-token-env NAME``: its variable is in ``limits.env``)."""
    from docker.errors import APIError, DockerException

    client = docker_client()
    host_network = network == "host"
    command = ["--serve", *service_args]
    if host_network:  # no port mapping: the service listens on the host's own port
        command += ["--host", bind, "--port", str(port)]
    try:
        container = client.containers.run(
            image,
            command=command,
            detach=True,
            environment=limits.environment(endpoint),
            ports=None if host_network else {f"{CONTAINER_PORT}/tcp": (bind, port)},
            network_mode=network,
            extra_hosts=host_mapping(network),
            labels={"docker-workflow.serve": "true"},
            stop_signal="SIGTERM",
            **limits.docker_run_args(),
        )
    except APIError as error:
        raise docker_error(f"starting the service from {image}", error) from None
    url = f"http://{bind}:{port}"
    announce(url)
    if detach:
        announce(container.id)
        return 0
    try:
        for chunk in container.logs(stream=True, follow=True):
            sys.stderr.buffer.write(chunk)
            sys.stderr.flush()
        code = int(container.wait().get("StatusCode", 1))
    except KeyboardInterrupt:
        container.stop(timeout=STOP_SECONDS)
        code = 0
    except DockerException as error:
        raise UserError(f"following the service container failed: {error}") from None
    finally:
        with contextlib.suppress(DockerException):
            container.remove(force=True)
    return code
