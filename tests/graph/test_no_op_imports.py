"""The fast no-op graph, as a rule: loading the graph and making every task of this repository's
``dodo.py`` imports none of the heavy libraries, which only the steps that run need."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from helpers import ROOT

HEAVY = ("docker", "python_on_whales", "jsonschema", "rich", "packaging")
PROBE = """
import json, sys
import rules.graph.tasks
after_import = sorted(sys.modules)
import dodo
for creator in dodo.BuildGraph(dodo.TARGETS).task_creators().values():
    list(creator())
print(json.dumps({"import": after_import, "tasks": sorted(sys.modules)}))
"""


def _heavy(modules: list[str]) -> list[str]:
    return [name for name in modules if name.split(".")[0] in HEAVY]


def test_loading_the_graph_and_its_tasks_loads_no_heavy_library(tmp_path):
    env = {**os.environ, "DOCKER_WORKFLOW_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout)
    assert "rules.graph.tasks" in loaded["import"] and "doit" in loaded["import"]
    assert _heavy(loaded["import"]) == []
    assert _heavy(loaded["tasks"]) == []


def test_the_probe_would_see_a_heavy_import():
    assert _heavy(["rich.console", "rules.graph.tasks", "packaging"]) == [
        "rich.console",
        "packaging",
    ]
