"""The connection's deadlines on blocking sockets (SO_RCVTIMEO, SO_SNDTIMEO), on real loopback
sockets."""

from __future__ import annotations

import io
import math
import socket
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner_template.serve.wire import (
    MAX_HEADERS,
    DeadlineReader,
    DeadlineWriter,
    HeaderError,
    Headers,
    read_headers,
    read_headers_by_line,
)


@pytest.fixture
def pair():
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    listener.close()
    yield server, client
    server.close()
    client.close()


def test_a_read_waits_for_the_bytes_and_stops_at_the_deadline(pair):
    server, client = pair
    reader = DeadlineReader(server)
    rfile = io.BufferedReader(reader)
    reader.deadline = time.monotonic() + 0.4
    client.sendall(b"GET / HTTP/1.1\r\n")
    assert rfile.readline() == b"GET / HTTP/1.1\r\n"
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        rfile.readline()  # nothing more comes
    assert 0.2 < time.monotonic() - started < 1.5
    assert server.gettimeout() is None  # blocking: the kernel bounds the wait


def test_an_idle_wait_is_one_wait_of_its_own_length(pair):
    server, _client = pair
    reader = DeadlineReader(server)
    reader.deadline = math.inf
    reader.idle = 0.3
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        reader.readinto(bytearray(10))
    assert 0.2 < time.monotonic() - started < 1.5


def test_a_reply_the_client_does_not_take_times_out(pair):
    server, client = pair
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    writer = DeadlineWriter(server, 0.5)
    assert writer.write(b"small reply") == len(b"small reply")
    assert client.recv(100) == b"small reply"
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        writer.write(b"x" * 20_000_000)  # the client never reads it
    assert time.monotonic() - started < 2.0


_NAMES = st.sampled_from(["Host", "Content-Length", "X-a", "bad name", "", "Te:st", " folded"])
_VALUES = st.text(alphabet=st.sampled_from(list(" \t\x00\r\x7fab\xe9:1")), max_size=8)
_ENDS = st.sampled_from(["\r\n", "\n", "\r\n"])


def _outcome(read, data: bytes):
    """What a header reader makes of ``data``: items (or the error) and the bytes left."""
    rfile = io.BufferedReader(io.BytesIO(data))
    try:
        items = ("ok", read(rfile).items())
    except HeaderError as error:
        items = ("error", error.status, str(error))
    return items, rfile.read()


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(_NAMES, _VALUES, _ENDS), max_size=6), _ENDS, st.binary(max_size=8))
def test_the_whole_section_at_once_reads_as_line_by_line(lines, last, body):
    # read_headers takes a buffered, well-formed section with two regular expressions; it must
    # give exactly what the strict line-by-line reader gives, for good and bad input alike.
    data = "".join(f"{name}:{value}{end}" for name, value, end in lines) + last
    raw = data.encode("latin-1") + body
    assert _outcome(read_headers, raw) == _outcome(read_headers_by_line, raw)


def test_many_headers_are_still_refused_when_read_at_once():
    raw = b"".join(b"X-%d: v\r\n" % n for n in range(MAX_HEADERS + 1)) + b"\r\n"
    with pytest.raises(HeaderError, match="more than"):
        read_headers(io.BufferedReader(io.BytesIO(raw)))
    fine = b"".join(b"X-%d: v\r\n" % n for n in range(MAX_HEADERS)) + b"\r\nbody"
    rfile = io.BufferedReader(io.BytesIO(fine))
    assert len(read_headers(rfile).items()) == MAX_HEADERS and rfile.read() == b"body"


def test_headers_keep_each_names_first_value_and_all_of_a_repeated_one():
    headers = Headers([("Content-Length", "8"), ("X-a", "1"), ("content-length", "9")])
    assert headers.repeated and headers.first == {"content-length": "8", "x-a": "1"}
    assert headers.get("CONTENT-LENGTH") == "8" and headers.get("nope", "d") == "d"
    assert headers.get_all("Content-Length") == ["8", "9"] and headers.get_all("X-A") == ["1"]
    single = Headers([("Host", "x")])
    assert not single.repeated and single.get_all("host") == ["x"]
    assert single.get_all("nope") is None and "HOST" in single
