"""Run executable tools in-process with their original contract: JSON on stdin, JSON on stdout.

A compiled image has no ``python`` command to start, so the tool's code is executed here, with
``sys.stdin`` and ``sys.stdout`` swapped for buffers. The swap is per thread (steps in a
``parallel_group`` run tools at the same time), through :class:`_ThreadRoutedStream`, which is
installed once and sends each thread's reads and writes to that thread's buffers.
"""

from __future__ import annotations

import builtins
import functools
import io
import sys
import threading
from collections.abc import Callable
from typing import Any

from runner_template.errors import ToolError
from runner_template.jsonsafe import JSONLimitError, dumps
from runner_template.jsonsafe import loads as bounded_loads

_routing = threading.local()
_install_lock = threading.Lock()


class _ThreadRoutedStream:
    """Stands in for ``sys.stdin``/``sys.stdout``: per-thread target, else the real stream.

    ``read``, ``readline`` and ``write`` are methods of their own (a tool's ``json.load`` and
    ``print`` call them): through ``__getattr__`` each was two Python calls more."""

    def __init__(self, real: Any, slot: str) -> None:
        self._real = real
        self._slot = slot

    def _target(self) -> Any:
        return getattr(_routing, self._slot, None) or self._real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target(), name)

    def __iter__(self):
        return iter(self._target())

    def read(self, *args: Any) -> Any:
        return (getattr(_routing, self._slot, None) or self._real).read(*args)

    def readline(self, *args: Any) -> Any:
        return (getattr(_routing, self._slot, None) or self._real).readline(*args)

    def write(self, text: Any) -> Any:
        return (getattr(_routing, self._slot, None) or self._real).write(text)


class _LazyInput:
    """A tool's stdin made on its first use: inline code seldom reads it, and writing its
    JSON for every run was a tenth of such a step's CPU under ``serve``."""

    __slots__ = ("_make", "_stream")

    def __init__(self, make: Callable[[], str]) -> None:
        self._make = make
        self._stream: io.StringIO | None = None

    def _open(self) -> io.StringIO:
        if self._stream is None:
            self._stream = io.StringIO(self._make())
        return self._stream

    def __getattr__(self, name: str) -> Any:
        return getattr(self._open(), name)

    def __iter__(self):
        return iter(self._open())

    def read(self, *args: Any) -> str:
        return self._open().read(*args)


def _install_routing() -> None:
    """Route ``sys.stdin`` and ``sys.stdout`` by thread (once, and again if replaced)."""
    with _install_lock:
        if not isinstance(sys.stdin, _ThreadRoutedStream):
            sys.stdin = _ThreadRoutedStream(sys.stdin, "stdin")
        if not isinstance(sys.stdout, _ThreadRoutedStream):
            sys.stdout = _ThreadRoutedStream(sys.stdout, "stdout")


@functools.lru_cache(maxsize=512)
def _compile(source: str, name: str):
    """The code object of a tool or inline code, compiled once per process: compiling took
    about 40% of a small workflow's CPU per run (a service runs the same code many times)."""
    try:
        return compile(source, f"<tool {name}>", "exec")
    except SyntaxError as error:
        raise ToolError(
            f"tool '{name}' has invalid Python: {error.msg} (line {error.lineno})"
        ) from error


def _execute(
    code, namespace: dict[str, Any], stdin: str | Callable[[], str], name: str, step: str | None
) -> str:
    """Execute ``code`` with this thread's stdin/stdout redirected; return what it printed.
    ``stdin`` is the text, or what makes it when the code first reads it (whose
    :class:`ToolError` is then the step's error)."""
    if not (
        sys.stdin.__class__ is _ThreadRoutedStream and sys.stdout.__class__ is _ThreadRoutedStream
    ):
        _install_routing()  # not yet, or replaced since (no lock to take once installed)
    stdout = io.StringIO()
    _routing.stdin = io.StringIO(stdin) if isinstance(stdin, str) else _LazyInput(stdin)
    _routing.stdout = stdout
    try:
        exec(code, namespace)
    except ToolError:  # the lazy stdin's: its input cannot be written as JSON
        raise
    except SystemExit as stop:
        if stop.code not in (None, 0):
            detail = stdout.getvalue().strip()[-300:]
            raise ToolError(
                f"tool '{name}' exited with status {stop.code}" + (f": {detail}" if detail else ""),
                step,
            ) from None
    except Exception as error:
        import traceback  # only for a failure: not one of every start's imports

        last = traceback.format_exception_only(type(error), error)[-1].strip()
        raise ToolError(f"tool '{name}' failed: {last}", step) from error
    finally:
        _routing.stdin = _routing.stdout = None
    return stdout.getvalue()


# What a tool's code starts with, copied for each run (a fresh namespace every time).
_NAMESPACE = {"__name__": "__main__", "__builtins__": builtins}


def parse_tool_output(text: str) -> Any:
    """A tool's stdout as JSON when it is JSON, else as stripped text (``None`` when empty);
    JSON beyond the bounds of ``jsonsafe`` (too deep, a number too long) is a
    :class:`JSONLimitError`."""
    stripped = text.strip()
    if not stripped:
        return None
    try:
        return bounded_loads(stripped)
    except JSONLimitError:
        raise
    except ValueError:  # not JSON: the output is text
        return stripped


def _as_json(value: Any, what: str, name: str, step: str | None) -> str:
    """``value`` as a tool's stdin; an error names it as ``{what} '{name}' input``."""
    try:
        return dumps(value)
    except JSONLimitError as error:
        raise ToolError(f"{what} '{name}' input: {error.message}", step) from None


def run_executable_tool(name: str, source: str, payload: dict[str, Any], step: str | None) -> Any:
    """Run a tool's Python ``source`` with ``payload`` as JSON on its stdin."""
    code = _compile(source, name)
    stdin_text = _as_json(payload, "tool", name, step)
    printed = _execute(code, dict(_NAMESPACE), stdin_text, name, step)
    try:
        return parse_tool_output(printed)
    except JSONLimitError as error:
        raise ToolError(
            f"tool '{name}' printed JSON out of bounds: {error.where}: {error.message}", step
        ) from None


def run_inline_code(step: str, source: str, values: dict[str, Any]) -> Any:
    """Run a step's inline ``code``: mapped values are its variables; it must set ``result``."""
    name = step + ".code"
    code = _compile(source, name)
    namespace = {**_NAMESPACE, **values}
    namespace["inputs"] = dict(values)
    stdin = functools.partial(_as_json, values, "inline code of step", step, step)
    _execute(code, namespace, stdin, name, step)
    if "result" not in namespace:
        raise ToolError(f"inline code of step '{step}' did not set 'result'", step)
    return namespace["result"]
