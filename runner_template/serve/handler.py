"""One HTTP connection: reading a request under its deadline, routing, writing the reply.

Every reply leaves in one ``send`` (status line, headers and body together) on a socket with
``TCP_NODELAY``: a reply written in two small pieces waits for the client's delayed ACK of the
first (Nagle's algorithm), about 40 ms per keep-alive request.
"""

from __future__ import annotations

import contextlib
import io
import json
import queue
import socket
import threading
import time
from _operator import _compare_digest  # hmac.compare_digest; hmac is left out of small images
from http.server import BaseHTTPRequestHandler
from typing import Any

from runner_template.errors import RunnerError
from runner_template.jsonsafe import JSONLimitError
from runner_template.jsonsafe import loads as bounded_loads
from runner_template.serve import openai_face
from runner_template.serve.callbacks import callback_problem, deliver_callback
from runner_template.serve.runs import run_id_problem
from runner_template.serve.service import Service
from runner_template.serve.settings import IDLE_SECONDS, STATUS_OF, TURN_SECONDS, WRITE_SECONDS
from runner_template.serve.wire import (
    DeadlineReader,
    DeadlineWriter,
    FramingError,
    HeaderError,
    body_length,
    json_bytes,
    now_stamps,
    read_headers,
)
from runner_template.threads import start_daemon
from runner_template.web import content_type

ROUTES = {
    ("POST", "/invoke"): "_invoke",
    ("POST", "/stream"): "_stream",
    ("POST", "/batch"): "_batch",
    ("POST", "/hooks/run"): "_hook",
    ("GET", "/healthz"): "_healthz",
    ("GET", "/readyz"): "_readyz",
    ("GET", "/metrics"): "_metrics",
    ("GET", "/schema"): "_schema",
    ("GET", "/openapi.json"): "_openapi",
    ("GET", "/v1/models"): "_models",
    ("POST", "/v1/chat/completions"): "_chat",
}
OPEN_ROUTES = {"/healthz"}  # answered without a token: liveness probes carry none
# The log's method and path fields of each route's plain request (a client's other paths are
# made into JSON text per request: they are the client's, and unbounded).
_LOGGED = {
    (method, path): f'"method": {json.dumps(method)}, "path": {json.dumps(path)}'
    for method, path in ROUTES
}


