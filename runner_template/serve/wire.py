"""The bytes of HTTP/1.1 that the standard library leaves to us: deadlines, framing, encoding.

* :class:`DeadlineReader` reads a connection's bytes under one deadline (a monotonic time),
  however the bytes are spread out: a socket timeout alone restarts with every byte, so a client
  sending one byte a second (slow loris) would hold a thread for ever.
* :func:`body_length` refuses ambiguous framing (RFC 9112 section 6.3): two Content-Length
  headers, a length that is not plain digits, any Transfer-Encoding next to a Content-Length or
  other than ``chunked``. The caller answers 400 and closes, since the next request's start is
  unknown.
* :func:`json_bytes` encodes a reply; text with lone surrogates (from a tool) is escaped rather
  than crashing the encoder, so a reply is always valid UTF-8 JSON.
"""

from __future__ import annotations

import io
import json
import math
import socket
import time
from typing import Any


class FramingError(Exception):
    """The request's body cannot be delimited without guessing (answer 400 and close)."""


class DeadlineReader(io.RawIOBase):
    """A socket's receive side with one deadline for a whole request (set :attr:`deadline`)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.deadline = math.inf

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request did not arrive in time")
        self.sock.settimeout(left)
        return self.sock.recv_into(buffer)


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


def json_bytes(value: Any) -> bytes:
    """``value`` as UTF-8 JSON; strings that UTF-8 cannot carry are written as \\u escapes."""
    text = json.dumps(value, ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value).encode("ascii")
