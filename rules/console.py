"""The one stderr console for progress and messages (rich), created on first use.

Importing rich costs about 0.15 s; ``doit`` loads the build rules on every run, including
no-op runs, so nothing here is imported until something is printed.

Markup is off: messages carry user text (paths, ids, versions, build log lines), and rich would
read ``[/]`` in a file name as a closing tag and fail. Styles come from :class:`rich.text.Text`
objects, never from markup in strings; :func:`status` wraps its text the same way, because
rich's spinner parses plain strings as markup whatever the console says.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


@cache
def err_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, markup=False, soft_wrap=True)


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
    container's environment or an endpoint's ``user:password@`` shows ``***`` in their place."""
    from rich.text import Text

    from runner_template.redaction import redact

    err_console().print(Text.assemble((f"{label}: ", style), redact(line)), soft_wrap=True)


def status(text: str):
    """A transient one-line status display (a context manager with ``update(text)``)."""
    from rich.text import Text

    return _Status(err_console().status(Text(text)), Text)


class _Status:
    def __init__(self, inner, text_type) -> None:
        self._inner = inner
        self._text = text_type

    def __enter__(self):
        self._inner.__enter__()
        return self

    def __exit__(self, *exc):
        return self._inner.__exit__(*exc)

    def update(self, text: str) -> None:
        self._inner.update(self._text(text))
