"""A small Ollama client on ``http.client``: one ``POST /api/generate`` with ``stream: false``.

Network faults are the normal case for a container talking to a host service, so this module
classifies every way a call can go wrong into :class:`LLMUnreachableError` (nothing answered),
:class:`LLMError` (something answered badly) or :class:`StepTimeoutError` (too slow), and retries
only what a retry can fix (refused connections, resets, 5xx answers), a bounded number of times.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from typing import Any
from urllib.parse import urlsplit

from runner_template.errors import LLMError, LLMUnreachableError, StepTimeoutError

DEFAULT_ENDPOINT = "http://host.docker.internal:11434"
CONNECT_ATTEMPTS = 3
RETRY_BACKOFF_SECONDS = 0.5


def _connection(endpoint: str, timeout: float):
    """An HTTP(S) connection and the base path. ``http.client`` is imported here, on first use,
    because it pulls in the ``email`` package: 35 ms of start-up that a workflow without LLM
    steps should not pay."""
    import http.client

    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LLMError(f"Ollama endpoint {endpoint!r} is not an http(s) URL")
    if parts.scheme == "https":
        https = getattr(http.client, "HTTPSConnection", None)
        if https is None:  # pragma: no cover - only in images built without TLS
            raise LLMError(
                f"endpoint {endpoint} is https, but this image was built without TLS support:"
                " rebuild it with an https endpoint in the workflow"
            )
        conn = https(parts.hostname, parts.port or 443, timeout=timeout)
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    return conn, parts.path.rstrip("/")


class OllamaClient:
    """Calls one Ollama server. ``deadline`` (a ``time.monotonic()`` value) bounds each call."""

    def __init__(self, endpoint: str, log=None) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._log = log or (lambda message: print(message, file=sys.stderr))

    def generate(self, payload: dict[str, Any], deadline: float, step: str | None = None) -> dict:
        """POST ``payload`` to ``/api/generate`` and return Ollama's decoded reply object."""
        payload = {**payload, "stream": False}
        body = json.dumps(payload).encode("utf-8")
        last_error: Exception | None = None
        for attempt in range(1, CONNECT_ATTEMPTS + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                return self._post("/api/generate", body, remaining, step, payload.get("model"))
            except _Retryable as error:
                last_error = error.cause
                if attempt < CONNECT_ATTEMPTS:
                    pause = min(
                        RETRY_BACKOFF_SECONDS * 2 ** (attempt - 1), deadline - time.monotonic()
                    )
                    self._log(
                        f"[llm] {step}: {error.cause}; retry {attempt}/{CONNECT_ATTEMPTS - 1}"
                    )
                    if pause > 0:
                        time.sleep(pause)
        if last_error is None:
            raise StepTimeoutError(f"no time left to call Ollama at {self.endpoint}", step)
        if isinstance(last_error, LLMError):
            raise last_error
        raise LLMUnreachableError(
            f"cannot reach Ollama at {self.endpoint} ({last_error}) after {CONNECT_ATTEMPTS}"
            " attempts: is it running, and is OLLAMA_ENDPOINT right?",
            step,
        )

    def _post(self, path: str, body: bytes, timeout: float, step: str | None, model: Any) -> dict:
        import http.client  # already loaded by _connection; bound here for the except clause

        try:
            conn, base = _connection(self.endpoint, timeout)
        except LLMError as error:
            error.step = step
            raise
        try:
            conn.request(
                "POST", base + path, body=body, headers={"Content-Type": "application/json"}
            )
            response = conn.getresponse()
            raw = response.read()
        except TimeoutError as error:
            raise StepTimeoutError(
                f"Ollama at {self.endpoint} did not answer within {timeout:.1f} s", step
            ) from error
        except socket.gaierror as error:
            raise _Retryable(
                OSError(
                    f"cannot resolve host {urlsplit(self.endpoint).hostname!r}: {error.strerror}"
                )
            ) from error
        except (ConnectionError, http.client.HTTPException, OSError) as error:
            raise _Retryable(error) from error
        finally:
            conn.close()
        return self._decode(response.status, raw, step, model)

    def _decode(self, status: int, raw: bytes, step: str | None, model: Any) -> dict:
        text = raw.decode("utf-8", errors="replace")
        try:
            reply = json.loads(text)
        except json.JSONDecodeError:
            reply = None
        if status >= 500:
            message = reply.get("error") if isinstance(reply, dict) else text[:200]
            raise _Retryable(
                LLMError(f"Ollama at {self.endpoint} failed: HTTP {status}: {message}", step)
            )
        if status == 404 and isinstance(reply, dict) and "not found" in str(reply.get("error", "")):
            raise LLMError(
                f"model {model!r} is not available on {self.endpoint}: run 'ollama pull {model}'",
                step,
            )
        if status != 200:
            message = reply.get("error") if isinstance(reply, dict) else text[:200]
            raise LLMError(
                f"Ollama at {self.endpoint} refused the request: HTTP {status}: {message}", step
            )
        if not isinstance(reply, dict) or not isinstance(reply.get("response"), str):
            raise LLMError(
                f"Ollama at {self.endpoint} sent a reply that is not an Ollama generate object:"
                f" {text[:120]!r}",
                step,
            )
        return reply


class _Retryable(Exception):
    """Internal marker: ``cause`` may go away if the same request is sent again."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause
