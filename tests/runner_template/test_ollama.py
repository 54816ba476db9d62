import json
import time

import pytest
from fakes import FakeOllama, closed_port_url, ok

from runner_template import ollama
from runner_template.errors import LLMError, LLMUnreachableError, StepTimeoutError
from runner_template.ollama import OllamaClient


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(ollama, "RETRY_BACKOFF_SECONDS", 0.01)


def deadline(seconds=10.0):
    return time.monotonic() + seconds


def test_payload_is_sent_with_stream_false():
    fake = FakeOllama(lambda n, body: ok("hi"))
    try:
        reply = OllamaClient(fake.url).generate({"model": "m", "prompt": "p"}, deadline())
    finally:
        fake.close()
    assert reply["response"] == "hi"
    assert fake.requests == [{"model": "m", "prompt": "p", "stream": False}]


def test_refused_connection_is_retried_then_reported_unreachable():
    url = closed_port_url()
    started = time.monotonic()
    with pytest.raises(LLMUnreachableError, match="after 3 attempts"):
        OllamaClient(url).generate({"model": "m"}, deadline(), "s1")
    assert time.monotonic() - started < 5


def test_server_error_is_retried_and_can_recover():
    fake = FakeOllama(lambda n, body: (500, b'{"error":"busy"}', 0) if n < 3 else ok("fine"))
    try:
        assert OllamaClient(fake.url).generate({"model": "m"}, deadline())["response"] == "fine"
    finally:
        fake.close()
    assert len(fake.requests) == 3


def test_persistent_server_error_is_an_llm_error():
    fake = FakeOllama(lambda n, body: (500, b'{"error":"broken"}', 0))
    try:
        with pytest.raises(LLMError, match="HTTP 500: broken"):
            OllamaClient(fake.url).generate({"model": "m"}, deadline())
    finally:
        fake.close()
    assert len(fake.requests) == 3


def test_unknown_model_says_to_pull_it():
    fake = FakeOllama(lambda n, body: (404, b'{"error":"model \'m\' not found"}', 0))
    try:
        with pytest.raises(LLMError, match="ollama pull m"):
            OllamaClient(fake.url).generate({"model": "m"}, deadline())
    finally:
        fake.close()
    assert len(fake.requests) == 1  # not retried: a retry cannot fix it


@pytest.mark.parametrize("body", [b"<html>proxy error</html>", b'{"unexpected": 1}', b""])
def test_garbage_replies_are_llm_errors(body):
    fake = FakeOllama(lambda n, _: (200, body, 0))
    try:
        with pytest.raises(LLMError, match="not an Ollama generate object"):
            OllamaClient(fake.url).generate({"model": "m"}, deadline())
    finally:
        fake.close()


def test_slow_server_hits_the_deadline():
    fake = FakeOllama(lambda n, body: ok("late", delay=3))
    try:
        started = time.monotonic()
        with pytest.raises(StepTimeoutError, match="did not answer within"):
            OllamaClient(fake.url).generate({"model": "m"}, deadline(0.5))
        assert time.monotonic() - started < 2.5
    finally:
        fake.close()


def test_non_http_endpoint_is_an_llm_error():
    with pytest.raises(LLMError, match="not an http"):
        OllamaClient("ftp://x").generate({"model": "m"}, deadline())


def test_request_body_is_json_with_options():
    fake = FakeOllama(lambda n, body: ok("x"))
    try:
        payload = {"model": "m", "prompt": "p", "options": {"temperature": 0}, "format": "json"}
        OllamaClient(fake.url).generate(payload, deadline())
    finally:
        fake.close()
    assert json.dumps(fake.requests[0]["options"]) == '{"temperature": 0}'
    assert fake.requests[0]["format"] == "json"
