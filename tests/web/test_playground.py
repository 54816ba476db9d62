"""The page in ``service`` mode: the same files, sending runs to a real service's ``/stream``.

Serve mode does not mount the page yet (``GET /playground`` is for ``runner_template/serve.py``);
this test mounts ``playground_files`` as that route will, on a front server whose ``/stream`` is
passed through, byte for byte as it streams, to the real program running ``--serve``.
"""

from __future__ import annotations

import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, urlsplit

import pytest
from helpers import ROOT
from serving import ServeProcess

from rules.stages.pipeline import analyze_file
from rules.stages.shake import shake
from runner_template.engine import Engine
from runner_template.web import content_type, playground_files


class _Front(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _FrontServer

    def log_message(self, format, *args) -> None:
        pass

    def _send(self, status: int, body: bytes, kind: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/playground":
            self._send(301, b"", "text/plain", {"Location": "/playground/"})
            return
        name = urlsplit(self.path).path.removeprefix("/playground/") or "index.html"
        body = self.server.files.get(name)
        if body is None:
            self._send(404, b"not found", "text/plain")
        else:
            self._send(200, body, content_type(name))

    def do_POST(self) -> None:
        data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        upstream = urlsplit(self.server.service_url)
        conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k in ("Content-Type", "Accept")}
        conn.request("POST", self.path, body=data, headers=headers)
        reply = conn.getresponse()
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.getheader("Content-Type", "text/plain"))
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        while chunk := reply.read1(65536):
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        conn.close()


class _FrontServer(ThreadingHTTPServer):
    daemon_threads = True
    files: dict[str, bytes]
    service_url: str


@pytest.fixture(scope="module")
def calculator():
    tree, _, tools = analyze_file(ROOT / "workflows" / "calculator.json")
    return shake(tree, tools)


@pytest.fixture(scope="module")
def playground(calculator):
    service = ServeProcess(calculator)
    front = _FrontServer(("127.0.0.1", 0), _Front)
    front.files = playground_files(calculator, stream_url="../stream")
    front.service_url = service.url
    threading.Thread(target=front.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{front.server_address[1]}"
    finally:
        front.shutdown()
        front.server_close()
        service.stop()


def test_the_playground_runs_the_calculator_through_the_service(page, playground, calculator):
    inputs = {"operation": "multiply", "a": 6, "b": 7}
    page.open(f"{playground}/playground#inputs={quote(json.dumps(inputs))}&run")
    assert page.wait_for_end(60) == "done", page.text("error")
    assert json.loads(page.text("outputs")) == Engine(calculator).run(inputs)
    steps = page.all("#events li")
    assert [s.get_attribute("id") for s in steps] == ["step-calculate", "step-explain"]
    hidden = [page.element("endpoint"), *page.all("label[for=endpoint], label[for=provider]")]
    assert not any(e.is_displayed() for e in hidden)  # the service has its own LLM settings
    page.screenshot("web-playground.png")


def test_the_services_input_errors_show_at_their_field(page, playground):
    page.open(f"{playground}/playground/#inputs={quote(json.dumps({'a': 'six', 'b': 7}))}&run")
    assert page.wait_for_end(60) == "failed"
    message = "input 'a' must be of type number, got 'six'"
    assert page.text("error-a") == message
    assert page.text("error") == f"bad_input: {message}"
