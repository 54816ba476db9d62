"""The dev LLM server, through HTTP, with the real SmolLM2 model."""

import http.client
import json

import pytest


def request(server, method, path, body=None, raw=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    text = response.read().decode()
    conn.close()
    return response.status, response.getheader("Content-Type"), text


def test_tags_version_and_show(llm_server):
    status, _, text = request(llm_server, "GET", "/api/tags")
    names = [m["name"] for m in json.loads(text)["models"]]
    assert status == 200 and names == ["llama3:latest", "smollm2:135m"]
    status, _, text = request(llm_server, "GET", "/api/version")
    assert status == 200 and json.loads(text)["version"]
    status, _, text = request(llm_server, "POST", "/api/show", {"model": "llama3"})
    assert status == 200 and json.loads(text)["details"]["format"] == "gguf"


def test_errors_have_ollama_shapes(llm_server):
    status, _, text = request(llm_server, "POST", "/api/generate", {"model": "nope", "prompt": "x"})
    assert status == 404 and json.loads(text) == {"error": "model 'nope' not found"}
    status, _, text = request(llm_server, "POST", "/api/generate", raw=b"{broken")
    assert status == 400 and json.loads(text)["error"].startswith("invalid JSON body")
    status, _, text = request(llm_server, "POST", "/api/generate", {"prompt": "x"})
    assert status == 400 and json.loads(text) == {"error": "model is required"}
    status, _, _ = request(llm_server, "GET", "/api/nothing")
    assert status == 404


def test_generate_without_streaming_is_deterministic_at_temperature_zero(llm_server):
    body = {
        "model": "llama3",
        "prompt": "Name a color.",
        "system": "Answer in one word.",
        "stream": False,
        "options": {"temperature": 0, "num_predict": 12},
    }
    first = json.loads(request(llm_server, "POST", "/api/generate", body)[2])
    second = json.loads(request(llm_server, "POST", "/api/generate", body)[2])
    assert first["done"] is True and first["response"].strip()
    assert first["response"] == second["response"]
    assert first["eval_count"] <= 12 and first["total_duration"] > 0


def test_generate_streams_ndjson_by_default(llm_server):
    status, content_type, text = request(
        llm_server,
        "POST",
        "/api/generate",
        {"model": "smollm2:135m", "prompt": "Count to five.", "options": {"num_predict": 16}},
    )
    lines = [json.loads(line) for line in text.splitlines()]
    assert status == 200 and content_type == "application/x-ndjson"
    assert len(lines) > 2 and all(not line["done"] for line in lines[:-1]) and lines[-1]["done"]
    assert "".join(line["response"] for line in lines).strip()


@pytest.mark.parametrize(
    "fmt",
    [
        "json",
        {"type": "object", "properties": {"color": {"type": "string"}}, "required": ["color"]},
    ],
)
def test_json_format_gives_valid_json(llm_server, fmt):
    body = {
        "model": "llama3",
        "prompt": "Give a color as JSON with key color.",
        "format": fmt,
        "stream": False,
        "options": {"temperature": 0, "num_predict": 40},
    }
    reply = json.loads(request(llm_server, "POST", "/api/generate", body)[2])
    parsed = json.loads(reply["response"])
    assert isinstance(parsed, dict)
    if isinstance(fmt, dict):
        assert isinstance(parsed["color"], str)


def test_chat(llm_server):
    body = {
        "model": "llama3",
        "stream": False,
        "options": {"temperature": 0, "num_predict": 16},
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hello."},
        ],
    }
    reply = json.loads(request(llm_server, "POST", "/api/chat", body)[2])
    assert reply["message"]["role"] == "assistant" and reply["message"]["content"].strip()
    assert reply["done"] is True


def test_openai_compatible_routes_answer_with_the_real_model(llm_server):
    status, _, text = request(llm_server, "GET", "/v1/models")
    assert status == 200 and "llama3:latest" in [m["id"] for m in json.loads(text)["data"]]
    body = {
        "model": "llama3",
        "messages": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "Name a color."},
        ],
        "temperature": 0,
        "max_tokens": 8,
    }
    status, _, text = request(llm_server, "POST", "/v1/chat/completions", body)
    reply = json.loads(text)
    assert status == 200 and reply["object"] == "chat.completion"
    assert reply["choices"][0]["message"]["content"].strip()
    assert reply["usage"]["completion_tokens"] <= 8
    status, content_type, text = request(
        llm_server, "POST", "/v1/chat/completions", {**body, "stream": True}
    )
    assert status == 200 and content_type == "text/event-stream"
    chunks = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
    assert chunks[-1] == "[DONE]"
    streamed = "".join(json.loads(c)["choices"][0]["delta"].get("content", "") for c in chunks[:-1])
    assert streamed == reply["choices"][0]["message"]["content"]
    status, _, text = request(llm_server, "POST", "/v1/chat/completions", {**body, "model": "x"})
    assert status == 404 and json.loads(text)["error"]["message"] == "The model `x` does not exist"


def test_the_runner_speaks_openai_to_the_real_model(llm_server, tmp_path):
    """End to end: a workflow whose LLM tool says provider 'openai', run on the real model."""
    from helpers import run_cli, write_json

    workflow = {
        "workflow_id": "openai-path",
        "inputs": {"topic": {"type": "string", "required": True}},
        "steps": [
            {
                "step_id": "ask",
                "type": "llm_call",
                "tool": "t",
                "prompt_template": "One word about {topic}:",
                "input_mapping": {"topic": "inputs.topic"},
            }
        ],
        "tools": {
            "t": {
                "type": "llm",
                "model": "llama3",
                "provider": "openai",
                "temperature": 0,
                "max_tokens": 6,
            }
        },
    }
    path = write_json(tmp_path / "w.json", workflow)
    proc = run_cli("run", "--local", str(path), '{"topic": "sea"}', "--endpoint", llm_server.url)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["output"].strip()
    proc = run_cli(
        "run",
        "--local",
        str(path),
        '{"topic": "sea"}',
        "--endpoint",
        llm_server.url + "/v1",
        "--stream",
    )
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [e["event"] for e in events][-1] == "result"
    assert any(e["event"] == "token" for e in events)
