"""The runs started by ``POST /hooks/run``: their state, their cancel handle, bounded retention.

A client may choose a run's id (``run_id`` in the body): the same id twice starts one run and
answers the second request with the first run, so a client that lost the 202 can retry safely.
Finished runs are kept for :data:`~.settings.KEPT_SECONDS` and at most
:data:`~.settings.KEPT_RUNS` of them; running ones are never dropped (``-j`` bounds them).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import OrderedDict
from typing import Any

from runner_template import http_client
from runner_template.engine import RunHandle
from runner_template.serve.settings import KEPT_RUNS, KEPT_SECONDS

RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def run_id_problem(value: Any) -> str | None:
    """Why ``value`` cannot be a client-chosen run id (None: it can)."""
    if not isinstance(value, str) or not RUN_ID.fullmatch(value):
        return (
            "run_id must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return None


class _Entry:
    __slots__ = ("finished_at", "handle", "state")

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state
        self.handle = RunHandle()
        self.finished_at: float | None = None


class RunStore:
    """Thread-safe; every method takes the one lock briefly."""

    def __init__(self, kept_runs: int = KEPT_RUNS, kept_seconds: float = KEPT_SECONDS) -> None:
        self._runs: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.kept_runs = kept_runs
        self.kept_seconds = kept_seconds

    def add(self, callback: str, run_id: str | None = None) -> tuple[str, RunHandle | None]:
        """A new run (its id and handle), or the existing run of ``run_id`` (its id and None)."""
        with self._lock:
            self._forget_old()
            if run_id is not None and run_id in self._runs:
                return run_id, None
            run_id = run_id or uuid.uuid4().hex
            entry = _Entry(
                {
                    "run_id": run_id,
                    "status": "running",
                    "callback": {
                        "url": http_client.redact(callback),
                        "delivered": False,
                        "attempts": 0,
                    },
                }
            )
            self._runs[run_id] = entry
            return run_id, entry.handle

    def finish(self, run_id: str, **changes: Any) -> None:
        with self._lock:
            entry = self._runs.get(run_id)
            if entry is not None:
                entry.state.update(changes)
                entry.finished_at = time.monotonic()
                self._runs.move_to_end(run_id)

    def callback(self, run_id: str, **changes: Any) -> None:
        with self._lock:
            entry = self._runs.get(run_id)
            if entry is not None:
                entry.state["callback"].update(changes)

    def cancel(self, run_id: str) -> str | None:
        """Cancel a running run: ``"canceling"``, ``"finished"`` (too late) or None (unknown)."""
        with self._lock:
            entry = self._runs.get(run_id)
            if entry is None:
                return None
            if entry.finished_at is not None:
                return "finished"
            entry.state["status"] = "canceling"
            handle = entry.handle
        handle.cancel()
        return "canceling"

    def get(self, run_id: str) -> dict[str, Any] | None:
        with self._lock:
            self._forget_old()
            entry = self._runs.get(run_id)
            return json.loads(json.dumps(entry.state)) if entry else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._runs)

    def _forget_old(self) -> None:
        """Drop finished runs past their time, then the oldest finished ones past the count."""
        now = time.monotonic()
        finished = [k for k, e in self._runs.items() if e.finished_at is not None]
        for key in finished:
            entry = self._runs[key]
            if now - entry.finished_at >= self.kept_seconds:  # type: ignore[operator]
                del self._runs[key]
        finished = [k for k in finished if k in self._runs]
        for key in finished[: max(0, len(finished) - self.kept_runs)]:
            del self._runs[key]
