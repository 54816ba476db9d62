"""``docker-workflow batch`` through the real engine: one container, resume after an interrupt,
retrying failures, and a replicated job on a real single-node Docker Swarm."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import docker
import pytest
from helpers import CLI, ROOT, WORKFLOWS, wait_until, write_json

TEXT = 'He said "stop" \\ it\'s {fine}\nnew line\ttab é 漢字 🎉\n'


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("batch")
    path = folder / "in.jsonl"
    rows = [json.dumps({"data": f"word {i} " * (i % 5 + 1)}) for i in range(300)]
    rows[7] = "this line is not json"
    rows[11] = json.dumps({"nope": 1})
    rows[250] = json.dumps({"data": TEXT * 21000}, ensure_ascii=False)  # over 1 MB
    path.write_text("\n".join(rows) + "\n\n", encoding="utf-8")
    return path


def results(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def check_results(found, total=300):
    assert [r["index"] for r in found] == list(range(total))  # every index once, in order
    failed = {r["index"]: r["error"]["type"] for r in found if "error" in r}
    assert failed == {7: "bad_input", 11: "bad_input"}
    assert found[250]["outputs"]["result"]["combined"]["result_a"]["length"] == len(TEXT * 21000)
    assert found[3]["outputs"]["result"]["count"] == 3


def test_one_container_runs_the_batch_and_reports_per_input(dw, inputs, tmp_path):
    out = tmp_path / "results.jsonl"
    proc = dw(
        "batch",
        str(WORKFLOWS / "parallel_profile.json"),
        str(inputs),
        "-o",
        str(out),
        "-j",
        "4",
        "--platform",
        "linux/amd64",
        "--network",
        "none",
    )
    assert proc.returncode == 7, proc.stderr[-3000:]  # some inputs failed, each has its line
    check_results(results(out))
    assert "300/300 done, 2 failed" in proc.stderr


def test_an_interrupted_batch_keeps_what_finished_and_resumes(dw, inputs, tmp_path, shared_cache):
    out = tmp_path / "results.jsonl"
    slow = json.loads((WORKFLOWS / "parallel_profile.json").read_text())
    slow["workflow_id"] = "slow-profile"
    slow["steps"].insert(
        0,
        {
            "step_id": "pause",
            "type": "python_tool",
            "code": "import time\ntime.sleep(0.05)\nresult = 1",
        },
    )
    workflow = write_json(tmp_path / "slow.json", slow)
    args = [
        "batch",
        str(workflow),
        str(inputs),
        "-o",
        str(out),
        "--platform",
        "linux/amd64",
        "--network",
        "none",
    ]
    assert dw("build", str(workflow), "--platform", "linux/amd64").returncode == 0
    env = {**os.environ, "DOCKER_WORKFLOW_CACHE": str(shared_cache)}
    proc = subprocess.Popen(
        [*CLI, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert wait_until(lambda: out.exists() and len(out.read_bytes().splitlines()) > 40, 120)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert "run the same command again to resume" in stderr
    kept = results(out)
    assert 40 < len(kept) < 300 and [r["index"] for r in kept] == sorted(r["index"] for r in kept)
    client = docker.from_env()
    assert not client.containers.list(all=True, filters={"label": "docker-workflow.run"})
    proc = dw(*args)
    assert proc.returncode == 7, proc.stderr[-2000:]
    check_results(results(out))


def test_retry_failed_runs_only_the_failed_inputs_again(dw, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"data": "a b"}\n{"data": 5}\n{"data": "c"}\n')
    out = tmp_path / "out.jsonl"
    args = [
        "batch",
        str(WORKFLOWS / "parallel_profile.json"),
        str(source),
        "-o",
        str(out),
        "--platform",
        "linux/amd64",
        "--network",
        "none",
    ]
    assert dw(*args).returncode == 7
    first = results(out)
    assert "error" in first[1] and "outputs" in first[0]
    assert dw(*args).returncode == 7  # nothing left to run: the same file
    assert results(out) == first
    proc = dw(*args, "--retry-failed")
    assert proc.returncode == 7 and "batch: 3/3 done" in proc.stderr
    assert len(results(out)) == 3


def test_a_batch_with_the_real_model_and_four_at_a_time(dw, llm_server, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text(
        "".join(
            json.dumps({"text": f"Fact {i}: water boils at 100 C.", "max_length": 5}) + "\n"
            for i in range(6)
        )
    )
    out = tmp_path / "out.jsonl"
    proc = dw(
        "batch",
        str(WORKFLOWS / "simple_summarizer.json"),
        str(source),
        "-o",
        str(out),
        "-j",
        "4",
        "--platform",
        "linux/amd64",
        "--network",
        "host",
        "--endpoint",
        f"http://host.docker.internal:{llm_server.port}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = results(out)
    assert [r["index"] for r in found] == list(range(6))
    assert all(isinstance(r["outputs"]["summary"], str) for r in found)


# -- Docker Swarm -----------------------------------------------------------------------------


def leftovers(client):
    label = {"label": "docker-workflow.batch"}
    return (
        client.services.list(filters=label),
        client.volumes.list(filters=label),
        client.containers.list(all=True, filters=label),
        client.networks.list(filters=label),
    )


def test_swarm_replicated_job_gets_every_result_in_order(dw, swarm, inputs, tmp_path):
    out = tmp_path / "results.jsonl"
    proc = dw(
        "batch",
        str(WORKFLOWS / "parallel_profile.json"),
        str(inputs),
        "-o",
        str(out),
        "--engine",
        "swarm",
        "--replicas",
        "3",
        "-j",
        "2",
        "--network",
        "none",
        "--platform",
        "linux/amd64",
    )
    assert proc.returncode == 7, proc.stderr[-3000:]
    check_results(results(out))
    assert leftovers(swarm) == ([], [], [], [])


PROBE = """
import errno, socket
try:
    socket.create_connection((host, 9), timeout=5).close()
    result = "connected"
