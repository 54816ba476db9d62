"""The image program's serve mode, as a real process on loopback, with real HTTP clients."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import schemathesis
from fakes import FakeOllama, closed_port_url, ok
from schemathesis.generation import GenerationMode
from serving import CALC, Receiver, ServeProcess, llm_bundle, post


@pytest.fixture(scope="module")
def service():
    served = ServeProcess(CALC, "-j", "2", "--queue-wait", "0.2", "--max-body", "100000")
    yield served
    served.stop()


def test_invoke_returns_the_outputs(service):
    reply = post(service.url + "/invoke", {"a": 2, "b": 3})
    assert reply.status_code == 200 and reply.json() == {"outputs": {"value": 5}}


@pytest.mark.parametrize(
    ("body", "headers", "status", "kind"),
    [
        (b"{not json", {}, 400, "bad_input"),
        (b'{"a": "x"}', {}, 400, "bad_input"),
        (b'{"zzz": 1, "a": 1}', {}, 400, "bad_input"),
        (b"[" * 5000, {}, 400, "bad_input"),
        (b'{"a": NaN}', {}, 400, "bad_input"),
        (b'{"a": 1}', {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
        (b"x" * 200_000, {}, 413, "too_large"),
        (b'{"a": 1, "op": "fail"}', {}, 500, "tool_failed"),
    ],
)
def test_bad_requests_get_a_status_and_the_error_object(service, body, headers, status, kind):
    reply = post(service.url + "/invoke", body, **headers)
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert error["type"] == kind and "Traceback" not in reply.text


def test_unknown_paths_methods_and_chunked_bodies(service):
    assert requests.get(service.url + "/nope", timeout=5).status_code == 404
    reply = requests.get(service.url + "/invoke", timeout=5)
    assert reply.status_code == 405 and reply.headers["Allow"] == "POST"
    chunked = requests.post(
        service.url + "/invoke",
        data=iter([b'{"a": 1}']),
        timeout=5,
        headers={"Content-Type": "application/json"},
    )
    assert chunked.status_code == 411


def test_health_schema_and_openapi(service):
    assert requests.get(service.url + "/healthz", timeout=5).json() == {"status": "ok"}
    assert requests.get(service.url + "/readyz", timeout=5).json() == {"ready": True, "llm": []}
    schema = requests.get(service.url + "/schema", timeout=5).json()
    assert (
        schema["inputs"]["required"] == ["a"] and schema["inputs"]["additionalProperties"] is False
    )
    document = requests.get(service.url + "/openapi.json", timeout=5).json()
    assert document["openapi"].startswith("3.0") and "/invoke" in document["paths"]


def test_a_bound_on_concurrent_runs_answers_429(service):
    def slow():
        return post(service.url + "/invoke", {"a": 1, "b": 1.5, "op": "sleep"})

    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda _: slow(), range(4)))
    codes = sorted(r.status_code for r in replies)
    assert codes.count(200) == 2 and codes.count(429) == 2
    busy = next(r for r in replies if r.status_code == 429)
    assert busy.headers["Retry-After"] and busy.json()["error"]["type"] == "too_many_requests"


@pytest.mark.parametrize("accept", ["text/event-stream", "application/x-ndjson"])
def test_stream_sends_events_then_the_result(service, accept):
    reply = requests.post(
        service.url + "/stream",
        data=json.dumps({"a": 1}),
        stream=True,
        headers={"Content-Type": "application/json", "Accept": accept},
        timeout=30,
    )
    assert reply.status_code == 200 and reply.headers["Content-Type"] == accept
    text = reply.text
    if accept == "application/x-ndjson":
        events = [json.loads(line) for line in text.splitlines()]
    else:
        events = [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]
        assert "event: step_started" in text
    assert [e["event"] for e in events] == ["step_started", "step_finished", "result"]
    assert events[-1]["outputs"] == {"value": 2} and events[1]["seconds"] >= 0


def test_every_request_is_one_json_log_line():
    served = ServeProcess(CALC)
    post(served.url + "/invoke", {"a": 1})
    requests.get(served.url + "/nope", timeout=5)
    served.stop()
    lines = [entry for entry in served.log if "method" in entry]
    assert [(e["method"], e["path"], e["status"]) for e in lines] == [
        ("POST", "/invoke", 200),
        ("GET", "/nope", 404),
    ]
    assert all(isinstance(e["ms"], float) for e in lines)


@pytest.mark.parametrize(
    ("step_timeout", "args", "message"),
    [(0.5, (), "within 0.5 s"), (None, ("--request-timeout", "0.5"), "within its deadline")],
)
def test_a_python_step_that_overruns_is_answered_on_time(step_timeout, args, message):
    # The step runs on the connection's own thread; the engine's watchdog answers for it.
    bundle = json.loads(json.dumps(CALC))
    if step_timeout:
        bundle["workflow"]["steps"][0]["timeout"] = step_timeout
    served = ServeProcess(bundle, *args)
    try:
        started = time.monotonic()
        reply = post(served.url + "/invoke", {"a": 1, "b": 3, "op": "sleep"})
        assert time.monotonic() - started < 2.5
        assert reply.status_code == 504, reply.text
        assert reply.json()["error"]["type"] == "step_timeout"
        assert message in reply.json()["error"]["message"]
        assert reply.headers["Connection"] == "close"
        assert post(served.url + "/invoke", {"a": 2, "b": 3}).json() == {"outputs": {"value": 5}}
        # The overrun request stays in flight until its step really ends (the watchdog answered
        # for it): then only the scrape itself is.
        deadline = time.monotonic() + 10
        while True:
            metrics = requests.get(served.url + "/metrics", timeout=5).text
            if "workflow_http_requests_in_flight 1" in metrics or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert 'workflow_http_requests_total{route="/invoke",status="504"} 1' in metrics
        assert "workflow_http_requests_in_flight 1" in metrics
    finally:
        served.stop()
    statuses = [e["status"] for e in served.log if e.get("path") == "/invoke"]
    assert statuses == [504, 200]


def test_an_invoke_run_in_place_holds_a_turn_until_answered():
    # In-process, to look at the service's turns while a request is inside its step.
    from runner_template.serve.server import _Server
    from runner_template.serve.service import Service
    from runner_template.serve.settings import Settings

    bundle = json.loads(json.dumps(CALC))
    bundle["workflow"]["steps"][0]["timeout"] = 0.4
    service = Service(bundle, Settings())
    assert service.engine.in_place_only
    server = _Server(("127.0.0.1", 0), service)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/invoke"
    try:
        assert post(url, {"a": 2, "b": 3}).json() == {"outputs": {"value": 5}}
        deadline = time.monotonic() + 5
        while not service.turns.acquire(0):  # handed back just after the reply is written
            assert time.monotonic() < deadline, "the turn was never handed back"
            time.sleep(0.01)
        service.turns.release()
        with ThreadPoolExecutor(1) as pool:
            started = time.monotonic()
            slow = pool.submit(post, url, {"a": 1, "b": 1.5, "op": "sleep"})
            time.sleep(0.2)
            assert not service.turns.acquire(0)  # the step runs in its turn
            assert slow.result().status_code == 504
            # Answered by the watchdog while the step still sleeps: its turn is handed on.
            assert time.monotonic() - started < 1.2 and service.turns.acquire(0)
            service.turns.release()
    finally:
        server.shutdown()
        server.server_close()


def test_llm_failures_map_to_gateway_statuses():
    served = ServeProcess(llm_bundle(), env={"OLLAMA_ENDPOINT": closed_port_url()})
    try:
        reply = post(served.url + "/invoke", {"q": "hi"})
        assert reply.status_code == 503 and reply.json()["error"]["type"] == "llm_unreachable"
        ready = requests.get(served.url + "/readyz", timeout=10)
        assert ready.status_code == 503 and ready.json()["ready"] is False
    finally:
        served.stop()
    fake = FakeOllama(lambda n, body: ok("late", delay=3))
    served = ServeProcess(llm_bundle(), "--request-timeout", "1", env={"OLLAMA_ENDPOINT": fake.url})
    try:
        reply = post(served.url + "/invoke", {"q": "hi"})
        assert reply.status_code == 504 and reply.json()["error"]["type"] == "step_timeout"
    finally:
        served.stop()
        fake.close()


def test_readiness_needs_the_models():
    class Tags(BaseHTTPRequestHandler):
        models = ["other:latest"]

        def log_message(self, *args):
            pass

        def do_GET(self):
            body = json.dumps({"models": [{"name": n} for n in Tags.models]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Tags)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    served = ServeProcess(llm_bundle(), env={"OLLAMA_ENDPOINT": url})
    try:
        reply = requests.get(served.url + "/readyz", timeout=10)
        assert reply.status_code == 503 and "missing models: m" in reply.text
        Tags.models = ["m:latest"]
        time.sleep(5.1)  # readiness is cached for 5 s
        assert requests.get(served.url + "/readyz", timeout=10).status_code == 200
    finally:
        served.stop()
        server.shutdown()


def test_webhook_delivers_and_retries_when_the_receiver_fails_at_first(service):
    receiver = Receiver(failures=2)
    try:
        reply = post(
            service.url + "/hooks/run", {"inputs": {"a": 40, "b": 2}, "callback_url": receiver.url}
        )
        assert reply.status_code == 202
        run_id = reply.json()["run_id"]
        for _ in range(100):
            state = requests.get(service.url + f"/runs/{run_id}", timeout=5).json()
            if state["callback"]["delivered"]:
                break
            time.sleep(0.1)
        assert state["status"] == "succeeded" and state["outputs"] == {"value": 42}
        assert state["callback"]["attempts"] == 3 and receiver.attempts == 3
        assert receiver.bodies == [
            {"run_id": run_id, "status": "succeeded", "outputs": {"value": 42}}
        ]
    finally:
        receiver.server.shutdown()
    assert requests.get(service.url + "/runs/unknown", timeout=5).status_code == 404
    bad = post(service.url + "/hooks/run", {"inputs": {}, "callback_url": "file:///etc/passwd"})
    assert bad.status_code == 400


def test_sigterm_lets_running_requests_finish_and_refuses_new_ones():
    served = ServeProcess(CALC, "--grace", "10")
    results = {}

    def slow():
        results["slow"] = post(served.url + "/invoke", {"a": 1, "b": 2, "op": "sleep"})

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.5)
    served.process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    with pytest.raises(requests.ConnectionError):
        requests.get(served.url + "/healthz", timeout=2)
    thread.join(timeout=10)
    assert results["slow"].status_code == 200 and results["slow"].json()["outputs"]["value"] == 3
    assert served.stop() == 0
    assert served.log[-1] == {"stopped": True, "unfinished_requests": 0}


def test_slow_and_idle_clients_do_not_hold_the_service(service):
    idle = socket.create_connection(("127.0.0.1", int(service.url.rsplit(":", 1)[1])))
    idle.sendall(b"POST /invoke HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    try:
        assert post(service.url + "/invoke", {"a": 1}).status_code == 200
    finally:
        idle.close()


# -- property-based: no 5xx from any request the schema allows, or from malformed ones --------


@pytest.fixture(scope="module")
def api_schema(service):
    loaded = schemathesis.openapi.from_url(service.url + "/openapi.json")
    # Valid requests and invalid ones (wrong types, missing fields, extra keys, bad JSON).
    loaded.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=60
    )
    return loaded


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
def test_no_server_errors_from_generated_requests(case):
    from schemathesis.checks import not_a_server_error

    if case.path == "/hooks/run":
        case.body = {
            "inputs": case.body.get("inputs", {}) if isinstance(case.body, dict) else {},
            "callback_url": closed_port_url(),
        }
    items = case.body if isinstance(case.body, list) else [case.body]
    if case.path == "/hooks/run":
        items = [case.body["inputs"]]
    for item in items:
        if isinstance(item, dict) and item.get("op") == "sleep":
            item["b"] = 0.01  # the calculator's test operation would sleep b seconds
    response = case.call()
    if case.path in ("/invoke", "/stream", "/batch") and response.status_code == 500:
        # The calculator's own 'fail' operation is a tool failure by design.
        assert response.json()["error"]["type"] == "tool_failed"
        return
    case.validate_response(response, checks=[not_a_server_error])


def test_raw_http_garbage_never_gets_a_traceback(service):
    host, port = "127.0.0.1", int(service.url.rsplit(":", 1)[1])
    for garbage in (
        b"\x00\x01\x02\r\n\r\n",
        b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",
        b"POST /invoke HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
    ):
        with socket.create_connection((host, port), timeout=5) as conn:
            conn.sendall(garbage)
            data = conn.recv(65536)
        assert b"Traceback" not in data
    conn = http.client.HTTPConnection(host, port, timeout=5)
    conn.request("POST", "/invoke", body=b'{"a": 1}', headers={"Content-Type": "application/json"})
    assert conn.getresponse().status == 200
