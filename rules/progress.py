"""Progress of one long step on stderr: what runs, its phase, how long it has run.

A newcomer must be able to tell a slow step from a hung one, on a terminal and in a CI log:

- on a terminal, a live one-line display (a spinner, the step, its phase, the elapsed time,
  redrawn a few times a second) that disappears when the step ends, replaced by one line
  saying how long it took;
- when stderr is not a terminal, plain lines: one when the step starts, one when its phase
  changes name, one at least every :data:`HEARTBEAT_SECONDS` while it runs, one when it ends,
  each with the step, the phase and the elapsed time;
- with ``-q`` (:func:`rules.console.is_quiet`), nothing.

The phase comes from the step's own output: :class:`BuildLog` reads BuildKit's plain log
(``docker buildx build --progress plain``), including what Nuitka prints inside the compile,
and :class:`BootstrapLog` reads debootstrap's and mmdebstrap's. Only the phase's name decides
whether a plain line is due; its detail (a module count, bytes pulled) changes too often.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from rules.console import err_console, is_quiet

HEARTBEAT_SECONDS = 15.0


@dataclass(frozen=True)
class Phase:
    """What a step is doing now: a stable name and a detail that may change every line."""

    name: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.name} ({self.detail})" if self.detail else self.name


class LineReader(Protocol):
    """Turns a step's output lines into phases (None: the line says nothing new)."""

    def feed(self, line: str) -> Phase | None: ...


def elapsed_text(seconds: float) -> str:
    """``42s``, ``3m07s``, ``1h02m``: short enough for a status line, exact enough to compare."""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


# -- phases from build output -----------------------------------------------------------------

# BuildKit's plain log: "#12 3.456 text" (a step's output), "#12 [build 5/5] RUN ..." (a step
# starts), "#12 DONE 1.2s", "#12 CACHED", "#12 sha256:... 12.3MB / 45.6MB 2.1s" (a pull).
_BUILDKIT_OUTPUT = re.compile(r"^#\d+ \d+(?:\.\d+)? (?P<text>.*)$")
_BUILDKIT_STEP = re.compile(r"^#\d+ \[(?P<stage>[^\]]+)\] (?P<what>.+)$")
_BUILDKIT_PULL = re.compile(
    r"^#\d+ sha256:[0-9a-f]{12,} (?P<done>[\d.]+\w?B) / (?P<total>[\d.]+\w?B)"
)
_BUILDKIT_OTHER = tuple(
    (re.compile(rf"^#\d+ {pattern}"), name)
    for pattern, name in (
        (r"exporting to (?:image|oci image format)", "exporting the image"),
        (r"exporting to client directory", "exporting the program"),
        (r"copying files (?P<d>\S+)", "exporting the program"),
        (r"exporting cache to (?P<d>[\w ]+)", "saving the layer cache"),
        (r"(?:writing layer|preparing build cache)", "saving the layer cache"),
        (r"importing cache manifest", "loading the layer cache"),
        (r"pushing layers", "pushing"),
        (r"pushing manifest for (?P<d>\S+)", "pushing"),
        (r"resolve image config for (?P<d>\S+)", "pulling"),
        (r"load metadata for (?P<d>\S+)", "looking up the base image"),
        (r"(?:naming to|unpacking to) (?P<d>\S+)", "loading into the engine"),
    )
)
# What Nuitka prints (without --quiet, with --show-progress; compile.sh): the module
# optimization passes with a count, then code generation, the C compile (Scons), linking.
COMPILE_STARTED = "docker-workflow-compile: started"  # compile.sh's first line
_NUITKA_MODULE = re.compile(
    r"Nuitka-Progress: Optimizing module '(?P<module>[^']+)', (?P<left>\d+) more modules? to go"
)
_NUITKA_PASS = re.compile(r"Nuitka-Progress: PASS (?P<n>\d+):")
_NUITKA_PHASES = (  # as Nuitka 4.3.3 words them (nuitka/MainControl.py, build/SconsProgress.py)
    ("Nuitka: Starting Python compilation", "Nuitka: reading modules"),
    ("Nuitka: Completed Python level compilation", "generating C code"),
    ("Nuitka: Generating source code for C backend", "generating C code"),
    ("Nuitka: Running data composer", "generating C code (constants)"),
    ("Nuitka-Scons: Backend C compiler", "C compile"),
    ("Nuitka-Scons: Backend C linking", "linking"),
    ("Nuitka-Onefile: Creating single file", "packing onefile"),
    ("Nuitka-Scons: Onefile C linking", "linking onefile"),
    ("Nuitka: Successfully created", "Nuitka done"),
)


