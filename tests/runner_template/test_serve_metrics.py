"""``GET /metrics`` scraped by a real Prometheus (Debian's package) on loopback.

The service is the local runner (``python -m runner_template --serve``); the test causes known
requests, lets Prometheus scrape, and asks Prometheus's query API for the values.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests
from serving import CALC, ServeProcess, post

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None,
    reason="needs Debian's prometheus (scripts/setup_serve_tools.sh)",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def query(base: str, expression: str) -> float | None:
    reply = requests.get(base + "/api/v1/query", params={"query": expression}, timeout=5).json()
    result = reply["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def test_prometheus_scrapes_the_series_with_the_values_caused():
    served = ServeProcess(CALC, "-j", "2")
    folder = Path(tempfile.mkdtemp(prefix="dw-prometheus-"))
    target = served.url.removeprefix("http://")
    (folder / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: workflow\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
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
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(3):
            assert post(served.url + "/invoke", {"a": 1}).status_code == 200
        assert post(served.url + "/invoke", {"a": 1, "op": "fail"}).status_code == 500
        assert post(served.url + "/invoke", {"zzz": 1}).status_code == 400
        expected = {
            'workflow_http_requests_total{route="/invoke",status="200"}': 3,
            'workflow_http_requests_total{route="/invoke",status="500"}': 1,
            'workflow_http_requests_total{route="/invoke",status="400"}': 1,
            'workflow_runs_total{outcome="succeeded"}': 3,
            'workflow_runs_total{outcome="tool_failed"}': 1,
            'workflow_step_duration_seconds_count{step="c",outcome="ok"}': 3,
            'workflow_http_request_duration_seconds_count{route="/invoke"}': 5,
            'workflow_queue_wait_seconds_count{job="workflow"}': 5,
            'workflow_runs_total{outcome="bad_input"}': 1,
        }
        deadline = time.monotonic() + 60
        seen: dict[str, float | None] = {}
        while time.monotonic() < deadline:
            try:
                seen = {name: query(base, name) for name in expected}
            except (requests.ConnectionError, KeyError):
                seen = {}
            if seen == expected:
                break
            time.sleep(1)
        assert seen == expected
        up = query(base, 'up{job="workflow"}')
        assert up == 1
    finally:
        prometheus.terminate()
        prometheus.wait(timeout=30)
        served.stop()
        shutil.rmtree(folder, ignore_errors=True)
