"""The page in ``service`` mode at a service's own ``GET /playground/``, sending runs to its
``/stream``: ``docker-workflow serve --local --playground`` (the machine's Python), and the
calculator's image served by a real container (``serve --playground``)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
from urllib.parse import quote

import docker
import pytest
import requests
from helpers import CLI, ROOT, run_cli, wait_until

from rules.stages.pipeline import analyze_file
from rules.stages.shake import shake
from runner_template.engine import Engine
from runner_template.web import content_type, page_files

CALCULATOR = ROOT / "workflows" / "calculator.json"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _alive(url: str) -> bool:
    try:
        return requests.get(url + "/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture(scope="module")
def calculator():
    tree, _, tools = analyze_file(CALCULATOR)
    return shake(tree, tools)


@pytest.fixture(scope="module")
def playground():
    """``docker-workflow serve --local calculator.json --playground``: its URL."""
    port = _free_port()
    service = subprocess.Popen(
        [*CLI, "serve", "--local", str(CALCULATOR), "-p", str(port), "--playground"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=dict(os.environ),
    )
    try:
        url = service.stdout.readline().strip()
        assert url == f"http://127.0.0.1:{port}", service.stderr.read()[-3000:]
        threading.Thread(target=service.stderr.read, daemon=True).start()  # the request log
        assert wait_until(lambda: _alive(url), timeout=60)
        yield url
    finally:
        service.terminate()
        service.wait(timeout=30)


def run_calculator(page, url: str, calculator, screenshot: str | None = None) -> None:
    inputs = {"operation": "multiply", "a": 6, "b": 7}
    page.open(f"{url}/playground#inputs={quote(json.dumps(inputs))}&run")
    assert page.wait_for_end(60) == "done", page.text("error")
    assert json.loads(page.text("outputs")) == Engine(calculator).run(inputs)
    steps = page.all("#events li")
    assert [s.get_attribute("id") for s in steps] == ["step-calculate", "step-explain"]
    hidden = [page.element("endpoint"), *page.all("label[for=endpoint], label[for=provider]")]
    assert not any(e.is_displayed() for e in hidden)  # the service has its own LLM settings
    if screenshot:
        page.screenshot(screenshot)


def test_the_playground_runs_the_calculator_through_the_service(page, playground, calculator):
    run_calculator(page, playground, calculator, "web-playground.png")


def test_the_services_input_errors_show_at_their_field(page, playground):
    page.open(f"{playground}/playground/#inputs={quote(json.dumps({'a': 'six', 'b': 7}))}&run")
    assert page.wait_for_end(60) == "failed"
    message = "input 'a' must be of type number, got 'six'"
    assert page.text("error-a") == message
    assert page.text("error") == f"bad_input: {message}"


@pytest.fixture(scope="module")
def container_playground(builder_image, shared_cache):
    """The calculator's image (built by the CLI) served by a container with ``--playground``."""
    cache = str(shared_cache)
    port = _free_port()
    proc = run_cli(
        *("serve", str(CALCULATOR), "-p", str(port), "--detach", "--playground"),
        *("--platform", "linux/amd64"),
        env={"DOCKER_WORKFLOW_CACHE": cache, "DOCKER_WORKFLOW_BUILDER_IMAGE": builder_image},
        timeout=3000,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    url, container_id = proc.stdout.strip().splitlines()[-2:]
    container = docker.from_env().containers.get(container_id)
    try:
        assert wait_until(lambda: _alive(url), timeout=30), container.logs().decode()[-3000:]
        yield url
    finally:
        container.remove(force=True)


def test_a_container_serves_the_playground_and_runs_it(page, container_playground, calculator):
    url = container_playground
    moved = requests.get(url + "/playground", allow_redirects=False, timeout=10)
    assert moved.status_code == 301 and moved.headers["Location"] == "playground/"
    for name, body in page_files().items():  # the compiled program's bytes are the page's
        reply = requests.get(f"{url}/playground/{name}", timeout=10)
        assert reply.status_code == 200, name
        assert reply.headers["Content-Type"] == content_type(name)
        assert reply.content == body, name
    assert requests.get(url + "/playground/host.py", timeout=10).status_code == 404
    run_calculator(page, url, calculator)
