"""``GET /metrics``: the service's counters in the Prometheus text format (version 0.0.4).

Written here rather than with ``prometheus_client``: the image carries the standard library
only. Series (all prefixed ``workflow_``):

* ``http_requests_total{route,status}``, ``http_request_duration_seconds{route}`` (histogram),
  ``http_requests_in_flight``;
* ``queue_wait_seconds`` (histogram: the wait for a run slot), ``rejected_total{reason}``
  (``too_many_requests``: the 429s; ``shutting_down``);
* ``step_duration_seconds{step,outcome}`` (histogram), ``step_retries_total{step}``;
* ``llm_calls_total{model,outcome}``, ``llm_retries_total{model}`` (connection faults and 5xx
  answers the client retried), ``llm_errors_total{model,type}``;
* ``llm_tokens_total{model,direction}``: ``in`` (the prompt) and ``out`` (the reply) as the LLM
  server counts them (Ollama's ``prompt_eval_count``/``eval_count``, OpenAI's ``usage``; an
  OpenAI stream that sends no usage counts its pieces out and nothing in);
* ``runs_total{outcome}`` (every run: invoke, stream, batch items, webhooks, chat completions).

Routes are the route names (``/runs/{run_id}``), never raw paths: a client cannot grow the
number of series.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections.abc import Callable
from typing import Any

from runner_template.engine import Observer

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _label_text(labels: Labels, extra: str = "") -> str:
    parts = [f'{name}="{_escape(value)}"' for name, value in labels]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _key(labels: dict[str, str]) -> Labels:
    """A series' key: its labels in name order (one label or none needs no sorting)."""
    return tuple(labels.items()) if len(labels) < 2 else tuple(sorted(labels.items()))


def _number(value: float) -> str:
    if value == math.inf:
        return "+Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class _Value:
    """A counter's or a gauge's value (a cell: hot paths keep it, see :meth:`Metrics.cell`)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: float = 0


class _Histogram:
    __slots__ = ("buckets", "count", "counts", "total")

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.count = 0
        self.total = 0.0

    def observe(self, value: float) -> None:
        index = bisect_left(self.buckets, value)  # the first bound >= value
        if index < len(self.counts):
            self.counts[index] += 1
        self.count += 1
        self.total += value


class Metrics:
    """Counters, gauges and histograms by name and labels; one lock, held for microseconds.

    :meth:`inc`, :meth:`add` and :meth:`observe` find a series by its name and labels on each
    call. A hot path (every request updates several series) keeps the series' cell from
    :meth:`cell` instead and updates its cells under :attr:`lock`, all of them at once: looking
    series up and taking the lock once per update were a tenth of a small request's CPU.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()  # guards every cell
        self._help: dict[str, tuple[str, str]] = {}
        self._values: dict[str, dict[Labels, Any]] = {}
        self._gauges: dict[str, Callable[[], float]] = {}  # name -> its value when scraped

    def cell(
        self,
        kind: str,
        name: str,
        help_text: str,
        buckets: tuple[float, ...] = LATENCY_BUCKETS,
        **labels: str,
    ) -> Any:
        """The series ``name{labels}`` of ``kind`` (``counter``, ``gauge``: a cell with a
        ``value``; ``histogram``: one with ``observe``), made on first use."""
        key = _key(labels)
        with self.lock:
            series = self._values.get(name)
            if series is None:
                self._help[name] = (kind, help_text)
                series = self._values[name] = {}
            found = series.get(key)
            if found is None:
                found = series[key] = _Histogram(buckets) if kind == "histogram" else _Value()
            return found

    def inc(self, name: str, help_text: str, amount: float = 1, **labels: str) -> None:
        cell = self.cell("counter", name, help_text, **labels)
        with self.lock:
            cell.value += amount

    def add(self, name: str, help_text: str, amount: float, **labels: str) -> None:
        """A gauge that goes up and down."""
        cell = self.cell("gauge", name, help_text, **labels)
        with self.lock:
            cell.value += amount

    def observe(
        self,
        name: str,
        help_text: str,
        value: float,
        buckets: tuple[float, ...] = LATENCY_BUCKETS,
        **labels: str,
    ) -> None:
        histogram = self.cell("histogram", name, help_text, buckets, **labels)
        with self.lock:
            histogram.observe(value)

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        """A gauge without labels whose value is ``read()`` when scraped (requests in flight:
        the service counts them anyway, so a request updates nothing more)."""
        with self.lock:
            self._help[name] = ("gauge", help_text)
            self._gauges[name] = read

    def render(self) -> bytes:
        lines: list[str] = []
        with self.lock:
            names = sorted({*self._values, *self._gauges})
            for name in names:
                kind, help_text = self._help[name]
                lines.append(f"# HELP {name} {help_text}")
                lines.append(f"# TYPE {name} {kind}")
                if name in self._gauges:
                    lines.append(f"{name} {_number(self._gauges[name]())}")
                    continue
                for labels, value in sorted(self._values[name].items()):
                    if kind != "histogram":
                        lines.append(f"{name}{_label_text(labels)} {_number(value.value)}")
                        continue
                    running = 0
                    for bound, count in zip(value.buckets, value.counts, strict=True):
                        running += count
                        le = f'le="{_number(bound)}"'
                        lines.append(f"{name}_bucket{_label_text(labels, le)} {running}")
                    inf = 'le="+Inf"'
                    lines.append(f"{name}_bucket{_label_text(labels, inf)} {value.count}")
                    lines.append(f"{name}_sum{_label_text(labels)} {_number(value.total)}")
                    lines.append(f"{name}_count{_label_text(labels)} {value.count}")
        return ("\n".join(lines) + "\n").encode("utf-8")


