"""``workflow --serve``: the workflow as a small HTTP service (standard library only).

Routes:

* ``POST /invoke``: inputs object in, ``{"outputs": {...}}`` out;
* ``POST /stream``: the same run as events (``step_started``, ``step_finished``, ``token``,
  then ``result`` or ``error``), Server-Sent Events, or NDJSON for
  ``Accept: application/x-ndjson``;
* ``POST /hooks/run``: ``{"inputs": {...}, "callback_url": URL}``: 202 and a run id at once,
  the result POSTed to the callback when done (bounded retries); ``GET /runs/ID`` tells where
  it stands;
* ``GET /healthz`` (alive), ``GET /readyz`` (the LLM server answers and has the models),
  ``GET /schema`` (JSON Schema of inputs and outputs), ``GET /openapi.json``.

Errors are the runner's error object with an HTTP status: ``bad_input`` 400, ``tool_failed``
500, ``llm_error`` 502, ``llm_unreachable`` 503, ``step_timeout`` 504; requests the service
cannot take get ``not_found`` 404, ``method_not_allowed`` 405, ``length_required`` 411,
``too_large`` 413, ``unsupported_media_type`` 415, ``too_many_requests`` 429 or
``shutting_down`` 503. No traceback ever reaches a client.

Bounds: the body (``--max-body``, 413), runs at once (``-j``: a request waits up to
``--queue-wait`` seconds for a slot, then gets 429 with ``Retry-After``), open connections, idle
connections (a read timeout), and each run (``--request-timeout``, 504). SIGTERM stops taking
connections and lets running requests finish within ``--grace`` seconds. One JSON log line per
request goes to stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import sys
import threading
import time
import uuid
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from runner_template import engine as engine_module
from runner_template import http_client
from runner_template.engine import Engine
from runner_template.errors import RunnerError
from runner_template.jsonsafe import JSONLimitError
from runner_template.jsonsafe import loads as bounded_loads
from runner_template.llm import DEFAULT_ENDPOINT

STATUS_OF = {
    "bad_input": 400,
    "tool_failed": 500,
    "internal_error": 500,
    "llm_error": 502,
    "llm_unreachable": 503,
    "step_timeout": 504,
}
MAX_CONNECTIONS = 256
IDLE_SECONDS = 30
KEPT_RUNS = 1000
CALLBACK_ATTEMPTS = 4


class Settings:
    """The service's limits (from the command line)."""

    def __init__(
        self,
        jobs: int = 4,
        max_body: int = 8 * 1024 * 1024,
        request_timeout: float = 300.0,
        queue_wait: float = 5.0,
        grace: float = 20.0,
        endpoint: str | None = None,
        provider: str | None = None,
    ) -> None:
        self.jobs = jobs
        self.max_body = max_body
        self.request_timeout = request_timeout
        self.queue_wait = queue_wait
        self.grace = grace
        self.endpoint = endpoint
        self.provider = provider


def _json_type(declared: str | None) -> dict[str, Any]:
    if declared in (None, "any"):
        return {}
    return {"type": declared}


def inputs_schema(workflow: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of the workflow's inputs object (what ``/invoke`` accepts)."""
    properties: dict[str, Any] = {}
    required = []
    for name, spec in (workflow.get("inputs") or {}).items():
        prop = _json_type(spec.get("type"))
        for key in ("enum", "pattern", "default", "description"):
            if key in spec:
                prop[key] = spec[key]
        properties[name] = prop
        if spec.get("required") and "default" not in spec:
            required.append(name)
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        schema["required"] = required
    return schema


def outputs_schema(workflow: dict[str, Any]) -> dict[str, Any]:
    names = sorted(workflow.get("outputs") or {}) or ["output"]
    return {"type": "object", "properties": {name: {} for name in names}}


ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {
                "type": {"type": "string"},
                "message": {"type": "string"},
                "step": {"type": "string", "nullable": True},
            },
        }
    },
}


