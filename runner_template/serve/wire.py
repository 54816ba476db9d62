"""The bytes of HTTP/1.1 that the standard library leaves to us: deadlines, framing, encoding.

* :class:`DeadlineReader` reads a connection's bytes under one deadline (a monotonic time),
  however the bytes are spread out: a socket timeout alone restarts with every byte, so a client
  sending one byte a second (slow loris) would hold a thread for ever.
* :func:`body_length` refuses ambiguous framing (RFC 9112 section 6.3): two Content-Length
  headers, a length that is not plain digits, any Transfer-Encoding next to a Content-Length or
  other than ``chunked``. The caller answers 400 and closes, since the next request's start is
  unknown.
* :func:`read_headers` reads a request's header section into :class:`Headers`, strictly (RFC
  9112 section 5): a line that is not ``name: value``, whitespace before the colon, a folded
  (continued) line, a control character in a value, over :data:`MAX_HEADER_LINE` bytes a line
  or :data:`MAX_HEADERS` lines are all :class:`HeaderError`. The email package's parser that
  the standard library uses for this was a third of a small request's CPU, and it quietly
  takes malformed lines as the start of a body.
* :func:`json_bytes` encodes a reply; text with lone surrogates (from a tool) is escaped rather
  than crashing the encoder, so a reply is always valid UTF-8 JSON.
"""

from __future__ import annotations

import io
import json
import math
import re
import socket
import time
from typing import Any


class FramingError(Exception):
    """The request's body cannot be delimited without guessing (answer 400 and close)."""


class DeadlineReader(io.RawIOBase):
    """A socket's receive side with one deadline for a whole request (set :attr:`deadline`),
    or, once, a wait for the next request of an idle connection (:meth:`wait_idle`).

    The socket's timeout is changed only when it must be (every ``settimeout`` is a system
    call, and they were a tenth of a small request's time): lowered when less time is left
    than it allows, and when it allowed less than is left, the read that timed out early is
    tried again for the rest. Either way no read waits past the deadline, nor stops before it.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.deadline = math.inf
        self._idle: float | None = None

    def readable(self) -> bool:
        return True

    def wait_idle(self, seconds: float) -> None:
        """The next read is one wait of up to ``seconds`` for a new request's first bytes."""
        self._idle = seconds

    def end_idle(self) -> None:
        self._idle = None

    def readinto(self, buffer) -> int:  # type: ignore[override]
        if self._idle is not None:
            seconds, self._idle = self._idle, None
            if self.sock.gettimeout() != seconds:
                self.sock.settimeout(seconds)
            return self.sock.recv_into(buffer)
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request did not arrive in time")
        current = self.sock.gettimeout()
        if current is None or current > left:
            self.sock.settimeout(left)
        try:
            return self.sock.recv_into(buffer)
        except TimeoutError:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise
            self.sock.settimeout(left)  # the timeout was set for less than the time left
            return self.sock.recv_into(buffer)


MAX_HEADER_LINE = 65536  # bytes in one header line (as the standard library's limit)
MAX_HEADERS = 100  # header lines in one request (as the standard library's limit)
_FIELD_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # controls other than a tab


class HeaderError(Exception):
    """The header section is malformed or too large; ``status`` is the answer (400 or 431)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Headers:
    """A request's headers: names compared without case, a repeated name's values all kept."""

    __slots__ = ("_items", "_values")

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items
        self._values: dict[str, list[str]] = {}
        for name, value in items:
            self._values.setdefault(name.lower(), []).append(value)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name``, else ``default``."""
        values = self._values.get(name.lower())
        return values[0] if values else default

    def get_all(self, name: str, default: list[str] | None = None) -> list[str] | None:
        values = self._values.get(name.lower())
        return list(values) if values else default

    def __getitem__(self, name: str) -> str | None:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._values

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)


def read_headers(rfile) -> Headers:
    """The header lines up to the empty line that ends them (see the module's docstring)."""
    items: list[tuple[str, str]] = []
    while True:
        line = rfile.readline(MAX_HEADER_LINE + 1)
        if len(line) > MAX_HEADER_LINE:
            raise HeaderError(431, "a header line is too long")
        if line in (b"\r\n", b"\n", b""):
            return Headers(items)
        if len(items) >= MAX_HEADERS:
            raise HeaderError(431, f"more than {MAX_HEADERS} headers")
        text = line.decode("latin-1").rstrip("\r\n")
        name, colon, value = text.partition(":")
        if not colon or not _FIELD_NAME.fullmatch(name):
            raise HeaderError(400, "a header line is not 'Name: value' (or is folded)")
        value = value.strip(" \t")
        if _BAD_VALUE.search(value):
            raise HeaderError(400, f"the value of header {name!r} has a control character")
        items.append((name, value))


def body_length(headers) -> int:
    """The body's length from the headers (0 without one); :class:`FramingError` if ambiguous.

    ``Transfer-Encoding: chunked`` alone is well framed but not supported: -1 (answer 411).
    """
    lengths = headers.get_all("Content-Length") or []
    encodings = headers.get_all("Transfer-Encoding") or []
    if encodings:
        if lengths:
            raise FramingError("a request may not have both Transfer-Encoding and Content-Length")
        if len(encodings) == 1 and encodings[0].strip().lower() == "chunked":
            return -1
        raise FramingError("the only Transfer-Encoding understood is 'chunked'")
    if not lengths:
        return 0
    if len(lengths) > 1:
        raise FramingError("a request may have one Content-Length header only")
    text = lengths[0].strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise FramingError("Content-Length must be a number of bytes in plain digits")
    return int(text)


_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_stamps: tuple[int, str, str] = (-1, "", "")


def now_stamps() -> tuple[str, str]:
    """This second as an HTTP ``Date`` and as the log's ISO time, made once a second (every
    reply and log line needs both; formatting them was a tenth of a small request's CPU)."""
    global _stamps
    second = int(time.time())
    stamps = _stamps  # one read: another thread may replace it meanwhile
    if stamps[0] != second:
        t = time.gmtime(second)
        http_date = (
            f"{_WEEKDAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon]} {t.tm_year}"
            f" {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
        )
        iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", t)
        stamps = _stamps = (second, http_date, iso)
    return stamps[1], stamps[2]


def json_bytes(value: Any) -> bytes:
    """``value`` as UTF-8 JSON; strings that UTF-8 cannot carry are written as \\u escapes."""
    text = json.dumps(value, ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value).encode("ascii")