class KeptCells:
    """The cells of one series by their label values, made on first use and kept, so a hot path
    updates a cell (under :attr:`Metrics.lock`) without looking the series up. For labels with
    few values only: route names, statuses, outcomes, step ids."""

    def __init__(self, metrics: Metrics, kind: str, name: str, help_text: str, *labels: str):
        self._metrics = metrics
        self._series = (kind, name, help_text)
        self._labels = labels
        self._cells: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        found = self._cells.get(values)
        if found is None:
            found = self._cells[values] = self._metrics.cell(
                *self._series, **dict(zip(self._labels, values, strict=True))
            )
        return found


class RunObserver(Observer):
    """What the engine tells about a run (steps, LLM calls), recorded as metrics."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._steps = KeptCells(
            metrics,
            "histogram",
            "workflow_step_duration_seconds",
            "Time each step took, attempts and retries included",
            "step",
            "outcome",
        )

    def step(self, step: str, outcome: str, seconds: float) -> None:
        histogram = self._steps(step, outcome)
        with self.metrics.lock:
            histogram.observe(seconds)

    def note(self, kind: str, **facts: Any) -> None:
        m = self.metrics
        if kind == "step_retry":
            m.inc("workflow_step_retries_total", "Step attempts retried", step=facts["step"])
        elif kind == "llm_call":
            m.inc(
                "workflow_llm_calls_total",
                "Calls to an LLM server",
                model=facts["model"],
                outcome=facts["outcome"],
            )
            if facts["outcome"] != "ok":
                m.inc(
                    "workflow_llm_errors_total",
                    "LLM calls that failed, by error type",
                    model=facts["model"],
                    type=facts["outcome"],
                )
        elif kind == "llm_tokens":
            for direction, count in (("in", facts["into"]), ("out", facts["out"])):
                if count is not None:
                    m.inc(
                        "workflow_llm_tokens_total",
                        "Tokens sent to (in) and generated by (out) LLM servers",
                        count,
                        model=facts["model"],
                        direction=direction,
                    )
        elif kind == "llm_retry":
            m.inc(
                "workflow_llm_retries_total",
                "LLM requests retried after a connection fault or a 5xx answer",
                model=facts["model"],
            )
