"""A real Prometheus (Debian's package) for the /metrics tests: started on loopback to scrape
given targets, and asked through its query API."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def query(base: str, expression: str) -> float | None:
    reply = requests.get(base + "/api/v1/query", params={"query": expression}, timeout=5).json()
    result = reply["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def start_prometheus(
    folder: Path, targets: list[str], token: str | None = None
) -> tuple[subprocess.Popen, str]:
    """Debian's Prometheus scraping ``targets`` (host:port) every second, on loopback, with
    ``Authorization: Bearer token`` when the service wants one; returns it and its URL."""
    listed = ", ".join(f"'{target}'" for target in targets)
    auth = f"    authorization:\n      credentials: '{token}'\n" if token else ""
    (folder / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: workflow\n"
        f"{auth}"
        f"    static_configs:\n      - targets: [{listed}]\n"
    )
    port = free_port()
    prometheus = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return prometheus, f"http://127.0.0.1:{port}"


def wait_for_values(base: str, expected: dict[str, float], timeout: float = 60) -> dict:
    """What Prometheus's query API answers for each expression, once it is ``expected`` (or
    at the timeout)."""
    deadline = time.monotonic() + timeout
    seen: dict[str, float | None] = {}
    while time.monotonic() < deadline:
        try:
            seen = {name: query(base, name) for name in expected}
        except (requests.ConnectionError, KeyError):
            seen = {}
        if seen == expected:
            break
        time.sleep(1)
    return seen
