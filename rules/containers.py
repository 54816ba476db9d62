"""Run a workflow image once, as an ephemeral container, through the Docker SDK.

Inputs travel on the container's stdin (the runner reads ``--input-file -``), never as an
argument or environment variable: Linux limits one argument to 128 KiB, and stdin carries any
size and any characters. The container's stderr (progress) is streamed to ours as it comes,
its stdout (the JSON result) is returned, and the container is removed whatever happens.
"""

from __future__ import annotations

import contextlib
import socket
import sys
from dataclasses import dataclass

from rules.docker_env import docker_client, docker_error

HOST_GATEWAY = "host-gateway"


@dataclass(frozen=True)
class RunResult:
    exit_code: int
    stdout: bytes


def _host_mapping(network: str | None) -> dict[str, str]:
    """``host.docker.internal``: the bridge gateway, loopback with host networking, nothing
    without a network."""
    if network == "none":
        return {}
    return {"host.docker.internal": "127.0.0.1" if network == "host" else HOST_GATEWAY}


def _write_stderr(data: bytes) -> None:
    sys.stderr.buffer.write(data)
    sys.stderr.flush()


def run_container(
    image: str,
    inputs: bytes,
    *,
    endpoint: str | None = None,
    platform: str | None = None,
    network: str | None = None,
    read_only: bool = False,
    memory: str | None = None,
    user: str | None = None,
    stream_stderr=None,
) -> RunResult:
    """Run ``image`` with ``inputs`` on stdin; return its exit code and stdout."""
    from docker.errors import APIError, ImageNotFound
    from docker.utils.socket import STDERR, STDOUT, frames_iter

    client = docker_client()
    api = client.api
    write_stderr = stream_stderr or _write_stderr
    environment = {"OLLAMA_ENDPOINT": endpoint} if endpoint else {}
    host_config = api.create_host_config(
        extra_hosts=_host_mapping(network),
        network_mode=network,
        read_only=read_only,
        mem_limit=memory,
    )
    try:
        container = api.create_container(
            image,
            command=["--input-file", "-"],
            stdin_open=True,
            tty=False,
            environment=environment,
            host_config=host_config,
            user=user,
            platform=platform,
            labels={"docker-workflow.run": "true"},
        )
    except ImageNotFound:
        raise docker_error(f"running {image}", RuntimeError(f"image {image} not found")) from None
    except APIError as error:
        raise docker_error(f"creating a container from {image}", error) from None
    container_id = container["Id"]
    stdout = bytearray()
    try:
        attached = api.attach_socket(
            container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
        )
        raw = attached._sock
        api.start(container_id)
        # A program that exits before reading all input breaks the pipe; its exit code says why.
        with contextlib.suppress(BrokenPipeError):
            raw.sendall(inputs)
        raw.shutdown(socket.SHUT_WR)
        for stream, data in frames_iter(attached, tty=False):
            if stream == STDOUT:
                stdout.extend(data)
            elif stream == STDERR:
                write_stderr(data)
        status = api.wait(container_id)
        attached.close()
        return RunResult(int(status.get("StatusCode", 1)), bytes(stdout))
    except APIError as error:
        raise docker_error(f"running {image}", error) from None
    finally:
        with contextlib.suppress(APIError):
            api.remove_container(container_id, force=True)
