"""The listening socket: bounded connections, eviction of idle ones, graceful shutdown.

Connections are bounded (:data:`~.settings.MAX_CONNECTIONS`, a thread each). When all are taken,
a new connection evicts the one that has waited longest for (or inside) its request's bytes:
a crowd of slow or idle clients cannot keep a health probe out, while requests already being
answered are never cut. Only when every connection is busy answering does a client get 503.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import socketserver
import sys
import threading
import time
from http.server import ThreadingHTTPServer
from typing import Any

from runner_template import engine as engine_module
from runner_template.serve.handler import Handler
from runner_template.serve.service import Service
from runner_template.serve.settings import MAX_CONNECTIONS, Settings
from runner_template.threads import signals_blocked, start_daemon

_BUSY_BODY = (
    b'{"error": {"type": "too_many_connections", "message": "every connection is busy",'
    b' "step": null}}'
)
BUSY_REPLY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(_BUSY_BODY)).encode()
    + b"\r\nConnection: close\r\nRetry-After: 1\r\n\r\n"
    + _BUSY_BODY
)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, service: Service) -> None:
        super().__init__(address, Handler)
        self.service = service
        self._lock = threading.Lock()
        self._open = 0
        # Each connection's handler, whose ``waiting_since`` is the time it began to wait for
        # request bytes (None while it answers): a plain attribute, set without a lock twice a
        # request; only an eviction, when every connection is taken, reads them all.
        self._handlers: set[Handler] = set()

    def server_bind(self) -> None:
        """TCPServer's bind, without HTTPServer's ``socket.getfqdn`` of the address: a reverse
        lookup (``gethostbyaddr`` encodes the name with the ``idna`` codec, which imports
        ``unicodedata``, not in an LLM-only image) whose answer, ``server_name``, nothing
        here reads."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def opened(self, handler: Handler) -> None:
        with self._lock:
            self._handlers.add(handler)

    def closed(self, handler: Handler) -> None:
        with self._lock:
            self._handlers.discard(handler)

    def _make_room(self) -> bool:
        with self._lock:
            if self._open < MAX_CONNECTIONS:
                self._open += 1
                return True
            waiting = [h for h in self._handlers if h.waiting_since is not None]
            if not waiting:
                return False
            oldest = min(waiting, key=lambda h: h.waiting_since)  # type: ignore[arg-type,return-value]
            oldest.waiting_since = None  # not chosen twice
            self._handlers.discard(oldest)
        with contextlib.suppress(OSError):
            oldest.connection.shutdown(socket.SHUT_RDWR)  # its thread ends; this one takes over
        with self._lock:
            self._open += 1
        return True

    def process_request(self, request, client_address):
        if not self._make_room():
            try:
                request.sendall(BUSY_REPLY)
            except OSError:
                pass
            finally:
                self.shutdown_request(request)
            return
        try:
            with signals_blocked():  # the connection's thread leaves signals to this one
                super().process_request(request, client_address)
        except BaseException:
            with self._lock:
                self._open -= 1
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._open -= 1


def serve(bundle: dict[str, Any], host: str, port: int, settings: Settings) -> int:
    """Serve until SIGTERM or SIGINT; then finish running requests within the grace period."""
    engine_module.QUIET = True
    service = Service(bundle, settings)
    server = _Server((host, port), service)

    def stop(signum, frame) -> None:
        service.stopping.set()
        start_daemon(server.shutdown)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    bound = server.server_address
    sys.stderr.write(
        json.dumps(
            {"listening": f"http://{bound[0]}:{bound[1]}", "workflow": service.workflow.get("id")}
        )
        + "\n"
    )
    sys.stderr.flush()
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    deadline = time.monotonic() + settings.grace
    while service.active > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    left = service.active
    # Stopping already: a repeated SIGTERM while the interpreter exits must not turn exit 0
    # into death by signal.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    service.log.flush()  # the requests' lines come before the last one
    sys.stderr.write(json.dumps({"stopped": True, "unfinished_requests": left}) + "\n")
    return 0
