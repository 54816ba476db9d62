"""The engine without threads (as in Pyodide): the same results and errors, one step at a time."""

from __future__ import annotations

import time

from runner_template import engine as engine_module
from runner_template.engine import Engine
from runner_template.errors import RunnerError

STAMP = (
    "import sys, json, time; d = json.load(sys.stdin); start = time.monotonic();"
    " time.sleep(d.get('sleep', 0.05));"
    " print(json.dumps({'n': d['n'] * 2, 'start': start, 'end': time.monotonic()}))"
)
FLAKY_ONCE = (
    "import sys, json; d = json.load(sys.stdin); import builtins\n"
    "calls = getattr(builtins, '_flaky_calls', 0) + 1; builtins._flaky_calls = calls\n"
    "sys.exit(3) if calls == 1 else print(json.dumps(calls))"
)


def bundle(steps, tools, outputs):
    return {
        "format": 1,
        "workflow": {"id": "t", "inputs": {}, "outputs": outputs, "steps": steps},
        "tools": {name: {"kind": "executable", "source": src} for name, src in tools.items()},
    }


def run_both(monkeypatch, data):
    """Run ``data`` with threads and without; return both outcomes (outputs or error JSON)."""
    outcomes = []
    for threads in (True, False):
        monkeypatch.setattr(engine_module, "THREADS", threads)
        try:
            outcomes.append(Engine(data).run({}))
        except RunnerError as error:
            outcomes.append(error.to_json())
    return outcomes


GROUP = [
    {
        "step_id": f"s{i}",
        "type": "python_tool",
        "tool": "stamp",
        "parallel_group": "g",
        "input_mapping": {"n": i},
    }
    for i in range(3)
]
OUTPUTS = {f"s{i}": {"source_reference": f"steps.s{i}.output.n"} for i in range(3)}


def test_a_parallel_group_without_threads_runs_in_written_order_with_the_same_outputs(
    monkeypatch,
):
    threaded, sequential = run_both(monkeypatch, bundle(GROUP, {"stamp": STAMP}, OUTPUTS))
    assert threaded == sequential == {"s0": 0, "s1": 2, "s2": 4}
    monkeypatch.setattr(engine_module, "THREADS", False)
    stamps = {
        "s": {"source_reference": "steps.s1.output"},
        "t": {"source_reference": "steps.s2.output"},
    }
    result = Engine(bundle(GROUP, {"stamp": STAMP}, stamps)).run({})
    assert result["s"]["end"] <= result["t"]["start"]  # one after another, as written


def test_a_failing_step_in_a_group_gives_the_same_error_without_threads(monkeypatch):
    steps = [*GROUP[:2], {**GROUP[2], "tool": "broken"}]
    tools = {"stamp": STAMP, "broken": "raise ValueError('no good')"}
    threaded, sequential = run_both(monkeypatch, bundle(steps, tools, OUTPUTS))
    assert threaded == sequential
    assert sequential["error"]["type"] == "tool_failed"
    assert sequential["error"]["step"] == "s2"


def test_an_overrun_is_a_timeout_without_threads_too(monkeypatch):
    slow = [
        {
            "step_id": "slow",
            "type": "python_tool",
            "tool": "stamp",
            "timeout": 0.2,
            "input_mapping": {"n": 1, "sleep": 0.4},
        }
    ]
    data = bundle(slow, {"stamp": STAMP}, {})
    threaded, sequential = run_both(monkeypatch, data)
    assert threaded == sequential
    assert sequential["error"]["type"] == "step_timeout"
    assert "within 0.2 s" in sequential["error"]["message"]


def test_retries_wait_and_succeed_without_threads(monkeypatch):
    import builtins

    monkeypatch.setattr(engine_module, "RETRY_BACKOFF_SECONDS", 0.05)
    monkeypatch.setattr(engine_module, "THREADS", False)
    monkeypatch.setattr(builtins, "_flaky_calls", 0, raising=False)
    steps = [{"step_id": "f", "type": "python_tool", "tool": "flaky", "retry_on_failure": True}]
    started = time.monotonic()
    assert Engine(bundle(steps, {"flaky": FLAKY_ONCE}, {})).run({}) == {"output": 2}
    assert time.monotonic() - started >= 0.05  # the backoff pause was kept


def test_without_threads_each_step_finishes_before_the_next_starts(monkeypatch):
    monkeypatch.setattr(engine_module, "THREADS", False)
    steps = [{**GROUP[0], "input_mapping": {"n": 0, "sleep": 0.0}}, *GROUP[1:]]
    events = []
    Engine(bundle(steps, {"stamp": STAMP}, OUTPUTS)).run({}, on_event=events.append)
    order = [(e["event"], e["step"]) for e in events]
    assert order == [
        (kind, f"s{i}") for i in range(3) for kind in ("step_started", "step_finished")
    ]
    assert events[1]["seconds"] < 0.04  # its own time, not its group's
