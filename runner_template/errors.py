"""Error classes of the runner, each with its own documented exit code and JSON ``type``.

Callers (a shell script, a CI job, ``docker-workflow run``) tell failures apart by exit code
without parsing text, so every failure a workflow can meet maps to exactly one class below.
Messages are redacted and kept on one line here, where every error is made
(``runner_template/redaction.py``).
"""

from __future__ import annotations

from runner_template.redaction import clean

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
EXIT_LLM_UNREACHABLE = 3
EXIT_LLM_ERROR = 4
EXIT_TOOL_FAILED = 5
EXIT_STEP_TIMEOUT = 6
EXIT_SOME_FAILED = 7  # --batch: at least one input failed (each has its own error line)


class RunnerError(Exception):
    """A failure the runner reports as ``{"error": {...}}`` and an exit code."""

    error_type = "internal_error"
    exit_code = EXIT_INTERNAL

    def __init__(self, message: str, step: str | None = None) -> None:
        super().__init__(clean(message))
        self.message = message
        self.step = step

    @property
    def message(self) -> str:
        """The message: redacted (no credential, no expanded ``${VAR}``) and on one line, however
        it was made or later changed (a sub-workflow prefixes its own name)."""
        return self._message

    @message.setter
    def message(self, text: str) -> None:
        self._message = clean(text)

    def to_json(self) -> dict:
        return {"error": {"type": self.error_type, "message": self.message, "step": self.step}}


class InputError(RunnerError):
    """The caller's inputs (or the bundle) are not acceptable."""

    error_type = "bad_input"
    exit_code = EXIT_BAD_INPUT


class LLMUnreachableError(RunnerError):
    """The Ollama server could not be reached at all (refused, unknown host, reset)."""

    error_type = "llm_unreachable"
    exit_code = EXIT_LLM_UNREACHABLE


class LLMError(RunnerError):
    """Ollama answered, but not with a usable reply (unknown model, HTTP error, garbage)."""

    error_type = "llm_error"
    exit_code = EXIT_LLM_ERROR


class ToolError(RunnerError):
    """An executable tool raised, exited non-zero, or inline step code failed."""

    error_type = "tool_failed"
    exit_code = EXIT_TOOL_FAILED


class StepTimeoutError(RunnerError):
    """A step did not finish within its ``timeout``."""

    error_type = "step_timeout"
    exit_code = EXIT_STEP_TIMEOUT


class CanceledError(RunnerError):
    """The run was canceled by its caller (``POST /runs/ID/cancel`` in serve mode)."""

    error_type = "canceled"
    exit_code = EXIT_INTERNAL  # only a service cancels runs; no command line exit is due