def openapi(workflow: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI 3.0 description of the service, for clients and for property tests."""
    inputs = {"$ref": "#/components/schemas/Inputs"}
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}

    def errors(*codes: int) -> dict[str, Any]:
        return {str(code): {"description": "error", **error} for code in codes}

    run_errors = errors(400, 411, 413, 415, 429, 500, 502, 503, 504)
    body = {"required": True, "content": {"application/json": {"schema": inputs}}}
    hook = {
        "type": "object",
        "required": ["inputs", "callback_url"],
        "properties": {"inputs": inputs, "callback_url": {"type": "string", "format": "uri"}},
        "additionalProperties": False,
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": f"workflow {workflow.get('id')}",
            "version": str(workflow.get("version") or "0"),
            "description": workflow.get("description") or "A docker-workflow workflow service.",
        },
        "paths": {
            "/invoke": {
                "post": {
                    "summary": "Run the workflow once",
                    "requestBody": body,
                    "responses": {
                        "200": {
                            "description": "the outputs",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["outputs"],
                                        "properties": {
                                            "outputs": {"$ref": "#/components/schemas/Outputs"}
                                        },
                                    }
                                }
                            },
                        },
                        **run_errors,
                    },
                }
            },
            "/stream": {
                "post": {
                    "summary": "Run the workflow, streaming events",
                    "requestBody": body,
                    "responses": {
                        "200": {
                            "description": "events",
                            "content": {
                                "text/event-stream": {"schema": {"type": "string"}},
                                "application/x-ndjson": {"schema": {"type": "string"}},
                            },
                        },
                        **errors(400, 411, 413, 415, 429),
                    },
                }
            },
            "/hooks/run": {
                "post": {
                    "summary": "Start a run; its result is POSTed to callback_url",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": hook}},
                    },
                    "responses": {
                        "202": {
                            "description": "accepted",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "run_id": {"type": "string"},
                                            "status_url": {"type": "string"},
                                        },
                                    }
                                }
                            },
                        },
                        **errors(400, 411, 413, 415, 429),
                    },
                }
            },
            "/runs/{run_id}": {
                "get": {
                    "summary": "The state of a run started by /hooks/run",
                    "parameters": [
                        {
                            "name": "run_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "the run",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        **errors(404),
                    },
                }
            },
            "/healthz": {"get": {"summary": "Alive", "responses": {"200": {"description": "ok"}}}},
            "/readyz": {
                "get": {
                    "summary": "The LLM server answers and has the workflow's models",
                    "responses": {
                        "200": {"description": "ready"},
                        "503": {"description": "not ready"},
                    },
                }
            },
            "/schema": {
                "get": {
                    "summary": "JSON Schema of inputs and outputs",
                    "responses": {"200": {"description": "schemas"}},
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI"}},
                }
            },
        },
        "components": {
            "schemas": {
                "Inputs": inputs_schema(workflow),
                "Outputs": outputs_schema(workflow),
                "Error": ERROR_SCHEMA,
            }
        },
    }


class _Runs:
    """The runs started by ``/hooks/run`` (the last :data:`KEPT_RUNS` of them)."""

    def __init__(self) -> None:
        self._runs: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, callback: str) -> str:
        run_id = uuid.uuid4().hex
        with self._lock:
            self._runs[run_id] = {
                "run_id": run_id,
                "status": "running",
                "callback": {
                    "url": http_client.redact(callback),
                    "delivered": False,
                    "attempts": 0,
                },
            }
            while len(self._runs) > KEPT_RUNS:
                self._runs.popitem(last=False)
        return run_id

    def update(self, run_id: str, **changes: Any) -> None:
        with self._lock:
            if run_id in self._runs:
                self._runs[run_id].update(changes)

    def callback(self, run_id: str, **changes: Any) -> None:
        with self._lock:
            if run_id in self._runs:
                self._runs[run_id]["callback"].update(changes)

    def get(self, run_id: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._runs.get(run_id)
            return json.loads(json.dumps(found)) if found else None


class Service:
    """Everything the request handlers share: the engine, the limits, the runs, readiness."""

    def __init__(self, bundle: dict[str, Any], settings: Settings) -> None:
        self.bundle = bundle
        self.workflow = bundle["workflow"]
        self.settings = settings
        self.engine = Engine(bundle, endpoint=settings.endpoint, provider=settings.provider)
        self.slots = threading.BoundedSemaphore(settings.jobs)
        self.connections = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.runs = _Runs()
        self.active = 0
        self.active_lock = threading.Lock()
        self.stopping = threading.Event()
        self.openapi = json.dumps(openapi(self.workflow)).encode()
        self.schema = json.dumps(
            {"inputs": inputs_schema(self.workflow), "outputs": outputs_schema(self.workflow)}
        ).encode()
        self._ready_at = 0.0
        self._ready: tuple[bool, dict[str, Any]] = (False, {})

    # -- runs ----------------------------------------------------------------------------------

    def acquire(self) -> bool:
        return self.slots.acquire(timeout=self.settings.queue_wait)

    def run(self, inputs: Any, on_event=None) -> dict[str, Any]:
        deadline = time.monotonic() + self.settings.request_timeout
        return self.engine.run(inputs, deadline=deadline, on_event=on_event)

    def track(self, delta: int) -> None:
        with self.active_lock:
            self.active += delta

    # -- readiness -----------------------------------------------------------------------------

    def _llm_needs(self) -> dict[tuple[str, str], set[str]]:
        parts = [self.bundle, *(self.bundle.get("workflows") or {}).values()]
        needs: dict[tuple[str, str], set[str]] = {}
        for part in parts:
            for tool in part.get("tools", {}).values():
                if tool.get("kind") != "llm":
                    continue
                endpoint = self.engine.endpoint_override or tool.get("endpoint") or DEFAULT_ENDPOINT
                provider = self.engine.provider_override or tool.get("provider") or "ollama"
                needs.setdefault((endpoint, provider), set()).add(tool["model"])
        return needs

    def ready(self) -> tuple[bool, dict[str, Any]]:
        """Whether every LLM server the workflow uses answers and has its models (cached 5 s)."""
        if time.monotonic() - self._ready_at < 5:
            return self._ready
        checks = []
        ok = True
        for (endpoint, provider), models in sorted(self._llm_needs().items()):
            problem = _check_llm(endpoint, provider, models)
            checks.append(
                {
                    "endpoint": http_client.redact(endpoint),
                    "provider": provider,
                    "models": sorted(models),
                    "ok": problem is None,
                    "problem": problem,
                }
            )
            ok = ok and problem is None
        self._ready = (ok, {"ready": ok, "llm": checks})
        self._ready_at = time.monotonic()
        return self._ready


def _check_llm(endpoint: str, provider: str, models: set[str]) -> str | None:
    path = "/api/tags" if provider == "ollama" else "/v1/models"
    base = endpoint.rstrip("/")
    if provider == "openai" and base.endswith("/v1"):
        base = base[:-3]
    headers = {}
    key = os.environ.get("OLLAMA_API_KEY")
    if key:
        headers["Authorization"] = f"Bearer {key}"
    try:
        reply = http_client.request(
            "GET", base + path, deadline=time.monotonic() + 3, headers=headers, attempts=1
        )
    except http_client.HTTPFailure as failure:
        return failure.message
    if reply.status != 200:
        return f"HTTP {reply.status}"
    try:
        data = json.loads(reply.body)
    except ValueError:
        return "the reply is not JSON"
    if provider == "ollama":
        names = {m.get("name") for m in data.get("models", []) if isinstance(m, dict)}
        names |= {n.removesuffix(":latest") for n in names if isinstance(n, str)}
    else:
        names = {m.get("id") for m in data.get("data", []) if isinstance(m, dict)}
    missing = sorted(m for m in models if m not in names and f"{m}:latest" not in names)
    return f"missing models: {', '.join(missing)}" if missing else None


class Handler(BaseHTTPRequestHandler):
    """One connection; ``server.service`` holds the shared state."""

    protocol_version = "HTTP/1.1"
    timeout = IDLE_SECONDS

    def version_string(self) -> str:
        return "docker-workflow"

    @property
    def service(self) -> Service:
        return self.server.service  # type: ignore[attr-defined]

    # -- plumbing ------------------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one JSON line per request instead (see _log)

    def _log(self, status: int, sent: int, started: float) -> None:
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "method": self.command,
            "path": self.path[:200],
            "status": status,
            "ms": round((time.monotonic() - started) * 1000, 1),
            "bytes": sent,
        }
        sys.stderr.write(json.dumps(line) + "\n")
        sys.stderr.flush()

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._status, self._sent = status, len(body)

    def _json(self, status: int, value: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(value, ensure_ascii=False).encode(), headers=headers)

    def _error(self, status: int, kind: str, message: str, headers=None) -> None:
        self._json(status, {"error": {"type": kind, "message": message, "step": None}}, headers)

    def _runner_error(self, error: RunnerError) -> None:
        self._json(STATUS_OF.get(error.error_type, 500), error.to_json())

    def _read_body(self) -> Any:
        """The request's JSON body, or None after an error response was sent."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self._error(411, "length_required", "send the body with a Content-Length")
            self.close_connection = True
            return None
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            self._error(411, "length_required", "a Content-Length is required")
            return None
        try:
            length = int(length_text)
        except ValueError:
            self._error(400, "bad_request", "Content-Length is not a number")
            self.close_connection = True
            return None
        if length > self.service.settings.max_body or length < 0:
            self._error(
                413, "too_large", f"the body is over {self.service.settings.max_body} bytes"
            )
            self.close_connection = True
            return None
        media = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if media != "application/json":
            self.rfile.read(length)
            self._error(415, "unsupported_media_type", "send the inputs as application/json")
            return None
        raw = self.rfile.read(length)
        try:
            return ("ok", bounded_loads(raw.decode("utf-8-sig")))
        except UnicodeDecodeError:
            self._error(400, "bad_input", "the body is not UTF-8 text")
        except json.JSONDecodeError as error:
            self._error(400, "bad_input", f"the body is not valid JSON: {error.msg}")
        except JSONLimitError as error:
            self._error(400, "bad_input", f"the body: {error.where}: {error.message}")
        return None

    # -- dispatch ------------------------------------------------------------------------------

    ROUTES = {
        ("POST", "/invoke"): "_invoke",
        ("POST", "/stream"): "_stream",
        ("POST", "/hooks/run"): "_hook",
        ("GET", "/healthz"): "_healthz",
        ("GET", "/readyz"): "_readyz",
        ("GET", "/schema"): "_schema",
        ("GET", "/openapi.json"): "_openapi",
    }

    def _dispatch(self) -> None:
        started = time.monotonic()
        self._status, self._sent = 500, 0
        self.service.track(1)
        try:
            path = self.path.split("?", 1)[0]
            method = "GET" if self.command == "HEAD" else self.command
            name = self.ROUTES.get((method, path))
            if name is not None:
                getattr(self, name)()
            elif method == "GET" and path.startswith("/runs/"):
                self._run_state(path[len("/runs/") :])
            else:
                allowed = sorted(m for (m, p) in self.ROUTES if p == path)
                if allowed:
                    self._error(
                        405,
                        "method_not_allowed",
                        f"use {', '.join(allowed)} on {path}",
                        {"Allow": ", ".join(allowed)},
                    )
                else:
                    self._error(404, "not_found", f"no such path: {path[:100]}")
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        except Exception as error:  # no traceback reaches a client
            sys.stderr.write(json.dumps({"internal_error": repr(error)[:500]}) + "\n")
            with contextlib.suppress(OSError):
                self._error(500, "internal_error", "internal error")
            self.close_connection = True
        finally:
            self.service.track(-1)
            self._log(self._status, self._sent, started)

    def __getattr__(self, name: str):
        """Every method (``do_GET``, ``do_TRACE``, ...) goes through :meth:`_dispatch`, so an
        unknown one gets a JSON 405, not the standard library's HTML 501."""
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None):
        """The standard library's own errors (a malformed request line, an oversized header)
        as the JSON error object, not an HTML page."""
        self.close_connection = True
        kind = "bad_request" if code < 500 else "internal_error"
        body = json.dumps({"error": {"type": kind, "message": message or "", "step": None}})
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body.encode())

    # -- routes --------------------------------------------------------------------------------

    def _take_slot(self) -> bool:
        if self.service.stopping.is_set():
            self._error(503, "shutting_down", "the service is shutting down", {"Retry-After": "5"})
            return False
        if not self.service.acquire():
            self._error(
                429,
                "too_many_requests",
                "too many runs at once: try again shortly",
                {"Retry-After": "2"},
            )
            return False
        return True

    def _invoke(self) -> None:
        body = self._read_body()
        if body is None:
            return
        if not self._take_slot():
            return
        try:
            outputs = self.service.run(body[1])
        except RunnerError as error:
            self._runner_error(error)
            return
        finally:
            self.service.slots.release()
        self._json(200, {"outputs": outputs})

    def _stream(self) -> None:
        body = self._read_body()
        if body is None:
            return
        ndjson = "application/x-ndjson" in self.headers.get("Accept", "")
        if not self._take_slot():
            return
        events: queue.Queue = queue.Queue()

        def work() -> None:
            try:
                outputs = self.service.run(body[1], on_event=events.put)
                events.put({"event": "result", "outputs": outputs})
            except RunnerError as error:
                events.put({"event": "error", **error.to_json()})
            except Exception as error:  # a bug: reported as an event, never a traceback
                events.put(
                    {"event": "error", **RunnerError(f"internal error: {error!r}").to_json()}
                )
            finally:
                self.service.slots.release()

        threading.Thread(target=work, daemon=True).start()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson" if ndjson else "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        self._status = 200
        while True:
            event = events.get()
            text = json.dumps(event, ensure_ascii=False)
            if ndjson:
                data = (text + "\n").encode()
            else:
                data = f"event: {event['event']}\ndata: {text}\n\n".encode()
            self.wfile.write(data)
            self.wfile.flush()
            self._sent += len(data)
            if event["event"] in ("result", "error"):
                return

    def _hook(self) -> None:
        body = self._read_body()
        if body is None:
            return
        request = body[1]
        callback = request.get("callback_url") if isinstance(request, dict) else None
        problem = _callback_problem(callback)
        if problem:
            self._error(400, "bad_input", problem)
            return
        if set(request) - {"inputs", "callback_url"}:
            self._error(400, "bad_input", "the body takes 'inputs' and 'callback_url' only")
            return
        if not self._take_slot():
            return
        run_id = self.service.runs.add(callback)
        inputs = request.get("inputs", {})
        threading.Thread(
            target=self._hook_run, args=(run_id, inputs, callback), daemon=True
        ).start()
        self._json(202, {"run_id": run_id, "status_url": f"/runs/{run_id}"})

    def _hook_run(self, run_id: str, inputs: Any, callback: str) -> None:
        service = self.service
        try:
            outputs = service.run(inputs)
            result = {"run_id": run_id, "status": "succeeded", "outputs": outputs}
        except RunnerError as error:
            result = {"run_id": run_id, "status": "failed", **error.to_json()}
        except Exception as error:
            result = {
                "run_id": run_id,
                "status": "failed",
                **RunnerError(f"internal error: {error!r}").to_json(),
            }
        finally:
            service.slots.release()
        service.runs.update(run_id, **{k: v for k, v in result.items() if k != "run_id"})
        deliver_callback(service.runs, run_id, callback, result)

    def _run_state(self, run_id: str) -> None:
        found = self.service.runs.get(run_id)
        if found is None:
            self._error(404, "not_found", "no such run")
        else:
            self._json(200, found)

    def _healthz(self) -> None:
        self._json(200, {"status": "ok"})

    def _readyz(self) -> None:
        ok, report = self.service.ready()
        self._json(200 if ok else 503, report)

    def _schema(self) -> None:
        self._send(200, self.service.schema)

    def _openapi(self) -> None:
        self._send(200, self.service.openapi)