class BuildLog:
    """Phases of a ``buildx build``: the BuildKit step, or inside a compile, Nuitka's phase."""

    def __init__(self) -> None:
        self._pass = 0
        self._optimized = 0

    def feed(self, line: str) -> Phase | None:
        output = _BUILDKIT_OUTPUT.match(line)
        if output:
            return self._nuitka(output.group("text"))
        step = _BUILDKIT_STEP.match(line)
        if step:
            what = step.group("what")
            if "sharing=locked" in what:
                # BuildKit starts this step once the cache mount is free: another compile on
                # this engine may hold it.
                return Phase("waiting for the compile cache", "another compile may hold it")
            return Phase(f"[{step.group('stage')}]", what[:60] + ("…" if len(what) > 60 else ""))
        pull = _BUILDKIT_PULL.match(line)
        if pull:
            return Phase("pulling layers", f"{pull.group('done')} of {pull.group('total')}")
        for pattern, name in _BUILDKIT_OTHER:
            other = pattern.match(line)
            if other:
                return Phase(name, other.groupdict().get("d") or "")
        return None

    def _nuitka(self, text: str) -> Phase | None:
        if text.startswith(COMPILE_STARTED):
            return Phase("starting Nuitka", text.removeprefix(COMPILE_STARTED).strip(" ()"))
        passed = _NUITKA_PASS.search(text)
        if passed:
            self._pass, self._optimized = int(passed.group("n")), 0
            return None
        module = _NUITKA_MODULE.search(text)
        if module:
            self._optimized += 1
            left = int(module.group("left"))
            counted = f"{self._optimized} of {self._optimized + left}"
            where = f"pass {self._pass}, " if self._pass else ""
            return Phase("Nuitka: optimizing modules", f"{where}{counted}")
        for start, name in _NUITKA_PHASES:
            if start in text:
                return Phase(name)
        return None


_BOOTSTRAP = (
    # debootstrap: a line per package ("I: Retrieving apt 2.6.1", "I: Unpacking libffi8:amd64...")
    (re.compile(r"^I: (?:Retrieving|Validating) (?P<d>\S+)(?: \S+)?\s*$"), "downloading packages"),
    (
        re.compile(r"^I: (?:Extracting|Unpacking) (?P<d>[^\s.]\S*?)(?:\.\.\.)?$"),
        "unpacking packages",
    ),
    (re.compile(r"^I: Configuring (?P<d>[^\s.]\S*?)(?:\.\.\.)?$"), "configuring packages"),
    # mmdebstrap: a line per phase
    (re.compile(r"^I: running apt-get update"), "package lists"),
    (re.compile(r"^I: downloading packages"), "downloading packages"),
    (re.compile(r"^I: extracting archives"), "unpacking packages"),
    (re.compile(r"^I: installing essential packages"), "installing essential packages"),
    (re.compile(r"^I: installing remaining packages"), "installing the other packages"),
    (re.compile(r"^I: (?:cleaning package lists|creating tarball)"), "packing"),
)


