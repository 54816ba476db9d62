"""Secrets never leave in text: URL passwords of any shape, expanded ``${VAR}`` values, keys."""

import json
import time

import pytest
from fakes import FakeOllama, closed_port_url, ok

from runner_template import http_client
from runner_template.api_tools import call_api
from runner_template.errors import LLMError, LLMUnreachableError, RunnerError, ToolError
from runner_template.llm import LLMClient, LLMRequest
from runner_template.redaction import clean, redact, register_secret


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(http_client, "RETRY_BACKOFF_SECONDS", 0.01)


@pytest.mark.parametrize(
    "password", ["p#ss", "p/ss", "p?ss", "p@ss", "a#b/c?d@e", "p:ss", "p ss".replace(" ", "%20")]
)
def test_url_passwords_of_any_shape_are_hidden(password):
    url = f"http://alice:{password}@example.com:8080/api?x=1"
    shown = redact(f"cannot reach {url}: refused")
    assert password not in shown and "alice" not in shown
    assert shown.startswith("cannot reach http://***@")
    assert shown.endswith(": refused")


def test_odd_ports_do_not_crash_the_redaction():
    assert redact("http://u:p@host:80:81/x") == "http://***@host:80:81/x"
    assert redact("http://u:p@[::1:80") == "http://***@[::1:80"
    assert redact("plain text, no URL") == "plain text, no URL"
    assert redact("http://host/a") == "http://host/a"


def test_registered_secrets_are_hidden_in_every_form():
    secret = "s3cr et/+?&value"
    register_secret(secret)
    for form in (secret, "s3cr%20et%2F%2B%3F%26value", "s3cr%20et/%2B%3F%26value"):
        assert "***" in redact(f"GET http://h/?k={form} failed") and form not in redact(form)
    register_secret("line\n")
    assert clean(repr("key line\n")) == "'key ***'"
    register_secret("ab")  # too short to be a secret, and hiding it would garble messages
    assert redact("ab cd") == "ab cd"


def test_errors_are_redacted_and_on_one_line_however_they_are_made():
    register_secret("hunter2-token")
    error = ToolError("bad\r\nreply with hunter2-token\x00", "s")
    assert error.message == "bad\\r\\nreply with ***\\x00"
    assert str(error) == error.message
    error.message = "sub-workflow 'x': hunter2-token"
    assert error.to_json()["error"]["message"] == "sub-workflow 'x': ***"
    assert "hunter2" not in json.dumps(RunnerError("http://u:hunter2-token@h/").to_json())


def api_spec(url: str, **extra) -> dict:
    return {"method": "POST", "url": url, **extra}


def test_api_key_in_the_url_is_not_shown_when_the_api_answers_404(monkeypatch):
    monkeypatch.setenv("API_TOKEN", "tok-0123456789")
    fake = FakeOllama(lambda n, body: (404, b"no such thing: /find?apikey=tok-0123456789", 0))
    try:
        with pytest.raises(ToolError) as caught:
            call_api(
                "t",
                api_spec(fake.url + "/find?apikey=${API_TOKEN}"),
                {},
                time.monotonic() + 10,
                "s",
            )
    finally:
        fake.close()
    assert fake.paths == ["/find?apikey=tok-0123456789"]  # the key was sent
    message = caught.value.message
    assert "HTTP 404" in message and "tok-0123456789" not in message and "***" in message


def test_a_header_value_with_a_newline_is_refused_once_without_echoing_it(monkeypatch):
    monkeypatch.setenv("API_TOKEN", "tok-abcdefgh\n")
    fake = FakeOllama(lambda n, body: ok("x"))
    try:
        with pytest.raises(ToolError) as caught:
            call_api(
                "t",
                api_spec(fake.url, headers={"Authorization": "Bearer ${API_TOKEN}"}),
                {},
                time.monotonic() + 10,
                "s",
            )
    finally:
        fake.close()
    assert fake.requests == []  # refused before anything was sent, not retried
    message = caught.value.message
    assert "header Authorization contains CR, LF or NUL" in message
    assert "newline" in message and "tok-abcdefgh" not in message


@pytest.mark.parametrize("name", ["X-Evil\r\nInjected", "X\x00", "", "Bad Name"])
def test_bad_header_names_are_refused_without_echoing_them(name):
    """NUL cannot come from the environment, but a header can be written with it."""
    with pytest.raises(http_client.BadHeader) as caught:
        http_client.request(
            "GET", closed_port_url(), deadline=time.monotonic() + 5, headers={name: "v"}
        )
    assert "header name" in caught.value.message
    assert name not in caught.value.message or not name
    with pytest.raises(http_client.BadHeader, match="header X-A contains CR, LF or NUL"):
        http_client.request(
            "GET", closed_port_url(), deadline=time.monotonic() + 5, headers={"X-A": "k\x00ey"}
        )


@pytest.mark.parametrize("key", ["sk-trailing-newline\n", "sk-with\rcr", "sk-crlf\r\nX: y"])
def test_an_llm_key_with_control_bytes_is_refused_once_naming_the_variable(monkeypatch, key):
    monkeypatch.setenv("OLLAMA_API_KEY", key)
    fake = FakeOllama(lambda n, body: ok("x"))
    logged: list[str] = []
    try:
        for on_token in (None, lambda t: None):
            with pytest.raises(LLMError) as caught:
                LLMClient(fake.url, log=logged.append).generate(
                    LLMRequest("m", "p"), time.monotonic() + 10, "s", on_token
                )
            assert "OLLAMA_API_KEY contains CR, LF or NUL" in caught.value.message
            assert "sk-" not in caught.value.message and caught.value.step == "s"
    finally:
        fake.close()
    assert fake.requests == [] and logged == []  # no request, no retry line


def test_endpoint_passwords_with_separators_stay_hidden_when_unreachable():
    url = closed_port_url().replace("http://", "http://alice:pa%23ss@")
    logged: list[str] = []
    with pytest.raises(LLMUnreachableError) as caught:
        LLMClient(url, log=logged.append).generate(LLMRequest("m", "p"), time.monotonic() + 10)
    assert "pa%23ss" not in caught.value.message and "pa#ss" not in caught.value.message
    assert logged and all("pa%23ss" not in line and "alice" not in line for line in logged)
    raw = closed_port_url().replace("http://", "http://alice:pa#ss@")  # not even a valid URL
    with pytest.raises(LLMError) as caught:
        LLMClient(raw).generate(LLMRequest("m", "p"), time.monotonic() + 10)
    assert "pa#ss" not in caught.value.message and "ss@" not in caught.value.message


def test_an_api_that_echoes_its_url_does_not_return_the_key(monkeypatch):
    monkeypatch.setenv("API_TOKEN", 'tok-"echo"-987')
    echo = json.dumps({"called": '/q?apikey=tok-"echo"-987', "n": 1}).encode()
    fake = FakeOllama(lambda n, body: (200, echo, 0))
    try:
        result = call_api(
            "t", api_spec(fake.url + "/q?apikey=${API_TOKEN}"), {}, time.monotonic() + 10, "s"
        )
    finally:
        fake.close()
    assert result == {"called": "/q?apikey=***", "n": 1}
