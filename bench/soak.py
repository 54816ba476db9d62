"""Soak: minutes of load on the compiled image's ``POST /invoke`` (the calculator), watching for
leaks. Not in CI: it takes ``--minutes`` (default 10) plus the image build.

The image is served with ``docker-workflow serve --detach`` (as bench/serve.py ``--image``
does); wrk (Debian's) drives ``--connections`` keep-alive connections in one-minute rounds, and
after each round the container's memory (``docker stats``) and the open file descriptors of its
process (``/proc/PID/fd``, the PID from ``docker inspect``; needs the rights to read another
user's /proc, as root has) are sampled. A service that leaks grows in those columns; one that
holds shows the same figures at the end as at the start. Errors are wrk's non-2xx answers and
socket errors. The table is printed and written into docs/RUNNER.md between its soak markers.
Run: ``.venv/bin/python bench/soak.py [--minutes 10] [--connections 8]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from common import print_table, run_quiet
from serve import free_port, start_image, wait_up, write_doc, wrk

UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "kB": 1000, "MB": 1000**2}


def memory_mib(container: str) -> float:
    """The container's memory use as ``docker stats`` reports it, in MiB."""
    line = run_quiet(["docker", "stats", "--no-stream", "--format", "{{json .}}", container]).stdout
    used = json.loads(line)["MemUsage"].split("/")[0].strip()
    number = used.rstrip("BKMGiak")
    return float(number) * UNITS[used[len(number) :]] / 1024**2


def process_id(container: str) -> int:
    return int(run_quiet(["docker", "inspect", "--format", "{{.State.Pid}}", container]).stdout)


def open_fds(pid: int) -> int:
    """File descriptors the container's process holds now (sockets, files, pipes)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10, help="load time (default 10)")
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench/soak.py needs wrk: scripts/setup_serve_tools.sh installs it")
    if args.minutes <= 0:
        raise SystemExit("--minutes must be more than 0")
    os.environ.setdefault("DOCKER_WORKFLOW_CACHE", tempfile.mkdtemp(prefix="bench-soak-"))
    port = free_port()
    container = start_image(port)
    try:
        wait_up(port)
        pid = process_id(container)
        wrk(port, args.connections, 5)  # warm-up: connections, caches, the first runs
        rows = [
            [
                "start",
                "",
                "",
                "",
                "",
                f"{memory_mib(container):.1f}",
                str(open_fds(pid)),
                str(threads(pid)),
            ]
        ]
        started, total_errors, total_requests = time.monotonic(), 0, 0
        seen: list[str] = []  # wrk's lines about the failures, by round
        left = args.minutes * 60
        while left > 0:
            seconds = min(60.0, left)
            found: list[str] = []
            slowest: list[float] = []
            rate, _p50, p99, errors = wrk(port, args.connections, seconds, found, slowest)
            seen += [f"round {len(rows)}: {line}" for line in found]
            left -= seconds
            total_errors += errors
            total_requests += round(rate * seconds)
            elapsed = (time.monotonic() - started) / 60
            rows.append(
                [
                    f"{elapsed:.1f} min",
                    f"{rate:,.0f}",
                    f"{p99:.1f} ms",
                    f"{slowest[0]:,.1f} ms",
                    str(errors),
                    f"{memory_mib(container):.1f}",
                    str(open_fds(pid)),
                    str(threads(pid)),
                ]
            )
        running = run_quiet(["docker", "inspect", "--format", "{{.State.Running}}", container])
        alive = running.stdout.strip() == "true"
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True)
    columns = ["at", "requests/s", "p99", "slowest", "errors", "memory MiB", "open fds", "threads"]
    title = (
        f"soak: POST /invoke, calculator, compiled image, wrk {args.connections} keep-alive"
        f" connections, {args.minutes:g} min, {os.cpu_count()} CPUs"
    )
    print_table(title, columns, rows)
    summary = (
        f"{total_requests:,} requests, {total_errors} errors,"
        f" the container {'still running' if alive else 'NOT running'} at the end"
    )
    print(summary)
    for line in seen:
        print(line)
    lines = [
        f"{title} (bench/soak.py, {time.strftime('%Y-%m-%d')}):",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
        summary + ".",
        *(f"- {line}" for line in seen),  # which kind of failure: reset, timeout, status
    ]
    write_doc(
        "\n".join(lines) + "\n", "<!-- bench/soak.py: begin -->", "<!-- bench/soak.py: end -->"
    )
    if total_errors or not alive:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