except OSError as error:
    result = errno.errorcode.get(error.errno, str(error))
"""


def test_swarm_network_none_reaches_nothing_outside(dw, swarm, tmp_path):
    """Swarm has no "none" network: the batch's own internal overlay stands in for it."""
    gateway = swarm.networks.get("bridge").attrs["IPAM"]["Config"][0]["Gateway"]
    workflow = write_json(
        tmp_path / "probe.json",
        {
            "workflow_id": "probe",
            "version": "1",
            "inputs": {"host": {"type": "string"}},
            "steps": [
                {
                    "step_id": "probe",
                    "type": "python_tool",
                    "input_mapping": {"host": "inputs.host"},
                    "code": PROBE,
                    "output_name": "reach",
                }
            ],
            "outputs": {"reach": {"source_reference": "steps.probe.reach"}},
        },
    )
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"host": gateway}) + "\n")
    out = tmp_path / "out.jsonl"
    args = ["batch", str(workflow), str(source), "-o", str(out), "--engine", "swarm"]
    proc = dw(*args, "--replicas", "1", "--network", "none", "--platform", "linux/amd64")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (found,) = results(out)
    # On the default bridge the host's gateway answers (ECONNREFUSED on a closed port).
    assert found["outputs"]["reach"] in ("ENETUNREACH", "EHOSTUNREACH", "timed out"), found
    assert leftovers(swarm) == ([], [], [], [])


def test_swarm_failed_shards_are_retried_then_reported_per_index(dw, swarm, tmp_path):
    crashy = json.loads((WORKFLOWS / "parallel_profile.json").read_text())
    crashy["workflow_id"] = "crashy"
    crashy["steps"].insert(
        0,
        {
            "step_id": "crash",
            "type": "python_tool",
            "input_mapping": {"d": "inputs.data"},
            "code": "import os\nif d == 'boom':\n    os._exit(9)\nresult = 1",
        },
    )
    workflow = write_json(tmp_path / "crashy.json", crashy)
    source = tmp_path / "in.jsonl"
    source.write_text(
        "".join(json.dumps({"data": f"w{i}"}) + "\n" for i in range(9))
        + json.dumps({"data": "boom"})
        + "\n"
    )
    out = tmp_path / "out.jsonl"
    started = time.monotonic()
    proc = dw(
        "batch",
        str(workflow),
        str(source),
        "-o",
        str(out),
        "--engine",
        "swarm",
        "--replicas",
        "2",
        "--shard-retries",
        "1",
        "--platform",
        "linux/amd64",
    )
    assert proc.returncode == 7, proc.stderr[-3000:]
    found = results(out)
    assert [r["index"] for r in found] == list(range(10))
    assert all("outputs" in r for r in found[:9])
    assert found[9]["error"]["type"] == "shard_failed"
    assert "2 attempt(s)" in found[9]["error"]["message"]
    assert leftovers(swarm) == ([], [], [], [])
    assert time.monotonic() - started < 300
