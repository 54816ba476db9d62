"""The LLM client against small fake servers: both providers, faults, limits, secrets."""

import json
import time

import pytest
from fakes import FakeOllama, closed_port_url, ok

from runner_template import http_client
from runner_template.errors import LLMError, LLMUnreachableError, StepTimeoutError
from runner_template.llm import LLMClient, LLMRequest


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(http_client, "RETRY_BACKOFF_SECONDS", 0.01)


def deadline(seconds=10.0):
    return time.monotonic() + seconds


def ask(**extra):
    return LLMRequest("m", "p", **extra)


def chat(text: str) -> tuple[int, bytes, float]:
    body = {"choices": [{"message": {"role": "assistant", "content": text}}]}
    return 200, json.dumps(body).encode(), 0.0


def test_payload_is_sent_with_stream_false():
    fake = FakeOllama(lambda n, body: ok("hi"))
    try:
        reply = LLMClient(fake.url).generate(ask(), deadline())
    finally:
        fake.close()
    assert reply.text == "hi"
    assert reply.server_seconds == pytest.approx(0.001)
    assert fake.requests == [{"model": "m", "prompt": "p", "stream": False}]
    assert fake.paths == ["/api/generate"]


def test_refused_connection_is_retried_then_reported_unreachable():
    url = closed_port_url()
    started = time.monotonic()
    with pytest.raises(LLMUnreachableError, match="after 3 attempts"):
        LLMClient(url).generate(ask(), deadline(), "s1")
    assert time.monotonic() - started < 5


def test_server_error_is_retried_and_can_recover():
    fake = FakeOllama(lambda n, body: (500, b'{"error":"busy"}', 0) if n < 3 else ok("fine"))
    try:
        assert LLMClient(fake.url).generate(ask(), deadline()).text == "fine"
    finally:
        fake.close()
    assert len(fake.requests) == 3


def test_persistent_server_error_is_an_llm_error():
    fake = FakeOllama(lambda n, body: (500, b'{"error":"broken"}', 0))
    try:
        with pytest.raises(LLMError, match="HTTP 500: broken"):
            LLMClient(fake.url).generate(ask(), deadline())
    finally:
        fake.close()
    assert len(fake.requests) == 3


def test_unknown_model_says_to_pull_it():
    fake = FakeOllama(lambda n, body: (404, b'{"error":"model \'m\' not found"}', 0))
    try:
        with pytest.raises(LLMError, match="ollama pull m"):
            LLMClient(fake.url).generate(ask(), deadline())
    finally:
        fake.close()
    assert len(fake.requests) == 1  # not retried: a retry cannot fix it


@pytest.mark.parametrize("body", [b"<html>proxy error</html>", b'{"unexpected": 1}', b""])
def test_garbage_replies_are_llm_errors(body):
    fake = FakeOllama(lambda n, _: (200, body, 0))
    try:
        with pytest.raises(LLMError, match="not an Ollama generate object"):
            LLMClient(fake.url).generate(ask(), deadline())
    finally:
        fake.close()


def test_null_total_duration_is_not_a_crash():
    body = json.dumps({"response": "x", "done": True, "total_duration": None}).encode()
    fake = FakeOllama(lambda n, _: (200, body, 0))
    try:
        reply = LLMClient(fake.url).generate(ask(), deadline())
    finally:
        fake.close()
    assert (reply.text, reply.server_seconds) == ("x", 0.0)


def test_slow_server_hits_the_deadline():
    fake = FakeOllama(lambda n, body: ok("late", delay=3))
    try:
        started = time.monotonic()
        with pytest.raises(StepTimeoutError, match="did not answer"):
            LLMClient(fake.url).generate(ask(), deadline(0.5))
        assert time.monotonic() - started < 2.5
    finally:
        fake.close()


def test_non_http_endpoint_is_an_llm_error():
    with pytest.raises(LLMError, match="not an http"):
        LLMClient("ftp://x").generate(ask(), deadline())


def test_request_body_is_json_with_options():
    fake = FakeOllama(lambda n, body: ok("x"))
    try:
        LLMClient(fake.url).generate(
            ask(options={"temperature": 0}, format="json", system="s"), deadline()
        )
    finally:
        fake.close()
    assert json.dumps(fake.requests[0]["options"]) == '{"temperature": 0}'
    assert fake.requests[0]["format"] == "json"
    assert fake.requests[0]["system"] == "s"


