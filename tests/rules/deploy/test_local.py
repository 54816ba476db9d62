"""``run --local`` and ``serve --local`` are one launcher: a tool that imports a locked package
works under both (``serve --local`` once left the packages off the path)."""

from __future__ import annotations

import json
import os
import socket
import subprocess

import pytest
import requests
from helpers import CLI, ROOT, minimal_workflow, run_cli, write_json
from wheels import make_wheel, offline_index

CODE = """
import json, sys
import tinylocal
print(json.dumps(tinylocal.VALUE + len(json.load(sys.stdin)["text"])))
"""


@pytest.fixture
def packaged(tmp_path, monkeypatch):
    """A workflow whose one tool imports ``tinylocal``, locked from a local folder of wheels."""
    folder = tmp_path / "index"
    make_wheel(folder, "tinylocal", "1.0", modules={"tinylocal/__init__.py": "VALUE = 40\n"})
    for key, value in offline_index(folder).items():
        monkeypatch.setenv(key, value)
    data = minimal_workflow(
        steps=[
            {
                "step_id": "a",
                "type": "python_tool",
                "tool": "t",
                "input_mapping": {"text": "inputs.text"},
                "output_name": "value",
            }
        ],
        outputs={"value": {"source_reference": "steps.a.value"}},
        tools={"t": {"type": "python", "source_code": CODE, "requirements": ["tinylocal==1.0"]}},
    )
    return write_json(tmp_path / "wf.json", data)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_run_local_puts_the_locked_packages_on_the_path(packaged):
    proc = run_cli("run", "--local", str(packaged), '{"text": "ab"}')
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"value": 42}