class Handler(BaseHTTPRequestHandler):
    """One connection; ``server.service`` holds the shared state."""

    protocol_version = "HTTP/1.1"

    def version_string(self) -> str:
        return "docker-workflow"

    service: Service  # the server's (set in setup: a property cost a call at each use)

    # -- connection ----------------------------------------------------------------------------

    def setup(self) -> None:
        self.service = self.server.service  # type: ignore[attr-defined]
        self.connection = self.request
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = DeadlineReader(self.connection)
        self.rfile = io.BufferedReader(self.reader, 65536)
        self.wfile = DeadlineWriter(self.connection, WRITE_SECONDS)  # type: ignore[assignment]
        self.waiting_since: float | None = None  # see server._Server
        self.server.opened(self)  # type: ignore[attr-defined]

    def finish(self) -> None:
        self.server.closed(self)  # type: ignore[attr-defined]
        super().finish()

    def handle_one_request(self) -> None:
        """Wait for a request (idle limit), then read all of it under one deadline, and answer
        it: the standard library's method, inlined (every ``do_*`` is :meth:`_dispatch`, and
        ``wfile`` needs no flush). The request's time starts with its first byte."""
        self.waiting_since = time.monotonic()
        reader = self.reader
        reader.idle = IDLE_SECONDS
        try:
            if not self.rfile.peek(1):
                self.close_connection = True
                return
        except (OSError, ValueError):
            self.close_connection = True
            return
        reader.idle = None  # bytes were buffered already (pipelined): no wait happened
        self._started = now = time.monotonic()
        reader.deadline = now + self.service.settings.read_timeout
        try:
            self.raw_requestline = line = self.rfile.readline(65537)
            if len(line) > 65536:
                self.requestline = self.request_version = self.command = ""
                self.send_error(414)
                return
            if not line:
                self.close_connection = True
                return
            if self.parse_request():
                self._dispatch()
        except (OSError, ValueError):  # timed out, reset, or evicted while reading
            self.close_connection = True

    def parse_request(self) -> bool:
        """The request line as the standard library reads it, the headers by
        :func:`~.wire.read_headers` (strict, and a fraction of the email parser's cost)."""
        self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = self.requestline.split()
        if len(words) == 3 and words[2] == "HTTP/1.1":  # the usual line: nothing to work out
            self.command, self.path, self.request_version = words
            self.close_connection = False
        elif not self._request_line(words):
            return False
        if self.path.startswith("//"):
            self.path = "/" + self.path.lstrip("/")
        try:
            self.headers = headers = read_headers(self.rfile)  # type: ignore[assignment]
        except HeaderError as error:
            self.send_error(error.status, str(error))
            return False
        first = headers.first
        if "connection" in first:
            connection = first["connection"].lower()
            if connection == "close":
                self.close_connection = True
            elif connection == "keep-alive":
                self.close_connection = False
        if "expect" in first:
            expect = first["expect"].lower()
            if expect == "100-continue" and self.request_version >= "HTTP/1.1":
                return self.handle_expect_100()
        return True

    def _request_line(self, words: list[str]) -> bool:
        """Any other request line, as the standard library reads it: ``command``, ``path``,
        ``request_version`` and ``close_connection`` set, or an error sent and False."""
        self.command = None  # set in case of an error on the first line
        self.request_version = version = self.default_request_version
        self.close_connection = True
        if not words:
            return False
        if len(words) >= 3:  # enough to know the protocol's version
            version = words[-1]
            number = version[5:].split(".") if version.startswith("HTTP/") else []
            if not (
                len(number) == 2
                and all(part.isascii() and part.isdigit() and len(part) <= 10 for part in number)
            ):
                self.send_error(400, f"Bad request version ({version!r})")
                return False
            major_minor = int(number[0]), int(number[1])
            if major_minor >= (2, 0):
                self.send_error(505, f"Invalid HTTP version ({version[5:]})")
                return False
            if major_minor >= (1, 1):
                self.close_connection = False
            self.request_version = version
        if not 2 <= len(words) <= 3:
            self.send_error(400, f"Bad request syntax ({self.requestline!r})")
            return False
        command, path = words[:2]
        if len(words) == 2:
            self.close_connection = True
            if command != "GET":
                self.send_error(400, f"Bad HTTP/0.9 request type ({command!r})")
                return False
        self.command, self.path = command, path
        return True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one JSON line per request instead (see _log)

    def _log(self, status: int, sent: int, seconds: float) -> None:
        """One JSON line per request (``service.log``); made by hand: the fields are known, and
        the method and path of a route's request are JSON text made once (see ``_LOGGED``)."""
        logged = _LOGGED.get((self.command, self.path))
        if logged is None:
            path = json.dumps(self.path[:200].encode("ascii", "backslashreplace").decode())
            logged = f'"method": {json.dumps(self.command)}, "path": {path}'
        self.service.log.write(
            f'{{"time": "{now_stamps()[1]}", {logged},'
            f' "status": {status}, "ms": {round(seconds * 1000, 1)}, "bytes": {sent}}}\n'
        )

    # -- replies -------------------------------------------------------------------------------

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        """The whole reply in one write (see the module's docstring)."""
        if self._length:  # a body nobody read: the next request's start is unknown
            self.close_connection = True
        self._write_reply(status, body, content_type, headers)
        self._status, self._sent = status, len(body)

    def _write_reply(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None
    ) -> None:
        """Status line, headers and body as one ``sendall`` (also for HTTP/0.9 requests, which
        the standard library's header buffer skips)."""
        phrase = self.responses.get(status, ("",))[0]
        head_text = (
            f"HTTP/1.1 {status} {phrase}\r\nServer: docker-workflow\r\n"  # version_string()
            f"Date: {now_stamps()[0]}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n"
        )
        if headers:
            head_text += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        if self.close_connection:
            head_text += "Connection: close\r\n"
        head = (head_text + "\r\n").encode("latin-1")
        self.wfile.write(head if self.command == "HEAD" else head + body)

    def _json(self, status: int, value: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json_bytes(value), "application/json", headers)

    def _error(self, status: int, kind: str, message: str, headers=None) -> None:
        if self._openai:
            self._json(status, openai_face.error_body(status, message, kind), headers)
        else:
            self._json(status, {"error": {"type": kind, "message": message, "step": None}}, headers)

    def _runner_error(self, error: RunnerError) -> None:
        status = STATUS_OF.get(error.error_type, 500)
        if self._openai:
            self._json(status, openai_face.error_body(status, error.message, error.error_type))
        else:
            self._json(status, error.to_json())

    def _start_events(self, content_type: str) -> None:
        """Headers of an event stream (ended by closing the connection)."""
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self._status = 200

    def _event_bytes(self, data: bytes) -> None:
        self.wfile.write(data)
        self._sent += len(data)

    # -- request body --------------------------------------------------------------------------

    def _read_body(self) -> Any:
        """The request's JSON body as ``("ok", value)``, or None after an error reply."""
        length = self._length
        if length == -1:
            self.close_connection = True
            self._error(411, "length_required", "send the body with a Content-Length")
            return None
        if length > self.service.settings.max_body:
            self.close_connection = True
            self._error(
                413, "too_large", f"the body is over {self.service.settings.max_body} bytes"
            )
            return None
        headers = self.headers.first
        if "content-length" not in headers:
            self._error(411, "length_required", "a Content-Length is required")
            return None
        raw = self.rfile.read(length)
        self._length = 0  # consumed: the connection stays usable
        if len(raw) < length:
            self.close_connection = True
            raise ConnectionResetError("the body ended early")
        media = headers.get("content-type", "")
        if media != "application/json":  # the usual value as is, any other one normalized
            media = media.split(";")[0].strip().lower()
        if media != "application/json":
            self._error(415, "unsupported_media_type", "send the body as application/json")
            return None
        try:
            return ("ok", bounded_loads(raw.decode("utf-8-sig"), text_checks=True))
        except UnicodeDecodeError:
            self._error(400, "bad_input", "the body is not UTF-8 text")
        except json.JSONDecodeError as error:
            self._error(400, "bad_input", f"the body is not valid JSON: {error.msg}")
        except JSONLimitError as error:
            self._error(400, "bad_input", f"the body: {error.where}: {error.message}")
        except ValueError as error:  # an integer over Python's digit limit, say
            self._error(400, "bad_input", f"the body: {str(error)[:200]}")
        return None

    # -- dispatch ------------------------------------------------------------------------------

    def _route(self, method: str, path: str) -> tuple[str | None, str, list[str]]:
        """The method name, the route label for metrics, and path parameters."""
        name = ROUTES.get((method, path))
        if name is not None:
            return name, path, []
        if path.startswith("/runs/"):
            rest = path[len("/runs/") :]
            if method == "GET" and "/" not in rest:
                return "_run_state", "/runs/{run_id}", [rest]
            if method == "POST" and rest.endswith("/cancel") and rest.count("/") == 1:
                return "_cancel", "/runs/{run_id}/cancel", [rest[: -len("/cancel")]]
        if method == "GET" and self._playground_path(path):
            if path == "/playground":
                return "_playground_redirect", "/playground", []
            return "_playground", "/playground", [path[len("/playground/") :]]
        return None, "other", []

    def _playground_path(self, path: str) -> bool:
        """A path of the playground, when the service has one (``--playground``)."""
        return self.service.playground is not None and (
            path == "/playground" or path.startswith("/playground/")
        )

    def _authorized(self) -> bool:
        """Whether the request carries the service's token (``--auth-token-env``); else 401."""
        token = self.service.settings.auth_token
        if token is None:
            return True
        given = self.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        ok = scheme.lower() == "bearer" and _compare_digest(
            value.strip().encode("utf-8", "surrogateescape"), token.encode("utf-8")
        )
        if not ok:
            self._error(
                401,
                "unauthorized",
                "this service needs Authorization: Bearer TOKEN",
                {"WWW-Authenticate": 'Bearer realm="workflow"'},
            )
        return ok

    _length = 0  # body bytes not read yet
    _run_handle: Any = None  # the run of a stream being sent

    def _dispatch(self) -> None:
        self.waiting_since = None
        self._status, self._sent, self._length = 500, 0, 0
        self._run_handle = None
        self._handed_off = False  # see _invoke
        path = self.path
        if "?" in path:
            path = path.split("?", 1)[0]
        self._openai = path.startswith("/v1/")
        method = "GET" if self.command == "HEAD" else self.command
        name = ROUTES.get((method, path))
        if name is not None:  # a route's own path: no parameters (see _route)
            self._label, params = path, ()
        else:
            name, self._label, params = self._route(method, path)
        service = self.service
        service.begin_request()
        try:
            try:
                self._length = body_length(self.headers)
            except FramingError as error:
                self.close_connection = True
                self._error(400, "bad_request", str(error))
                return
            if (
                service.settings.auth_token is not None
                and path not in OPEN_ROUTES
                and not self._authorized()
            ):
                return
            if name is not None:
                getattr(self, name)(*params)
                return
            allowed = sorted(m for (m, p) in ROUTES if p == path)
            if self._playground_path(path):
                allowed = ["GET"]
            if allowed:
                self._error(
                    405,
                    "method_not_allowed",
                    f"use {', '.join(allowed)} on {path}",
                    {"Allow": ", ".join(allowed)},
                )
            else:
                shown = path[:100].encode("ascii", "backslashreplace").decode()
                self._error(404, "not_found", f"no such path: {shown}")
        except (OSError, ValueError):  # the client went away, or stopped reading or sending
            self.close_connection = True
            if self._run_handle is not None:
                # Its stream's run is canceled: a streaming LLM call stops at its next token,
                # so the model is free for the next request instead of a reply nobody reads.
                self._run_handle.cancel()
        except Exception as error:  # no traceback reaches a client
            self.service.log.write(json.dumps({"internal_error": repr(error)[:500]}) + "\n")
            self.close_connection = True
            if self._status == 500 and self._sent == 0:
                with contextlib.suppress(OSError):
                    self._error(500, "internal_error", "internal error")
        finally:
            if self._length:  # a body nobody read: where the next request starts is unknown
                self.close_connection = True
            if not self._handed_off:
                self._done()

    def _done(self) -> None:
        """The request's end: no longer in flight, counted, logged."""
        seconds = time.monotonic() - self._started
        self.service.end_request(self._label, self._status, seconds)
        self._log(self._status, self._sent, seconds)

    # The usual methods found as class attributes: the look-up through __getattr__ below is
    # two Python calls a request (the standard library's hasattr, then getattr).
    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _dispatch

    def __getattr__(self, name: str):
        """Every method (``do_GET``, ``do_TRACE``, ...) goes through :meth:`_dispatch`, so an
        unknown one gets a JSON 405, not the standard library's HTML 501."""
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None):
        """The standard library's own errors (a malformed request line, an oversized header)
        as the JSON error object, not an HTML page; the connection is closed after it."""
        self.close_connection = True
        kind = "bad_request" if code < 500 else "internal_error"
        body = json_bytes({"error": {"type": kind, "message": message or "", "step": None}})
        self._write_reply(code, body, "application/json", None)

    # -- runs ----------------------------------------------------------------------------------

    def _take_slot(self, wait: float | None = None) -> bool:
        if self.service.stopping.is_set():
            self.service.reject("shutting_down")
            self._error(503, "shutting_down", "the service is shutting down", {"Retry-After": "5"})
            return False
        if not self.service.acquire(wait):
            self.service.reject("too_many_requests")
            self._error(
                429,
                "too_many_requests",
                "too many runs at once: try again shortly",
                {"Retry-After": "2"},
            )
            return False
        return True

    _turn = False  # this request holds one of the service's turns (see Service.turns)

    def _end_turn(self) -> None:
        if self._turn:
            self._turn = False
            self.service.turns.release()

    def _invoke(self) -> None:
        """The run's Python steps run on this thread (:meth:`Engine.run`'s ``on_overrun``):
        a step that overruns its time is answered (504, the connection then closed) from
        another thread while this one is still inside it. Whichever of the two takes
        ``claim`` first answers, releases the run slot and the turn, and ends the request.

        A run whose steps all run in place (a bounded stretch of CPU on this thread, no wait
        for a worker) and its reply take a turn first (:attr:`Service.turns`)."""
        body = self._read_body()
        if body is None or not self._take_slot():
            return
        if self.service.engine.in_place_only:
            self._turn = self.service.turns.acquire(TURN_SECONDS)
        claim = threading.Lock()
        answered: list[threading.Event] = []  # made by overran(), before it claims

        def overran(error: RunnerError) -> None:  # the engine's watchdog thread
            self.close_connection = True  # before the claim: this thread may return any time
            answered.append(threading.Event())
            if claim.acquire(blocking=False):
                # A thread of its own: a client slow to read must not hold the watchdog.
                start_daemon(self._answer_overrun, error, answered[0])

        failure: RunnerError | None = None
        try:
            outputs = self.service.run(body[1], on_overrun=overran)
        except RunnerError as error:
            failure = error
            outputs = None
        except BaseException:
            if self._claimed(claim, answered):
                self._end_turn()
                raise
            return
        if not self._claimed(claim, answered):  # answered by overran(): the connection closes
            return
        try:
            if failure is not None:
                self._runner_error(failure)
            else:
                self._json(200, {"outputs": outputs})
        finally:
            self._end_turn()

    def _claimed(self, claim: threading.Lock, answered: list[threading.Event]) -> bool:
        """After the run: True when this thread answers (the run slot released here); False
        when ``overran`` claimed the answer first, once its answer is out (within the write
        limit) and the request handed off to it."""
        if claim.acquire(blocking=False):
            self.service.slots.release()
            return True
        answered[0].wait(WRITE_SECONDS)
        self._handed_off = True
        return False

    def _answer_overrun(self, error: RunnerError, answered: threading.Event) -> None:
        """The answer to a request whose step overran while its thread is still inside it:
        the error, then the connection closed (that thread ends when the step returns)."""
        try:
            self.service.slots.release()
            self._end_turn()
            with contextlib.suppress(OSError):
                self._runner_error(error)
                self.connection.shutdown(socket.SHUT_RDWR)
            self._done()
        finally:
            answered.set()

    def _events(self, inputs: Any) -> queue.Queue:
        """Run in a thread (a slot is held); its events, then ``result`` or ``error``, arrive
        on the queue returned."""
        events: queue.Queue = queue.Queue()
        service = self.service
        self._run_handle = handle = service.handle()

        def work() -> None:
            try:
                outputs = service.run(inputs, on_event=events.put, handle=handle)
                events.put({"event": "result", "outputs": outputs})
            except RunnerError as error:
                events.put({"event": "error", **error.to_json()})
            except Exception as error:  # a bug: reported as an event, never a traceback
                events.put(
                    {"event": "error", **RunnerError(f"internal error: {error!r}").to_json()}
                )
            finally:
                service.slots.release()

        start_daemon(work)
        return events

    def _stream(self) -> None:
        body = self._read_body()
        if body is None:
            return
        ndjson = "application/x-ndjson" in self.headers.get("Accept", "")
        if not self._take_slot():
            return
        events = self._events(body[1])
        self._start_events("application/x-ndjson" if ndjson else "text/event-stream")
        while True:
            event = events.get()
            text = json_bytes(event)
            if ndjson:
                self._event_bytes(text + b"\n")
            else:
                self._event_bytes(
                    b"event: " + event["event"].encode() + b"\ndata: " + text + b"\n\n"
                )
            if event["event"] in ("result", "error"):
                return

    def _batch(self) -> None:
        """A list of inputs, run under the same ``-j`` bound; results in order."""
        body = self._read_body()
        if body is None:
            return
        items, limit = body[1], self.service.settings.max_batch
        if not isinstance(items, list) or not 1 <= len(items) <= limit:
            self._error(400, "bad_input", f"the body must be a list of 1 to {limit} inputs objects")
            return
        if self.service.stopping.is_set():
            self._error(503, "shutting_down", "the service is shutting down", {"Retry-After": "5"})
            return
        service = self.service
        deadline = time.monotonic() + service.settings.request_timeout
        results: list[Any] = [None] * len(items)
        work: queue.Queue = queue.Queue()
        for index in range(len(items)):
            work.put(index)

        def worker() -> None:
            while True:
                try:
                    index = work.get_nowait()
                except queue.Empty:
                    return
                if not service.acquire(max(0.0, deadline - time.monotonic())):
                    results[index] = {"error": _error_object("step_timeout", "no run slot in time")}
                    continue
                try:
                    results[index] = {"outputs": service.run(items[index], deadline=deadline)}
                except RunnerError as error:
                    results[index] = error.to_json()
                except Exception as error:  # a bug in one item is that item's error
                    results[index] = RunnerError(f"internal error: {error!r}").to_json()
                finally:
                    service.slots.release()

        threads = [start_daemon(worker) for _ in range(min(service.settings.jobs, len(items)))]
        for thread in threads:
            thread.join()
        failed = sum(1 for r in results if "error" in r)
        self._json(200, {"results": results, "succeeded": len(items) - failed, "failed": failed})

    def _hook(self) -> None:
        body = self._read_body()
        if body is None:
            return
        request = body[1]
        if not isinstance(request, dict):
            self._error(400, "bad_input", "the body must be a JSON object")
            return
        callback = request.get("callback_url")
        problem = callback_problem(callback)
        if problem is None and "run_id" in request:
            problem = run_id_problem(request["run_id"])
        if problem is None and set(request) - {"inputs", "callback_url", "run_id"}:
            problem = "the body takes 'inputs', 'callback_url' and 'run_id' only"
        if problem:
            self._error(400, "bad_input", problem)
            return
        wanted = request.get("run_id")
        if wanted is not None and self.service.runs.get(wanted) is not None:
            self._json(200, {"run_id": wanted, "status_url": f"/runs/{wanted}", "created": False})
            return
        if not self._take_slot():
            return
        run_id, handle = self.service.runs.add(callback, wanted)
        if handle is None:  # the same id arrived twice at once: one run
            self.service.slots.release()
            self._json(200, {"run_id": run_id, "status_url": f"/runs/{run_id}", "created": False})
            return
        handle.observer = self.service.observer
        inputs = request.get("inputs", {})
        start_daemon(_hook_run, self.service, run_id, handle, inputs, callback)
        self._json(202, {"run_id": run_id, "status_url": f"/runs/{run_id}", "created": True})

    def _run_state(self, run_id: str) -> None:
        found = self.service.runs.get(run_id)
        if found is None:
            self._error(404, "not_found", "no such run")
        else:
            self._json(200, found)

    def _cancel(self, run_id: str) -> None:
        outcome = self.service.runs.cancel(run_id)
        if outcome is None:
            self._error(404, "not_found", "no such run")
        elif outcome == "finished":
            self._error(409, "conflict", "the run has already finished")
        else:
            self._json(202, {"run_id": run_id, "status": "canceling"})

    # -- about the service ---------------------------------------------------------------------

    def _healthz(self) -> None:
        self._json(200, {"status": "ok"})

    def _readyz(self) -> None:
        ok, report = self.service.readiness.check()
        self._json(200 if ok else 503, report)

    def _metrics(self) -> None:
        self._send(200, self.service.metrics.render(), "text/plain; version=0.0.4; charset=utf-8")

    def _schema(self) -> None:
        self._send(200, self.service.schema)

    def _openapi(self) -> None:
        self._send(200, self.service.openapi)

    # -- the playground (--playground) ---------------------------------------------------------

    def _playground_redirect(self) -> None:
        """To the folder: the page's URLs (its files, ``../stream``) are relative to it. The
        Location is relative too, so a proxy that mounts the service under a prefix keeps it."""
        self._send(301, b"", "text/plain; charset=utf-8", {"Location": "playground/"})

    def _playground(self, name: str) -> None:
        body = self.service.playground.get(name or "index.html")  # type: ignore[union-attr]
        if body is None:
            shown = name[:100].encode("ascii", "backslashreplace").decode()
            self._error(404, "not_found", f"no such playground file: {shown}")
            return
        headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
        self._send(200, body, content_type(name or "index.html"), headers)

    # -- the OpenAI face -----------------------------------------------------------------------

    def _models(self) -> None:
        self._json(200, openai_face.models(self.service.workflow))

    def _chat(self) -> None:
        body = self._read_body()
        if body is None:
            return
        workflow = self.service.workflow
        try:
            asked = openai_face.chat_request(workflow, body[1])
        except openai_face.FaceError as error:
            self._json(
                error.status,
                openai_face.error_body(error.status, error.message, error.code, error.param),
            )
            return
        if not self._take_slot():
            return
        completion = openai_face.Completion(workflow, asked.include_usage)
        if not asked.stream:
            handle = self.service.handle()
            try:
                outputs = self.service.run(asked.inputs, handle=handle)
            except RunnerError as error:
                self._runner_error(error)
                return
            finally:
                self.service.slots.release()
            text = openai_face.reply_text(workflow, outputs)
            self._json(200, completion.whole(text, handle.usage))
            return
        events = self._events(asked.inputs)
        handle = self._run_handle
        self._start_events("text/event-stream")
        step = openai_face.streamed_step(workflow)

        def send(value: Any) -> None:
            self._event_bytes(b"data: " + json_bytes(value) + b"\n\n")

        send(completion.chunk({"role": "assistant", "content": ""}))
        streamed = False
        while True:
            event = events.get()
            kind = event["event"]
            if kind == "token" and event.get("step") == step:
                send(completion.chunk({"content": event["text"]}))
                streamed = True
            elif kind == "result":
                if not streamed:
                    text = openai_face.reply_text(workflow, event["outputs"])
                    send(completion.chunk({"content": text}))
                send(completion.chunk({}, "stop"))
                if asked.include_usage:
                    send(completion.usage_chunk(handle.usage))
                self._event_bytes(b"data: [DONE]\n\n")
                return
            elif kind == "error":
                error = event["error"]
                status = STATUS_OF.get(error["type"], 500)
                send(openai_face.error_body(status, error["message"], error["type"]))
                return


def _error_object(kind: str, message: str) -> dict[str, Any]:
    return {"type": kind, "message": message, "step": None}


def _hook_run(service: Service, run_id: str, handle, inputs: Any, callback: str) -> None:
    """A webhook run, in its own thread (its slot is held); then the callback."""
    try:
        outputs = service.run(inputs, handle=handle)
        result = {"run_id": run_id, "status": "succeeded", "outputs": outputs}
    except RunnerError as error:
        status = "canceled" if error.error_type == "canceled" else "failed"
        result = {"run_id": run_id, "status": status, **error.to_json()}
    except Exception as error:
        result = {
            "run_id": run_id,
            "status": "failed",
            **RunnerError(f"internal error: {error!r}").to_json(),
        }
    finally:
        service.slots.release()
    service.runs.finish(run_id, **{k: v for k, v in result.items() if k != "run_id"})
    deliver_callback(service.runs, run_id, callback, result)
