"""One HTTP client for everything the engine calls: LLM servers, API tools, webhooks.

Network faults are the normal case for a container talking to a host service, so every failure
is classified: nothing answered (:class:`Unreachable`: refused, unknown host, reset), too slow
(:class:`TimedOut`), a request that cannot be sent (:class:`BadURL`, :class:`BadHeader`), or an
answer. Only what a retry can fix is retried, a bounded number of times, inside the caller's
deadline.

Every call has one ``deadline`` (a ``time.monotonic()`` value, in seconds) for the whole reply,
headers and body: socket timeouts alone bound each read, and a server that drips one byte a
second would hold a call for ever. A watchdog closes the socket when the deadline passes, and
the connection is closed whenever a call ends or is abandoned. Replies are read up to
``max_bytes`` (a 200 MB reply is refused after its first 16 MiB, not buffered whole). Messages
never show credentials (:mod:`runner_template.redaction`), and ``user:pass@`` in a URL becomes a
Basic ``Authorization`` header.

``http.client`` is imported on first use: it pulls in the ``email`` package, 35 ms of start-up
that a workflow without network steps should not pay.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

from runner_template.redaction import clean, register_secret
from runner_template.redaction import redact as redact  # the engine's one redaction

DEFAULT_MAX_BYTES = 16 * 1024 * 1024
ATTEMPTS = 3
RETRY_BACKOFF_SECONDS = 0.5
MAX_LINE_BYTES = 1024 * 1024
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_BAD_HEADER_BYTES = re.compile(r"[\r\n\x00]")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def max_reply_bytes() -> int:
    """``WORKFLOW_MAX_REPLY_BYTES`` (a positive integer), else 16 MiB."""
    text = os.environ.get("WORKFLOW_MAX_REPLY_BYTES", "")
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        return DEFAULT_MAX_BYTES
    value = int(text)
    return value if value > 0 else DEFAULT_MAX_BYTES


class HTTPFailure(Exception):
    """Base of the classified failures; ``message`` is safe to show (redacted, one line)."""

    def __init__(self, message: str) -> None:
        message = clean(message)
        super().__init__(message)
        self.message = message


class Unreachable(HTTPFailure):
    """Nothing answered: refused, unknown host, reset before a reply."""


class TimedOut(HTTPFailure):
    """The deadline passed before the reply was complete."""


class BadURL(HTTPFailure):
    """Not an http(s) URL, or https in a program built without TLS."""


class BadHeader(HTTPFailure):
    """A header name or value that cannot be sent (CR, LF or NUL): refused before sending."""


class TooLarge(HTTPFailure):
    """The reply is bigger than the allowed size."""


class BrokenReply(HTTPFailure):
    """The server answered, but the reply ended early or is not HTTP."""


def expand_env(text: str, what: str) -> str:
    """Replace ``${NAME}`` with the environment variable ``NAME`` (read now, at run time).

    Secrets stay out of bundles and images: the bundle holds ``${API_TOKEN}``, the container's
    environment the token. Every expanded value is registered as a secret, so no message shows
    it. A missing variable is an error naming it, never an empty string.
    """

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        found = os.environ.get(name)
        if found is None:
            raise KeyError(f"environment variable {name} is not set (needed by {what})")
        register_secret(found)
        return found

    return ENV_REFERENCE.sub(value, text)


def header_problem(name: str, value: str) -> str | None:
    """Why a header cannot be sent, without quoting it (it may hold a key), or None."""
    if not _TOKEN.fullmatch(name):
        return "a header name is empty or has characters a header name cannot have"
    if _BAD_HEADER_BYTES.search(value):
        end = " (it ends with a newline)" if value.endswith(("\n", "\r")) else ""
        return f"the value of header {name} contains CR, LF or NUL{end}"
    return None


def check_headers(headers: dict[str, str]) -> None:
    """Refuse, once and before connecting, headers that would be refused or split a request."""
    for name, value in headers.items():
        problem = header_problem(str(name), str(value))
        if problem is not None:
            raise BadHeader(f"cannot send the request: {problem}")


class Reply:
    """A complete HTTP reply (status, lower-cased headers, body bytes)."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def _no_idna(url: str) -> BadURL:
    return BadURL(
        f"{url}: the host name is not ASCII, and this image has no IDNA support (unicodedata):"
        " write the host in its ASCII form (xn--...)"
    )


def ascii_host(host: str, url: str) -> str:
    """``host`` as the resolver takes it: as it is when ASCII, else its IDNA form (``xn--``).

    The ``idna`` codec's module imports ``unicodedata``, which the shared program leaves to the
    module layer of workflows that run Python code or call https
    (``rules/stages/modules_layer.py``): an image without it refuses a host name that is not
    ASCII in one line (:class:`BadURL`), before any connection."""
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except LookupError:  # encodings.idna did not import: no unicodedata in this image
        raise _no_idna(url) from None
    except UnicodeError:
        raise BadURL(f"{url}: the host name is not a valid internationalized name") from None


