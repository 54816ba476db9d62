"""Threads the runner starts leave SIGINT, SIGTERM and SIGHUP to the main thread
(runner_template/threads.py): in-process for the helpers, and a real serve process whose
request runs on a connection's thread."""

from __future__ import annotations

import os
import signal

import pytest
from serving import MASK_PROBE, ServeProcess, post

from runner_template.threads import HANDLED, signals_blocked, start_daemon

pytestmark = pytest.mark.skipif(
    not hasattr(signal, "pthread_sigmask") or not os.path.isdir("/proc/self/task"),
    reason="POSIX thread signal masks, read through Linux's /proc",
)


def current_mask() -> set[int]:
    return set(signal.pthread_sigmask(signal.SIG_BLOCK, []))


def test_a_started_thread_blocks_the_handled_signals_and_the_caller_keeps_its_mask():
    before = current_mask()
    seen: list[set[int]] = []
    thread = start_daemon(lambda: seen.append(current_mask()), name="probe")
    thread.join(timeout=10)
    assert thread.daemon and thread.name == "probe"
    assert {signal.SIGINT, signal.SIGTERM, signal.SIGHUP} == HANDLED
    assert seen[0] >= HANDLED
    assert current_mask() == before


def test_the_mask_comes_back_when_the_block_raises():
    before = current_mask()
    with pytest.raises(RuntimeError), signals_blocked():
        assert current_mask() >= HANDLED
        raise RuntimeError("inside")
    assert current_mask() == before


def test_a_serve_request_runs_on_a_thread_that_leaves_signals_to_the_main_thread():
    bundle = {
        "format": 2,
        "workflow": {
            "id": "masks",
            "version": "1",
            "inputs": {},
            "outputs": {
                name: {"source_reference": f"steps.probe.output.{name}"}
                for name in ("step", "main")
            },
            "steps": [{"step_id": "probe", "type": "python_tool", "code": MASK_PROBE}],
        },
        "tools": {},
    }
    served = ServeProcess(bundle)
    try:
        reply = post(served.url + "/invoke", {})
        assert reply.status_code == 200, reply.text
        assert reply.json()["outputs"] == {"step": [1, 2, 15], "main": []}
    finally:
        assert served.stop() == 0
