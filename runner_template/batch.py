"""``workflow --batch``: many inputs through one program, one result line per input.

Input: JSON Lines, one inputs object per line (blank lines are skipped and take no index), from
stdin or ``--input-file``; with ``--indexed`` each line is ``{"index": I, "inputs": {...}}``, so a
shard of a bigger batch keeps the indices of the whole (``docker-workflow batch`` sends that).
Output: one line per input, in completion order, flushed as it is written:
``{"index": I, "outputs": {...}}`` or ``{"index": I, "error": {"type", "message", "step"}}``.
A bad line is an error line for its index, never the end of the batch.

``-j N`` runs up to N inputs at once (LLM-bound workflows gain: the time is spent waiting);
a workflow with no LLM or API step is CPU-bound, and runs at most one input per available CPU,
however large N is. Lines are read as slots free up, so memory stays bounded whatever the size
of the batch. Exit code: 0 when every input succeeded, :data:`EXIT_SOME_FAILED` otherwise; one
summary line goes to stderr.
"""

from __future__ import annotations

import io
import json
import os
import queue
import sys
import threading
import time
from collections.abc import Iterator
from typing import IO, Any

from runner_template import engine as engine_module
from runner_template.engine import Engine
from runner_template.errors import EXIT_OK, EXIT_SOME_FAILED, InputError, RunnerError
from runner_template.jsonsafe import JSONLimitError
from runner_template.jsonsafe import loads as bounded_loads
from runner_template.threads import start_daemon

MAX_LINE_BYTES = 64 * 1024 * 1024


def available_cpus() -> int:
    """CPUs this process may use: its affinity, bounded by a cgroup v2 or v1 CPU quota."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        count = min(count, max(1, int(quota + 0.999)))
    return max(1, count)


def _cgroup_cpu_quota() -> float | None:
    for path in ("/sys/fs/cgroup/cpu.max",):
        try:
            with open(path) as handle:
                quota, period = handle.read().split()
            return None if quota == "max" else int(quota) / int(period)
        except (OSError, ValueError):
            pass
    try:
        with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") as handle:
            quota = int(handle.read())
        with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as handle:
            period = int(handle.read())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


def _waits_on_network(bundle: dict[str, Any]) -> bool:
    """Whether any workflow of the bundle calls an LLM or an API (then ``-j`` pays off)."""
    parts = [bundle, *(bundle.get("workflows") or {}).values()]
    return any(
        tool.get("kind") in ("llm", "api")
        for part in parts
        for tool in part.get("tools", {}).values()
    )


def effective_jobs(requested: int, bundle: dict[str, Any]) -> int:
    jobs = max(1, requested)
    return jobs if _waits_on_network(bundle) else min(jobs, available_cpus())


BOM = b"\xef\xbb\xbf"


class _Concatenated(io.RawIOBase):
    """The files of a folder, in name order, read as one stream (see :func:`open_input`)."""

    def __init__(self, paths: list[str]) -> None:
        self._paths = paths
        self._current: IO[bytes] | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while True:
            if self._current is None:
                if not self._paths:
                    return 0
                self._current = open(self._paths.pop(0), "rb")  # noqa: SIM115
            count = self._current.readinto(buffer)
            if count:
                return count
            self._current.close()
            self._current = None

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
        super().close()


def open_input(path: str) -> IO[bytes]:
    """``--input-file`` of a batch: a file, or a folder whose files, in name order, are one
    stream. A Swarm config holds at most 500 KB, so ``docker-workflow batch --engine swarm``
    cuts a shard into chunks, each a config mounted as one file of the shard's folder."""
    if os.path.isdir(path):
        names = sorted(os.listdir(path))
        return io.BufferedReader(_Concatenated([os.path.join(path, name) for name in names]))
    return open(path, "rb")


