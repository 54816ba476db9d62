"""Raw TCP servers on loopback that misbehave below HTTP: drip-feed, cut, speak no HTTP.

``tests/fakes.py`` answers with whole, well-formed replies (``http.server``); the faults here
need control of every byte and of the moment a connection closes, so each connection is given
to a plain function ``serve(sock, request_bytes)``. The server counts connections and notices
when the client closes one (an abandoned call must not leave sockets open).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable

Behaviour = Callable[[socket.socket, bytes], None]


class RawServer:
    """Accepts connections on 127.0.0.1 and hands each, with its request, to ``behaviour``."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.accepted = 0
        self.client_closed = 0
        self.requests: list[bytes] = []
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._handle, args=(sock,), daemon=True).start()

    def _handle(self, sock: socket.socket) -> None:
        with sock:
            request = read_request(sock)
            self.requests.append(request)
            try:
                self.behaviour(sock, request)
            except OSError:  # the client went away: that is what some tests want
                self.client_closed += 1
                return
            # Wait until the client closes its side (or give up after 10 s).
            sock.settimeout(10)
            with contextlib.suppress(OSError):
                while sock.recv(4096):
                    pass
                self.client_closed += 1

    def close(self) -> None:
        self._stop = True
        self.listener.close()


def read_request(sock: socket.socket) -> bytes:
    """Headers and a Content-Length body."""
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        if not piece:
            return data
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        piece = sock.recv(65536)
        if not piece:
            break
        body += piece
    return head + b"\r\n\r\n" + body


def ndjson(*events: dict) -> bytes:
    return b"".join(json.dumps(event).encode() + b"\n" for event in events)


def chunked_head(status: str = "200 OK") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/x-ndjson\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()


def chunk(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


def whole(body: bytes, status: str = "200 OK") -> bytes:
    return f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


def drip(data: bytes, every: float) -> Behaviour:
    """Send ``data`` one byte at a time, ``every`` seconds apart."""

    def behaviour(sock: socket.socket, _request: bytes) -> None:
        for byte in data:
            sock.sendall(bytes([byte]))
            time.sleep(every)

    return behaviour


def send(data: bytes, close: bool = True) -> Behaviour:
    """Send ``data``; then close the connection (``close``) or keep it open and silent until
    the client closes it."""

    def behaviour(sock: socket.socket, _request: bytes) -> None:
        sock.sendall(data)
        if close:
            sock.shutdown(socket.SHUT_WR)

    return behaviour
