"""``docker-workflow serve`` through the real engine: the image as an HTTP service on a
published port, real clients (requests, curl), the real model streaming tokens, a webhook to a
receiver on loopback, a graceful ``docker stop`` during a run, and the production face: the
official ``openai`` client, a real Prometheus scraping /metrics, and ``--auth-token-env``."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import docker
import openai
import pytest
import requests
from helpers import WORKFLOWS, wait_until, write_json
from prometheus import query, start_prometheus, wait_for_values

SLEEPER = {
    "workflow_id": "serve-sleeper",
    "version": "1.0.0",
    "inputs": {"seconds": {"type": "number", "default": 0}, "word": {"type": "string"}},
    "outputs": {"echo": {"source_reference": "steps.s.output"}},
    "steps": [
        {
            "step_id": "s",
            "type": "python_tool",
            "input_mapping": {"seconds": "inputs.seconds", "word": "inputs.word"},
            "code": "import time\ntime.sleep(seconds)\nresult = (word or '').upper()",
        }
    ],
}


# One required string input: the OpenAI face takes a chat message's text as it.
SHOUTER = {
    "workflow_id": "serve-shouter",
    "version": "1.0.0",
    "inputs": {"word": {"type": "string", "required": True}},
    "outputs": {"loud": {"source_reference": "steps.s.output"}},
    "steps": [
        {
            "step_id": "s",
            "type": "python_tool",
            "input_mapping": {"word": "inputs.word"},
            "code": "result = word.upper() + '!'",
        }
    ],
}
TOKEN_ENV = "DW_TEST_SERVE_TOKEN"
TOKEN = "s3rve-t0ken-for-the-test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(dw, workflow, *args, env=None):
    port = free_port()
    proc = dw(
        "serve",
        str(workflow),
        "-p",
        str(port),
        "--detach",
        "--platform",
        "linux/amd64",
        *args,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    url, container_id = proc.stdout.strip().splitlines()[-2:]
    assert url == f"http://127.0.0.1:{port}"
    assert wait_until(lambda: _alive(url), timeout=30), _logs(container_id)
    return url, docker.from_env().containers.get(container_id)


def _alive(url):
    try:
        return requests.get(url + "/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def _logs(container_id):
    return docker.from_env().containers.get(container_id).logs().decode(errors="replace")


@pytest.fixture(scope="module")
def sleeper(dw, tmp_path_factory):
    workflow = write_json(tmp_path_factory.mktemp("serve") / "sleeper.json", SLEEPER)
    url, container = start(dw, workflow, "-j", "2")
    yield url, container
    container.remove(force=True)


@pytest.fixture(scope="module")
def shouter(dw, tmp_path_factory):
    """The one-string-input workflow served with ``--auth-token-env``: the token is in the
    CLI's environment only and reaches the container at run time (``-e NAME``)."""
    workflow = write_json(tmp_path_factory.mktemp("serve") / "shouter.json", SHOUTER)
    url, container = start(dw, workflow, "--auth-token-env", TOKEN_ENV, env={TOKEN_ENV: TOKEN})
    yield url, container
    container.remove(force=True)


def test_the_token_guards_every_route_but_healthz(shouter):
    url, container = shouter
    assert requests.get(url + "/healthz", timeout=10).status_code == 200
    bare = requests.post(url + "/invoke", json={"word": "hi"}, timeout=30)
    assert bare.status_code == 401 and bare.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = {"Authorization": "Bearer not-the-token"}
    assert requests.get(url + "/metrics", headers=wrong, timeout=10).status_code == 401
    right = {"Authorization": f"Bearer {TOKEN}"}
    reply = requests.post(url + "/invoke", json={"word": "hi"}, headers=right, timeout=30)
    assert reply.status_code == 200 and reply.json() == {"outputs": {"loud": "HI!"}}
    image = docker.from_env().images.get(container.attrs["Image"])
    assert TOKEN not in json.dumps(image.attrs)  # run time only, never in the image


