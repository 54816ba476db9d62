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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--inputs", type=int, default=500)
    parser.add_argument("--llm-inputs", type=int, default=500)
    parser.add_argument("--loop-sample", type=int, default=100)
    args = parser.parse_args()
    os.environ.setdefault("DOCKER_WORKFLOW_CACHE", tempfile.mkdtemp(prefix="bench-batch-"))
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
