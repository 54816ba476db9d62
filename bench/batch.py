"""Batch throughput: the spec's loop (one ``docker run`` per input) against ``batch``.

Measured in this run, on the same inputs, for a workflow with Python tools only
(parallel_profile) and one with an LLM step (the summarizer on the dev model, 8 tokens):

* loop: ``docker run --rm IMAGE '<json>'`` per input, as the spec's batch example does;
* ``docker-workflow batch -j 1`` and ``-j 4`` (one container for the whole batch);
* ``docker-workflow batch --engine swarm --replicas 2`` (a single-node swarm; made here and left
  again when this run made it).

Prints inputs/s and each figure's ratio to the loop. Run:
``.venv/bin/python bench/batch.py [--inputs 500] [--llm-inputs 500] [--loop-sample 100]``
(the loop is timed on ``--loop-sample`` inputs and reported per input: it is the slow one).

``--nodes``: instead, the batch across three Swarm worker nodes with no shared file system (the
test fixture's nodes, tests/swarm_nodes.py: dockerd in privileged containers on this machine,
pulling the pushed digest from a TLS registry on the bridge gateway), for the calculator (no
LLM), in the same run:

* per-input cost, local container against the three-node swarm: the marginal seconds per input
  between ``--node-inputs`` N and 4N inputs (the fixed cost of a run apart), and the whole run
  per input; the nodes share this machine's cores, so this is overhead, not speed-up;
* the time from ``batch`` start to the first result line;
* recovery: the calculator with a 0.2 s pause per input, one node that runs tasks killed once
  results arrive; seconds from the kill to the node seen down, and to the last result.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, print_table, run_quiet
from helpers import LLMServer
from swarm_nodes import SwarmNodes

PROFILE = ROOT / "workflows" / "parallel_profile.json"
SUMMARIZER = ROOT / "workflows" / "simple_summarizer.json"
CLI = [sys.executable, str(ROOT / "docker_workflow.py")]


def make_inputs(folder: Path, name: str, count: int, llm: bool) -> Path:
    path = folder / f"{name}.jsonl"
    with path.open("w") as handle:
        for i in range(count):
            if llm:
                row = {"text": f"Item {i}: the river rose after the rain.", "max_length": 5}
            else:
                row = {"data": f"alpha beta {i} gamma delta " * (i % 7 + 1)}
            handle.write(json.dumps(row) + "\n")
    return path


def summarizer_copy(folder: Path) -> Path:
    """The summarizer with a small token budget: the benchmark measures the plumbing."""
    data = json.loads(SUMMARIZER.read_text())
    data["workflow_id"] = "bench-summarizer"
    for tool in data.get("tools", {}).values():
        tool["max_tokens"] = 8
        tool["temperature"] = 0
    path = folder / "summarizer.json"
    path.write_text(json.dumps(data))
    return path


def cli(*args: str, env: dict | None = None) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        [*CLI, *args], capture_output=True, text=True, cwd=ROOT, env={**os.environ, **(env or {})}
    )
    if result.returncode not in (0, 7):
        raise SystemExit(f"failed: {args}\n{result.stderr[-3000:]}")
    return time.perf_counter() - started


def loop(tag: str, inputs: Path, sample: int, network: list[str], env_args: list[str]) -> float:
    """Seconds per input of one ``docker run`` per input (over ``sample`` inputs)."""
    lines = inputs.read_text().splitlines()[:sample]
    started = time.perf_counter()
    for line in lines:
        run_quiet(["docker", "run", "--rm", *network, *env_args, tag, line])
    return (time.perf_counter() - started) / len(lines)


def swarm_up() -> bool:
    state = run_quiet(["docker", "info", "--format", "{{.Swarm.LocalNodeState}}"]).stdout.strip()
    if state == "active":
        return False
    run_quiet(["docker", "swarm", "init", "--advertise-addr", "127.0.0.1"])
    return True


def measure(label, workflow, inputs, count, sample, llm_args, network) -> list[list[str]]:
    tag = f"bench-batch-{label.replace(' ', '-').lower()}:latest"
    cli("build", str(workflow), "--platform", "linux/amd64", "-t", tag)
    out = Path(tempfile.mkdtemp(prefix="bench-results-"))
    env_args = []
    if llm_args:
        env_args = [
            "-e",
            f"OLLAMA_ENDPOINT={llm_args[1]}",
            "--add-host",
            "host.docker.internal:127.0.0.1",
        ]
    per_input = loop(tag, inputs, sample, network, env_args)
    figures = [("loop: docker run per input", count / (per_input * count))]
    common = ["--platform", "linux/amd64", "-t", tag, *network, *llm_args]
    for name, extra in (
        ("batch -j 1", ["-j", "1"]),
        ("batch -j 4", ["-j", "4"]),
        ("batch --engine swarm --replicas 2", ["--engine", "swarm", "--replicas", "2", "-j", "2"]),
    ):
        results = out / f"{len(figures)}.jsonl"
        seconds = cli("batch", str(workflow), str(inputs), "-o", str(results), *common, *extra)
        lines = results.read_text().splitlines()
        assert len(lines) == count, (name, len(lines))
        figures.append((name, count / seconds))
    base = figures[0][1]
    rows = [[label, name, f"{rate:.1f}", f"{rate / base:.1f}x"] for name, rate in figures]
    print_table(
        f"{label} (inputs/s, ratio to the loop)", ["workflow", "how", "inputs/s", "vs loop"], rows
    )
    return rows


CALCULATOR = ROOT / "workflows" / "calculator.json"


def calculator_inputs(folder: Path, count: int) -> Path:
    path = folder / f"calc-{count}.jsonl"
    rows = (json.dumps({"operation": "add", "a": i, "b": 1}) + "\n" for i in range(count))
    path.write_text("".join(rows))
    return path


def paused_calculator(folder: Path, pause: float) -> Path:
    data = json.loads(CALCULATOR.read_text())
    data["workflow_id"] = "bench-paused-calculator"
    code = f"import time\ntime.sleep({pause})\nresult = 1"
    data["steps"].insert(0, {"step_id": "pause", "type": "python_tool", "code": code})
    path = folder / "paused_calculator.json"
    path.write_text(json.dumps(data))
    return path


def push(workflow: Path, tag: str) -> None:
    cli("build", str(workflow), "--platform", "linux/amd64", "-t", tag, "--push")


def watched_batch(args: list[str], out: Path, on_tick=None) -> tuple[float, float]:
    """Run ``batch``; (seconds to the first result line, seconds in all). ``on_tick`` is
    called every 50 ms once results arrive."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*CLI, "batch", *args, "-o", str(out)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    first = None
    while proc.poll() is None:
        if first is None and out.exists() and out.stat().st_size:
            first = time.perf_counter() - started
        if first is not None and on_tick is not None:
            on_tick()
        time.sleep(0.05)
    if proc.returncode != 0:
        raise SystemExit(f"batch failed ({proc.returncode}): {args}")
    return first or 0.0, time.perf_counter() - started


