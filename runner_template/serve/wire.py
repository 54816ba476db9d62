"""The bytes of HTTP/1.1 that the standard library leaves to us: deadlines, framing, encoding.

* :class:`DeadlineReader` reads a connection's bytes under one deadline (a monotonic time),
  however the bytes are spread out: a socket timeout alone restarts with every byte, so a client
  sending one byte a second (slow loris) would hold a thread for ever. :class:`DeadlineWriter`
  bounds the writes. Both keep the socket blocking, with the waits bounded by the kernel, so a
  read or a write is one system call.
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
import struct
import time
from typing import Any

from runner_template.jsonsafe import encode


class FramingError(Exception):
    """The request's body cannot be delimited without guessing (answer 400 and close)."""


def set_kernel_timeout(sock: socket.socket, option: int, seconds: float) -> None:
    """``SO_RCVTIMEO`` or ``SO_SNDTIMEO`` of a blocking socket: each ``recv``/``send`` waits
    at most ``seconds`` (at least a microsecond), then fails with ``EAGAIN``."""
    whole = int(seconds)
    micro = max(int((seconds - whole) * 1_000_000), 0 if whole else 1)
    sock.setsockopt(socket.SOL_SOCKET, option, struct.pack("ll", whole, micro))


class DeadlineReader(io.RawIOBase):
    """A connection's receive side with one deadline for a whole request (set :attr:`deadline`),
    or, once, a wait of up to :attr:`idle` seconds for the next request of an idle connection
    (set it before the read; it is None again after it, or set it back to None if the bytes
    were buffered already).

    The socket stays blocking and its waits are bounded by the kernel (``SO_RCVTIMEO``): a
    Python socket timeout makes every read a ``poll`` and then a ``recv``, two system calls
    that each let go of the GIL, where a blocking read is one. The bound is changed only when it
    must be (each change is a system call too): lowered when less time is left than it allows,
    and when it allowed less than is left, the read that timed out early is tried again for the
    rest. Either way no read waits past the deadline, nor stops before it; a read that does
    raises :class:`TimeoutError`.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.deadline = math.inf
        self.idle: float | None = None
        self._bound = math.inf  # the socket's SO_RCVTIMEO (inf: none set)

    def readable(self) -> bool:
        return True

    def _bound_to(self, seconds: float) -> None:
        set_kernel_timeout(self.sock, socket.SO_RCVTIMEO, seconds)
        self._bound = seconds

    def _recv(self, buffer) -> int:
        try:
            return self.sock.recv_into(buffer)
        except BlockingIOError:  # SO_RCVTIMEO passed
            raise TimeoutError("the request did not arrive in time") from None

    def readinto(self, buffer) -> int:  # type: ignore[override]
        if self.idle is not None:
            seconds, self.idle = self.idle, None
            if self._bound != seconds:
                self._bound_to(seconds)
            return self._recv(buffer)
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request did not arrive in time")
        if self._bound > left:
            self._bound_to(left)
        try:
            return self._recv(buffer)
        except TimeoutError:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise
            self._bound_to(left)  # the bound was set for less than the time left
            return self._recv(buffer)


class DeadlineWriter:
    """A connection's send side (``wfile``): every write is sent whole, within
    ``seconds``, on a blocking socket whose sends the kernel bounds (``SO_SNDTIMEO``), so a
    reply that fits the socket's buffer is one ``send``, as the bare standard library server
    writes it (a Python socket timeout adds a ``poll`` before it). A client that does not take
    a write in time gets :class:`TimeoutError`."""

    def __init__(self, sock: socket.socket, seconds: float) -> None:
        self.sock = sock
        self.seconds = seconds
        self.closed = False
        set_kernel_timeout(sock, socket.SO_SNDTIMEO, seconds)

    def close(self) -> None:
        self.closed = True

    def flush(self) -> None:
        pass

    def write(self, data: bytes) -> int:
        deadline = time.monotonic() + self.seconds  # one limit for the whole write
        try:  # _send, inlined: most writes are one send
            sent = self.sock.send(data)
        except BlockingIOError:
            raise TimeoutError("the client did not take the reply in time") from None
        if sent == len(data):
            return sent
        view = memoryview(data)
        try:
            while sent < len(data):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the client did not take the reply in time")
                set_kernel_timeout(self.sock, socket.SO_SNDTIMEO, min(left, self.seconds))
                sent += self._send(view[sent:])
        finally:
            set_kernel_timeout(self.sock, socket.SO_SNDTIMEO, self.seconds)
        return sent

    def _send(self, data) -> int:
        try:
            return self.sock.send(data)
        except BlockingIOError:  # SO_SNDTIMEO passed with nothing sent
            raise TimeoutError("the client did not take the reply in time") from None


MAX_HEADER_LINE = 65536  # bytes in one header line (as the standard library's limit)
MAX_HEADERS = 100  # header lines in one request (as the standard library's limit)
# The characters of a field name (RFC 9110's token) and the controls a value may not hold (all
# but a tab), one spelling for the line-by-line checks and the whole-section expressions.
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]"
_CONTROLS = r"\x00-\x08\x0a-\x1f\x7f"
_FIELD_NAME = re.compile(_TOKEN + "+")
_BAD_VALUE = re.compile(f"[{_CONTROLS}]")


class HeaderError(Exception):
    """The header section is malformed or too large; ``status`` is the answer (400 or 431)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Headers:
    """A request's headers: names compared without case, a repeated name's values all kept.

    :attr:`first` is each name's first value by its lowercased name (what :meth:`get` reads,
    and the handler reads directly); :attr:`repeated` says whether some name came twice, for
    :meth:`get_all`, which only then looks through the lines."""

    __slots__ = ("_items", "first", "repeated")

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items
        # In reverse, so that a name's first value is the one written last, and kept.
        self.first = {name.lower(): value for name, value in reversed(items)}
        self.repeated = len(self.first) != len(items)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name``, else ``default``."""
        return self.first.get(name.lower(), default)

    def get_all(self, name: str, default: list[str] | None = None) -> list[str] | None:
        key = name.lower()
        if not self.repeated:
            return [self.first[key]] if key in self.first else default
        return [value for item, value in self._items if item.lower() == key] or default

    def __getitem__(self, name: str) -> str | None:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self.first

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)


# A whole header section of well-formed lines, and one line of it (name, value without the
# blanks around it): what read_headers_by_line accepts, matched at once (on the section as
# Latin-1 text, decoded once rather than each name and value).
_HEADER_SECTION = re.compile(rf"(?:{_TOKEN}+:[^{_CONTROLS}]*\r\n)*\r\n")
_HEADER_LINE = re.compile(rf"({_TOKEN}+):[ \t]*([^{_CONTROLS}]*?)[ \t]*\r\n")


def read_headers(rfile) -> Headers:
    """The header lines up to the empty line that ends them (see the module's docstring).

    When the whole section is already buffered (the usual case: it came in one packet with
    the request line) and every line is well formed, it is taken with two regular expressions
    rather than line by line, which was half of reading a small request; anything else goes
    through :func:`read_headers_by_line`, which has the errors to say."""
    buffered = rfile.peek(1)
    if buffered.startswith(b"\r\n"):
        size = 2
    else:
        found = buffered.find(b"\r\n\r\n")
        size = found + 4 if found >= 0 else 0
    if size:
        section = buffered[:size].decode("latin-1")
        if _HEADER_SECTION.fullmatch(section):
            pairs = _HEADER_LINE.findall(section)
            if len(pairs) <= MAX_HEADERS:
                rfile.read(size)
                return Headers(pairs)
    return read_headers_by_line(rfile)


def read_headers_by_line(rfile) -> Headers:
    """:func:`read_headers`, a line at a time, with a :class:`HeaderError` for a bad one."""
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
    if headers.repeated:
        lengths = headers.get_all("Content-Length") or []
        encodings = headers.get_all("Transfer-Encoding") or []
    else:  # one value a name at most: no search through the lines
        first = headers.first
        lengths = [first["content-length"]] if "content-length" in first else []
        encodings = [first["transfer-encoding"]] if "transfer-encoding" in first else []
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
_stamps: tuple[int, tuple[str, str]] = (-1, ("", ""))


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
        stamps = _stamps = (second, (http_date, iso))
    return stamps[1]


def json_bytes(value: Any) -> bytes:
    """``value`` as UTF-8 JSON; strings that UTF-8 cannot carry are written as \\u escapes."""
    text = encode(value)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value).encode("ascii")
