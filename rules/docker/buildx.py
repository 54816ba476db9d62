"""One way to run ``docker buildx build`` (through python_on_whales): progress shown, clear errors.

Every build of this tool (builder image, compile, workflow image) goes through :func:`build`,
which streams BuildKit's plain log, shows its phase in a progress display (rules/progress.py),
keeps the log for the error message, and turns a failure into a :class:`UserError` with the
lines that matter.
"""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path
from typing import Any

from rules.console import err_console
from rules.docker.engine import docker_error, require_docker_cli
from rules.progress import BuildLog, status

LOG_LINES_KEPT = 400


def build(what: str, context: Path, *, hint: str = "", **options: Any) -> None:
    """``buildx build`` ``context`` with python_on_whales ``options``; ``what`` names it for people.

    ``DOCKER_WORKFLOW_VERBOSE=1`` prints every log line instead of a one-line status.
    """
    require_docker_cli()
    from python_on_whales import docker
    from python_on_whales.exceptions import DockerException

    verbose = os.environ.get("DOCKER_WORKFLOW_VERBOSE") == "1"
    log: deque[str] = deque(maxlen=LOG_LINES_KEPT)
    try:
        with status(what, BuildLog()) as shown:
            for line in docker.buildx.build(context, progress="plain", stream_logs=True, **options):
                line = line.rstrip()
                log.append(line)
                if verbose:
                    err_console().print(line)
                shown.feed(line)
    except DockerException as error:
        raise docker_error(what, _with_log(error, log), hint) from None


def _with_log(error: Exception, log: deque[str]) -> Exception:
    """The error text extended with the build log (python_on_whales keeps only its stderr)."""
    text = "\n".join(log) + "\n" + str(getattr(error, "stderr", "") or error)
    return RuntimeError(text)
