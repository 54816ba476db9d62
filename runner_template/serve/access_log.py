"""The service's log on stderr: one JSON line per request, written in batches.

A ``write`` per request was a system call that let go of the GIL, and under load each one
handed the interpreter to another thread and back: a tenth of a small request's CPU. Lines are
queued instead, and a writer thread sends what gathered within :data:`FLUSH_SECONDS` in one
write, in order; an idle service has no thread awake. :meth:`AccessLog.flush` empties the queue
at once (the service calls it when it stops, before its last line).
"""

from __future__ import annotations

import sys
import threading
import time

from runner_template.threads import start_daemon

FLUSH_SECONDS = 0.05  # a line reaches stderr at most this late


class AccessLog:
    """Lines for stderr; safe to use from every thread."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._lock = threading.Lock()  # guards _lines
        self._write_lock = threading.Lock()  # one flush at a time, so lines stay in order
        self._wake = threading.Event()
        self._writer: threading.Thread | None = None

    def write(self, line: str) -> None:
        """Queue ``line`` (ending in a newline)."""
        with self._lock:
            self._lines.append(line)
            first = len(self._lines) == 1
            if self._writer is None:
                self._writer = start_daemon(self._run, name="log")
        if first:  # the writer sleeps until a batch starts
            self._wake.set()

    def flush(self) -> None:
        with self._write_lock:
            with self._lock:
                lines, self._lines = self._lines, []
            if lines:
                sys.stderr.write("".join(lines))
                sys.stderr.flush()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            time.sleep(FLUSH_SECONDS)  # let the batch gather
            self._wake.clear()
            try:
                self.flush()
            except (OSError, ValueError):  # stderr closed: nothing to log to
                return