def test_serve_local_puts_the_locked_packages_on_the_path(packaged):
    port = _free_port()
    service = subprocess.Popen(
        [*CLI, "serve", "--local", str(packaged), "-p", str(port), "-j", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=dict(os.environ),
    )
    try:
        assert service.stdout.readline().strip() == f"http://127.0.0.1:{port}"
        for line in service.stderr:  # the service's first log line says it listens
            if "listening" in line:
                break
        reply = requests.post(f"http://127.0.0.1:{port}/invoke", json={"text": "abc"}, timeout=30)
        assert reply.status_code == 200, reply.text
        assert reply.json() == {"outputs": {"value": 43}}
    finally:
        service.terminate()
        service.wait(timeout=30)


def test_serve_local_auth_token_env_guards_every_route_but_healthz(tmp_path):
    port = _free_port()
    env = {**os.environ, "WF_SERVICE_TOKEN": "s3cret-token-value"}
    service = subprocess.Popen(
        [
            *CLI,
            "serve",
            "--local",
            str(ROOT / "workflows" / "calculator.json"),
            *("-p", str(port), "--auth-token-env", "WF_SERVICE_TOKEN"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    try:
        assert service.stdout.readline().strip() == f"http://127.0.0.1:{port}"
        for line in service.stderr:
            if "listening" in line:
                break
        url = f"http://127.0.0.1:{port}"
        body = {"a": 6, "b": 7, "operation": "multiply"}
        assert requests.get(f"{url}/healthz", timeout=10).status_code == 200
        refused = requests.post(f"{url}/invoke", json=body, timeout=10)
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert "s3cret" not in refused.text
        wrong = {"Authorization": "Bearer nope"}
        assert (
            requests.post(f"{url}/invoke", json=body, headers=wrong, timeout=10).status_code == 401
        )
        good = {"Authorization": "Bearer s3cret-token-value"}
        reply = requests.post(f"{url}/invoke", json=body, headers=good, timeout=30)
        assert reply.status_code == 200, reply.text
        assert reply.json()["outputs"]["result"] == 42
    finally:
        service.terminate()
        service.wait(timeout=30)


def test_serve_auth_token_env_must_name_a_set_variable():
    proc = run_cli(
        "serve",
        "--local",
        str(ROOT / "workflows" / "calculator.json"),
        "--auth-token-env",
        "WF_TOKEN_THAT_IS_NOT_SET",
    )
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .endswith("--auth-token-env WF_TOKEN_THAT_IS_NOT_SET: the variable is not set or is empty")
    )
    assert "Traceback" not in proc.stderr


SLEEPER = """
import os, subprocess, time
helper = subprocess.Popen(["sleep", "90"])
with open(mark, "w") as handle:
    handle.write(f"{os.getpid()} {helper.pid} {os.environ['WORKFLOW_BUNDLE']}")
time.sleep(90)
result = 1
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize(("signum", "code"), [("SIGINT", 130), ("SIGTERM", 143), ("SIGHUP", 129)])
def test_a_signal_ends_the_runner_its_tools_and_the_bundle_copy(tmp_path, signum, code):
    """Ctrl-C (SIGINT to the CLI's process group, as a terminal sends it), SIGTERM or SIGHUP
    to ``run --local`` while a step sleeps: the runner and the process its tool started are
    gone, the private bundle copy is removed, and the one line is ``interrupted``."""
    import signal
    import time

    from helpers import wait_until

    mark = tmp_path / "mark"
    steps = [
        {
            "step_id": "nap",
            "type": "python_tool",
            "code": SLEEPER,
            "input_mapping": {"mark": "inputs.text"},
            "output_name": "stats",
        }
    ]
    workflow = write_json(
        tmp_path / "wf.json",
        minimal_workflow(steps=steps, outputs={"stats": {"source_reference": "steps.nap.stats"}}),
    )
    cli = subprocess.Popen(
        [*CLI, "run", "--local", str(workflow), json.dumps({"text": str(mark)}),
         "-o", str(tmp_path / "cache")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        start_new_session=True, text=True,
    )  # fmt: skip
    try:
        assert wait_until(lambda: mark.exists() and mark.read_text().count(" ") == 2, 120)
        runner, helper, bundle = mark.read_text().split(" ")
        runner, helper = int(runner), int(helper)
        assert os.path.exists(bundle) and _alive(runner) and _alive(helper)
        number = getattr(signal, signum)
        if signum == "SIGINT":
            os.killpg(cli.pid, number)  # the terminal's Ctrl-C: the foreground group
        else:
            os.kill(cli.pid, number)
        started = time.monotonic()
        out, err = cli.communicate(timeout=30)
        assert time.monotonic() - started < 10
    finally:
        if cli.poll() is None:
            cli.kill()
    assert cli.returncode == code, err
    assert err.splitlines()[-1] == "interrupted"
    assert "Traceback" not in err and "workflow: interrupted" not in err
    assert out == ""
    assert wait_until(lambda: not _alive(runner) and not _alive(helper), 5)
    assert not os.path.exists(os.path.dirname(bundle))


LEAVER = """
import subprocess
helper = subprocess.Popen(["sleep", "90"])
result = helper.pid
"""


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_signal_stops_serve_local_and_ends_what_its_tools_left_behind(tmp_path, signum):
    """Ctrl-C (SIGINT to the CLI's foreground group, as a terminal sends it), SIGTERM or SIGHUP
    (to the CLI alone, as a service manager or a closed terminal sends it) while ``serve
    --local`` runs: the service stops gracefully (exit 0, no traceback), and a process a tool
    started and left running is ended with it, because the service has a process group of its
    own (before, SIGTERM left it running and SIGHUP left the whole service running)."""
    import signal

    from helpers import wait_until

    steps = [
        {
            "step_id": "leave",
            "type": "python_tool",
            "code": LEAVER,
            "input_mapping": {},
            "output_name": "pid",
        }
    ]
    workflow = write_json(
        tmp_path / "wf.json",
        minimal_workflow(steps=steps, outputs={"pid": {"source_reference": "steps.leave.pid"}}),
    )
    port = _free_port()
    cli = subprocess.Popen(
        [*CLI, "serve", "--local", str(workflow), "-p", str(port), "-j", "1",
         "-o", str(tmp_path / "cache")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        start_new_session=True, text=True,
    )  # fmt: skip
    try:
        assert cli.stdout.readline().strip() == f"http://127.0.0.1:{port}"
        for line in cli.stderr:  # the service's first log line says it listens
            if "listening" in line:
                break
        reply = requests.post(f"http://127.0.0.1:{port}/invoke", json={"text": "x"}, timeout=60)
        assert reply.status_code == 200, reply.text
        helper = reply.json()["outputs"]["pid"]
        assert _alive(helper)
        if signum == "SIGINT":
            os.killpg(cli.pid, signal.SIGINT)  # the terminal's Ctrl-C: the foreground group
        else:
            os.kill(cli.pid, getattr(signal, signum))
        _out, err = cli.communicate(timeout=40)
    finally:
        if cli.poll() is None:
            cli.kill()
    assert cli.returncode == 0, err
    assert "Traceback" not in err
    assert wait_until(lambda: not _alive(helper), 5)