class BootstrapLog:
    """Phases of a root file system build from debootstrap's or mmdebstrap's ``I:`` lines,
    with a count of the packages each phase has reached."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def feed(self, line: str) -> Phase | None:
        for pattern, name in _BOOTSTRAP:
            found = pattern.match(line)
            if found:
                if "d" not in pattern.groupindex:
                    return Phase(name)
                count = self._counts[name] = self._counts.get(name, 0) + 1
                item = found.group("d").rstrip(".")
                return Phase(name, f"{count}: {item}" if count > 1 else item)
        return None


# -- the display ------------------------------------------------------------------------------


class Step:
    """A long step's progress display; a context manager (see the module docstring).

    ``feed(line)`` gives it a line of the step's output (parsed by ``reader``), ``update(text)``
    sets the phase directly. The step's output itself is not shown (``DOCKER_WORKFLOW_VERBOSE``
    in :mod:`rules.docker.buildx` prints it).
    """

    def __init__(
        self,
        what: str,
        reader: LineReader | None = None,
        heartbeat: float = HEARTBEAT_SECONDS,
        plain: bool = False,
    ) -> None:
        self.what = what
        self.plain = plain  # plain lines even on a terminal (a step in the background)
        self.reader = reader
        self.heartbeat = heartbeat
        self.phase = Phase("starting")
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live = None
        self._printed_at = 0.0
        self._printed_name = ""

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def line_text(self) -> str:
        """The plain progress line: step, phase, elapsed time."""
        return f"{self.what}: {self.phase}, {elapsed_text(self.elapsed())}"

    def __rich__(self):
        from rich.text import Text

        return Text.assemble(
            self.what,
            "  ",
            (str(self.phase), "cyan"),
            "  ",
            (elapsed_text(self.elapsed()), "bold"),
        )

    def __enter__(self) -> Step:
        self.started = time.monotonic()
        if is_quiet():
            return self
        if err_console().is_terminal and not self.plain:
            _BOARD.add(self)
            self._live = _BOARD
        else:
            self._print()
            self._thread = threading.Thread(target=self._beat, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, kind, error, trace) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._live is not None:
            _BOARD.remove(self)
        if is_quiet():
            return
        outcome = {None: "done", KeyboardInterrupt: "interrupted"}.get(kind, "failed")
        err_console().print(f"{self.what}: {outcome} after {elapsed_text(self.elapsed())}")

    def feed(self, line: str) -> None:
        if self.reader is None:
            return
        phase = self.reader.feed(line)
        if phase is not None:
            self._set(phase)

    def update(self, text: str) -> None:
        self._set(Phase(text))

    def _set(self, phase: Phase) -> None:
        with self._lock:
            self.phase = phase
            changed = phase.name != self._printed_name
        if changed and self._thread is not None:
            self._print()

    def _print(self) -> None:
        with self._lock:
            self._printed_at = time.monotonic()
            self._printed_name = self.phase.name
            text = self.line_text()
        err_console().print(text)

    def _beat(self) -> None:
        """Off a terminal: a line whenever ``heartbeat`` seconds passed without one."""
        while True:
            with self._lock:
                due = self._printed_at + self.heartbeat - time.monotonic()
            if self._stop.wait(max(due, 0.05)):
                return
            with self._lock:
                late = time.monotonic() - self._printed_at >= self.heartbeat
            if late:
                self._print()


class _Board:
    """The one live display on a terminal: a spinner line per running step (rich allows one
    live display at a time, and the two root file systems of a builder are made at once)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[int, object] = {}
        self._live = None

    def add(self, step: Step) -> None:
        from rich.live import Live
        from rich.spinner import Spinner

        with self._lock:
            self._rows[id(step)] = Spinner("dots", text=step)
            start = self._live is None
            if start:
                self._live = Live(self, console=err_console(), refresh_per_second=4, transient=True)
        if start:  # outside the lock: starting renders, and rendering takes the lock
            self._live.start()

    def remove(self, step: Step) -> None:
        with self._lock:
            self._rows.pop(id(step), None)
            live = self._live if not self._rows else None
            if live is not None:
                self._live = None
        if live is not None:  # outside the lock: stopping waits for the refresh thread
            live.stop()

    def __rich__(self):
        from rich.console import Group

        with self._lock:
            return Group(*self._rows.values())


_BOARD = _Board()


def status(text: str, reader: LineReader | None = None) -> Step:
    """The progress display of a long step: a context manager with ``update(text)`` and
    ``feed(line)``; ``reader`` turns fed lines into phases."""
    return Step(text, reader)