def test_the_official_openai_client_plain_and_streaming(shouter):
    url, _ = shouter
    client = openai.OpenAI(base_url=url + "/v1", api_key=TOKEN, max_retries=0, timeout=60)
    assert [m.id for m in client.models.list().data] == ["serve-shouter"]
    messages = [{"role": "user", "content": "quiet"}]
    completion = client.chat.completions.create(model="serve-shouter", messages=messages)
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == "QUIET!"
    assert completion.choices[0].finish_reason == "stop"
    chunks = list(
        client.chat.completions.create(model="serve-shouter", messages=messages, stream=True)
    )
    assert chunks and all(c.object == "chat.completion.chunk" for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "QUIET!"
    assert chunks[-1].choices[0].finish_reason == "stop"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0).models.list()


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="needs Debian's prometheus")
def test_prometheus_scrapes_the_image_with_the_values_caused(shouter):
    """Runs the last of the shouter's tests: it counts what the tests before it caused too."""
    url, _ = shouter
    right = {"Authorization": f"Bearer {TOKEN}"}
    for word in ("a", "b", "c"):
        reply = requests.post(url + "/invoke", json={"word": word}, headers=right, timeout=30)
        assert reply.status_code == 200
    bad = requests.post(url + "/invoke", json={"nope": 1}, headers=right, timeout=30)
    assert bad.status_code == 400
    folder = Path(tempfile.mkdtemp(prefix="dw-prometheus-"))
    prometheus, base = start_prometheus(folder, [url.removeprefix("http://")], token=TOKEN)
    try:
        before = {  # what the earlier tests on this container caused, read from /metrics
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in requests.get(url + "/metrics", headers=right, timeout=10).text.splitlines()
            if line and not line.startswith("#")
        }
        invoked = before['workflow_http_requests_total{route="/invoke",status="200"}']
        assert invoked >= 3
        expected = {
            'workflow_http_requests_total{route="/invoke",status="200"}': invoked,
            'workflow_http_requests_total{route="/invoke",status="400"}': 1,
            'workflow_runs_total{outcome="bad_input"}': 1,
            'workflow_step_duration_seconds_count{step="s",outcome="ok"}': before[
                'workflow_step_duration_seconds_count{outcome="ok",step="s"}'
            ],
        }
        assert wait_for_values(base, expected) == expected
        assert query(base, 'up{job="workflow"}') == 1
        assert query(base, 'workflow_http_requests_total{route="/v1/chat/completions"}') >= 1
    finally:
        prometheus.terminate()
        prometheus.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


