"""Run the doit graph in-process for the CLI: the same tasks, database and cache as ``doit``.

Every command that needs outputs of the pipeline (``build``, ``run``, ``run --local``,
``batch``, ``serve``) asks for the tasks it needs here, so there is one writer of
``cache/targets/``: a command sees another's outputs as up to date exactly when doit would.
(``analyze``, ``export`` and ``k8s`` read the workflow and write nothing into the cache.)
"""

from __future__ import annotations

import sys
from typing import Any

from rules.console import is_quiet
from rules.errors import UserError
from rules.graph.options import layers_modules
from rules.graph.targets import Target
from rules.graph.tasks import BuildGraph, doit_config
from rules.platforms import arch_of


def run_doit(graph: BuildGraph, args: list[str], config: dict[str, Any] | None = None) -> int:
    """Run doit over the tasks of ``graph``; doit's exit code.

    The database is doit's sqlite3 file through :mod:`rules.graph.cache_db`, which keeps a
    failure to save it (a full disk) for :func:`build_targets` instead of a doit traceback.
    """
    from doit.cmd_base import ModuleTaskLoader
    from doit.doit_cmd import DoitMain

    from rules.graph import cache_db

    settings = {**doit_config(), "backend": cache_db.BACKEND, **(config or {})}
    namespace = {**graph.task_creators(), "DOIT_CONFIG": settings}
    plugins = {"BACKEND": {cache_db.BACKEND: cache_db.PLUGIN}}
    return DoitMain(ModuleTaskLoader(namespace), extra_config=plugins).run(args)


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
    graph = BuildGraph({t.name: t for t in targets})
    config: dict[str, Any] = {"reporter": _reporter(quiet or is_quiet())}
    names = [f"{step}:{t.name}" for t in targets]
    if step in ("compile", "layer"):  # one task per platform; "layer": the compiles and layers
        names = [f"compile:{t.name}-{arch_of(p)}" for t in targets for p in t.options.platforms]
        names += [
            f"layer:{t.name}-{arch_of(p)}"
            for t in targets
            for p in t.options.platforms
            if step == "layer" and layers_modules(t.options.compiler)
        ]
    from rules.graph import cache_db

    cache_db.failures.clear()
    code = run_doit(graph, names, config)
    if graph.failures:
        raise graph.failures[0]
    if cache_db.failures:
        raise cache_db.cache_full(cache_db.failures[0])
    if code != 0:
        names = ", ".join(t.name for t in targets)
        raise UserError(f"the build of {names} failed (doit exit {code})")
