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
from runner_template.jsonsafe import JSONLimitError
from runner_template.jsonsafe import loads as bounded_loads
from runner_template.redaction import clean, register_secret

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
    """The text and what the server says it spent: seconds (0 when it does not say) and tokens
    in (the prompt) and out (the reply), None when it does not say."""

    __slots__ = ("server_seconds", "text", "tokens_in", "tokens_out")

    def __init__(
        self,
        text: str,
        server_seconds: float = 0.0,
        tokens_in: int | None = None,
        tokens_out: int | None = None,
    ) -> None:
        self.text = text
        self.server_seconds = server_seconds
        self.tokens_in = tokens_in
        self.tokens_out = tokens_out


# OpenAI-compatible endpoints that refused ``stream_options`` (some servers reject fields they
# do not know): streamed calls to them leave it out, and count the streamed pieces instead.
_NO_STREAM_USAGE: set[str] = set()


def _count(value: Any) -> int | None:
    """A token count the server reported, or None for anything but a non-negative integer."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _usage(reply: Any) -> tuple[int | None, int | None]:
    """Tokens in and out from a reply: Ollama's ``prompt_eval_count``/``eval_count``, or
    OpenAI's ``usage.prompt_tokens``/``usage.completion_tokens``."""
    if not isinstance(reply, dict):
        return None, None
    usage = reply.get("usage")
    if isinstance(usage, dict):
        return _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))
    return _count(reply.get("prompt_eval_count")), _count(reply.get("eval_count"))


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

    def _headers(self, step: str | None) -> dict[str, str]:
        """JSON headers, with the key as ``Authorization: Bearer`` when one is set.

        A key with CR, LF or NUL (a Kubernetes secret read from a file ends in a newline) is
        refused here, once and naming the variable, never quoting the key: a retry cannot
        fix it.
        """
        key = os.environ.get(self.api_key_env)
        if not key:
            return http_client.json_headers()
        register_secret(key)
        if http_client.header_problem("Authorization", key) is not None:
            end = " (it ends with a newline: strip it)" if key.endswith(("\n", "\r")) else ""
            raise LLMError(
                f"{self.api_key_env} contains CR, LF or NUL, which no HTTP header can carry{end}",
                step,
            )
        return http_client.json_headers({"Authorization": f"Bearer {key}"})

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
        if stream and self.endpoint not in _NO_STREAM_USAGE:
            payload["stream_options"] = {"include_usage": True}
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
        headers = self._headers(step)
        try:
            reply = http_client.request(
                "POST",
                self._url(),
                deadline=deadline,
                body=body,
                headers=headers,
                log=self._retry_log(step),
            )
        except http_client.HTTPFailure as failure:
            raise self._failure(failure, step) from None
        return self._decode(reply.status, reply.body, ask.model, step)

    def _retry_log(self, step: str | None):
        if self._log is None:
            return None
        return lambda message: self._log(clean(f"[llm] {step}: {message}"))

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
        if isinstance(failure, http_client.BrokenReply):
            return LLMError(
                f"the LLM server at {self.shown} sent a broken reply: {failure.message}", step
            )
        return LLMError(failure.message, step)

    def _text(self, raw: bytes, step: str | None) -> str:
        """The reply as UTF-8. Other bytes are refused, not replaced: a reply with U+FFFD where
        the model's bytes were would be a silently different answer."""
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise LLMError(
                f"the LLM server at {self.shown} sent text that is not UTF-8"
                f" (byte {error.start}: {raw[error.start : error.start + 1]!r})",
                step,
            ) from None

    def _error_text(self, raw: bytes) -> str:
        """The server's own words from an error reply (its ``error`` field, else the text),
        short: bodies that are not JSON, too deep or too big to read give their first bytes."""
        text = raw.decode("utf-8", errors="replace")
        try:
            reply = bounded_loads(text)
        except ValueError:  # not JSON, too deep, a number too long
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
        text = self._text(raw, step)
        try:
            reply = bounded_loads(text)
        except JSONLimitError as error:
            raise LLMError(
                f"the LLM server at {self.shown} sent a reply this runner does not accept:"
                f" {error.where}: {error.message}",
                step,
            ) from None
        except ValueError:
            reply = None
        if self.provider == "ollama":
            if isinstance(reply, dict) and isinstance(reply.get("response"), str):
                seconds = _seconds(reply.get("total_duration"))
                return LLMReply(reply["response"], seconds, *_usage(reply))
            kind = "an Ollama generate object"
        else:
            content = _chat_content(reply, "message")
            if content is not None:
                return LLMReply(content, 0.0, *_usage(reply))
            kind = "an OpenAI chat completion"
        raise LLMError(
            f"the LLM server at {self.shown} sent a reply that is not {kind}: {text[:120]!r}", step
        )

    def _stream(self, ask, deadline, step, on_token) -> LLMReply:
        """Stream the reply; connection faults and 5xx are retried (with the backoff of
        :func:`http_client.request`) until the first line arrives, then a fault is the reply's."""
        payload = self._payload(ask, stream=True)
        body = json.dumps(payload).encode("utf-8")
        headers = self._headers(step)
        url = self._url()
        log = self._retry_log(step)
        last: http_client.HTTPFailure | None = None
        attempts = http_client.ATTEMPTS
        attempt = 0
        while attempt < attempts:
            attempt += 1
            if deadline - time.monotonic() <= 0:
                break
            try:
                with http_client.open_request(
                    "POST", url, body=body, headers=headers, deadline=deadline
                ) as exchange:
                    status = exchange.response.status
                    if status == 200:
                        try:
                            return self._read_stream(exchange, ask.model, step, on_token)
                        except (http_client.Unreachable, http_client.BrokenReply) as failure:
                            # Tokens may be out already: a cut stream is not retried here.
                            raise LLMError(
                                f"the LLM server at {self.shown} cut its stream: {failure.message}",
                                step,
                            ) from None
                    raw = exchange.read(64 * 1024, truncate=True)
                if self._refused_stream_options(status, raw, payload):
                    payload.pop("stream_options")
                    body = json.dumps(payload).encode("utf-8")
                    attempt -= 1  # not a fault of the server's: ask again at once, without it
                    continue
                if status < 500 or attempt == attempts:
                    self._check_status(status, raw, ask.model, step)
                last = http_client.Unreachable(f"HTTP {status}: {self._error_text(raw)}")
            except http_client.Unreachable as failure:
                last = failure
            except http_client.HTTPFailure as failure:
                raise self._failure(failure, step) from None
            if attempt < attempts:
                if log is not None:
                    log(f"{url}: {last.message}; retry {attempt}/{attempts - 1}")
                pause = http_client.backoff(attempt, deadline)
                if pause > 0:
                    time.sleep(pause)
        if last is None:
            raise StepTimeoutError(f"no time left to call the LLM server at {self.shown}", step)
        raise self._failure(
            http_client.Unreachable(f"{last.message} (after {attempts} attempts)"), step
        )

    def _refused_stream_options(self, status: int, raw: bytes, payload: dict) -> bool:
        """Whether an OpenAI-compatible server refused the request for its ``stream_options``
        (a 4xx naming it); the endpoint is then remembered as one that does not take it."""
        if "stream_options" not in payload or not 400 <= status < 500 or status in (401, 403):
            return False
        if "stream_options" not in self._error_text(raw):
            return False
        _NO_STREAM_USAGE.add(self.endpoint)
        return True

    def _read_stream(self, exchange, model, step, on_token) -> LLMReply:
        """The streamed pieces until the provider's end mark (Ollama's ``done: true``,
        OpenAI's ``[DONE]`` or a ``finish_reason``); a stream that stops before it is cut.

        Tokens: Ollama's last line carries the counts. An OpenAI stream asked for its usage
        sends it in a last chunk after the ``finish_reason`` one, so the reader goes on to
        ``[DONE]`` (a stream that ends after the ``finish_reason`` is still complete); when no
        usage arrives, the tokens out are the pieces that did (one token a chunk, as vLLM,
        llama.cpp and OpenAI stream) and the tokens in are unknown."""
        pieces: list[str] = []
        seconds = 0.0
        tokens: tuple[int | None, int | None] = (None, None)
        chunks = 0
        finished = False
        usage_asked = self.provider == "openai" and self.endpoint not in _NO_STREAM_USAGE
        for raw in http_client.iter_lines(exchange, http_client.max_reply_bytes()):
            line = self._text(raw, step).strip()
            if not line:
                continue
            if self.provider == "openai":
                if not line.startswith("data:"):
                    continue
                line = line[5:].strip()
                if line == "[DONE]":
                    finished = True
                    break
                if finished:  # after the finish_reason: only the usage chunk is still to come
                    event = self._event(line, step)
                    if isinstance(event, dict) and isinstance(event.get("usage"), dict):
                        tokens = _usage(event)
                    continue
            event = self._event(line, step)
            if isinstance(event, dict) and event.get("error"):
                raise LLMError(
                    f"the LLM server at {self.shown} failed while streaming:"
                    f" {self._error_text(json.dumps(event).encode())}",
                    step,
                )
            if self.provider == "ollama":
                piece = event.get("response") if isinstance(event, dict) else None
                done = isinstance(event, dict) and event.get("done") is True
                if done:
                    seconds = _seconds(event.get("total_duration"))
                    tokens = _usage(event)
            else:
                piece, done = _chat_content(event, "delta"), _finished(event)
                if isinstance(event, dict) and isinstance(event.get("usage"), dict):
                    tokens = _usage(event)
            if isinstance(piece, str) and piece:
                pieces.append(piece)
                chunks += 1
                on_token(piece)
            if done:
                finished = True
                if not (usage_asked and tokens == (None, None)):
                    break
        if not finished:
            mark = "done: true" if self.provider == "ollama" else "[DONE]"
            raise LLMError(
                f"the LLM server at {self.shown} ended its stream before the reply was complete"
                f" (no {mark})",
                step,
            )
        if self.provider == "openai" and tokens == (None, None):
            tokens = (None, chunks)
        return LLMReply("".join(pieces), seconds, *tokens)

    def _event(self, line: str, step: str | None) -> Any:
        """One streamed line as JSON, or the error that names what arrived."""
        try:
            return bounded_loads(line)
        except ValueError:  # not JSON, too deep, a number too long
            raise LLMError(
                f"the LLM server at {self.shown} streamed something that is not JSON"
                f" this runner accepts: {line[:120]!r}",
                step,
            ) from None


def _finished(event: Any) -> bool:
    """Whether an OpenAI stream chunk says the reply is complete (``finish_reason`` set)."""
    if not isinstance(event, dict) or not isinstance(event.get("choices"), list):
        return False
    return any(isinstance(c, dict) and c.get("finish_reason") for c in event["choices"])


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
