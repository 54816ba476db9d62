"""The service's production routes, through the real program: batch, run ids, cancel, auth,
the OpenAI face (with the official ``openai`` client) and readiness of odd LLM servers."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest
import requests
from fakes import FakeOllama
from serving import CALC, Receiver, ServeProcess, llm_bundle, post

from runner_template.serve.runs import RunStore


@pytest.fixture(scope="module")
def service():
    served = ServeProcess(CALC, "-j", "2", "--queue-wait", "5")
    yield served
    served.stop()


def wait_for(predicate, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_batch_returns_results_in_order_with_one_error_per_failed_item(service):
    items = [{"a": 1}, {"a": 2, "op": "fail"}, {"zzz": 1}, {"a": 4, "b": 5}]
    reply = post(service.url + "/batch", items)
    assert reply.status_code == 200
    body = reply.json()
    assert body["succeeded"] == 2 and body["failed"] == 2
    results = body["results"]
    assert results[0] == {"outputs": {"value": 2}}
    assert results[1]["error"]["type"] == "tool_failed"
    assert results[2]["error"]["type"] == "bad_input"
    assert results[3] == {"outputs": {"value": 9}}
    for bad in ([], {"a": 1}, [{"a": 1}] * 1001):
        assert post(service.url + "/batch", bad).status_code == 400


def test_a_client_chosen_run_id_runs_once(service):
    receiver = Receiver(failures=0)
    body = {"inputs": {"a": 1, "b": 0.5, "op": "sleep"}, "callback_url": receiver.url}
    first = post(service.url + "/hooks/run", {**body, "run_id": "order-17"})
    second = post(service.url + "/hooks/run", {**body, "run_id": "order-17"})
    assert first.status_code == 202 and first.json()["created"] is True
    assert second.status_code == 200 and second.json() == {
        "run_id": "order-17",
        "status_url": "/runs/order-17",
        "created": False,
    }
    wait_for(lambda: receiver.bodies)
    time.sleep(1)
    assert len(receiver.bodies) == 1 and receiver.bodies[0]["outputs"] == {"value": 1.5}
    bad = post(service.url + "/hooks/run", {**body, "run_id": "../etc"})
    assert bad.status_code == 400
    receiver.server.shutdown()


def test_cancel_stops_a_run_and_the_callback_says_canceled(service):
    receiver = Receiver(failures=0)
    body = {"inputs": {"a": 1, "b": 20, "op": "sleep"}, "callback_url": receiver.url}
    started = post(service.url + "/hooks/run", {**body, "run_id": "long-one"})
    assert started.status_code == 202
    time.sleep(0.3)
    canceled = requests.post(service.url + "/runs/long-one/cancel", timeout=10)
    assert canceled.status_code == 202 and canceled.json()["status"] == "canceling"
    delivered = wait_for(lambda: receiver.bodies, timeout=5)
    assert delivered[0]["status"] == "canceled"
    assert delivered[0]["error"]["type"] == "canceled"
    state = requests.get(service.url + "/runs/long-one", timeout=10).json()
    assert state["status"] == "canceled"
    again = requests.post(service.url + "/runs/long-one/cancel", timeout=10)
    assert again.status_code == 409
    assert requests.post(service.url + "/runs/nope/cancel", timeout=10).status_code == 404
    # The slot came back: runs go on.
    assert post(service.url + "/invoke", {"a": 1}).status_code == 200
    receiver.server.shutdown()


def test_finished_runs_are_kept_for_a_bounded_count_and_time():
    store = RunStore(kept_runs=2, kept_seconds=0.3)
    ids = [store.add("http://x/")[0] for _ in range(4)]
    running = ids[3]
    for run_id in ids[:3]:
        store.finish(run_id, status="succeeded")
    store.add("http://x/")
    assert store.get(ids[0]) is None  # the oldest finished one went past the count
    assert store.get(ids[2]) is not None
    time.sleep(0.35)
    assert store.get(ids[2]) is None  # past its time
    assert store.get(running)["status"] == "running"  # running runs are never dropped


def test_auth_token_guards_every_route_but_healthz():
    served = ServeProcess(CALC, "--auth-token-env", "SERVE_TOKEN", env={"SERVE_TOKEN": "s3cret"})
    try:
        assert requests.get(served.url + "/healthz", timeout=5).status_code == 200
        for method, path in (("GET", "/schema"), ("POST", "/invoke"), ("GET", "/metrics")):
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
                reply = requests.request(method, served.url + path, headers=headers, timeout=5)
                assert reply.status_code == 401, (path, headers)
                assert reply.headers["WWW-Authenticate"].startswith("Bearer")
                assert reply.json()["error"]["type"] == "unauthorized"
        reply = post(served.url + "/invoke", {"a": 1}, Authorization="Bearer s3cret")
        assert reply.status_code == 200
        models = requests.get(served.url + "/v1/models", timeout=5)
        assert (
            models.status_code == 401 and models.json()["error"]["type"] == "authentication_error"
        )
    finally:
        served.stop()


def test_an_empty_token_variable_is_a_one_line_error():
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "runner_template", "--serve", "--auth-token-env", "NOPE_UNSET"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin", "WORKFLOW_BUNDLE": "/nonexistent"},
        timeout=30,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_metrics_count_what_the_requests_did(service):
    post(service.url + "/invoke", {"a": 1})
    post(service.url + "/invoke", {"a": 1, "op": "fail"})
    text = requests.get(service.url + "/metrics", timeout=5).text
    assert 'workflow_http_requests_total{route="/invoke",status="200"}' in text
    assert 'workflow_http_requests_total{route="/invoke",status="500"}' in text
    assert "workflow_http_request_duration_seconds_bucket" in text
    assert 'workflow_step_duration_seconds_count{outcome="ok",step="c"}' in text
    assert 'workflow_runs_total{outcome="tool_failed"}' in text


def test_readiness_of_a_server_with_an_odd_tag_list_is_503_not_500():
    class Odd(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            body = json.dumps({"models": "not a list"}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Odd)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    served = ServeProcess(
        llm_bundle(), env={"OLLAMA_ENDPOINT": f"http://127.0.0.1:{server.server_address[1]}"}
    )
    try:
        reply = requests.get(served.url + "/readyz", timeout=10)
        assert reply.status_code == 503 and "does not list models" in reply.text
    finally:
        served.stop()
        server.shutdown()


# -- the OpenAI face, with the official client --------------------------------------------------


def streamed(pieces: list[str]) -> bytes:
    lines = [{"model": "m", "response": p, "done": False} for p in pieces]
    lines.append({"model": "m", "response": "", "done": True, "total_duration": 1000})
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def test_openai_client_plain_and_streaming():
    def script(n, body):
        if body.get("stream"):
            return 200, streamed(["Bees ", "make ", "honey."]), 0.0
        return 200, json.dumps({"response": "Bees make honey.", "done": True}).encode(), 0.0

    fake = FakeOllama(script)
    served = ServeProcess(llm_bundle(), env={"OLLAMA_ENDPOINT": fake.url})
    try:
        client = openai.OpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0)
        assert [m.id for m in client.models.list()] == ["asker"]
        reply = client.chat.completions.create(
            model="asker", messages=[{"role": "user", "content": "What do bees make?"}]
        )
        assert reply.choices[0].message.content == "Bees make honey."
        assert fake.requests[-1]["prompt"] == "What do bees make?"
        chunks = list(
            client.chat.completions.create(
                model="asker",
                messages=[{"role": "user", "content": "What do bees make?"}],
                stream=True,
            )
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks)
        assert text == "Bees make honey."
        assert chunks[-1].choices[0].finish_reason == "stop"
        assert len(chunks) >= 4  # the role, the three pieces as they came, the stop
        with pytest.raises(openai.NotFoundError) as missing:
            client.chat.completions.create(
                model="gpt-4", messages=[{"role": "user", "content": "hi"}]
            )
        assert missing.value.code == "model_not_found"
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="asker", messages=[])
    finally:
        served.stop()
        fake.close()


def test_openai_face_of_a_workflow_with_several_inputs_takes_json(service):
    client = openai.OpenAI(base_url=service.url + "/v1", api_key="unused", max_retries=0)
    reply = client.chat.completions.create(
        model="calc", messages=[{"role": "user", "content": '{"a": 2, "b": 3}'}]
    )
    assert json.loads(reply.choices[0].message.content) == {"value": 5}
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="calc", messages=[{"role": "user", "content": "2+3"}])
    assert "JSON object" in refused.value.message
    with pytest.raises(openai.InternalServerError) as failed:
        client.chat.completions.create(
            model="calc", messages=[{"role": "user", "content": '{"a": 1, "op": "fail"}'}]
        )
    assert failed.value.code == "tool_failed"


def test_a_stream_client_that_leaves_frees_the_llm_at_once():
    """The run of a /stream whose client closed is canceled: the streaming LLM call stops at its
    next token and closes its connection (the model is free for the next request)."""
    broke = threading.Event()

    class Drip(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)  # as Ollama streams: chunked, on a keep-alive connection
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for _ in range(100):  # 10 s of tokens
                    line = json.dumps({"model": "m", "response": "tok ", "done": False}) + "\n"
                    self.wfile.write(f"{len(line):x}\r\n{line}\r\n".encode())
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                broke.set()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Drip)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    bundle = llm_bundle()
    bundle["tools"]["llm"]["timeout"] = 30
    served = ServeProcess(
        bundle, env={"OLLAMA_ENDPOINT": f"http://127.0.0.1:{server.server_address[1]}"}
    )
    try:
        host, port = served.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as conn:
            body = b'{"q": "hi"}'
            conn.sendall(
                b"POST /stream HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )
            seen = b""
            while b"event: token" not in seen:
                seen += conn.recv(4096)
        left = time.monotonic()
        assert broke.wait(5), "the LLM connection stayed open after the client left"
        assert time.monotonic() - left < 3
    finally:
        served.stop()
        server.shutdown()


def test_openai_usage_sums_the_real_models_tokens_plain_and_streamed(llm_server, service):
    """``usage`` is the run's LLM tokens as the server counted them (here the dev LLM's
    prompt_eval_count and eval_count); a stream has it in one last chunk when asked."""
    bundle = llm_bundle()
    bundle["tools"]["llm"].update(model="llama3", temperature=0, options={"num_predict": 6})
    bundle["tools"]["llm"]["timeout"] = 120
    served = ServeProcess(bundle, env={"OLLAMA_ENDPOINT": llm_server.url})
    try:
        client = openai.OpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0)
        ask = {"model": "asker", "messages": [{"role": "user", "content": "Name a color."}]}
        reply = client.chat.completions.create(**ask)
        usage = reply.usage
        assert usage.prompt_tokens > 0 and 0 < usage.completion_tokens <= 6
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
        direct = requests.post(
            llm_server.url + "/api/generate",
            json={"model": "llama3", "prompt": "Name a color.", "stream": False,
                  "options": {"temperature": 0, "num_predict": 6}},
            timeout=120,
        ).json()  # fmt: skip
        assert usage.prompt_tokens == direct["prompt_eval_count"]
        assert usage.completion_tokens == direct["eval_count"]
        chunks = list(
            client.chat.completions.create(
                **ask, stream=True, stream_options={"include_usage": True}
            )
        )
        last = chunks[-1]
        assert last.choices == [] and last.usage.total_tokens == usage.total_tokens
        assert all(c.usage is None for c in chunks[:-1])
        assert chunks[-2].choices[0].finish_reason == "stop"
        plain = list(client.chat.completions.create(**ask, stream=True))
        assert all(c.usage is None and c.choices for c in plain)  # not asked: no usage chunk
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(**ask, stream_options={"include_usage": True})
        assert refused.value.param == "stream_options"
    finally:
        served.stop()
    # A workflow without LLM steps: zeros.
    client = openai.OpenAI(base_url=service.url + "/v1", api_key="unused", max_retries=0)
    reply = client.chat.completions.create(
        model="calc", messages=[{"role": "user", "content": '{"a": 2, "b": 3}'}]
    )
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (0, 0)
    assert reply.usage.total_tokens == 0
