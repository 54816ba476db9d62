"""``docker-workflow batch``: a file of inputs through a workflow image, resumable.

    docker-workflow batch WORKFLOW INPUTS.jsonl -o RESULTS.jsonl [-j N]
        [--engine local|swarm] [--replicas K] [--endpoint URL] [--network N] [-t TAG]

The inputs are read line by line (a blank line takes no index; a line that is not JSON is an
error line for its index, found here, before any container starts). The image is built if
needed. Engines:

* ``local``: one container runs every pending input (``--batch --indexed -j N``): its start-up
  is paid once per batch, not once per input. Inputs stream in on stdin, results stream out.
* ``swarm``: a replicated job on the Docker Swarm this engine manages
  (``rules/deploy/batch/swarm.py``).

Results go to :class:`rules.deploy.batch.results.ResultsFile`: appended and flushed as they
arrive, in input order at the end, resumable (``--retry-failed`` reruns failed indices).
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from rules.console import err_console
from rules.deploy.batch.inputs import InputsFile
from rules.deploy.batch.local import run_local
from rules.deploy.batch.progress import Progress
from rules.deploy.batch.results import ResultsFile, error_record
from rules.deploy.batch.settings import BatchSettings
from rules.deploy.container import RunLimits
from rules.errors import UserError
from runner_template.errors import EXIT_SOME_FAILED


class _Terminated(Exception):
    """SIGTERM, turned into an exception so that cleanup code runs as it does for Ctrl-C."""


def _on_sigterm(signum, frame) -> None:
    raise _Terminated()


def run_batch(
    image: str,
    inputs: InputsFile,
    output: Path,
    settings: BatchSettings,
    limits: RunLimits | None = None,
) -> int:
    """Run the pending inputs through ``image``; return the exit code (0, 7, 130, 143)."""
    limits = limits or RunLimits()
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    results = ResultsFile(output, inputs.digest, settings.retry_failed).open()
    progress = Progress(len(inputs.lines), len(results.done()))
    code = 0

    def record(item: dict[str, Any]) -> None:
        if item.get("index") not in results.done():
            results.append(item)
            progress.record(item)

    try:
        for index, problem in sorted(inputs.bad.items()):
            record(error_record(index, "bad_input", problem))
        pending = [line.index for line in inputs.lines if line.index not in results.done()]
        if pending and settings.engine == "swarm":
            from rules.deploy.batch.swarm import run_on_swarm

            run_on_swarm(image, inputs, pending, settings, record, limits)
        elif pending:
            run_local(image, inputs, pending, settings, record, limits)
    except KeyboardInterrupt:
        code = 130
    except _Terminated:
        code = 143
    finally:
        signal.signal(signal.SIGTERM, previous)
        progress.close()
        results.close()
    if code:
        err_console().print(
            f"interrupted: {len(results.done())} of {len(inputs.lines)} results kept in {output};"
            " run the same command again to resume"
        )
        return code
    missing = len(inputs.lines) - len(results.done())
    if missing:
        raise UserError(f"{missing} input(s) got no result: run the same command again to resume")
    return EXIT_SOME_FAILED if results.failed() else 0
