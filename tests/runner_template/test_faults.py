"""Faults below HTTP, on real loopback sockets: cut streams, drip-feeding, bytes that are not
HTTP or not UTF-8, error replies nested too deep. Each ends as one classified one-line error,
in time, with the connection closed."""

import json
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # faults.py sits beside this file
from faults import RawServer, chunk, chunked_head, drip, ndjson, send, whole
from helpers import wait_until

from runner_template import http_client
from runner_template.errors import LLMError, LLMUnreachableError, StepTimeoutError
from runner_template.llm import LLMClient, LLMRequest

HEL = {"response": "Hel", "done": False}
LO = {"response": "lo", "done": False}
DONE = {"response": "", "done": True}


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(http_client, "RETRY_BACKOFF_SECONDS", 0.05)


def generate(url, seconds=10.0, stream=True, provider="ollama", log=None):
    tokens: list[str] = []
    client = LLMClient(url, provider=provider, log=log)
    reply = client.generate(
        LLMRequest("m", "p"), time.monotonic() + seconds, "s", tokens.append if stream else None
    )
    return reply, tokens


def serving(behaviour):
    return RawServer(behaviour)


def test_a_whole_stream_is_a_reply():
    server = serving(send(chunked_head() + chunk(ndjson(HEL, LO, DONE)) + b"0\r\n\r\n"))
    try:
        reply, tokens = generate(server.url)
    finally:
        server.close()
    assert reply.text == "Hello" and tokens == ["Hel", "lo"]


@pytest.mark.parametrize(
    "raw",
    [
        chunked_head() + chunk(ndjson(HEL, LO)) + b"0\r\n\r\n",  # ends at a line boundary
        whole(ndjson(HEL, LO)),  # the same with a Content-Length
        chunked_head() + chunk(ndjson(HEL))[:-5],  # cut inside a chunk
        chunked_head() + chunk(ndjson(HEL)) + b"40\r\n" + b'{"respo',  # cut inside the next
    ],
)
def test_a_cut_stream_is_an_llm_error_not_a_partial_success(raw):
    server = serving(send(raw))
    try:
        with pytest.raises(LLMError) as caught:
            generate(server.url)
    finally:
        server.close()
    assert type(caught.value) is LLMError and caught.value.error_type == "llm_error"
    assert "stream" in caught.value.message


def test_a_cut_openai_stream_is_an_llm_error_and_a_finished_one_is_not():
    piece = {"choices": [{"delta": {"content": "a"}, "finish_reason": None}]}
    last = {"choices": [{"delta": {}, "finish_reason": "stop"}]}
    sse = b"data: " + json.dumps(piece).encode() + b"\n\n"
    for body, complete in (
        (sse, False),
        (sse + b"data: " + json.dumps(last).encode() + b"\n\n", True),
    ):
        server = serving(send(whole(body)))
        try:
            if complete:
                assert generate(server.url, provider="openai")[0].text == "a"
            else:
                with pytest.raises(LLMError, match=r"no \[DONE\]"):
                    generate(server.url, provider="openai")
        finally:
            server.close()


def test_5xx_while_streaming_is_retried_with_the_backoff_and_can_recover(monkeypatch):
    monkeypatch.setattr(http_client, "RETRY_BACKOFF_SECONDS", 0.3)
    count = {"n": 0}
    good = send(whole(ndjson(HEL, DONE)))
    busy = send(whole(b'{"error": "busy"}', "503 Service Unavailable"))

    def behaviour(sock, request):
        count["n"] += 1
        (busy if count["n"] < 3 else good)(sock, request)

    server = serving(behaviour)
    logged: list[str] = []
    try:
        started = time.monotonic()
        reply, _ = generate(server.url, log=logged.append)
        spent = time.monotonic() - started
    finally:
        server.close()
    assert reply.text == "Hel" and count["n"] == 3
    assert spent >= 0.3 + 0.6 - 0.05  # paused 0.3 s, then 0.6 s: not retried at once
    assert len(logged) == 2 and "HTTP 503: busy; retry 1/2" in logged[0]


