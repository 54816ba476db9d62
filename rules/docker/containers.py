"""Run a workflow image as an ephemeral container, through the Docker SDK, locked down.

Inputs travel on the container's stdin (the runner reads ``--input-file -``), never as an
argument or environment variable: Linux limits one argument to 128 KiB, and stdin carries any
size and any characters. The container's stderr (progress) is streamed to ours as it comes,
its stdout (the JSON result) is returned, and the container is removed whatever happens.

How it is confined comes from the one description of a locked-down container
(:class:`rules.deploy.container.RunLimits`), rendered by the caller as ``host_args``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from rules.docker.engine import docker_client, docker_error

HOST_GATEWAY = "host-gateway"


@dataclass(frozen=True)
class RunResult:
    exit_code: int
    stdout: bytes


def host_mapping(network: str | None) -> dict[str, str]:
    """``host.docker.internal``: the bridge gateway, loopback with host networking, nothing
    without a network."""
    if network == "none":
        return {}
    return {"host.docker.internal": "127.0.0.1" if network == "host" else HOST_GATEWAY}


def _write_stderr(data: bytes) -> None:
    sys.stderr.buffer.write(data)
    sys.stderr.flush()


def _send(sock: socket.socket, inputs: bytes | Iterable[bytes]) -> None:
    """Write ``inputs`` to the container's stdin, then close it (end of input)."""
    # A program that exits before reading all input breaks the pipe; its exit code says why.
    with contextlib.suppress(OSError):
        for chunk in [inputs] if isinstance(inputs, bytes) else inputs:
            sock.sendall(chunk)
        sock.shutdown(socket.SHUT_WR)


def run_container(
    image: str,
    inputs: bytes | Iterable[bytes],
    *,
    host_args: dict,
    environment: dict[str, str],
    command: list[str] | None = None,
    platform: str | None = None,
    network: str | None = None,
    stream_stderr=None,
    stream_stdout=None,
) -> RunResult:
    """Run ``image`` with ``inputs`` on stdin; return its exit code and stdout.

    ``inputs`` may be an iterable of chunks, sent while the output is read (a batch streams
    thousands of lines through one container). ``stream_stdout`` (a callable) receives stdout
    as it comes instead of collecting it.
    """
    from docker.errors import APIError, ImageNotFound
    from docker.utils.socket import STDERR, STDOUT, frames_iter

    api = docker_client().api
    write_stderr = stream_stderr or _write_stderr
    host_config = api.create_host_config(
        extra_hosts=host_mapping(network), network_mode=network, **host_args
    )
    try:
        container = api.create_container(
            image,
            command=command or ["--input-file", "-"],
            stdin_open=True,
            tty=False,
            environment=environment,
            host_config=host_config,
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
        # The attach stream is a socket.SocketIO; a second socket object on a duplicate of its
        # descriptor gives the half-close (end of stdin) that SocketIO does not offer.
        sock = socket.socket(fileno=os.dup(attached.fileno()))
        try:
            api.start(container_id)
            sender = threading.Thread(target=_send, args=(sock, inputs), daemon=True)
            sender.start()
            for stream, data in frames_iter(attached, tty=False):
                if stream == STDOUT:
                    if stream_stdout is not None:
                        stream_stdout(data)
                    else:
                        stdout.extend(data)
                elif stream == STDERR:
                    write_stderr(data)
        finally:
            sock.close()
            attached.close()
        status = api.wait(container_id)
        return RunResult(int(status.get("StatusCode", 1)), bytes(stdout))
    except APIError as error:
        raise docker_error(f"running {image}", error) from None
    finally:
        with contextlib.suppress(APIError):
            api.remove_container(container_id, force=True)