def _create_connection(address: tuple[str, int], timeout: float, source_address=None):
    """``socket.create_connection`` with the host as ASCII bytes: CPython's ``getaddrinfo``
    encodes a ``str`` host with the ``idna`` codec, ASCII or not (``socketmodule.c``), and
    that codec imports ``unicodedata``; bytes go to the resolver as they are. (``connect`` to
    the address it returns takes an ASCII ``str`` as it is.)"""
    host, port = address
    return socket.create_connection((host.encode("ascii"), port), timeout, source_address)


def split_url(url: str) -> tuple[SplitResult, int | None]:
    """``url``'s parts and its port, or :class:`BadURL` in one line: a malformed URL or port,
    or a host name that is not ASCII in an image without ``unicodedata`` (``urlsplit`` checks
    such a name with it, and the import fails). Every URL the runner takes goes through here:
    the LLM endpoint, API tools, serve's callbacks."""
    try:
        parts = urlsplit(url)
        return parts, parts.port
    except ValueError:
        raise BadURL(f"{url} is not a valid URL (check the host and port)") from None
    except ImportError:
        raise _no_idna(url) from None


def _connection(url: str, timeout: float):
    import http.client

    parts, port = split_url(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadURL(f"{url!r} is not an http(s) URL")
    host = ascii_host(parts.hostname, url)
    if parts.scheme == "https":
        https = getattr(http.client, "HTTPSConnection", None)
        if https is None:  # pragma: no cover - only in images built without TLS
            raise BadURL(
                f"{url} is https, but this program was built without TLS support:"
                " rebuild the image with an https endpoint in the workflow"
            )
        conn = https(host, port or 443, timeout=timeout)
    else:
        conn = http.client.HTTPConnection(host, port or 80, timeout=timeout)
    conn._create_connection = _create_connection  # the hook HTTPConnection.connect calls
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    auth = None
    if parts.username is not None:
        user, password = unquote(parts.username), unquote(parts.password or "")
        register_secret(password)
        auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return conn, path, auth


class Exchange:
    """One request's connection and reply, bounded by one deadline for the whole reply.

    A watchdog timer shuts the socket down when the deadline passes, so a read blocked on a
    drip-feeding server returns at once; :meth:`close` (also on ``with`` exit) stops the
    watchdog and closes the connection.
    """

    def __init__(self, conn, url: str, deadline: float) -> None:
        self.conn = conn
        self.url = url
        self.deadline = deadline
        self.response = None
        self.expired = False
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _expire(self) -> None:
        self.expired = True
        sock = getattr(self.conn, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)

    def remaining(self) -> float:
        """Seconds left; :class:`TimedOut` when none are, and sockets wait at most that long."""
        left = self.deadline - time.monotonic()
        if left <= 0 or self.expired:
            raise self.timed_out()
        sock = getattr(self.conn, "sock", None)
        if sock is not None:
            sock.settimeout(left)
        return left

    def timed_out(self) -> TimedOut:
        return TimedOut(f"{self.url} did not send its whole reply within the deadline")

    def fail(self, error: BaseException) -> HTTPFailure:
        """``error`` classified; a fault the watchdog caused is the deadline's."""
        if self.expired or time.monotonic() >= self.deadline:
            return self.timed_out()
        return _classify(error, self.url)

    def close(self) -> None:
        self._timer.cancel()
        if self._timer is not threading.current_thread():
            # Wait for the watchdog to end: a daemon thread still waking up while the program
            # exits would end through pthread_exit, which needs libgcc_s at that moment.
            self._timer.join()
        self.conn.close()

    def __enter__(self) -> Exchange:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self, max_bytes: int, truncate: bool = False) -> bytes:
        """The whole body, at most ``max_bytes``, before the deadline; a bigger one is
        :class:`TooLarge`, or with ``truncate`` its first ``max_bytes`` (an error reply)."""
        response = self.response
        length = response.getheader("Content-Length") or ""
        numeric = length.isascii() and length.isdigit() and len(length) < 19
        if not truncate and numeric and int(length) > max_bytes:
            raise TooLarge(f"{self.url} sent {length} bytes; replies over {max_bytes} are refused")
        pieces: list[bytes] = []
        total = 0
        try:
            while True:
                self.remaining()
                piece = response.read1(min(64 * 1024, max_bytes + 1 - total))
                if not piece:
                    break
                pieces.append(piece)
                total += len(piece)
                if total > max_bytes and truncate:
                    return b"".join(pieces)[:max_bytes]
                if total > max_bytes:
                    raise TooLarge(
                        f"{self.url} sent more than {max_bytes} bytes; the reply was refused"
                    )
        except HTTPFailure:
            raise
        except Exception as error:
            raise self.fail(error) from None
        if self.expired:
            raise self.timed_out()
        return b"".join(pieces)


