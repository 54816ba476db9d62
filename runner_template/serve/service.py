"""What every connection shares: the engine, the run slots, the runs, metrics, readiness."""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

from runner_template.engine import Engine, RunHandle
from runner_template.errors import RunnerError
from runner_template.serve.access_log import AccessLog
from runner_template.serve.metrics import KeptCells, Metrics, RunObserver
from runner_template.serve.readiness import Readiness
from runner_template.serve.runs import RunStore
from runner_template.serve.schemas import inputs_schema, openapi, outputs_schema
from runner_template.serve.settings import Settings
from runner_template.serve.wire import json_bytes
from runner_template.web import playground_files


class RunSlots:
    """The ``-j`` run slots: ``acquire(timeout)`` and ``release()`` as a bounded semaphore's,
    each one hold of a lock when a slot is free (``threading.BoundedSemaphore`` goes through
    a ``Condition`` written in Python, several calls each way, on every request). A freed slot
    goes straight to the longest waiter, so waiters are served in order."""

    def __init__(self, size: int) -> None:
        self._size = self._free = size
        self._lock = threading.Lock()
        self._waiters: collections.deque = collections.deque()  # locks held until handed a slot

    def acquire(self, timeout: float) -> bool:
        with self._lock:
            if self._free:
                self._free -= 1
                return True
            if timeout <= 0:
                return False
            waiter = threading.Lock()
            waiter.acquire()
            self._waiters.append(waiter)
        if waiter.acquire(timeout=timeout):
            return True
        with self._lock:
            try:
                self._waiters.remove(waiter)
            except ValueError:  # handed a slot just as the wait ended: it is ours
                return True
        return False

    def release(self) -> None:
        with self._lock:
            if self._waiters:
                self._waiters.popleft().release()
                return
            if self._free >= self._size:
                raise ValueError("a run slot was released more often than taken")
            self._free += 1


class Service:
    """One per process; safe to use from every handler thread."""

    def __init__(self, bundle: dict[str, Any], settings: Settings) -> None:
        self.bundle = bundle
        self.workflow = bundle["workflow"]
        self.settings = settings
        self.engine = Engine(bundle, endpoint=settings.endpoint, provider=settings.provider)
        self.slots = RunSlots(settings.jobs)
        # Turns for the CPU of /invoke runs whose steps all run in place, one at a time in the
        # order they came, each waited for at most TURN_SECONDS (then the run goes anyway):
        # connection threads that all want the GIL at once take it in no fixed order, and one
        # could lose it many times in a row (a p99 of 10-20 ms where the median was 1.5 ms).
        self.turns = RunSlots(1)
        self.runs = RunStore()
        self.metrics = Metrics()
        self.log = AccessLog()
        self.observer = RunObserver(self.metrics)
        self.readiness = Readiness(bundle, self.engine)
        self.active = 0  # requests in flight (under the metrics' lock: see begin_request)
        self.stopping = threading.Event()
        self.metrics.gauge(
            "workflow_http_requests_in_flight", "Requests being answered", lambda: self.active
        )
        self._queue_wait = self.metrics.cell(
            "histogram", "workflow_queue_wait_seconds", "Time a run waited for a slot (-j)"
        )
        self._runs = KeptCells(
            self.metrics, "counter", "workflow_runs_total", "Runs of the workflow by outcome",
            "outcome",
        )  # fmt: skip
        self._succeeded = self._runs("succeeded")  # the usual outcome's cell, at hand
        self._request_counts = KeptCells(
            self.metrics, "counter", "workflow_http_requests_total",
            "HTTP requests by route and status", "route", "status",
        )  # fmt: skip
        self._request_seconds = KeptCells(
            self.metrics, "histogram", "workflow_http_request_duration_seconds",
            "Time to answer a request", "route",
        )  # fmt: skip
        # (route, status) -> the two cells end_request updates: one look-up a request.
        self._request_cells: dict[tuple[str, int], tuple[Any, Any]] = {}
        self.openapi = json_bytes(openapi(self.workflow))
        self.schema = json_bytes(
            {"inputs": inputs_schema(self.workflow), "outputs": outputs_schema(self.workflow)}
        )
        self.playground: dict[str, bytes] | None = None  # name -> bytes under /playground/
        if settings.playground:
            self.playground = playground_files(bundle, stream_url="../stream")

    def acquire(self, wait: float | None = None) -> bool:
        """A run slot within ``wait`` seconds (default ``--queue-wait``); the wait is measured."""
        started = time.monotonic()
        got = self.slots.acquire(timeout=self.settings.queue_wait if wait is None else wait)
        waited = time.monotonic() - started
        with self.metrics.lock:
            self._queue_wait.observe(waited)
        return got

    def reject(self, reason: str) -> None:
        self.metrics.inc(
            "workflow_rejected_total", "Requests refused for lack of capacity", reason=reason
        )

    def handle(self) -> RunHandle:
        return RunHandle(self.observer)

    def run(
        self,
        inputs: Any,
        on_event=None,
        handle: RunHandle | None = None,
        deadline: float | None = None,
        on_overrun=None,
    ) -> dict[str, Any]:
        """One run of the workflow within ``--request-timeout`` (or ``deadline``), counted
        (``on_overrun``: see :meth:`Engine.run`; the error is counted when the run raises it)."""
        if deadline is None:
            deadline = time.monotonic() + self.settings.request_timeout
        try:
            outputs = self.engine.run(
                inputs,
                deadline=deadline,
                on_event=on_event,
                handle=handle or RunHandle(self.observer),
                on_overrun=on_overrun,
            )
        except RunnerError as error:
            self._count(error.error_type)
            raise
        except Exception:
            self._count("internal_error")
            raise
        with self.metrics.lock:
            self._succeeded.value += 1
        return outputs

    def _count(self, outcome: str) -> None:
        cell = self._runs(outcome)  # outcomes are error types: few
        with self.metrics.lock:
            cell.value += 1

    def begin_request(self) -> None:
        """A request is in flight (the ``http_requests_in_flight`` gauge reads :attr:`active`
        when scraped)."""
        with self.metrics.lock:
            self.active += 1

    def end_request(self, route: str, status: int, seconds: float) -> None:
        """A request answered: no longer in flight, ``http_requests_total`` and
        ``http_request_duration_seconds``, all under one hold of the metrics lock. ``route`` is
        a route name and ``status`` one of a few, so their cells are kept (``KeptCells``)."""
        cells = self._request_cells.get((route, status))
        if cells is None:
            cells = self._request_cells[(route, status)] = (
                self._request_counts(route, str(status)),
                self._request_seconds(route),
            )
        count, duration = cells
        with self.metrics.lock:
            self.active -= 1
            count.value += 1
            duration.observe(seconds)