def test_persistent_5xx_while_streaming_is_an_llm_error():
    server = serving(send(whole(b'{"error": "broken"}', "500 Internal Server Error")))
    try:
        with pytest.raises(LLMError, match="HTTP 500: broken"):
            generate(server.url)
    finally:
        server.close()
    assert server.accepted == 3


@pytest.mark.parametrize("stream", [True, False])
def test_invalid_utf8_from_the_llm_is_refused(stream):
    bad = b'{"response": "caf\xe9", "done": true}\n'
    server = serving(send(whole(bad)))
    try:
        with pytest.raises(LLMError, match="not UTF-8") as caught:
            generate(server.url, stream=stream)
    finally:
        server.close()
    assert "\\xe9" in caught.value.message


@pytest.mark.parametrize("stream", [True, False])
def test_a_reply_that_is_not_http_gives_one_line(stream):
    server = serving(send(b"SSH-2.0-OpenSSH_9.6\r\nProtocol mismatch.\r\n"))
    try:
        with pytest.raises((LLMError, LLMUnreachableError)) as caught:
            generate(server.url, stream=stream)
    finally:
        server.close()
    message = caught.value.message
    assert "\r" not in message and "\n" not in message and "did not answer in HTTP" in message
    assert server.accepted == 1  # an answer, if a wrong one: not retried


@pytest.mark.parametrize("depth", [150, 100_000])
@pytest.mark.parametrize("stream", [True, False])
def test_an_error_reply_nested_very_deeply_is_one_line(depth, stream):
    body = b'{"error": ' + b"[" * depth + b"]" * depth + b"}"
    server = serving(send(whole(body, "400 Bad Request")))
    try:
        with pytest.raises(LLMError) as caught:
            generate(server.url, stream=stream)
    finally:
        server.close()
    assert "HTTP 400" in caught.value.message and len(caught.value.message) < 400


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n",  # headers
        whole(json.dumps({"response": "x" * 300, "done": True}).encode()),  # the body
    ],
)
@pytest.mark.parametrize("stream", [True, False])
def test_a_drip_feeding_server_does_not_hold_a_call_past_its_deadline(raw, stream):
    server = serving(drip(raw, every=0.05))  # each read is quick; the whole reply is not
    try:
        started = time.monotonic()
        with pytest.raises(StepTimeoutError):
            generate(server.url, seconds=1.0, stream=stream)
        assert time.monotonic() - started < 2.0
        # the abandoned connection is closed: the server's next write fails
        assert wait_until(lambda: server.client_closed == 1, timeout=5)
    finally:
        server.close()


def test_a_drip_fed_stream_of_lines_stops_at_the_deadline():
    lines = ndjson(*[HEL] * 50, DONE)

    def behaviour(sock, request):
        sock.sendall(chunked_head())
        drip(chunk(lines), 0.01)(sock, request)

    server = serving(behaviour)
    tokens: list[str] = []
    try:
        started = time.monotonic()
        with pytest.raises(StepTimeoutError):
            LLMClient(server.url).generate(
                LLMRequest("m", "p"), time.monotonic() + 1.0, "s", tokens.append
            )
        assert time.monotonic() - started < 2.0
    finally:
        server.close()
    assert 0 < len(tokens) < 50


def test_request_has_one_deadline_for_headers_and_body():
    server = serving(drip(whole(b"x" * 1000), every=0.01))
    try:
        started = time.monotonic()
        with pytest.raises(http_client.TimedOut, match="whole reply within the deadline"):
            http_client.request("GET", server.url, deadline=time.monotonic() + 0.8)
        assert time.monotonic() - started < 1.5
    finally:
        server.close()
    assert server.accepted == 1  # a timeout is not retried


def test_a_connection_is_closed_when_a_call_ends():
    server = serving(send(whole(b"ok"), close=False))  # keeps its side open
    try:
        reply = http_client.request("GET", server.url, deadline=time.monotonic() + 5)
        assert reply.body == b"ok"
        assert wait_until(lambda: server.client_closed == 1, timeout=5)
    finally:
        server.close()
