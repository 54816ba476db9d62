"""Running a prepared workflow with this machine's Python: ``run --local`` and ``serve --local``.

One launcher for both, so they see the same program: a private copy of the bundle (another
build may rewrite the cache while this one runs), the workflow's locked packages installed
for this machine and put on ``PYTHONPATH`` (as the image has them compiled in), and one
environment: this process's, the endpoint (``--endpoint``, else ``OLLAMA_ENDPOINT``, else the
local Ollama), then the user's ``-e`` and ``--provider`` settings.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rules.errors import Interrupted
from rules.stages.prepared import Prepared, read_lock
from runner_template.bundle_format import BUNDLE_FILE

LOCAL_DEFAULT_ENDPOINT = "http://localhost:11434"


@contextmanager
def local_runner(
    prepared: Prepared, platform: str, endpoint: str | None, env: dict[str, str]
) -> Iterator[tuple[list[str], dict[str, str]]]:
    """``(command, environment)`` that start the runner of ``prepared``; valid inside the block."""
    # Here, not at the top: the CLI imports this module, and the lock code costs 40 ms to load.
    from rules.deploy.local_packages import local_site_packages

    environment = dict(os.environ)
    environment["OLLAMA_ENDPOINT"] = (
        endpoint or environment.get("OLLAMA_ENDPOINT") or LOCAL_DEFAULT_ENDPOINT
    )
    environment.pop("INPUT", None)
    environment.update(env)
    site = local_site_packages(read_lock(prepared.out_dir.parent), platform)
    if site is not None:
        path = [str(site), environment.get("PYTHONPATH")]
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, path))
    with tempfile.TemporaryDirectory(prefix="dw-local-") as private:
        bundle = Path(private) / BUNDLE_FILE
        bundle.write_bytes(prepared.bundle_path.read_bytes())
        environment["WORKFLOW_BUNDLE"] = str(bundle)
        yield [sys.executable, "-m", "runner_template"], environment


def run_local(
    prepared: Prepared,
    platform: str,
    endpoint: str | None,
    env: dict[str, str],
    inputs_text: str,
    stream: bool = False,
) -> int:
    """Run once with ``inputs_text`` on stdin; the result goes to our stdout. The exit code.

    The runner runs in a process group of its own, so the terminal's Ctrl-C reaches this
    process only (the runner prints nothing of its own); Ctrl-C, SIGTERM or SIGHUP here end
    the whole group (the runner and every tool process it started) at once, the private
    bundle copy is removed as the block unwinds, and the CLI prints ``interrupted`` and exits
    128 + the signal's number (``rules.errors.Interrupted``).
    """
    with local_runner(prepared, platform, endpoint, env) as (command, environment):
        command += ["--input-file", "-", *(["--stream"] if stream else [])]
        with _signals_raise():
            process = subprocess.Popen(
                command, stdin=subprocess.PIPE, env=environment, process_group=0
            )
            try:
                process.communicate(inputs_text.encode("utf-8"))
            except BaseException:
                _end_group(process)
                raise
    return process.returncode


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _raise_interrupted(signum: int, _frame: object) -> None:
    raise Interrupted(signum)


@contextmanager
def _signals_raise() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`Interrupted` in the block (Ctrl-C raises
    ``KeyboardInterrupt`` already), so that it unwinds and cleans up as Ctrl-C does."""
    previous = {number: signal.signal(number, _raise_interrupted) for number in STOP_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _end_group(process: subprocess.Popen) -> None:
    """Kill the runner's process group (the runner holds nothing to save: its result is not
    wanted any more) and reap the runner."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        process.wait()


def serve_local(
    prepared: Prepared,
    platform: str,
    endpoint: str | None,
    env: dict[str, str],
    *,
    port: int,
    bind: str,
    service_args: list[str],
    announce: Callable[[str], None],
) -> int:
    """Serve until Ctrl-C, SIGTERM or SIGHUP, which the service gets as one SIGTERM to finish
    running requests (its ``--grace``); the service's exit code. ``announce`` gets the URL for
    the user once the service starts; ``service_args`` are the runner's serve options (``-j N``,
    ``--auth-token-env NAME``).

    As with ``run_local``, the service runs in a process group of its own: the terminal's
    Ctrl-C reaches this process only, and once the service has stopped, whatever its tools
    started and left behind in that group is ended too. A second signal while the service
    finishes its requests ends the group at once (``interrupted``, 128 + the signal's number).
    """
    with local_runner(prepared, platform, endpoint, env) as (command, environment):
        command += ["--serve", "--host", bind, "--port", str(port), *service_args]
        with _signals_raise():
            process = subprocess.Popen(command, env=environment, process_group=0)
            try:
                announce(f"http://{bind}:{port}")
                try:
                    return process.wait()
                except (KeyboardInterrupt, Interrupted):
                    process.send_signal(signal.SIGTERM)
                    return process.wait()
            finally:
                _end_group(process)
