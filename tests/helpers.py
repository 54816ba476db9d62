"""Helpers the tests share: paths, the dev LLM server process, CLI runners, sample data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "corpus" / "dse"
WORKFLOWS = ROOT / "workflows"
CLI = [sys.executable, str(ROOT / "docker_workflow.py")]


class LLMServer:
    """A running ``docker-workflow llm-server`` (real SmolLM2 behind the Ollama API)."""

    def __init__(self, host: str) -> None:
        self.process = subprocess.Popen(
            [*CLI, "llm-server", "--host", host, "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.process.stdout.readline()
        if not line.startswith("listening on "):
            self.process.kill()
            raise RuntimeError(f"llm-server did not start: {line!r} {self.process.stderr.read()}")
        self.port = int(line.rsplit(":", 1)[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def run_cli(*args: str, input_text: str | None = None, env: dict | None = None, timeout=600):
    """Run ``python docker_workflow.py ARGS`` and return the completed process (text mode)."""
    return subprocess.run(
        [*CLI, *args],
        input=input_text,
        capture_output=True,
        text=True,
        encoding="utf-8",
        env={**os.environ, **(env or {})},
        timeout=timeout,
        cwd=ROOT,
        stdin=None if input_text is not None else subprocess.DEVNULL,
    )


def run_local(workflow: Path, inputs: dict[str, Any], endpoint: str, *extra: str):
    """``docker-workflow run --local`` with ``inputs``; returns (process, parsed stdout)."""
    proc = run_cli(
        "run", "--local", str(workflow), json.dumps(inputs), "--endpoint", endpoint, *extra
    )
    try:
        parsed = json.loads(proc.stdout)
    except json.JSONDecodeError:
        parsed = None
    return proc, parsed


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


def minimal_workflow(**overrides: Any) -> dict[str, Any]:
    """A small valid lightweight workflow, to be broken on purpose by each test."""
    data: dict[str, Any] = {
        "workflow_id": "mini",
        "version": "1.0.0",
        "inputs": {"text": {"type": "string", "required": True}},
        "outputs": {"stats": {"source_reference": "steps.count.stats"}},
        "steps": [
            {
                "step_id": "count",
                "type": "python_tool",
                "tool": "word_counter",
                "input_mapping": {"text": "inputs.text"},
                "output_name": "stats",
            }
        ],
    }
    data.update(overrides)
    return data


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False
