"""The engine's host inside Pyodide (a Web Worker): runs one request, HTTP through ``fetch``.

Pyodide has neither threads nor sockets. The engine detects the first (``engine.THREADS``);
for the second this module puts a ``fetch``-based :func:`open_request` in place of
``http_client.open_request``, the one function every LLM, API and retry path sends through.
The call blocks the Python stack on the browser's promises with ``run_sync`` (JavaScript
Promise Integration), so the engine stays synchronous and a streamed reply is read chunk by
chunk as it arrives: tokens reach the page while the model writes them.

Loaded by ``worker.js``; not imported anywhere else (``js`` and ``pyodide`` exist only there).
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import js
from pyodide.ffi import JsException, can_run_sync, run_sync, to_js

from runner_template import http_client
from runner_template.engine import Engine
from runner_template.errors import RunnerError
from runner_template.llm import DEFAULT_KEY_ENV

CORS_HINT = (
    "the browser could not reach it: is it running, and does it allow this page's origin"
    " (CORS: OLLAMA_ORIGINS for Ollama, llm-server --cors ORIGIN)?"
)


class _Aborted(Exception):
    pass


def _await(promise: Any) -> Any:
    try:
        return run_sync(promise)
    except JsException as error:
        if getattr(error, "name", "") == "AbortError" or "abort" in str(error).lower():
            raise _Aborted(str(error)) from None
        raise


class FetchResponse:
    """The parts of ``http.client.HTTPResponse`` the engine reads, over a ``fetch`` reply."""

    def __init__(self, reply: Any, controller: Any, timer: Any, url: str) -> None:
        self.status = int(reply.status)
        self._headers = [(str(k), str(v)) for k, v in reply.headers.entries()]
        self._reader = reply.body.getReader() if reply.body else None
        self._controller = controller
        self._timer = timer
        self._url = url
        self._buffer = bytearray()
        self._done = self._reader is None

    def getheader(self, name: str, default: str | None = None) -> str | None:
        for key, value in self._headers:
            if key.lower() == name.lower():
                return value
        return default

    def getheaders(self) -> list[tuple[str, str]]:
        return list(self._headers)

    def _fill(self) -> bool:
        """Read one more chunk into the buffer; False at the end of the body."""
        if self._done:
            return False
        try:
            chunk = _await(self._reader.read())
        except _Aborted:
            raise TimeoutError(f"{http_client.redact(self._url)} stopped answering") from None
        except JsException as error:
            raise ConnectionError(f"{http_client.redact(self._url)}: {error}") from None
        if chunk.done:
            self._done = True
            return False
        self._buffer += chunk.value.to_bytes()
        return True

    def read(self, size: int = -1) -> bytes:
        while (size < 0 or len(self._buffer) < size) and self._fill():
            pass
        count = len(self._buffer) if size < 0 else min(size, len(self._buffer))
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    def read1(self, size: int = -1) -> bytes:
        """What has arrived (at most ``size`` bytes), waiting for one chunk when none has."""
        if not self._buffer:
            self._fill()
        count = len(self._buffer) if size < 0 else min(size, len(self._buffer))
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    def readline(self, limit: int = -1) -> bytes:
        while b"\n" not in self._buffer and (limit < 0 or len(self._buffer) < limit):
            if not self._fill():
                break
        end = self._buffer.find(b"\n")
        count = len(self._buffer) if end < 0 else end + 1
        if limit >= 0:
            count = min(count, limit)
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    def close(self) -> None:
        js.clearTimeout(self._timer)
        if not self._done:
            self._controller.abort()
            self._done = True


class FetchExchange(http_client.Exchange):
    """``http_client.Exchange`` over a ``fetch`` reply (the engine reads replies through it).

    Pyodide has no threads for the exchange's watchdog: the JavaScript timer that aborts the
    fetch at the deadline stands in for it, and a read it cuts short is the deadline's.
    """

    def __init__(self, response: FetchResponse, url: str, deadline: float) -> None:
        self.conn = None  # no socket: remaining() has none to bound
        self.url = url
        self.deadline = deadline
        self.response = response
        self.expired = False

    def close(self) -> None:
        self.response.close()


def _split_credentials(url: str) -> tuple[str, str | None]:
    """``fetch`` refuses URLs with ``user:password@``: they become a Basic header instead."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, None
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    plain = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return plain, "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")


