"""``GET /metrics`` scraped by a real Prometheus (Debian's package) on loopback.

The services are the local runner (``python -m runner_template --serve``): the calculator, and
a one-step LLM workflow on the real dev LLM server (tokens in and out); the test causes known
requests, lets Prometheus scrape both, and asks Prometheus's query API for the values.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
import requests
from prometheus import query, start_prometheus, wait_for_values
from serving import CALC, ServeProcess, llm_bundle, post

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None,
    reason="needs Debian's prometheus (scripts/setup_serve_tools.sh)",
)


def llm_tokens_bundle() -> dict:
    """The one-step LLM workflow, greedy (the same tokens for the same prompt, every time)."""
    bundle = llm_bundle()
    bundle["tools"]["llm"].update(
        model="llama3", timeout=120, options={"temperature": 0, "top_k": 1, "seed": 7}
    )
    bundle["tools"]["llm"]["options"]["num_predict"] = 5
    return bundle


def test_prometheus_scrapes_the_series_with_the_values_caused(llm_server):
    served = ServeProcess(CALC, "-j", "2")
    asker = ServeProcess(llm_tokens_bundle(), env={"OLLAMA_ENDPOINT": llm_server.url})
    folder = Path(tempfile.mkdtemp(prefix="dw-prometheus-"))
    targets = [served.url.removeprefix("http://"), asker.url.removeprefix("http://")]
    prometheus, base = start_prometheus(folder, targets)
    try:
        for _ in range(3):
            assert post(served.url + "/invoke", {"a": 1}).status_code == 200
        assert post(served.url + "/invoke", {"a": 1, "op": "fail"}).status_code == 500
        assert post(served.url + "/invoke", {"zzz": 1}).status_code == 400
        for _ in range(2):
            assert post(asker.url + "/invoke", {"q": "Name a color."}).status_code == 200
        # What the LLM server counts for the same greedy call, asked directly.
        direct = requests.post(
            llm_server.url + "/api/generate",
            json={
                "model": "llama3",
                "prompt": "Name a color.",
                "stream": False,
                "options": llm_tokens_bundle()["tools"]["llm"]["options"],
            },
            timeout=120,
        ).json()
        assert direct["prompt_eval_count"] > 0 and 0 < direct["eval_count"] <= 5
        calc = f'instance="{targets[0]}"'
        expected = {
            f'workflow_http_requests_total{{route="/invoke",status="200",{calc}}}': 3,
            f'workflow_http_requests_total{{route="/invoke",status="500",{calc}}}': 1,
            f'workflow_http_requests_total{{route="/invoke",status="400",{calc}}}': 1,
            f'workflow_runs_total{{outcome="succeeded",{calc}}}': 3,
            'workflow_runs_total{outcome="tool_failed"}': 1,
            'workflow_step_duration_seconds_count{step="c",outcome="ok"}': 3,
            f'workflow_http_request_duration_seconds_count{{route="/invoke",{calc}}}': 5,
            f'workflow_queue_wait_seconds_count{{job="workflow",{calc}}}': 5,
            'workflow_runs_total{outcome="bad_input"}': 1,
            'workflow_llm_calls_total{model="llama3",outcome="ok"}': 2,
            'workflow_llm_tokens_total{model="llama3",direction="in"}': (
                2 * direct["prompt_eval_count"]
            ),
            'workflow_llm_tokens_total{model="llama3",direction="out"}': 2 * direct["eval_count"],
        }
        assert wait_for_values(base, expected) == expected
        assert query(base, 'count(up{job="workflow"} == 1)') == 2
    finally:
        prometheus.terminate()
        prometheus.wait(timeout=30)
        served.stop()
        asker.stop()
        shutil.rmtree(folder, ignore_errors=True)
