"""The runner's command line, run as a real process: inputs, outputs, errors, exit codes."""

import json
import os
import subprocess
import sys

import pytest
from fakes import FakeOllama, closed_port_url
from helpers import ROOT

from runner_template.errors import (
    EXIT_BAD_INPUT,
    EXIT_LLM_ERROR,
    EXIT_LLM_UNREACHABLE,
    EXIT_STEP_TIMEOUT,
    EXIT_TOOL_FAILED,
)

ECHO = "import sys, json; print(json.dumps(json.load(sys.stdin)))"


def write_bundle(tmp_path, steps, tools, inputs=None, outputs=None):
    bundle = {
        "format": 1,
        "workflow": {
            "id": "t",
            "version": "1",
            "inputs": inputs or {},
            "outputs": outputs or {},
            "steps": steps,
        },
        "tools": tools,
    }
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    return path


def runner(bundle, *args, stdin="", env=None):
    environment = {**os.environ, "WORKFLOW_BUNDLE": str(bundle), "WORKFLOW_RETRY_BACKOFF": "0.01"}
    environment.pop("INPUT", None)
    environment.pop("OLLAMA_ENDPOINT", None)
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "runner_template", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environment,
        cwd=ROOT,
        timeout=60,
    )


@pytest.fixture
def echo_bundle(tmp_path):
    steps = [
        {
            "step_id": "e",
            "type": "python_tool",
            "tool": "echo",
            "input_mapping": {"text": "inputs.text"},
        }
    ]
    tools = {"echo": {"kind": "executable", "source": ECHO}}
    return write_bundle(
        tmp_path,
        steps,
        tools,
        {"text": {"type": "string", "required": True}},
        {"echo": {"source_reference": "steps.e.output.text"}},
    )


TRICKY = "quotes \" ' and \\ backslashes\nnew lines, unicode é 漢字 🎉, braces {x} {{y}}"


def test_inputs_from_argument_file_env_and_stdin(echo_bundle, tmp_path):
    payload = json.dumps({"text": TRICKY})
    (tmp_path / "in.json").write_text("\ufeff" + payload, encoding="utf-8")
    for proc in (
        runner(echo_bundle, payload),
        runner(echo_bundle, "--input-file", str(tmp_path / "in.json")),
        runner(echo_bundle, "-f", "-", stdin=payload),
        runner(echo_bundle, env={"INPUT": payload}),
        runner(echo_bundle, stdin=payload),
    ):
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout) == {"echo": TRICKY}
        assert "[workflow] step e: done" in proc.stderr


def test_large_input_through_stdin(echo_bundle):
    big = (TRICKY + "\n") * 12000  # about 1 MB
    proc = runner(echo_bundle, "-f", "-", stdin=json.dumps({"text": big}))
    assert proc.returncode == 0, proc.stderr[-500:]
    assert json.loads(proc.stdout) == {"echo": big}


def test_bad_input_gives_error_json_and_exit_2(echo_bundle):
    proc = runner(echo_bundle, "{not json")
    assert proc.returncode == EXIT_BAD_INPUT
    error = json.loads(proc.stdout)["error"]
    assert error["type"] == "bad_input" and "line 1 column 2" in error["message"]
    assert proc.stderr.strip().splitlines()[-1].startswith("error: bad_input")
    assert "Traceback" not in proc.stderr

    proc = runner(echo_bundle, "{}")
    assert proc.returncode == EXIT_BAD_INPUT
    assert "missing required input 'text'" in json.loads(proc.stdout)["error"]["message"]


def test_missing_bundle_is_a_clear_error(tmp_path):
    proc = runner(tmp_path / "nope.json", "{}")
    assert proc.returncode == EXIT_BAD_INPUT
    assert "cannot read the workflow bundle" in proc.stderr


def test_describe_prints_the_interface(echo_bundle):
    proc = runner(echo_bundle, "--describe")
    assert proc.returncode == 0
    info = json.loads(proc.stdout)
    assert info["workflow_id"] == "t" and info["outputs"] == ["echo"] and info["steps"] == ["e"]


def llm_bundle(tmp_path, timeout=30):
    steps = [
        {
            "step_id": "ask",
            "type": "llm_call",
            "tool": "llm",
            "timeout": timeout,
            "input_mapping": {"q": "inputs.q"},
        }
    ]
    tools = {"llm": {"kind": "llm", "model": "m"}}
    return write_bundle(tmp_path, steps, tools, {"q": {"type": "string"}})


def test_ollama_down_exits_3(tmp_path):
    proc = runner(llm_bundle(tmp_path), '{"q": "hi"}', env={"OLLAMA_ENDPOINT": closed_port_url()})
    assert proc.returncode == EXIT_LLM_UNREACHABLE
    error = json.loads(proc.stdout)["error"]
    assert error == {"type": "llm_unreachable", "step": "ask", "message": error["message"]}
    assert "cannot reach the LLM server" in error["message"]
    assert "Traceback" not in proc.stderr


def test_unknown_model_exits_4(tmp_path):
    fake = FakeOllama(lambda n, body: (404, b'{"error": "model \\"m\\" not found"}', 0))
    try:
        proc = runner(llm_bundle(tmp_path), '{"q": "hi"}', "--endpoint", fake.url)
    finally:
        fake.close()
    assert proc.returncode == EXIT_LLM_ERROR
    assert "ollama pull m" in json.loads(proc.stdout)["error"]["message"]


def test_slow_ollama_exits_6(tmp_path):
    fake = FakeOllama(lambda n, body: (200, b"{}", 5))
    try:
        proc = runner(
            llm_bundle(tmp_path, timeout=0.5), '{"q": "hi"}', env={"OLLAMA_ENDPOINT": fake.url}
        )
    finally:
        fake.close()
    assert proc.returncode == EXIT_STEP_TIMEOUT
    assert json.loads(proc.stdout)["error"]["type"] == "step_timeout"


def test_tool_failure_exits_5(tmp_path):
    steps = [{"step_id": "boom", "type": "python_tool", "code": "raise ValueError('bad data')"}]
    proc = runner(write_bundle(tmp_path, steps, {}), "{}")
    assert proc.returncode == EXIT_TOOL_FAILED
    assert json.loads(proc.stdout)["error"] == {
        "type": "tool_failed",
        "step": "boom",
        "message": "tool 'boom.code' failed: ValueError: bad data",
    }


def test_stats_file_reports_llm_server_time(tmp_path):
    fake = FakeOllama(
        lambda n, body: (
            200,
            json.dumps({"response": "x", "done": True, "total_duration": 250_000_000}).encode(),
            0,
        )
    )
    try:
        proc = runner(
            llm_bundle(tmp_path),
            '{"q": "hi"}',
            "--stats",
            str(tmp_path / "s.json"),
            env={"OLLAMA_ENDPOINT": fake.url},
        )
    finally:
        fake.close()
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["steps"]["ask"]["llm_server_seconds"] == pytest.approx(0.25)
