"""The service against hostile clients: slow ones, ambiguous framing, bytes that are not HTTP.

Each test talks to the real program (``--serve``) over real sockets.
"""

from __future__ import annotations

import json
import socket
import time

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serving import CALC, ServeProcess, post


@pytest.fixture(scope="module")
def service():
    served = ServeProcess(CALC, "-j", "2", "--read-timeout", "2", "--max-body", "100000")
    yield served
    served.stop()


def address(service) -> tuple[str, int]:
    return "127.0.0.1", int(service.url.rsplit(":", 1)[1])


def exchange(service, data: bytes, timeout: float = 5) -> bytes:
    """Send ``data`` and end the sending side, then read until the server closes."""
    with socket.create_connection(address(service), timeout=timeout) as conn:
        try:
            conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        received = b""
        try:
            while chunk := conn.recv(65536):
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return received


def status_of(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1])


def healthy(service) -> bool:
    return requests.get(service.url + "/healthz", timeout=3).status_code == 200


BODY = b'{"a": 1}'


@pytest.mark.parametrize(
    "headers",
    [
        b"Content-Length: 8\r\nContent-Length: 8\r\n",
        b"Content-Length: +8\r\n",
        b"Content-Length: 0_8\r\n",
        b"Content-Length: 8\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: gzip\r\n",
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
    ],
)
def test_ambiguous_framing_is_refused_and_the_connection_closed(service, headers):
    request = (
        b"POST /invoke HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + headers
        + b"\r\n"
        + BODY
        + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    reply = exchange(service, request)
    assert status_of(reply) == 400
    assert b"bad_request" in reply
    assert reply.count(b"HTTP/1.1") == 1  # the smuggled second request is never answered


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        (b"Content-Length : 8\r\n", 400),  # whitespace before the colon (RFC 9112 5.1)
        (b"Content-Length: 8\r\n X-Folded: 1\r\n", 400),  # obs-fold
        (b"No colon here\r\n", 400),
        (b"X-Bad: a\x00b\r\n", 400),
        (b"X-Long: " + b"a" * 70000 + b"\r\n", 431),
        (b"".join(b"X-%d: 1\r\n" % n for n in range(101)), 431),
    ],
)
def test_malformed_or_oversized_headers_are_refused_and_the_connection_closed(
    service, headers, status
):
    """A header section read one way here and another way by a proxy in front is how requests
    are smuggled: anything but plain ``Name: value`` lines is refused, never guessed at."""
    request = (
        b"POST /invoke HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + headers
        + b"\r\n"
        + BODY
        + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    reply = exchange(service, request)
    assert status_of(reply) == status
    assert b"Connection: close" in reply
    assert reply.count(b"HTTP/1.1 ") == 1


def test_headers_are_read_without_case_and_with_their_whitespace_trimmed(service):
    request = (
        b"POST /invoke HTTP/1.1\r\nhost: x\r\ncontent-type:   application/json \t\r\n"
        b"CONTENT-LENGTH: 8\r\nConnection: close\r\n\r\n" + BODY
    )
    reply = exchange(service, request)
    assert status_of(reply) == 200  # the body was found, typed and read by its length
    assert b'{"outputs": ' in reply


@pytest.mark.parametrize(
    ("method", "path"), [(b"GET", b"/healthz"), (b"POST", b"/nowhere"), (b"DELETE", b"/invoke")]
)
def test_a_body_nobody_reads_is_never_parsed_as_the_next_request(service, method, path):
    smuggled = b"GET /schema HTTP/1.1\r\nHost: x\r\n\r\n"
    request = (
        method
        + b" "
        + path
        + b" HTTP/1.1\r\nHost: x\r\nContent-Length: "
        + str(len(smuggled)).encode()
        + b"\r\n\r\n"
        + smuggled
    )
    reply = exchange(service, request)
    assert reply.count(b"HTTP/1.1 ") == 1
    assert b"Connection: close" in reply


def test_text_that_is_not_unicode_is_bad_input_never_a_500(service):
    lone = b'{"a": 1, "op": "\\ud800"}'
    for route in ("/invoke", "/stream"):
        reply = post(service.url + route, lone)
        assert reply.status_code == 400, route
        assert reply.json()["error"]["type"] == "bad_input"
        assert "surrogate" in reply.json()["error"]["message"]
    big = b'{"a": ' + b"9" * 5000 + b"}"
    reply = post(service.url + "/invoke", big)
    assert reply.status_code == 400 and reply.json()["error"]["type"] == "bad_input"


def test_a_malformed_callback_url_is_bad_input(service):
    for url in ("http://[::1", "http://host:port/x", "http://", "http://a b/"):
        reply = post(service.url + "/hooks/run", {"inputs": {"a": 1}, "callback_url": url})
        assert reply.status_code == 400, url
        assert reply.json()["error"]["type"] == "bad_input"


def test_slow_loris_does_not_starve_healthz(service):
    """300 clients dripping header bytes: /healthz still answers at once; each is cut off
    when its request's deadline (--read-timeout 2) passes, however often it sends a byte."""
    host, port = address(service)
    crowd = []
    for _ in range(300):
        conn = socket.create_connection((host, port), timeout=5)
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        crowd.append(conn)
    try:
        started = time.monotonic()
        for _ in range(5):
            assert healthy(service)
        assert time.monotonic() - started < 3
        # One of them keeps dripping a byte every 0.3 s: it is still cut at its deadline.
        dripper = crowd[-1]
        cut_at = None
        started = time.monotonic()
        while time.monotonic() - started < 8:
            try:
                dripper.sendall(b"a")
                dripper.settimeout(0.3)
                if dripper.recv(1024) == b"":
                    cut_at = time.monotonic() - started
                    break
            except TimeoutError:
                continue
            except OSError:
                cut_at = time.monotonic() - started
                break
        assert cut_at is not None and cut_at < 4
    finally:
        for conn in crowd:
            conn.close()


def test_a_stalled_body_is_cut_at_the_request_deadline(service):
    host, port = address(service)
    with socket.create_connection((host, port), timeout=10) as conn:
        conn.sendall(
            b"POST /invoke HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 50\r\n\r\n{"
        )
        started = time.monotonic()
        for _ in range(20):  # a byte every 0.2 s: each read would restart a per-read timeout
            time.sleep(0.2)
            try:
                conn.sendall(b" ")
            except OSError:
                break
        conn.settimeout(5)
        try:
            rest = conn.recv(1024)
        except OSError:
            rest = b""
        assert rest == b"" and time.monotonic() - started < 5
    assert healthy(service)


# -- property: raw bytes in, a well-formed reply or a closed connection out -------------------

REQUEST_LINES = st.sampled_from(
    [
        b"GET /healthz HTTP/1.1",
        b"POST /invoke HTTP/1.1",
        b"POST /stream HTTP/1.1",
        b"GET / HTTP/1.0",
    ]
)
HEADER = st.tuples(
    st.sampled_from(
        [b"Content-Length", b"Transfer-Encoding", b"Content-Type", b"Host", b"Authorization"]
    ),
    st.binary(max_size=12),
)


@st.composite
def raw_requests(draw) -> bytes:
    if draw(st.booleans()):
        return draw(st.binary(max_size=300))
    line = draw(REQUEST_LINES)
    headers = draw(st.lists(HEADER, max_size=5))
    body = draw(st.binary(max_size=60) | st.just(b'{"a": 2}'))
    head = b"\r\n".join([line, *(name + b": " + value for name, value in headers)])
    return head + b"\r\n\r\n" + body


def well_formed(reply: bytes) -> bool:
    """Empty (closed), or HTTP responses each with a status line and, for JSON, a JSON body."""
    if not reply:
        return True
    if not reply.startswith(b"HTTP/1.") or b"\r\n\r\n" not in reply:
        return False
    head, _, body = reply.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if status >= 500 and status != 503:
        return False
    if b"application/json" in head and b"Content-Length" in head:
        length = int(head.split(b"Content-Length: ", 1)[1].split(b"\r\n", 1)[0])
        json.loads(body[:length])
    return b"Traceback" not in reply


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=raw_requests())
def test_raw_bytes_get_a_well_formed_reply_or_a_closed_connection(service, data):
    reply = exchange(service, data, timeout=4)
    assert well_formed(reply), reply[:300]
    assert healthy(service)
