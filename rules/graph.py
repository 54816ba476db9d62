"""Run the doit graph in-process for the CLI: the same tasks, database and cache as ``doit``.

Every command that needs outputs of the pipeline (``build``, ``run``, ``run --local``,
``analyze``, ``export``, ``batch``, ``serve``) asks for the tasks it needs here, so there is one
writer of ``cache/targets/``: a command sees another's outputs as up to date exactly when doit
would.
"""

from __future__ import annotations

import sys
from typing import Any

from rules import tasks
from rules.console import is_quiet
from rules.errors import UserError
from rules.targets import TARGETS, Target


def run_doit(args: list[str], config: dict[str, Any] | None = None) -> int:
    """Run doit over the declared targets."""
    from doit.cmd_base import ModuleTaskLoader
    from doit.doit_cmd import DoitMain

    namespace = {**tasks.TASK_CREATORS, "DOIT_CONFIG": {**tasks.doit_config(), **(config or {})}}
    return DoitMain(ModuleTaskLoader(namespace)).run(args)


def _reporter(quiet: bool):
    from doit.reporter import ConsoleReporter

    class StepReporter(ConsoleReporter):
        """doit's console lines (``. compile:x-amd64`` ran, ``-- image:x`` up to date) on
        stderr (none when ``quiet``), so that stdout stays the command's result (``run`` prints
        JSON there), with task failures left to the caller, which prints them as one clean
        message; doit's own errors (``runtime_error``) still reach stderr."""

        def __init__(self, outstream, options):
            super().__init__(sys.stderr, options)

        def execute_task(self, task):
            if not quiet:
                super().execute_task(task)

        def skip_uptodate(self, task):
            if not quiet:
                super().skip_uptodate(task)

        def add_failure(self, task, exception):
            pass

        def complete_run(self):
            if self.runtime_errors:
                self.write("\n".join(self.runtime_errors) + "\n")

    return StepReporter


def build_targets(targets: list[Target], step: str = "image", quiet: bool = False) -> None:
    """Bring ``step`` of ``targets`` up to date; raise the first failing step's error.

    ``quiet`` hides doit's step lines (``analyze`` and ``run --local`` print results only).
    """
    TARGETS.clear()
    TARGETS.update({t.name: t for t in targets})
    tasks.FAILURES.clear()
    config: dict[str, Any] = {"reporter": _reporter(quiet or is_quiet())}
    code = run_doit([f"{step}:{t.name}" for t in targets], config)
    if tasks.FAILURES:
        raise tasks.FAILURES[0]
    if code != 0:
        names = ", ".join(t.name for t in targets)
        raise UserError(f"the build of {names} failed (doit exit {code})")
