"""How much the runner itself costs: start-up, and overhead per LLM step.

Figures (medians, milliseconds), all measured in this run:
* start-up: the rendered runner doing ``--describe`` next to ``python -c pass`` (the floor for
  any Python program on this machine), as a ratio;
* a workflow without LLM steps (calculator) end to end;
* the calculator run in-process, many times on one :class:`Engine` (as ``serve`` and ``batch``
  run it): CPU per run and per step, the figure that bounds a service's requests per second;
* overhead per LLM step: the runner's wall time for a three-step LLM workflow minus the time the
  LLM server reports for generating (``total_duration``), divided by the steps.

Run: ``.venv/bin/python bench/runner_overhead.py [--runs N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, median_ms, print_table, run_quiet, timed
from helpers import LLMServer

from rules.graph.build import prepare

TEXT = "Bees make honey. They live in hives, dance to share directions, and pollinate crops."


def engine_cpu_per_run(bundle_path: Path, runs: int = 2000) -> float:
    """CPU seconds (every thread of this process) per run of one shared Engine."""
    from runner_template import engine as engine_module
    from runner_template.engine import Engine

    engine_module.QUIET = True
    engine = Engine(json.loads(bundle_path.read_text()))
    inputs = {"a": 6, "b": 7, "operation": "multiply"}
    for _ in range(100):  # warm: compiled code, worker threads
        engine.run(inputs)
    started = time.process_time()
    for _ in range(runs):
        engine.run(inputs)
    return (time.process_time() - started) / runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    os.environ.setdefault("DOCKER_WORKFLOW_CACHE", tempfile.mkdtemp(prefix="bench-cache-"))

    calc = prepare(ROOT / "workflows" / "calculator.json")
    env = {**os.environ, "WORKFLOW_BUNDLE": str(calc.bundle_path)}
    py = sys.executable
    floor = timed(lambda: run_quiet([py, "-c", "pass"]), args.runs)
    entry = str(calc.entry_point)
    describe = timed(lambda: run_quiet([py, entry, "--describe"], env=env), args.runs)
    calc_run = timed(
        lambda: run_quiet([py, str(calc.entry_point), '{"a": 2, "b": 3}'], env=env), args.runs
    )

    cpu_per_run = engine_cpu_per_run(calc.bundle_path)
    calc_steps = len(json.loads(calc.bundle_path.read_text())["workflow"]["steps"])

    server = LLMServer("127.0.0.1")
    try:
        llm = prepare(ROOT / "workflows" / "text_insights.json")
        llm_env = {
            **os.environ,
            "WORKFLOW_BUNDLE": str(llm.bundle_path),
            "OLLAMA_ENDPOINT": server.url,
        }
        overheads = []
        stats_file = Path(tempfile.mkdtemp()) / "stats.json"
        for _ in range(max(3, args.runs // 3)):
            run_quiet(
                [py, str(llm.entry_point), json.dumps({"text": TEXT}), "--stats", str(stats_file)],
                env=llm_env,
            )
            stats = json.loads(stats_file.read_text())
            llm_steps = [s for s in stats["steps"].values() if s["llm_server_seconds"] > 0]
            server_time = sum(s["llm_server_seconds"] for s in llm_steps)
            # Three LLM steps, two of them concurrent: compare against serial server time.
            overheads.append((stats["total_seconds"] - server_time) / len(llm_steps))
    finally:
        server.stop()

    floor_ms = median_ms(floor)
    print_table(
        "runner overhead (median ms)",
        ["measure", "ms", "vs python -c pass"],
        [
            ["python -c pass (baseline)", f"{floor_ms:.1f}", "1.00x"],
            [
                "runner start-up (--describe)",
                f"{median_ms(describe):.1f}",
                f"{median_ms(describe) / floor_ms:.2f}x",
            ],
            [
                "calculator workflow, no LLM",
                f"{median_ms(calc_run):.1f}",
                f"{median_ms(calc_run) / floor_ms:.2f}x",
            ],
            ["calculator in-process: CPU per run", f"{cpu_per_run * 1000:.3f}", ""],
            [
                "calculator in-process: CPU per step",
                f"{cpu_per_run * 1000 / calc_steps:.3f}",
                "",
            ],
            ["overhead per LLM step", f"{median_ms(overheads):.1f}", ""],
        ],
    )


if __name__ == "__main__":
    main()
