"""``docker-workflow batch``: a file of inputs through a workflow image, resumable.

    docker-workflow batch WORKFLOW INPUTS.jsonl -o RESULTS.jsonl [-j N]
        [--engine local|swarm] [--replicas K] [--endpoint URL] [--network N] [-t TAG]

The inputs are read line by line (a blank line takes no index; a line that is not JSON is an
error line for its index, found here, before any container starts). The image is built if
needed. Engines:

* ``local``: one container runs every pending input (``--batch --indexed -j N``): its start-up
  is paid once per batch, not once per input. Inputs stream in on stdin, results stream out.
* ``swarm``: a replicated job on the Docker Swarm this engine manages
  (``rules/deploy/batch/swarm.py``).

Results go to :class:`rules.deploy.batch.results.ResultsFile`: appended and flushed as they
arrive, in input order at the end, resumable (``--retry-failed`` reruns failed indices).
"""

from __future__ import annotations

import hashlib
import json
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rules.console import err_console
from rules.deploy.batch.results import ResultsFile
from rules.errors import InputProblem, UserError
from runner_template.errors import EXIT_SOME_FAILED
from runner_template.jsonsafe import JSONLimitError
from runner_template.jsonsafe import loads as bounded_loads

MAX_LINE_BYTES = 64 * 1024 * 1024


@dataclass
class InputLine:
    index: int
    offset: int
    length: int


@dataclass
class InputsFile:
    """The non-blank lines of an inputs file, by index; read again lazily when sent."""

    path: Path
    lines: list[InputLine] = field(default_factory=list)
    digest: str = ""
    bad: dict[int, str] = field(default_factory=dict)

    @classmethod
    def scan(cls, path: Path) -> InputsFile:
        found = cls(path)
        digest = hashlib.sha256()
        try:
            handle = path.open("rb")
        except OSError as error:
            raise InputProblem(f"{path}: cannot read the inputs: {error.strerror}") from None
        with handle:
            offset = 0
            while True:
                raw = handle.readline(MAX_LINE_BYTES + 1)
                if not raw:
                    break
                digest.update(raw)
                if raw.strip():
                    index = len(found.lines)
                    found.lines.append(InputLine(index, offset, len(raw)))
                    problem = _line_problem(raw)
                    if problem:
                        found.bad[index] = problem
                offset += len(raw)
        found.digest = digest.hexdigest()
        return found

    def read(self, line: InputLine) -> bytes:
        with self.path.open("rb") as handle:
            handle.seek(line.offset)
            return handle.read(line.length).strip()

    def indexed(self, indices: list[int]) -> Iterator[bytes]:
        """``{"index": I, "inputs": <the line>}`` lines for the image's ``--indexed`` mode."""
        with self.path.open("rb") as handle:
            for index in indices:
                line = self.lines[index]
                handle.seek(line.offset)
                raw = handle.read(line.length).strip()
                yield b'{"index": %d, "inputs": ' % index + raw + b"}\n"


def _line_problem(raw: bytes) -> str | None:
    if len(raw) > MAX_LINE_BYTES:
        return f"line longer than {MAX_LINE_BYTES} bytes"
    try:
        value = bounded_loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        return "line is not UTF-8 text"
    except (json.JSONDecodeError, JSONLimitError) as error:
        return f"line is not valid JSON: {error}"
    if not isinstance(value, dict):
        return f"inputs must be a JSON object, got {type(value).__name__}"
    return None


def split(indices: list[int], shards: int) -> list[list[int]]:
    """``indices`` in ``shards`` contiguous, nearly equal parts (none empty)."""
    shards = max(1, min(shards, len(indices)))
    size, extra = divmod(len(indices), shards)
    parts, start = [], 0
    for number in range(shards):
        end = start + size + (1 if number < extra else 0)
        parts.append(indices[start:end])
        start = end
    return parts


def error_record(index: int, kind: str, message: str, step: str | None = None) -> dict:
    return {"index": index, "error": {"type": kind, "message": message, "step": step}}