def read_lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """``(line number from 1, bytes)`` of each non-blank line, each at most MAX_LINE_BYTES.

    A byte order mark at the start of the stream is dropped (editors on Windows write one); the
    line it starts is line 1 as usual, and blank if nothing else is on it. Anywhere else U+FEFF
    is text, and not valid where JSON expects a value: that line's error. A line over the limit
    is read to its end and is one line, so later lines keep their indices.
    """
    number = 0
    while True:
        line = stream.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            # Skip the rest of an oversized line, then report it as that line's error.
            while line and not line.endswith(b"\n"):
                line = stream.readline(MAX_LINE_BYTES + 1)
            yield number, b"\0oversized"
            continue
        if number == 1 and line.startswith(BOM):
            line = line[len(BOM) :]
        if line.strip():
            yield number, line


def parse_line(raw: bytes, indexed: bool, position: int) -> tuple[int, Any]:
    """``(index, inputs)`` of one input line; an :class:`InputError` carries the index."""
    if raw == b"\0oversized":
        raise _LineError(position, f"line longer than {MAX_LINE_BYTES} bytes")
    try:
        value = bounded_loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise _LineError(position, "line is not UTF-8 text") from None
    except (json.JSONDecodeError, JSONLimitError) as error:
        raise _LineError(position, f"line is not valid JSON: {error}") from None
    if not indexed:
        return position, value
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("index"), int)
        or isinstance(value.get("index"), bool)
        or value["index"] < 0
        or "inputs" not in value
    ):
        raise _LineError(position, 'an indexed line must be {"index": N, "inputs": {...}}')
    return value["index"], value["inputs"]


class _LineError(Exception):
    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index
        self.message = message


class _Writer:
    """One complete line per write, flushed at once, from any thread."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8", "backslashreplace")
        with self.lock:
            self.stream.write(data)
            self.stream.flush()


def run_batch(
    bundle: dict[str, Any],
    source: IO[bytes],
    sink: IO[bytes],
    *,
    jobs: int = 1,
    indexed: bool = False,
    endpoint: str | None = None,
    provider: str | None = None,
) -> int:
    """Run every input line of ``source``; write result lines to ``sink``; return the exit code."""
    engine_module.QUIET = True  # one line per input, not one per step
    engine = Engine(bundle, endpoint=endpoint, provider=provider)
    writer = _Writer(sink)
    workers = effective_jobs(jobs, bundle)
    # A queue as long as the worker count: lines are read only as workers free up.
    work: queue.Queue = queue.Queue(maxsize=workers)
    counts = {"ok": 0, "failed": 0}
    counts_lock = threading.Lock()
    started = time.monotonic()

    broken: list[OSError] = []  # the sink failed (a closed pipe, a full disk): stop reading

    def finish(record: dict[str, Any]) -> None:
        writer.write(record)
        with counts_lock:
            counts["failed" if "error" in record else "ok"] += 1

    def outcome(index: int, inputs: Any) -> dict[str, Any]:
        try:
            return {"index": index, "outputs": engine.run(inputs)}
        except RunnerError as error:
            return {"index": index, **error.to_json()}
        except Exception as error:  # a bug in the engine: that input fails, not the batch
            return {"index": index, **RunnerError(f"internal error: {error!r}").to_json()}

    def worker() -> None:
        while True:
            item = work.get()
            if item is None:
                return
            if broken:
                continue  # drain the queue: nothing can be written any more
            record = outcome(*item)
            try:
                finish(record)
            except (OSError, ValueError) as error:  # ValueError: the sink was closed
                broken.append(error if isinstance(error, OSError) else OSError(str(error)))

    threads = [start_daemon(worker) for _ in range(workers)]
    for position, (_, raw) in enumerate(read_lines(source)):
        if broken:
            break
        try:
            work.put(parse_line(raw, indexed, position))
        except _LineError as error:
            finish({"index": error.index, **InputError(error.message).to_json()})
    for _ in threads:
        work.put(None)
    for thread in threads:
        thread.join()
    if broken:
        raise broken[0]
    seconds = time.monotonic() - started
    total = counts["ok"] + counts["failed"]
    rate = total / seconds if seconds > 0 else 0.0
    print(
        f"batch: {total} inputs, {counts['ok']} succeeded, {counts['failed']} failed"
        f" in {seconds:.1f} s ({rate:.1f}/s, {workers} at a time)",
        file=sys.stderr,
        flush=True,
    )
    return EXIT_OK if counts["failed"] == 0 else EXIT_SOME_FAILED
