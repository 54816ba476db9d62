"""User-facing errors of the build side: one line each, naming file, JSON path and problem.

Everything a user can get wrong (a workflow, a tool file, an option) ends up as one of these;
the CLI prints them and exits non-zero without a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

EXIT_INVALID = 2
EXIT_FAILED = 1


def json_path(parts: Iterable[str | int]) -> str:
    """``["steps", 0, "tool"]`` -> ``$.steps[0].tool``."""
    text = "$"
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part.isidentifier():
            text += f".{part}"
        else:
            text += f"[{part!r}]"
    return text


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one file."""

    file: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.path}: {self.message}"


class UserError(Exception):
    """A failure caused by input or environment, with a message a user can act on."""

    exit_code = EXIT_FAILED

    def lines(self) -> list[str]:
        return [str(self)]


class InputProblem(UserError):
    """A command-line input the user got wrong (inputs, options): exit 2, like a bad file."""

    exit_code = EXIT_INVALID


class InvalidInput(UserError):
    """One or more :class:`Problem` found in a workflow or tool definition."""

    exit_code = EXIT_INVALID

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]

    @classmethod
    def single(cls, file: str, path: str, message: str) -> InvalidInput:
        return cls([Problem(file, path, message)])


class Interrupted(Exception):
    """A signal (SIGTERM, SIGHUP) ended the command: the CLI prints ``interrupted`` and exits
    128 + the signal's number, as it does for Ctrl-C (130)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum
