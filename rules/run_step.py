"""Run one long setup command with a progress display: ``python -m rules.run_step``.

``scripts/setup.sh`` runs its long steps (the llama-cpp-python wheel build, the Docker
packages) through this, so they show what :mod:`rules.progress` shows for the tool's own
steps: the step, its phase read from the command's output, the elapsed time. The output goes
to a log file; when the command fails, its last lines are printed and its exit code passed on.

    python -m rules.run_step --what "building llama-cpp-python" --log FILE --reader cmake \\
        [--plain] -- COMMAND ...

``--plain`` prints plain lines even on a terminal: for a step running in the background while
another step owns the live display.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import deque
from pathlib import Path

from rules.console import error_console
from rules.progress import BootstrapLog, Phase, Step

TAIL_LINES = 20


class CmakeLog:
    """A CMake build through pip (``pip wheel -v``, scikit-build-core and Ninja):
    ``[77/140] ccache /usr/bin/g++ ...``."""

    _STEP = re.compile(r"^\s*\[(?P<done>\d+)/(?P<total>\d+)\] ")

    def feed(self, line: str) -> Phase | None:
        found = self._STEP.match(line)
        if found:
            linking = " -shared " in line or " ar qc " in line or "Linking" in line
            count = f"{found.group('done')} of {found.group('total')}"
            return Phase("linking" if linking else "C/C++ compile", count)
        if line.lstrip().startswith(("Collecting ", "Downloading ")):
            return Phase("downloading build tools")
        if "*** scikit-build-core" in line or "*** Configuring CMake" in line:
            return Phase("configuring (cmake)")
        if "Created wheel for" in line:
            return Phase("packing the wheel")
        return None


class AptLog:
    """``apt-get install``: ``Get:3 http://... docker.io ...``, ``Unpacking x``, ``Setting up``."""

    _LINES = (
        # "Get:7 http://deb.debian.org/debian trixie/main amd64 docker.io amd64 26.1.5 [26 MB]"
        (re.compile(r"^Get:\d+ \S+ \S+ \S+ (?P<d>\S+) \S+ \S+ \["), "downloading"),
        # "Get:1 http://deb.debian.org/debian trixie InRelease [140 kB]", "Hit:2 ..."
        (re.compile(r"^(?:Get|Hit|Ign):\d+ \S+ (?P<d>\S+)"), "package lists"),
        (re.compile(r"^Unpacking (?P<d>\S+)"), "unpacking"),
        (re.compile(r"^Setting up (?P<d>\S+)"), "configuring"),
    )

    def feed(self, line: str) -> Phase | None:
        for pattern, name in self._LINES:
            found = pattern.match(line)
            if found:
                return Phase(name, found.group("d"))
        return None


READERS = {"cmake": CmakeLog, "apt": AptLog, "bootstrap": BootstrapLog}


def run(what: str, log: Path, reader: str | None, plain: bool, command: list[str]) -> int:
    """Run ``command`` with its output in ``log`` under a progress display; its exit code."""
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    log.parent.mkdir(parents=True, exist_ok=True)
    step = Step(what, READERS[reader]() if reader else None, plain=plain)
    try:
        with step, log.open("w", encoding="utf-8", errors="replace") as handle:
            process = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                errors="replace",
            )
            for line in process.stdout:
                handle.write(line)
                tail.append(line.rstrip())
                step.feed(line.rstrip())
            code = process.wait()
            if code != 0:
                raise _Failed(code)
    except _Failed as failed:
        console = error_console()
        console.print(f"{what} failed (exit {failed.code}); last lines of {log}:")
        for line in tail:
            console.print(f"  {line}")
        return failed.code
    except FileNotFoundError as error:
        error_console().print(f"{what}: cannot run {command[0]}: {error.strerror}")
        return 127
    return 0


class _Failed(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rules.run_step")
    parser.add_argument("--what", required=True, help="the step, for people")
    parser.add_argument("--log", required=True, type=Path, help="where the output goes")
    parser.add_argument("--reader", choices=sorted(READERS), help="how to read its phases")
    parser.add_argument("--plain", action="store_true", help="plain lines even on a terminal")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command after --")
    return run(args.what, args.log, args.reader, args.plain, command)


if __name__ == "__main__":
    sys.exit(main())
