"""Serve mode under load: requests/s, p50/p99 latency of ``POST /invoke``, container memory.

The same Python-only workflow (the calculator) is served by two images built in this run:
the compiled one (Nuitka) and the ``none`` compiler's (plain CPython and the standard
library). A bounded load loop on loopback (``--clients`` threads with keep-alive connections,
for ``--seconds``) drives each; the container's memory is read from ``docker stats`` while the
load runs. Run: ``.venv/bin/python bench/serve.py [--clients 8] [--seconds 15]``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from common import ROOT, print_table, run_quiet

WORKFLOW = ROOT / "workflows" / "calculator.json"
CLI = [sys.executable, str(ROOT / "docker_workflow.py")]
BODY = json.dumps({"a": 6, "b": 7, "operation": "multiply"}).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(compiler: str) -> tuple[str, str]:
    port = free_port()
    tag = f"bench-serve-{compiler}:latest"
    result = subprocess.run(
        [
            *CLI,
            "serve",
            str(WORKFLOW),
            "-p",
            str(port),
            "--detach",
            "-j",
            "16",
            "--platform",
            "linux/amd64",
            "--compiler",
            compiler,
            "-t",
            tag,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=os.environ,
    )
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    _, container = result.stdout.strip().splitlines()[-2:]
    for _ in range(100):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return container, str(port)
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"the {compiler} service did not come up")


def load(port: int, clients: int, seconds: float) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        while time.monotonic() < stop:
            started = time.perf_counter()
            conn.request("POST", "/invoke", body=BODY, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                errors[0] += 1
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors[0]


def memory_mb(container: str) -> float:
    text = run_quiet(["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", container])
    used = text.stdout.split("/")[0].strip()
    number = float("".join(c for c in used if c.isdigit() or c == "."))
    return number / 1024 if used.endswith("KiB") else number * (1024 if "GiB" in used else 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=15)
    args = parser.parse_args()
    os.environ.setdefault("DOCKER_WORKFLOW_CACHE", tempfile.mkdtemp(prefix="bench-serve-"))
    rows = []
    for compiler in ("nuitka", "none"):
        container, port = start(compiler)
        try:
            load(int(port), args.clients, 2)  # warm up
            sampled: list[float] = []

            def sample(c=container, into=sampled) -> None:
                time.sleep(args.seconds / 2)
                into.append(memory_mb(c))

            sampler = threading.Thread(target=sample)
            sampler.start()
            latencies, errors = load(int(port), args.clients, args.seconds)
            sampler.join()
        finally:
            run_quiet(["docker", "rm", "-f", container])
        latencies.sort()
        p99 = latencies[int(len(latencies) * 0.99) - 1]
        rows.append(
            [
                compiler,
                f"{len(latencies) / args.seconds:.0f}",
                f"{statistics.median(latencies) * 1000:.1f}",
                f"{p99 * 1000:.1f}",
                f"{sampled[0]:.1f}",
                str(errors),
            ]
        )
    base = float(rows[1][1])
    for row in rows:
        row.append(f"{float(row[1]) / base:.2f}x")
    print_table(
        f"POST /invoke, {args.clients} clients, {args.seconds:.0f} s",
        ["compiler", "requests/s", "p50 ms", "p99 ms", "memory MB", "errors", "vs CPython"],
        rows,
    )


if __name__ == "__main__":
    main()