class Progress:
    """done / failed / rate / ETA: a rich bar on a terminal, a plain line now and then if not."""

    def __init__(self, total: int, already: int) -> None:
        self.total = total
        self.done = already
        self.failed = 0
        self.started = time.monotonic()
        self.new = 0
        self._last_line = 0.0
        self._bar = None
        if err_console().is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("batch"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[failed]} failed, {task.fields[rate]}/s"),
                TimeRemainingColumn(),
                console=err_console(),
            )
            self._task = self._bar.add_task(
                "batch", total=total, completed=already, failed=0, rate="0.0"
            )
            self._bar.start()

    def rate(self) -> float:
        seconds = time.monotonic() - self.started
        return self.new / seconds if seconds > 0 else 0.0

    def record(self, record: dict[str, Any]) -> None:
        self.done += 1
        self.new += 1
        self.failed += "error" in record
        if self._bar is not None:
            self._bar.update(
                self._task, completed=self.done, failed=self.failed, rate=f"{self.rate():.1f}"
            )
        elif time.monotonic() - self._last_line > 5 or self.done == self.total:
            self._last_line = time.monotonic()
            self.line()

    def line(self) -> None:
        remaining = self.total - self.done
        rate = self.rate()
        eta = f", about {remaining / rate:.0f} s left" if rate > 0 and remaining else ""
        err_console().print(
            f"batch: {self.done}/{self.total} done, {self.failed} failed, {rate:.1f}/s{eta}"
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
        self.line()


class _Terminated(Exception):
    """SIGTERM, turned into an exception so that cleanup code runs as it does for Ctrl-C."""


def _on_sigterm(signum, frame) -> None:
    raise _Terminated()


@dataclass
class BatchSettings:
    jobs: int = 1
    engine: str = "local"
    replicas: int = 2
    max_concurrent: int | None = None
    endpoint: str | None = None
    network: str | None = None
    retry_failed: bool = False
    shard_retries: int = 2


def run_batch(
    image: str,
    inputs: InputsFile,
    output: Path,
    settings: BatchSettings,
    limits=None,
) -> int:
    """Run the pending inputs through ``image``; return the exit code (0, 7, 130, 143)."""
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    results = ResultsFile(output, inputs.digest, settings.retry_failed).open()
    progress = Progress(len(inputs.lines), len(results.done()))
    code = 0

    def record(item: dict[str, Any]) -> None:
        if item.get("index") not in results.done():
            results.append(item)
            progress.record(item)

    try:
        for index, problem in sorted(inputs.bad.items()):
            record(error_record(index, "bad_input", problem))
        pending = [line.index for line in inputs.lines if line.index not in results.done()]
        if pending and settings.engine == "swarm":
            from rules.deploy.batch.swarm import run_on_swarm

            run_on_swarm(image, inputs, pending, settings, record)
        elif pending:
            _run_local(image, inputs, pending, settings, record, limits)
    except KeyboardInterrupt:
        code = 130
    except _Terminated:
        code = 143
    finally:
        signal.signal(signal.SIGTERM, previous)
        progress.close()
        results.close()
    if code:
        err_console().print(
            f"interrupted: {len(results.done())} of {len(inputs.lines)} results kept in {output};"
            " run the same command again to resume"
        )
        return code
    missing = len(inputs.lines) - len(results.done())
    if missing:
        raise UserError(f"{missing} input(s) got no result: run the same command again to resume")
    return EXIT_SOME_FAILED if results.failed() else 0


def _run_local(image, inputs: InputsFile, pending, settings: BatchSettings, record, limits):
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
        command=command,
        endpoint=settings.endpoint,
        network=settings.network,
        limits=limits,
        stream_stdout=on_stdout,
        stream_stderr=on_stderr,
    )
    if result.exit_code not in (0, EXIT_SOME_FAILED):
        tail = b"".join(stderr_tail).decode("utf-8", "replace").strip().splitlines()[-5:]
        sys.stderr.write("\n".join(tail) + "\n")
        raise UserError(f"the batch container stopped with exit code {result.exit_code}")