def test_oversized_reply_is_refused_without_reading_it_all(monkeypatch):
    monkeypatch.setenv("WORKFLOW_MAX_REPLY_BYTES", "1000")
    huge = json.dumps({"response": "x" * 5000}).encode()
    fake = FakeOllama(lambda n, _: (200, huge, 0))
    try:
        with pytest.raises(LLMError, match="replies over 1000 are refused"):
            LLMClient(fake.url).generate(ask(), deadline())
    finally:
        fake.close()


def test_api_key_is_sent_as_bearer_and_never_shown(monkeypatch):
    monkeypatch.setenv("OLLAMA_API_KEY", "sekrit-123")
    fake = FakeOllama(lambda n, _: (401, b'{"error":"bad key"}', 0))
    try:
        with pytest.raises(LLMError) as caught:
            LLMClient(fake.url).generate(ask(), deadline())
    finally:
        fake.close()
    assert fake.headers[0]["Authorization"] == "Bearer sekrit-123"
    assert "refused the credentials" in caught.value.message
    assert "sekrit" not in caught.value.message


def test_a_tool_may_name_its_own_key_variable(monkeypatch):
    monkeypatch.setenv("MY_KEY", "k2")
    fake = FakeOllama(lambda n, _: ok("x"))
    try:
        LLMClient(fake.url, api_key_env="MY_KEY").generate(ask(), deadline())
    finally:
        fake.close()
    assert fake.headers[0]["Authorization"] == "Bearer k2"


def test_credentials_in_the_endpoint_become_basic_auth_and_are_redacted():
    url = closed_port_url().replace("http://", "http://alice:pa55@")
    with pytest.raises(LLMUnreachableError) as caught:
        LLMClient(url).generate(ask(), deadline())
    assert "pa55" not in caught.value.message and "alice" not in caught.value.message
    assert "***@127.0.0.1" in caught.value.message
    fake = FakeOllama(lambda n, _: ok("x"))
    try:
        LLMClient(fake.url.replace("http://", "http://alice:pa55@")).generate(ask(), deadline())
    finally:
        fake.close()
    assert fake.headers[0]["Authorization"] == "Basic YWxpY2U6cGE1NQ=="


def test_openai_provider_speaks_chat_completions():
    fake = FakeOllama(lambda n, _: chat("hello"))
    try:
        reply = LLMClient(fake.url, provider="openai").generate(
            ask(
                system="sys",
                options={"temperature": 0, "num_predict": 5, "num_ctx": 9},
                format="json",
            ),
            deadline(),
        )
    finally:
        fake.close()
    assert reply.text == "hello"
    assert fake.paths == ["/v1/chat/completions"]
    sent = fake.requests[0]
    assert sent["messages"] == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "p"},
    ]
    assert sent["temperature"] == 0 and sent["max_tokens"] == 5 and "num_ctx" not in sent
    assert sent["response_format"] == {"type": "json_object"}


def test_openai_endpoint_ending_in_v1_is_not_doubled():
    fake = FakeOllama(lambda n, _: chat("x"))
    try:
        LLMClient(fake.url + "/v1", provider="openai").generate(ask(), deadline())
    finally:
        fake.close()
    assert fake.paths == ["/v1/chat/completions"]


def test_openai_garbage_is_an_llm_error():
    fake = FakeOllama(lambda n, _: (200, b'{"choices": []}', 0))
    try:
        with pytest.raises(LLMError, match="not an OpenAI chat completion"):
            LLMClient(fake.url, provider="openai").generate(ask(), deadline())
    finally:
        fake.close()


