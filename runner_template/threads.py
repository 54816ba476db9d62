"""Daemon threads that leave the signals the runner handles to the main thread.

The kernel gives a signal sent to the process (``kill PID``, a terminal's Ctrl-C, Docker's
SIGTERM) to any one of its threads that does not block it, and CPython runs a Python signal
handler only on the main thread, when that thread next runs bytecode. A main thread waiting
in a lock or a queue (a CLI run waits on its steps' reports) is not woken by a signal another
thread took: the run went on to its step's timeout instead of ending with
``workflow: interrupted by SIGINT``. Every thread the runner starts blocks those signals from
its first instruction (the mask is set before it starts, and a thread inherits its creator's),
so the kernel has only the main thread to give them to.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

# What the runner's main thread handles: SIGINT (Ctrl-C), SIGTERM and SIGHUP end a run or a
# batch (runner_template/main.py); serve stops on SIGTERM and SIGINT.
HANDLED = frozenset(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


@contextlib.contextmanager
def signals_blocked() -> Iterator[None]:
    """The calling thread blocks :data:`HANDLED` inside the block: a thread started in it
    blocks them for good. Where there are no POSIX thread masks (Pyodide), nothing changes."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def start_daemon(
    target: Callable[..., Any], *args: Any, name: str | None = None
) -> threading.Thread:
    """Start ``target(*args)`` on a daemon thread that blocks :data:`HANDLED`."""
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    with signals_blocked():
        thread.start()
    return thread
