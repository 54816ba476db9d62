"""One HTTP client for everything the engine calls: LLM servers, API tools, webhooks.

Network faults are the normal case for a container talking to a host service, so every failure
is classified: nothing answered (:class:`Unreachable`: refused, unknown host, reset), too slow
(:class:`TimedOut`), or an answer. Only what a retry can fix is retried, a bounded number of
times, inside the caller's deadline. Replies are read up to ``max_bytes`` (a 200 MB reply is
refused after its first 16 MiB, not buffered whole). URLs in messages never show credentials
(:func:`redact`), and ``user:pass@`` in a URL becomes a Basic ``Authorization`` header.

``http.client`` is imported on first use: it pulls in the ``email`` package, 35 ms of start-up
that a workflow without network steps should not pay.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

DEFAULT_MAX_BYTES = 16 * 1024 * 1024
ATTEMPTS = 3
RETRY_BACKOFF_SECONDS = 0.5
MAX_LINE_BYTES = 1024 * 1024
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def max_reply_bytes() -> int:
    """``WORKFLOW_MAX_REPLY_BYTES`` (a positive integer), else 16 MiB."""
    try:
        value = int(os.environ.get("WORKFLOW_MAX_REPLY_BYTES", ""))
    except ValueError:
        return DEFAULT_MAX_BYTES
    return value if value > 0 else DEFAULT_MAX_BYTES


class HTTPFailure(Exception):
    """Base of the classified failures; ``message`` is safe to show (no credentials)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unreachable(HTTPFailure):
    """Nothing answered: refused, unknown host, reset before a reply."""


class TimedOut(HTTPFailure):
    """The deadline passed before the reply was complete."""


class BadURL(HTTPFailure):
    """Not an http(s) URL, or https in a program built without TLS."""


class TooLarge(HTTPFailure):
    """The reply is bigger than the allowed size."""


def redact(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@`` (for messages and logs)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def expand_env(text: str, what: str) -> str:
    """Replace ``${NAME}`` with the environment variable ``NAME`` (read now, at run time).

    Secrets stay out of bundles and images: the bundle holds ``${API_TOKEN}``, the container's
    environment the token. A missing variable is an error naming it, never an empty string.
    """

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        found = os.environ.get(name)
        if found is None:
            raise KeyError(f"environment variable {name} is not set (needed by {what})")
        return found

    return _ENV_REF.sub(value, text)


class Reply:
    """A complete HTTP reply (status, lower-cased headers, body bytes)."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def _connection(url: str, timeout: float):
    import http.client

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise BadURL(f"{redact(url)} is not a valid URL: {error}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadURL(f"{redact(url)!r} is not an http(s) URL")
    if parts.scheme == "https":
        https = getattr(http.client, "HTTPSConnection", None)
        if https is None:  # pragma: no cover - only in images built without TLS
            raise BadURL(
                f"{redact(url)} is https, but this program was built without TLS support:"
                " rebuild the image with an https endpoint in the workflow"
            )
        conn = https(parts.hostname, port or 443, timeout=timeout)
    else:
        conn = http.client.HTTPConnection(parts.hostname, port or 80, timeout=timeout)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    auth = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        auth = "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")
    return conn, path, auth


def _read_bounded(response, max_bytes: int, url: str) -> bytes:
    length = response.getheader("Content-Length")
    if length and length.isdigit() and int(length) > max_bytes:
        raise TooLarge(f"{redact(url)} sent {length} bytes; replies over {max_bytes} are refused")
    data = response.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise TooLarge(f"{redact(url)} sent more than {max_bytes} bytes; the reply was refused")
    return data


def _classify(error: BaseException, url: str, timeout: float) -> HTTPFailure:
    import http.client

    if isinstance(error, HTTPFailure):
        return error
    if isinstance(error, TimeoutError):
        return TimedOut(f"{redact(url)} did not answer within {timeout:.1f} s")
    if isinstance(error, socket.gaierror):
        host = urlsplit(url).hostname
        return Unreachable(f"cannot resolve host {host!r}: {error.strerror}")
    if isinstance(error, ConnectionError | http.client.HTTPException | OSError):
        return Unreachable(str(error) or type(error).__name__)
    return Unreachable(repr(error))


def open_request(
    method: str,
    url: str,
    *,
    body: bytes | None,
    headers: dict[str, str],
    timeout: float,
):
    """Send one request; return ``(connection, response)`` with the body still unread."""
    conn, path, auth = _connection(url, timeout)
    all_headers = dict(headers)
    if auth and not any(k.lower() == "authorization" for k in all_headers):
        all_headers["Authorization"] = auth
    try:
        conn.request(method, path, body=body, headers=all_headers)
        return conn, conn.getresponse()
    except BaseException as error:
        conn.close()
        raise _classify(error, url, timeout) from None


def request(
    method: str,
    url: str,
    *,
    deadline: float,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    max_bytes: int | None = None,
    retry_status: Callable[[int], bool] = lambda status: status >= 500,
    log: Callable[[str], None] | None = None,
    attempts: int = ATTEMPTS,
) -> Reply:
    """Send a request, retrying what a retry can fix, all inside ``deadline`` (monotonic).

    Raises :class:`Unreachable` (after the last attempt), :class:`TimedOut`, :class:`BadURL` or
    :class:`TooLarge`. A status that ``retry_status`` accepts is retried; the last such reply is
    returned for the caller to judge.
    """
    limit = max_bytes or max_reply_bytes()
    last: HTTPFailure | Reply | None = None
    for attempt in range(1, attempts + 1):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            conn, response = open_request(
                method, url, body=body, headers=headers or {}, timeout=remaining
            )
            try:
                data = _read_bounded(response, limit, url)
            except BaseException as error:
                raise _classify(error, url, remaining) from None
            finally:
                conn.close()
            reply = Reply(response.status, _lower(response.getheaders()), data)
            if not retry_status(reply.status):
                return reply
            last = reply
            reason = f"HTTP {reply.status}"
        except Unreachable as error:
            last = error
            reason = error.message
        if attempt < attempts:
            pause = min(RETRY_BACKOFF_SECONDS * 2 ** (attempt - 1), deadline - time.monotonic())
            if log is not None:
                log(f"{redact(url)}: {reason}; retry {attempt}/{attempts - 1}")
            if pause > 0:
                time.sleep(pause)
    if isinstance(last, Reply):
        return last
    if last is None:
        raise TimedOut(f"no time left to call {redact(url)}")
    raise Unreachable(f"{last.message} (after {attempts} attempts)")


def _lower(headers: list[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers}


def iter_lines(response, max_bytes: int, url: str) -> Iterator[bytes]:
    """The lines of a streamed reply (NDJSON, Server-Sent Events), bounded in total size."""
    total = 0
    while True:
        line = response.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        total += len(line)
        if len(line) > MAX_LINE_BYTES or total > max_bytes:
            raise TooLarge(f"{redact(url)} streamed more than the allowed size")
        yield line


def json_headers(extra: dict[str, Any] | None = None) -> dict[str, str]:
    return {"Content-Type": "application/json", "Accept": "application/json", **(extra or {})}
