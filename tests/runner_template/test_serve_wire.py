"""The connection's deadlines on blocking sockets (SO_RCVTIMEO, SO_SNDTIMEO), on real loopback
sockets."""

from __future__ import annotations

import io
import math
import socket
import time

import pytest

from runner_template.serve.wire import DeadlineReader, DeadlineWriter


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
    reader.wait_idle(0.3)
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