def test_the_container_serves_on_a_published_port(sleeper):
    url, container = sleeper
    reply = requests.post(url + "/invoke", json={"word": "hi"}, timeout=30)
    assert reply.status_code == 200 and reply.json() == {"outputs": {"echo": "HI"}}
    curl = subprocess.run(
        [
            "curl",
            "-s",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            '{"word": "curl"}',
            url + "/invoke",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert json.loads(curl.stdout) == {"outputs": {"echo": "CURL"}}
    attrs = container.attrs["HostConfig"]
    assert container.attrs["Config"]["User"] == "65532:65532"
    assert attrs["ReadonlyRootfs"] is True and attrs["CapDrop"] == ["ALL"]
    assert attrs["PortBindings"]["8080/tcp"][0]["HostIp"] == "127.0.0.1"


def test_bad_requests_over_the_network(sleeper):
    url, _ = sleeper
    cases = [
        (
            requests.post(
                url + "/invoke",
                data=b"{nope",
                timeout=10,
                headers={"Content-Type": "application/json"},
            ),
            400,
        ),
        (
            requests.post(
                url + "/invoke",
                data=b"x" * (9 * 1024 * 1024),
                timeout=30,
                headers={"Content-Type": "application/json"},
            ),
            413,
        ),
        (
            requests.post(
                url + "/invoke", data=b"{}", timeout=10, headers={"Content-Type": "text/plain"}
            ),
            415,
        ),
        (requests.get(url + "/missing", timeout=10), 404),
        (requests.put(url + "/invoke", timeout=10), 405),
        (requests.post(url + "/invoke", json={"unknown": 1}, timeout=10), 400),
    ]
    for reply, status in cases:
        assert reply.status_code == status, reply.text
        assert "error" in reply.json() and "Traceback" not in reply.text


def test_concurrent_requests_and_the_bound(sleeper):
    url, _ = sleeper
    with requests.Session() as session:

        def call(i):
            return session.post(url + "/invoke", json={"seconds": 0.5, "word": f"w{i}"}, timeout=60)

        results = []
        threads = [threading.Thread(target=lambda i=i: results.append(call(i))) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    codes = sorted(r.status_code for r in results)
    assert set(codes) <= {200, 429} and codes.count(200) >= 2
    assert all(r.json()["outputs"]["echo"].startswith("W") for r in results if r.status_code == 200)


def test_docker_stop_lets_a_running_request_finish(dw, tmp_path):
    workflow = write_json(tmp_path / "sleeper.json", SLEEPER)
    url, container = start(dw, workflow)
    outcome = {}

    def slow():
        outcome["reply"] = requests.post(
            url + "/invoke", json={"seconds": 3, "word": "late"}, timeout=60
        )

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(1)
    container.stop(timeout=30)  # SIGTERM, then the grace period
    thread.join(timeout=30)
    assert outcome["reply"].status_code == 200
    assert outcome["reply"].json() == {"outputs": {"echo": "LATE"}}
    container.reload()
    assert container.attrs["State"]["ExitCode"] == 0
    logs = container.logs().decode()
    assert '"stopped": true' in logs and '"path": "/invoke", "status": 200' in logs
    container.remove(force=True)


def test_the_real_model_streams_tokens(dw, llm_server):
    port = free_port()
    proc = dw(
        "serve",
        str(WORKFLOWS / "simple_summarizer.json"),
        "-p",
        str(port),
        "--detach",
        "--platform",
        "linux/amd64",
        "--network",
        "host",
        "--bind",
        "127.0.0.1",
        "--endpoint",
        f"http://host.docker.internal:{llm_server.port}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    url, container_id = proc.stdout.strip().splitlines()[-2:]
    container = docker.from_env().containers.get(container_id)
    try:
        assert wait_until(lambda: _alive(url), timeout=30), _logs(container_id)
        assert requests.get(url + "/readyz", timeout=10).json()["ready"] is True
        reply = requests.post(
            url + "/stream",
            json={"text": "The sun is a star. It is hot.", "max_length": 10},
            headers={"Accept": "application/x-ndjson"},
            stream=True,
            timeout=120,
        )
        events = [json.loads(line) for line in reply.iter_lines() if line]
        kinds = [e["event"] for e in events]
        assert kinds[0] == "step_started" and kinds[-1] == "result"
        tokens = [e["text"] for e in events if e["event"] == "token"]
        assert len(tokens) >= 2
        assert "".join(tokens).strip() == events[-1]["outputs"]["summary"]
    finally:
        container.remove(force=True)


def test_a_webhook_reaches_a_receiver_on_loopback(dw, tmp_path):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received = []
    attempts = []

    class Receiver(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            attempts.append(1)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            status = 503 if len(attempts) == 1 else 200
            if status == 200:
                received.append(body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    workflow = write_json(tmp_path / "sleeper.json", SLEEPER)
    port = free_port()
    proc = dw(
        "serve",
        str(workflow),
        "-p",
        str(port),
        "--detach",
        "--platform",
        "linux/amd64",
        "--network",
        "host",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    url, container_id = proc.stdout.strip().splitlines()[-2:]
    container = docker.from_env().containers.get(container_id)
    try:
        assert wait_until(lambda: _alive(url), timeout=30)
        callback = f"http://127.0.0.1:{server.server_address[1]}/done"
        reply = requests.post(
            url + "/hooks/run",
            timeout=10,
            json={"inputs": {"word": "hooked"}, "callback_url": callback},
        )
        assert reply.status_code == 202
        run_id = reply.json()["run_id"]
        assert wait_until(lambda: received, timeout=30)
        assert received == [
            {"run_id": run_id, "status": "succeeded", "outputs": {"echo": "HOOKED"}}
        ]

        # The receiver has the callback before the service has read its answer: wait for that.
        def delivered() -> dict | None:
            state = requests.get(url + f"/runs/{run_id}", timeout=10).json()
            return state if state["callback"]["delivered"] else None

        assert wait_until(delivered, timeout=30)
        state = requests.get(url + f"/runs/{run_id}", timeout=10).json()
        assert state["callback"]["delivered"] is True and state["callback"]["attempts"] == 2
    finally:
        container.remove(force=True)
        server.shutdown()