def _classify(error: BaseException, url: str) -> HTTPFailure:
    import http.client

    if isinstance(error, HTTPFailure):
        return error
    if isinstance(error, TimeoutError):
        return TimedOut(f"{url} did not answer within the deadline")
    if isinstance(error, socket.gaierror):
        host = urlsplit(url).hostname
        return Unreachable(f"cannot resolve host {host!r}: {error.strerror}")
    if isinstance(error, http.client.RemoteDisconnected):  # closed before any reply: retry
        return Unreachable(str(error) or "the server closed the connection without a reply")
    if isinstance(error, http.client.IncompleteRead):
        return BrokenReply(f"{url} closed the connection before the reply was complete")
    if isinstance(error, http.client.BadStatusLine | http.client.LineTooLong):
        return BrokenReply(f"{url} did not answer in HTTP: {str(error)[:120]}")
    if isinstance(error, ConnectionError | http.client.HTTPException | OSError):
        return Unreachable(str(error) or type(error).__name__)
    return Unreachable(repr(error))


def open_request(
    method: str,
    url: str,
    *,
    body: bytes | None,
    headers: dict[str, str],
    deadline: float,
) -> Exchange:
    """Send one request; return the :class:`Exchange` with the body still unread.

    ``deadline`` (``time.monotonic()``, seconds) bounds everything until the exchange is
    closed. The caller closes it (``with open_request(...) as exchange:``).
    """
    all_headers = dict(headers)
    check_headers(all_headers)
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimedOut(f"no time left to call {url}")
    conn, path, auth = _connection(url, left)
    if auth and not any(k.lower() == "authorization" for k in all_headers):
        all_headers["Authorization"] = auth
    exchange = Exchange(conn, url, deadline)
    try:
        conn.connect()
        exchange.remaining()
        conn.request(method, path, body=body, headers=all_headers)
        exchange.remaining()
        exchange.response = conn.getresponse()
        return exchange
    except BaseException as error:
        exchange.close()
        if not isinstance(error, Exception):  # KeyboardInterrupt, SystemExit
            raise
        raise exchange.fail(error) from None


def backoff(attempt: int, deadline: float) -> float:
    """The pause after failed ``attempt`` (0.5 s, 1 s, 2 s ...), never past ``deadline``."""
    return max(0.0, min(RETRY_BACKOFF_SECONDS * 2 ** (attempt - 1), deadline - time.monotonic()))


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
    """Send a request, retrying what a retry can fix, all inside ``deadline``.

    ``deadline`` is a ``time.monotonic()`` value (seconds) that bounds every attempt, each
    reply's headers and body, and the pauses between attempts. Raises :class:`Unreachable`
    (after the last attempt), :class:`TimedOut`, :class:`BadURL`, :class:`BadHeader` (never
    retried), :class:`BrokenReply` or :class:`TooLarge`. A status that ``retry_status`` accepts
    is retried; the last such reply is returned for the caller to judge.
    """
    limit = max_bytes or max_reply_bytes()
    last: HTTPFailure | Reply | None = None
    for attempt in range(1, attempts + 1):
        if deadline - time.monotonic() <= 0:
            break
        try:
            with open_request(
                method, url, body=body, headers=headers or {}, deadline=deadline
            ) as exchange:
                data = exchange.read(limit)
                response = exchange.response
                reply = Reply(response.status, _lower(response.getheaders()), data)
            if not retry_status(reply.status):
                return reply
            last = reply
            reason = f"HTTP {reply.status}"
        except Unreachable as error:
            last = error
            reason = error.message
        if attempt < attempts:
            if log is not None:
                log(clean(f"{url}: {reason}; retry {attempt}/{attempts - 1}"))
            pause = backoff(attempt, deadline)
            if pause > 0:
                time.sleep(pause)
    if isinstance(last, Reply):
        return last
    if last is None:
        raise TimedOut(f"no time left to call {url}")
    raise Unreachable(f"{last.message} (after {attempts} attempts)")


def _lower(headers: list[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers}


def iter_lines(
    exchange: Exchange, max_bytes: int, deadline: float | None = None
) -> Iterator[bytes]:
    """The lines of a streamed reply (NDJSON, Server-Sent Events), bounded in total size and
    by ``deadline`` (``time.monotonic()``, seconds; default: the exchange's own).

    Raises :class:`TimedOut` at the deadline, :class:`BrokenReply` when the reply is cut inside
    a chunk, :class:`TooLarge` past ``max_bytes`` or :data:`MAX_LINE_BYTES` a line.
    """
    if deadline is not None and deadline < exchange.deadline:
        exchange.deadline = deadline
    response = exchange.response
    total = 0
    while True:
        try:
            exchange.remaining()
            line = response.readline(MAX_LINE_BYTES + 1)
        except HTTPFailure:
            raise
        except Exception as error:
            raise exchange.fail(error) from None
        if exchange.expired:
            raise exchange.timed_out()
        if not line:
            return
        total += len(line)
        if len(line) > MAX_LINE_BYTES or total > max_bytes:
            raise TooLarge(f"{exchange.url} streamed more than the allowed size")
        yield line


def json_headers(extra: dict[str, Any] | None = None) -> dict[str, str]:
    return {"Content-Type": "application/json", "Accept": "application/json", **(extra or {})}
