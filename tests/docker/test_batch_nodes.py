"""``batch --engine swarm`` across three Swarm nodes with no shared file system (the
``swarm_nodes`` fixture: dockerd in privileged containers, joined as workers to this engine's
swarm, pulling from a TLS registry on the bridge gateway). Inputs travel as Swarm configs,
results as the tasks' logs, the image by the digest ``build --push`` recorded. One node is
killed mid-run: its shards run again elsewhere, and the results file has exactly one line per
input, every one successful."""

from __future__ import annotations

import json
import os
import subprocess
import time

import docker.errors
import pytest
from helpers import CLI, ROOT, WORKFLOWS, wait_until, write_json

INPUTS = 300
PAUSE = 0.2  # seconds per input: the run lasts long enough to kill a node in the middle


@pytest.fixture(scope="module")
def slow_calculator(dw, swarm_nodes, tmp_path_factory):
    """The calculator (no LLM) with a pause per input, pushed to the nodes' registry."""
    data = json.loads((WORKFLOWS / "calculator.json").read_text())
    data["workflow_id"] = "slow-calculator"
    data["steps"].insert(
        0,
        {
            "step_id": "pause",
            "type": "python_tool",
            "code": f"import time\ntime.sleep({PAUSE})\nresult = 1",
        },
    )
    workflow = write_json(tmp_path_factory.mktemp("nodes") / "slow_calculator.json", data)
    tag = f"{swarm_nodes.registry.host}/nodes/slow-calculator:1"
    proc = dw("build", str(workflow), "--tag", tag, "--push", "--platform", "linux/amd64")
    assert proc.returncode == 0, proc.stderr[-3000:]
    reference = proc.stdout.strip().splitlines()[-1]
    assert reference.startswith(f"{swarm_nodes.registry.host}/nodes/slow-calculator@sha256:")
    yield workflow, tag, reference
    subprocess.run(["docker", "image", "rm", "--force", tag, reference], capture_output=True)


def service_tasks(service) -> list[dict]:
    """The service's tasks, or none if the batch removed it since it was listed (a race)."""
    try:
        return service.tasks()
    except docker.errors.NotFound:
        return []


def batch_tasks(client) -> list[dict]:
    tasks = []
    for service in client.services.list(filters={"label": "docker-workflow.batch"}):
        tasks += service_tasks(service)
    return tasks


def test_a_killed_node_loses_nothing_and_every_input_has_one_result(
    swarm_nodes, slow_calculator, shared_cache, tmp_path
):
    workflow, tag, reference = slow_calculator
    client = swarm_nodes.client
    source = tmp_path / "in.jsonl"
    source.write_text(
        "".join(json.dumps({"operation": "add", "a": i, "b": 1000}) + "\n" for i in range(INPUTS))
    )
    out = tmp_path / "results.jsonl"
    env = {**os.environ, "DOCKER_WORKFLOW_CACHE": str(shared_cache)}
    proc = subprocess.Popen(
        [*CLI, "batch", str(workflow), str(source), "-o", str(out), "--engine", "swarm",
         "--replicas", "6", "--tag", tag, "--platform", "linux/amd64"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    workers = set(swarm_nodes.node_ids)
    seen_on: set[str] = set()

    def victim() -> str | None:
        """A worker running one of the batch's tasks, once results have started to arrive."""
        running = [t for t in batch_tasks(client) if t["Status"]["State"] == "running"]
        seen_on.update(t["NodeID"] for t in running)
        lines = len(out.read_bytes().splitlines()) if out.exists() else 0
        busy = sorted({t["NodeID"] for t in running} & workers)
        return busy[0] if busy and lines >= 10 else None

    assert wait_until(lambda: victim() is not None, 240, 0.2), proc.stderr
    killed = victim()
    assert killed is not None
    swarm_nodes.kill(killed)
    rerun_on: set[str] = set()  # the nodes of the tasks of a later round
    while proc.poll() is None:
        for service in client.services.list(filters={"label": "docker-workflow.batch"}):
            if service.attrs["Spec"]["Labels"].get("docker-workflow.batch.attempt") != "1":
                rerun_on.update(t.get("NodeID", "") for t in service_tasks(service))
        time.sleep(0.2)
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    lines = out.read_text().splitlines()
    found = [json.loads(line) for line in lines]
    assert len(lines) == INPUTS  # no index twice, though the killed node's shards ran again
    assert [r["index"] for r in found] == list(range(INPUTS))
    assert [r["outputs"]["result"] for r in found] == [i + 1000 for i in range(INPUTS)]
    assert len(seen_on & workers) >= 2, seen_on  # the tasks really spread over the nodes
    assert wait_until(lambda: swarm_nodes.node_state(killed) == "down", 30, 0.5)
    assert rerun_on and killed not in rerun_on, rerun_on  # its shards ran again elsewhere
    # A surviving worker that ran tasks has the image it pulled by the pushed digest.
    ran = sorted((seen_on & workers) - {killed})
    assert ran, seen_on
    alive = swarm_nodes.containers[swarm_nodes.node_ids.index(ran[0])]
    digests = {
        d for image in swarm_nodes.api(alive).images.list() for d in image.attrs["RepoDigests"]
    }
    assert reference in digests, digests
    label = {"label": "docker-workflow.batch"}
    assert not client.services.list(filters=label) and not client.configs.list(filters=label)


def test_an_image_only_this_engine_has_keeps_the_tasks_here(dw, swarm_nodes, tmp_path):
    """With worker nodes joined, a batch of an image that was never pushed (the single-node
    swarm tests' kind) still runs: its tasks are placed on this node, the one that has it."""
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"a": i, "b": 2}) + "\n" for i in range(20)))
    out = tmp_path / "results.jsonl"
    since = str(int(time.time()) - 1)
    proc = dw(
        "batch", str(WORKFLOWS / "calculator.json"), str(source), "-o", str(out),
        "--engine", "swarm", "--replicas", "4", "--platform", "linux/amd64",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["outputs"]["result"] for r in found] == [i + 2 for i in range(20)]
    until = str(int(time.time()) + 1)

    def created(kind: str) -> list[str]:
        events = subprocess.run(
            ["docker", "events", "--since", since, "--until", until, "--filter", f"type={kind}",
             "--filter", "event=create", "--format", "{{.Actor.Attributes.name}}"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        return [name for name in events.stdout.split() if name.startswith("dw-batch-")]

    # One job per shard and no second attempt (a task sent to a worker, which lacks the
    # image, would be rejected and its shard run again), every task created on this engine.
    assert len(created("service")) == 4
    assert len(created("container")) == 4