def measure_nodes(count: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-batch-nodes-"))
    started = time.perf_counter()
    nodes = SwarmNodes(folder)
    setup = time.perf_counter() - started
    rows: list[list[str]] = []
    try:
        tag = f"{nodes.registry.host}/bench/calculator:1"
        push(CALCULATOR, tag)
        common = [str(CALCULATOR), "--platform", "linux/amd64", "-t", tag]
        engines = {
            # Both use this machine's two cores: the local container runs two inputs at once.
            "one local container, -j 2": ["--engine", "local", "-j", "2"],
            "swarm, 3 workers + manager, --replicas 6": ["--engine", "swarm", "--replicas", "6"],
        }
        figures = {}
        for name, extra in engines.items():
            small = watched_batch(
                [*common, str(calculator_inputs(folder, count)), *extra], folder / "s.jsonl"
            )
            big = watched_batch(
                [*common, str(calculator_inputs(folder, 4 * count)), *extra], folder / "b.jsonl"
            )
            for path in (folder / "s.jsonl", folder / "b.jsonl"):
                path.unlink()
            marginal = (big[1] - small[1]) / (3 * count)
            figures[name] = (marginal, big[1] / (4 * count), small[0])
        local = figures["one local container, -j 2"]
        for name, (marginal, whole, first) in figures.items():
            rows.append(
                [
                    name,
                    f"{marginal * 1000:.2f}",
                    f"{marginal / local[0]:.2f}x",
                    f"{whole * 1000:.2f}",
                    f"{whole / local[1]:.2f}x",
                    f"{first:.2f}",
                ]
            )
        print_table(
            f"calculator, {count} and {4 * count} inputs (ms per input; ratio to local)",
            ["engine", "marginal ms/input", "vs local", "whole run ms/input", "vs local",
             "s to 1st result"],
            rows,
        )  # fmt: skip
        paused = paused_calculator(folder, 0.2)
        paused_tag = f"{nodes.registry.host}/bench/paused-calculator:1"
        push(paused, paused_tag)
        inputs = calculator_inputs(folder, 300)
        args = [str(paused), str(inputs), "--platform", "linux/amd64", "-t", paused_tag,
                "--engine", "swarm", "--replicas", "6"]  # fmt: skip
        _, clean = watched_batch(args, folder / "clean.jsonl")
        seen: dict[str, float | str] = {}

        def kill_a_busy_worker() -> None:
            if "node" in seen:
                if "down" not in seen and nodes.node_state(str(seen["node"])) == "down":
                    seen["down"] = time.perf_counter()
                return
            for service in nodes.client.services.list(filters={"label": "docker-workflow.batch"}):
                for task in service.tasks():
                    node = task.get("NodeID")
                    if task["Status"]["State"] == "running" and node in nodes.node_ids:
                        nodes.kill(node)
                        seen["node"], seen["at"] = node, time.perf_counter()
                        return

        _, with_kill = watched_batch(args, folder / "killed.jsonl", kill_a_busy_worker)
        end = time.perf_counter()
        lines = (folder / "killed.jsonl").read_text().splitlines()
        indices = [json.loads(line)["index"] for line in lines]
        assert indices == list(range(300)), "a result is missing or doubled"
        killed_at = float(seen["at"])
        down = f"{float(seen['down']) - killed_at:.1f}" if "down" in seen else "after the run"
        print_table(
            "recovery: 300 inputs x 0.2 s, --replicas 6, one busy worker killed",
            ["figure", "seconds"],
            [
                ["node set-up (3 nodes in parallel, image cached)", f"{setup:.1f}"],
                ["batch without a kill", f"{clean:.1f}"],
                ["batch with a kill", f"{with_kill:.1f}"],
                ["kill -> node seen down (1 s heartbeat)", down],
                ["kill -> last result (its shards ran again)", f"{end - killed_at:.1f}"],
                ["time the kill cost", f"{with_kill - clean:.1f}"],
            ],
        )
    finally:
        nodes.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--inputs", type=int, default=500)
    parser.add_argument("--llm-inputs", type=int, default=500)
    parser.add_argument("--loop-sample", type=int, default=100)
    parser.add_argument("--nodes", action="store_true", help="the three-node swarm figures")
    parser.add_argument("--node-inputs", type=int, default=300)
    args = parser.parse_args()
    os.environ.setdefault("DOCKER_WORKFLOW_CACHE", tempfile.mkdtemp(prefix="bench-batch-"))
    if args.nodes:
        measure_nodes(args.node_inputs)
        return
    folder = Path(tempfile.mkdtemp(prefix="bench-batch-inputs-"))
    made_swarm = swarm_up()
    server = LLMServer("127.0.0.1")
    try:
        rows = measure(
            "python tools",
            PROFILE,
            make_inputs(folder, "py", args.inputs, False),
            args.inputs,
            args.loop_sample,
            [],
            ["--network", "none"],
        )
        endpoint = f"http://host.docker.internal:{server.port}"
        rows += measure(
            "LLM step",
            summarizer_copy(folder),
            make_inputs(folder, "llm", args.llm_inputs, True),
            args.llm_inputs,
            min(args.loop_sample, args.llm_inputs),
            ["--endpoint", endpoint],
            ["--network", "host"],
        )
    finally:
        server.stop()
        if made_swarm:
            run_quiet(["docker", "swarm", "leave", "--force"])
    print_table(
        "batch throughput (inputs/s, ratio to the loop)",
        ["workflow", "how", "inputs/s", "vs loop"],
        rows,
    )


if __name__ == "__main__":
    main()
