"""``batch --engine local``: one locked-down container runs every pending input
(``--batch --indexed -j N``), its start-up paid once per batch; inputs stream in on stdin,
results stream out, each recorded as it arrives."""

from __future__ import annotations

import json
import sys

from rules.deploy.batch.inputs import InputsFile
from rules.deploy.batch.settings import BatchSettings
from rules.deploy.container import RunLimits
from rules.errors import UserError
from runner_template.errors import EXIT_SOME_FAILED
from runner_template.redaction import redact


def run_local(
    image: str,
    inputs: InputsFile,
    pending: list[int],
    settings: BatchSettings,
    record,
    limits: RunLimits,
) -> None:
    from rules.docker.containers import run_container

    buffer = bytearray()
    stderr_tail: list[bytes] = []

    def on_stdout(data: bytes) -> None:
        buffer.extend(data)
        while b"\n" in buffer:
            line, _, rest = bytes(buffer).partition(b"\n")
            buffer[:] = rest
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict) and isinstance(item.get("index"), int):
                record(item)

    def on_stderr(data: bytes) -> None:
        stderr_tail.append(data)
        del stderr_tail[:-20]

    command = ["--batch", "--indexed", "-j", str(settings.jobs)]
    result = run_container(
        image,
        inputs.indexed(pending),
        host_args=limits.docker_run_args(),
        environment=limits.environment(settings.endpoint),
        command=command,
        network=settings.network,
        stream_stdout=on_stdout,
        stream_stderr=on_stderr,
    )
    if result.exit_code not in (0, EXIT_SOME_FAILED):
        tail = b"".join(stderr_tail).decode("utf-8", "replace").strip().splitlines()[-5:]
        sys.stderr.write("\n".join(redact(line) for line in tail) + "\n")  # the spec's env
        raise UserError(f"the batch container stopped with exit code {result.exit_code}")