def test_streaming_calls_back_per_token_for_both_providers():
    lines = [
        {"response": "Hel", "done": False},
        {"response": "lo", "done": False},
        {"response": "", "done": True, "total_duration": 2_000_000_000},
    ]
    ndjson = b"".join(json.dumps(x).encode() + b"\n" for x in lines)
    fake = FakeOllama(lambda n, _: (200, ndjson, 0))
    tokens: list[str] = []
    try:
        reply = LLMClient(fake.url).generate(ask(), deadline(), on_token=tokens.append)
    finally:
        fake.close()
    assert tokens == ["Hel", "lo"] and reply.text == "Hello" and reply.server_seconds == 2.0
    assert fake.requests[0]["stream"] is True

    chunks = [{"choices": [{"delta": {"content": c}}]} for c in ("a", "b")]
    sse = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)
    fake = FakeOllama(lambda n, _: (200, sse + b"data: [DONE]\n\n", 0))
    tokens.clear()
    try:
        reply = LLMClient(fake.url, provider="openai").generate(
            ask(), deadline(), on_token=tokens.append
        )
    finally:
        fake.close()
    assert tokens == ["a", "b"] and reply.text == "ab"


def test_streamed_error_object_is_an_llm_error():
    fake = FakeOllama(lambda n, _: (200, b'{"response":"x"}\n{"error":"model crashed"}\n', 0))
    try:
        with pytest.raises(LLMError, match="model crashed"):
            LLMClient(fake.url).generate(ask(), deadline(), on_token=lambda t: None)
    finally:
        fake.close()


def test_tokens_in_and_out_from_the_real_model_plain_and_streamed(llm_server):
    """Ollama's counts and OpenAI's ``usage`` (plain, and streamed with ``include_usage``):
    the same prompt counts the same tokens in every way, the reply at most ``num_predict``, and
    the plain Ollama call says what the server says to a direct request."""
    options = {"temperature": 0, "top_k": 1, "seed": 7, "num_predict": 6}
    question = LLMRequest("llama3", "Name a color.", options=options)
    seen = {}
    for provider in ("ollama", "openai"):
        client = LLMClient(llm_server.url, provider=provider)
        plain = client.generate(question, deadline(120))
        tokens: list[str] = []
        streamed = client.generate(question, deadline(120), on_token=tokens.append)
        assert tokens and "".join(tokens) == streamed.text
        for reply in (plain, streamed):
            assert reply.tokens_out is not None and 0 < reply.tokens_out <= 6
        seen[provider] = (plain.tokens_in, streamed.tokens_in)
    prompt_tokens = seen["ollama"][0]
    assert prompt_tokens > 0
    assert seen == {"ollama": (prompt_tokens,) * 2, "openai": (prompt_tokens,) * 2}
    reply_tokens = LLMClient(llm_server.url).generate(question, deadline(120)).tokens_out
    direct = json.loads(
        http_client.request(
            "POST",
            llm_server.url + "/api/generate",
            deadline=deadline(120),
            body=json.dumps(
                {
                    "model": "llama3",
                    "prompt": "Name a color.",
                    "stream": False,
                    "options": options,
                }
            ).encode(),
            headers=http_client.json_headers(),
        ).body
    )
    assert (direct["prompt_eval_count"], direct["eval_count"]) == (prompt_tokens, reply_tokens)


def test_a_server_that_refuses_stream_options_is_asked_again_without_them(monkeypatch):
    """Some OpenAI-compatible servers reject fields they do not know: the client asks again at
    once without ``stream_options`` (and remembers it), and counts the pieces that arrive."""
    from runner_template import llm

    monkeypatch.setattr(llm, "_NO_STREAM_USAGE", set())
    refusal = json.dumps({"error": {"message": "Unrecognized field: stream_options"}}).encode()
    chunks = [{"choices": [{"delta": {"content": c}}]} for c in ("a", "b", "c")]
    chunks.append({"choices": [{"delta": {}, "finish_reason": "stop"}]})
    sse = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)

    def script(n, body):
        return (
            (400, refusal, 0) if "stream_options" in body else (200, sse + b"data: [DONE]\n\n", 0)
        )

    fake = FakeOllama(script)
    try:
        client = LLMClient(fake.url, provider="openai")
        first = client.generate(ask(), deadline(), on_token=lambda t: None)
        second = client.generate(ask(), deadline(), on_token=lambda t: None)
    finally:
        fake.close()
    assert first.text == second.text == "abc"
    assert (first.tokens_in, first.tokens_out) == (None, 3)
    assert ["stream_options" in body for body in fake.requests] == [True, False, False]
