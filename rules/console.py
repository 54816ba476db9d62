"""The one stderr console for progress and messages (rich), created on first use.

Importing rich costs about 0.15 s; ``doit`` loads the build rules on every run, including
no-op runs, so nothing here is imported until something is printed.

Markup is off: messages carry user text (paths, ids, versions, build log lines), and rich would
read ``[/]`` in a file name as a closing tag and fail. Styles come from :class:`rich.text.Text`
objects, never from markup in strings; the progress display (:mod:`rules.progress`) does the
same, because rich's spinner parses plain strings as markup whatever the console says.

``-q`` (``DOCKER_WORKFLOW_QUIET=1``, so that child processes such as ``doit``'s inherit it)
keeps only errors: :func:`err_console` prints nothing, errors go through their own console.
"""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

QUIET_ENV = "DOCKER_WORKFLOW_QUIET"


def is_quiet() -> bool:
    return os.environ.get(QUIET_ENV) == "1"


def set_quiet() -> None:
    """From now on (and in child processes) print only errors on stderr."""
    os.environ[QUIET_ENV] = "1"
    err_console.cache_clear()


@cache
def err_console() -> Console:
    return _console(quiet=is_quiet())


@cache
def error_console() -> Console:
    """stderr for errors: printed under ``-q`` too."""
    return _console(quiet=False)


def _console(quiet: bool) -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, markup=False, soft_wrap=True, quiet=quiet)


def out_console() -> Console:
    """A console on stdout for reports (``analyze``'s table). rich answers a closed pipe by
    exiting 1 without a word; this one raises ``BrokenPipeError`` instead, so the CLI reports
    it in one line like every other failed write (``rules.cli.main``)."""
    from rich.console import Console

    class _OutConsole(Console):
        def on_broken_pipe(self) -> None:
            raise BrokenPipeError(32, "Broken pipe")

    return _OutConsole(highlight=False, markup=False)


def print_message(label: str, style: str, line: str) -> None:
    """``label: line`` on stderr, the label styled, the line printed as it is but redacted
    (``runner_template.redaction``, the one redaction): a Docker error that quotes a
    container's environment or an endpoint's ``user:password@`` shows ``***`` in their place;
    under ``-q`` only errors."""
    from rich.text import Text

    from runner_template.redaction import redact

    console = error_console() if label == "error" else err_console()
    console.print(Text.assemble((f"{label}: ", style), redact(line)), soft_wrap=True)
