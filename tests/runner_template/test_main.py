"""The runner's command line, run as a real process: inputs, outputs, errors, exit codes."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from fakes import FakeOllama, closed_port_url
from helpers import ROOT
from serving import MASK_PROBE

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


def sleeper_bundle(tmp_path):
    steps = [{"step_id": "nap", "type": "python_tool", "code": "import time\ntime.sleep(30)"}]
    return write_bundle(tmp_path, steps, {})


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]
)
@pytest.mark.parametrize("mode", ["run", "batch"])
def test_a_signal_ends_a_run_with_one_line_and_128_plus_its_number(tmp_path, signum, code, mode):
    environment = {**os.environ, "WORKFLOW_BUNDLE": str(sleeper_bundle(tmp_path))}
    args = ["{}"] if mode == "run" else ["--batch"]
    process = subprocess.Popen(
        [sys.executable, "-m", "runner_template", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
        cwd=ROOT,
    )
    if mode == "batch":
        process.stdin.write("{}\n")
        process.stdin.flush()
    else:
        assert "step nap: start" in process.stderr.readline()
    time.sleep(0.5)  # inside the run (a batch logs nothing per step)
    process.send_signal(signum)
    _, err = process.communicate(timeout=20)
    assert process.returncode == code
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == f"workflow: interrupted by {signal.Signals(signum).name}"


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="reads Linux's /proc")
def test_steps_threads_leave_the_handled_signals_to_the_main_thread(tmp_path):
    """A signal sent to the process goes to any thread that does not block it, and only the
    main thread runs Python's handlers: taken by a step's thread, a Ctrl-C used to wait for
    the step's timeout (runner_template/threads.py). The step (on a worker thread) reads its
    own mask and the main thread's from /proc."""
    steps = [{"step_id": "probe", "type": "python_tool", "code": MASK_PROBE}]
    outputs = {
        name: {"source_reference": f"steps.probe.output.{name}"} for name in ("step", "main")
    }
    proc = runner(write_bundle(tmp_path, steps, {}, outputs=outputs), "{}")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"step": [1, 2, 15], "main": []}


def test_secrets_expanded_into_an_api_url_do_not_leave_through_the_cli(tmp_path):
    fake = FakeOllama(lambda n, body: (404, b"unknown key tok-SECRET-42", 0))
    steps = [{"step_id": "call", "type": "python_tool", "tool": "api", "input_mapping": {}}]
    tools = {
        "api": {
            "kind": "api",
            "api_spec": {"method": "POST", "url": fake.url + "/x?apikey=${API_TOKEN}"},
        }
    }
    try:
        for stream in ([], ["--stream"]):
            proc = runner(
                write_bundle(tmp_path, steps, tools),
                "{}",
                *stream,
                env={"API_TOKEN": "tok-SECRET-42"},
            )
            assert proc.returncode == EXIT_TOOL_FAILED
            assert "tok-SECRET-42" not in proc.stdout + proc.stderr
            assert "apikey=***" in proc.stdout
    finally:
        fake.close()
    assert fake.paths[0] == "/x?apikey=tok-SECRET-42"


def test_an_llm_key_with_a_newline_is_one_error_and_no_retry(tmp_path):
    fake = FakeOllama(lambda n, body: (200, b"{}", 0))
    try:
        proc = runner(
            llm_bundle(tmp_path),
            '{"q": "hi"}',
            env={"OLLAMA_ENDPOINT": fake.url, "OLLAMA_API_KEY": "sk-from-a-file\n"},
        )
    finally:
        fake.close()
    assert proc.returncode == EXIT_LLM_ERROR and fake.requests == []
    assert "sk-from-a-file" not in proc.stdout + proc.stderr
    assert "OLLAMA_API_KEY contains CR, LF or NUL" in json.loads(proc.stdout)["error"]["message"]
    assert "retry" not in proc.stderr


@pytest.mark.parametrize("where", ["argument", "stdin"])
def test_an_integer_past_the_digit_limit_in_inputs_is_one_line(echo_bundle, where):
    inputs = '{"text": ' + "7" * 5000 + "}"
    proc = runner(echo_bundle, inputs) if where == "argument" else runner(echo_bundle, stdin=inputs)
    assert proc.returncode == EXIT_BAD_INPUT and "Traceback" not in proc.stderr
    assert "an integer of 5000 digits" in json.loads(proc.stdout)["error"]["message"]


def test_outputs_too_long_to_write_are_a_tool_failure(tmp_path):
    steps = [{"step_id": "big", "type": "python_tool", "code": "result = 10 ** 5000"}]
    proc = runner(write_bundle(tmp_path, steps, {}), "{}")
    assert proc.returncode == EXIT_TOOL_FAILED and "Traceback" not in proc.stderr
    assert "more than 4300 digits" in json.loads(proc.stdout)["error"]["message"]


def test_a_full_disk_on_stdout_is_one_line(echo_bundle):
    environment = {**os.environ, "WORKFLOW_BUNDLE": str(echo_bundle)}
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "runner_template", '{"text": "x"}'],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
            cwd=ROOT,
            timeout=60,
        )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: cannot write the results")


@pytest.mark.llm
@pytest.mark.parametrize("provider", ["ollama", "openai"])
def test_streams_of_the_real_model_end_with_their_mark(tmp_path, llm_server, provider):
    """The end marks the client now requires (``done: true``, ``[DONE]``) are what a real
    server sends: a streamed run of the dev model succeeds on both APIs."""
    steps = [
        {"step_id": "ask", "type": "llm_call", "tool": "llm", "input_mapping": {"q": "inputs.q"}}
    ]
    tools = {"llm": {"kind": "llm", "model": "llama3", "num_predict": 8}}
    bundle = write_bundle(tmp_path, steps, tools, {"q": {"type": "string"}})
    proc = runner(
        bundle, '{"q": "Say hi"}', "--stream", "--provider", provider, "--endpoint", llm_server.url
    )
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert events[-1]["event"] == "result" and any(e["event"] == "token" for e in events)