def open_request(
    method: str, url: str, *, body: bytes | None, headers: dict, deadline: float
) -> FetchExchange:
    """``http_client.open_request`` over ``fetch``: the same classified failures."""
    timeout = deadline - time.monotonic()
    if timeout <= 0:
        raise http_client.TimedOut(f"no time left to call {http_client.redact(url)}")
    try:
        parts = urlsplit(url)
    except ValueError as error:
        raise http_client.BadURL(f"{http_client.redact(url)} is not a valid URL: {error}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise http_client.BadURL(f"{http_client.redact(url)!r} is not an http(s) URL")
    target, auth = _split_credentials(url)
    sent = dict(headers)
    if auth and not any(k.lower() == "authorization" for k in sent):
        sent["Authorization"] = auth
    controller = js.AbortController.new()
    timer = js.setTimeout(controller.abort.bind(controller), max(1, int(timeout * 1000)))
    options: dict[str, Any] = {"method": method, "headers": sent, "signal": controller.signal}
    if body is not None:
        options["body"] = to_js(body)
    try:
        reply = _await(js.fetch(target, to_js(options, dict_converter=js.Object.fromEntries)))
    except _Aborted:
        js.clearTimeout(timer)
        raise http_client.TimedOut(
            f"{http_client.redact(url)} did not answer within {timeout:.1f} s"
        ) from None
    except JsException as error:
        js.clearTimeout(timer)
        raise http_client.Unreachable(f"{error}; {CORS_HINT}") from None
    return FetchExchange(FetchResponse(reply, controller, timer, url), url, deadline)


def _key_variables(bundle: dict[str, Any]) -> set[str]:
    """The variables the bundle's LLM tools read their API key from (``api_key_env``)."""
    parts = [bundle, *bundle.get("workflows", {}).values()]
    tools = [t for p in parts for t in p.get("tools", {}).values() if t.get("kind") == "llm"]
    return {t.get("api_key_env") or DEFAULT_KEY_ENV for t in tools} | {DEFAULT_KEY_ENV}


def install() -> None:
    """Send every HTTP call of the engine through ``fetch``."""
    http_client.open_request = open_request


def run(request_json: str, bundle_json: str, post: Callable[[str], None]) -> None:
    """Run one request (``{"inputs", "endpoint", "provider", "api_key"}``) on the bundle.

    ``post`` gets each event as a JSON line, the same events as ``--stream`` and a service's
    ``/stream``: ``step_started``, ``step_finished``, ``token``, then ``result`` or ``error``.
    """
    request = json.loads(request_json)
    if not can_run_sync():
        error = RunnerError(
            "this browser cannot run the workflow: it lacks WebAssembly JavaScript Promise"
            " Integration (Chrome or Edge 137 and later)"
        )
        post(json.dumps({"event": "error", **error.to_json()}))
        return
    install()
    bundle = json.loads(bundle_json)
    for name in _key_variables(bundle):  # the page's key, as each LLM tool reads its key
        if request.get("api_key"):
            os.environ[name] = request["api_key"]
        else:
            os.environ.pop(name, None)

    def emit(event: dict[str, Any]) -> None:
        post(json.dumps(event, ensure_ascii=False))

    started = time.monotonic()
    try:
        engine = Engine(
            bundle,
            endpoint=request.get("endpoint") or None,
            provider=request.get("provider") or None,
        )
        outputs = engine.run(request.get("inputs"), on_event=emit)
    except RunnerError as error:
        emit({"event": "error", **error.to_json()})
        return
    except Exception as error:  # a bug: reported, not a silent dead worker
        emit({"event": "error", **RunnerError(repr(error)).to_json()})
        return
    emit({"event": "result", "outputs": outputs, "seconds": round(time.monotonic() - started, 3)})
