"""The results of a Swarm batch, read from its tasks' logs (stdout), so that they leave any node
without a shared file system.

Each task writes one result line per input to stdout. The engine stores each log message as one
line or, for a line over 16 KB, as partial messages without their newline; the log API sends each
message as one frame of its multiplexed stream, and with ``details`` prefixes it with the task's
identity (``com.docker.swarm.task.id=...``). So the bytes of one task, in order, are its lines:
they are joined per task, and only whole lines are taken. Every line names its input's index,
and the caller keeps the first line of each index, so reading a log twice (a follow stream that
is opened again, the final full read of a task) never doubles a result.

:class:`LogFollower` streams the service's logs while the tasks run (the time to the first
result is that of the first line, not that of the round); :func:`read_task_log` reads one task's
whole log at the end of a round, which catches lines the stream had not delivered yet.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable
from urllib.parse import unquote

TASK_ATTRIBUTE = b"com.docker.swarm.task.id"


class LineJoiner:
    """Whole lines per task from log frames, each handed to ``take``."""

    def __init__(self, take: Callable[[bytes], None]) -> None:
        self.take = take
        self.pending: dict[str, bytes] = {}

    def feed(self, task: str, data: bytes) -> None:
        data = self.pending.pop(task, b"") + data
        *lines, rest = data.split(b"\n")
        for line in lines:
            if line.strip():
                self.take(line)
        if rest:
            self.pending[task] = rest


def split_details(frame: bytes) -> tuple[str, bytes]:
    """``(task ID, message)`` of a frame of a log stream read with ``details``."""
    attributes, _, message = frame.partition(b" ")
    for pair in attributes.split(b","):
        name, _, value = pair.partition(b"=")
        if unquote(name.decode("ascii", "replace")).encode() == TASK_ATTRIBUTE:
            return unquote(value.decode("ascii", "replace")), message
    return "", message


def _frames(client, path: str, object_id: str, params: dict) -> tuple[object, Iterable[bytes]]:
    """The open response and the payloads of a multiplexed log stream of the engine API
    (the SDK has no call for a task's log, and its service call hides the response, which
    :meth:`LogFollower.stop` must shut)."""
    api = client.api
    response = api._get(api._url(path, object_id), params=params, stream=True)
    api._raise_for_status(response)
    return response, api._multiplexed_response_stream_helper(response)


def read_task_log(client, task_id: str, take: Callable[[bytes], None]) -> None:
    """Every whole result line of one task's log so far (the task's node must be up)."""
    joiner = LineJoiner(take)
    params = {"stdout": 1, "stderr": 0, "details": 1}
    response, frames = _frames(client, "/tasks/{0}/logs", task_id, params)
    try:
        for frame in frames:
            joiner.feed(task_id, split_details(frame)[1])
    finally:
        response.close()


class LogFollower:
    """A thread that follows a service's logs until :meth:`stop`; the stream is opened again
    when the engine ends it early (a node that went down can end a subscription)."""

    def __init__(self, client, service_id: str, take: Callable[[bytes], None]) -> None:
        self.client = client
        self.service_id = service_id
        self.take = take
        self.stopped = threading.Event()
        self.response = None
        self.thread = threading.Thread(target=self._run, name="batch-logs", daemon=True)

    def start(self) -> LogFollower:
        self.thread.start()
        return self

    def _run(self) -> None:
        params = {"stdout": 1, "stderr": 0, "details": 1, "follow": 1}
        while not self.stopped.is_set():
            joiner = LineJoiner(self.take)  # a stream opened again starts at each log's start
            try:
                self.response, frames = _frames(
                    self.client, "/services/{0}/logs", self.service_id, params
                )
                for frame in frames:
                    joiner.feed(*split_details(frame))
            except Exception:  # a broken stream is opened again; stop() closes it
                pass
            self.stopped.wait(0.5)

    def stop(self) -> None:
        """End the thread: the SDK's CancellableStream shuts the socket down, which wakes a
        read that blocks on it (closing the response alone does not)."""
        from docker.types.daemon import CancellableStream

        self.stopped.set()
        response = self.response
        if response is not None:
            with contextlib.suppress(Exception):  # already closed
                CancellableStream(iter(()), response).close()
        self.thread.join(timeout=2)