def _callback_problem(url: Any) -> str | None:
    if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
        return "callback_url must be an http(s) URL"
    allowed = [p for p in os.environ.get("WORKFLOW_CALLBACK_ALLOW", "").split(",") if p]
    if allowed and not any(url.startswith(prefix) for prefix in allowed):
        return "callback_url is not one this service may call (WORKFLOW_CALLBACK_ALLOW)"
    return None


def deliver_callback(runs: _Runs, run_id: str, url: str, result: dict[str, Any]) -> None:
    """POST ``result`` to ``url``: up to :data:`CALLBACK_ATTEMPTS` tries, backing off 1, 2, 4 s."""
    body = json.dumps(result, ensure_ascii=False).encode()
    for attempt in range(1, CALLBACK_ATTEMPTS + 1):
        runs.callback(run_id, attempts=attempt)
        try:
            reply = http_client.request(
                "POST",
                url,
                deadline=time.monotonic() + 10,
                body=body,
                headers={"Content-Type": "application/json"},
                attempts=1,
            )
            if 200 <= reply.status < 300:
                runs.callback(run_id, delivered=True, last_error=None)
                return
            problem = f"HTTP {reply.status}"
        except http_client.HTTPFailure as failure:
            problem = failure.message
        runs.callback(run_id, last_error=problem)
        if attempt < CALLBACK_ATTEMPTS:
            time.sleep(2 ** (attempt - 1))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def process_request(self, request, client_address):
        if not self.service.connections.acquire(blocking=False):  # type: ignore[attr-defined]
            try:
                request.sendall(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                    b"Connection: close\r\n\r\n"
                )
            finally:
                self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.service.connections.release()  # type: ignore[attr-defined]


def serve(bundle: dict[str, Any], host: str, port: int, settings: Settings) -> int:
    """Serve until SIGTERM or SIGINT; then finish running requests within the grace period."""
    engine_module.QUIET = True
    service = Service(bundle, settings)
    server = _Server((host, port), Handler)
    server.service = service  # type: ignore[attr-defined]

    def stop(signum, frame) -> None:
        service.stopping.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    bound = server.server_address
    sys.stderr.write(
        json.dumps(
            {"listening": f"http://{bound[0]}:{bound[1]}", "workflow": service.workflow.get("id")}
        )
        + "\n"
    )
    sys.stderr.flush()
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    deadline = time.monotonic() + settings.grace
    while service.active > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    left = service.active
    sys.stderr.write(json.dumps({"stopped": True, "unfinished_requests": left}) + "\n")
    return 0
