"""LLM calls over HTTP: Ollama's ``/api/generate`` or an OpenAI-compatible ``/v1/chat/completions``.

One request shape goes in (model, prompt, system, options, format), the reply text comes out,
optionally token by token (``on_token``) as the server streams it. Providers:

* ``ollama`` (default): ``POST /api/generate``, NDJSON when streaming;
* ``openai``: ``POST /v1/chat/completions`` (vLLM, llama.cpp's server, LM Studio, ...),
  Server-Sent Events when streaming.

Failures map to the runner's classes: :class:`LLMUnreachableError` (nothing answered, after
retries), :class:`LLMError` (an answer that is not usable: unknown model, refused credentials,
HTTP errors, garbage, too large), :class:`StepTimeoutError`. An API key (``OLLAMA_API_KEY``, or
the variable a tool names in ``api_key_env``) is sent as ``Authorization: Bearer`` and appears
in no message; endpoints in messages are shown without credentials.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

from runner_template import http_client
from runner_template.errors import LLMError, LLMUnreachableError, StepTimeoutError

DEFAULT_ENDPOINT = "http://host.docker.internal:11434"
PROVIDERS = ("ollama", "openai")
DEFAULT_KEY_ENV = "OLLAMA_API_KEY"
OPENAI_OPTIONS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "min_p": "min_p",
    "seed": "seed",
    "stop": "stop",
    "num_predict": "max_tokens",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "repeat_penalty": "repeat_penalty",
}


class LLMRequest:
    """What to ask: provider-neutral."""

    __slots__ = ("format", "model", "options", "prompt", "system")

    def __init__(
        self,
        model: str,
        prompt: str,
        system: str | None = None,
        options: dict[str, Any] | None = None,
        format: Any = None,
    ) -> None:
        self.model = model
        self.prompt = prompt
        self.system = system
        self.options = options or {}
        self.format = format


class LLMReply:
    """The text and what the server says it spent (seconds; 0 when it does not say)."""

    __slots__ = ("server_seconds", "text")

    def __init__(self, text: str, server_seconds: float = 0.0) -> None:
        self.text = text
        self.server_seconds = server_seconds


def _seconds(nanoseconds: Any) -> float:
    """Ollama's ``total_duration`` (ns) as seconds; anything but a number counts as unknown."""
    if isinstance(nanoseconds, int | float) and not isinstance(nanoseconds, bool):
        return max(0.0, float(nanoseconds) / 1e9)
    return 0.0


class LLMClient:
    """Calls one LLM server; ``deadline`` (``time.monotonic()``) bounds every call."""

    def __init__(
        self,
        endpoint: str,
        provider: str = "ollama",
        api_key_env: str | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        if provider not in PROVIDERS:
            raise LLMError(f"unknown LLM provider {provider!r}: use one of {', '.join(PROVIDERS)}")
        self.endpoint = endpoint.rstrip("/")
        self.shown = http_client.redact(self.endpoint)
        self.provider = provider
        self.api_key_env = api_key_env or DEFAULT_KEY_ENV
        self._log = log

    # -- requests ------------------------------------------------------------------------------

    def _url(self) -> str:
        if self.provider == "ollama":
            return self.endpoint + "/api/generate"
        if self.endpoint.endswith("/v1"):
            return self.endpoint + "/chat/completions"
        return self.endpoint + "/v1/chat/completions"

    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self.api_key_env)
        return http_client.json_headers({"Authorization": f"Bearer {key}"} if key else None)

    def _payload(self, ask: LLMRequest, stream: bool) -> dict[str, Any]:
        if self.provider == "ollama":
            payload: dict[str, Any] = {"model": ask.model, "prompt": ask.prompt, "stream": stream}
            if ask.system:
                payload["system"] = ask.system
            if ask.options:
                payload["options"] = ask.options
            if ask.format is not None:
                payload["format"] = ask.format
            return payload
        messages = [{"role": "user", "content": ask.prompt}]
        if ask.system:
            messages.insert(0, {"role": "system", "content": ask.system})
        payload = {"model": ask.model, "messages": messages, "stream": stream}
        for key, value in ask.options.items():
            if key in OPENAI_OPTIONS:
                payload[OPENAI_OPTIONS[key]] = value
        if ask.format == "json":
            payload["response_format"] = {"type": "json_object"}
        elif isinstance(ask.format, dict):
            payload["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": ask.format},
            }
        return payload

    # -- calls -------------------------------------------------------------------------------

    def generate(
        self,
        ask: LLMRequest,
        deadline: float,
        step: str | None = None,
        on_token: Callable[[str], None] | None = None,
    ) -> LLMReply:
        """Ask once (retrying connection faults and 5xx answers); return the whole reply."""
        if on_token is not None:
            return self._stream(ask, deadline, step, on_token)
        body = json.dumps(self._payload(ask, stream=False)).encode("utf-8")
        try:
            reply = http_client.request(
                "POST",
                self._url(),
                deadline=deadline,
                body=body,
                headers=self._headers(),
                log=self._retry_log(step),
            )
        except http_client.HTTPFailure as failure:
            raise self._failure(failure, step) from None
        return self._decode(reply.status, reply.body, ask.model, step)

    def _retry_log(self, step: str | None):
        if self._log is None:
            return None
        return lambda message: self._log(f"[llm] {step}: {message}")

    def _failure(self, failure: http_client.HTTPFailure, step: str | None) -> Exception:
        if isinstance(failure, http_client.Unreachable):
            return LLMUnreachableError(
                f"cannot reach the LLM server at {self.shown} ({failure.message}): is it"
                " running, and is OLLAMA_ENDPOINT right?",
                step,
            )
        if isinstance(failure, http_client.TimedOut):
            return StepTimeoutError(
                f"the LLM server at {self.shown} did not answer in time: {failure.message}", step
            )
        return LLMError(failure.message, step)

    def _error_text(self, raw: bytes) -> str:
        text = raw.decode("utf-8", errors="replace")
        try:
            reply = json.loads(text)
        except json.JSONDecodeError:
            return text[:200]
        error = reply.get("error") if isinstance(reply, dict) else None
        if isinstance(error, dict):
            error = error.get("message")
        return str(error)[:300] if error is not None else text[:200]

    def _check_status(self, status: int, raw: bytes, model: str, step: str | None) -> None:
        if status == 200:
            return
        message = self._error_text(raw)
        if status == 404 and ("not found" in message or "does not exist" in message):
            hint = f": run 'ollama pull {model}'" if self.provider == "ollama" else ""
            raise LLMError(f"model {model!r} is not available on {self.shown}{hint}", step)
        if status in (401, 403):
            raise LLMError(
                f"the LLM server at {self.shown} refused the credentials (HTTP {status}):"
                f" set {self.api_key_env} to a valid key",
                step,
            )
        verb = "failed" if status >= 500 else "refused the request"
        raise LLMError(f"the LLM server at {self.shown} {verb}: HTTP {status}: {message}", step)

    def _decode(self, status: int, raw: bytes, model: str, step: str | None) -> LLMReply:
        self._check_status(status, raw, model, step)
        text = raw.decode("utf-8", errors="replace")
        try:
            reply = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            reply = None
        if self.provider == "ollama":
            if isinstance(reply, dict) and isinstance(reply.get("response"), str):
                return LLMReply(reply["response"], _seconds(reply.get("total_duration")))
            kind = "an Ollama generate object"
        else:
            content = _chat_content(reply, "message")
            if content is not None:
                return LLMReply(content)
            kind = "an OpenAI chat completion"
        raise LLMError(
            f"the LLM server at {self.shown} sent a reply that is not {kind}: {text[:120]!r}", step
        )

    def _stream(self, ask, deadline, step, on_token) -> LLMReply:
        body = json.dumps(self._payload(ask, stream=True)).encode("utf-8")
        url = self._url()
        last: http_client.HTTPFailure | None = None
        for attempt in range(1, http_client.ATTEMPTS + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                conn, response = http_client.open_request(
                    "POST", url, body=body, headers=self._headers(), timeout=remaining
                )
            except http_client.Unreachable as failure:
                last = failure
                if attempt < http_client.ATTEMPTS:
                    time.sleep(min(http_client.RETRY_BACKOFF_SECONDS * attempt, 2.0))
                continue
            except http_client.HTTPFailure as failure:
                raise self._failure(failure, step) from None
            try:
                if response.status != 200:
                    raw = response.read(64 * 1024)
                    if response.status >= 500 and attempt < http_client.ATTEMPTS:
                        last = http_client.Unreachable(f"HTTP {response.status}")
                        continue
                    self._check_status(response.status, raw, ask.model, step)
                return self._read_stream(response, url, ask.model, step, on_token)
            except http_client.HTTPFailure as failure:
                raise self._failure(failure, step) from None
            except TimeoutError:
                raise self._failure(
                    http_client.TimedOut(f"{self.shown} stopped streaming"), step
                ) from None
            except OSError as error:
                raise self._failure(http_client.Unreachable(str(error)), step) from None
            finally:
                conn.close()
        if last is None:
            raise StepTimeoutError(f"no time left to call the LLM server at {self.shown}", step)
        raise self._failure(http_client.Unreachable(f"{last.message} (after retries)"), step)

    def _read_stream(self, response, url, model, step, on_token) -> LLMReply:
        pieces: list[str] = []
        seconds = 0.0
        for raw in http_client.iter_lines(response, http_client.max_reply_bytes(), url):
            line = raw.decode("utf-8", errors="replace").strip()
            if not line:
                continue
            if self.provider == "openai":
                if not line.startswith("data:"):
                    continue
                line = line[5:].strip()
                if line == "[DONE]":
                    break
            try:
                event = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                raise LLMError(
                    f"the LLM server at {self.shown} streamed something that is not JSON:"
                    f" {line[:120]!r}",
                    step,
                ) from None
            if isinstance(event, dict) and event.get("error"):
                raise LLMError(
                    f"the LLM server at {self.shown} failed while streaming:"
                    f" {self._error_text(json.dumps(event).encode())}",
                    step,
                )
            if self.provider == "ollama":
                piece = event.get("response") if isinstance(event, dict) else None
                done = isinstance(event, dict) and event.get("done")
                if done:
                    seconds = _seconds(event.get("total_duration"))
            else:
                piece, done = _chat_content(event, "delta"), False
            if isinstance(piece, str) and piece:
                pieces.append(piece)
                on_token(piece)
            if done:
                break
        return LLMReply("".join(pieces), seconds)


def _chat_content(reply: Any, key: str) -> str | None:
    """``choices[0][key].content`` of an OpenAI-style object, or None."""
    if not isinstance(reply, dict):
        return None
    choices = reply.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    part = choices[0].get(key)
    if not isinstance(part, dict):
        return None
    content = part.get("content")
    if content is None and key == "delta":
        return ""
    return content if isinstance(content, str) else None
