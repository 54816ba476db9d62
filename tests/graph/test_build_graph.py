"""The incremental build graph through real doit, buildx and the engine: every rebuild rule.

Each test makes a small project (workflows/, tools/, dodo.py) in a temp folder and runs
``doit`` there, as a user would. doit prints ``. TASK`` for a task it runs and ``-- TASK`` for
one that is up to date; the tests read those lines. Builds are amd64-only to keep the suite
fast; the rules are the same for every platform.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT, wait_until

PLATFORM = "linux/amd64"
DODO = """
from rules.graph.targets import TARGETS, default_targets
from rules.graph.tasks import BuildGraph, doit_config
default_targets("workflows")
globals().update(BuildGraph(TARGETS).task_creators())
DOIT_CONFIG = doit_config()
"""
TOOL_YAML = """type: executable
executable:
  command: python
  script: shout.py
"""
TOOL_CODE = (
    'import json, sys\nd = json.load(sys.stdin)\nprint(json.dumps({"text": d["text"].upper()}))\n'
)


def workflow(workflow_id: str, prompt: str = "Summarize: {text}", model: str = "llama3") -> dict:
    return {
        "workflow_id": workflow_id,
        "version": "1.0.0",
        "portable": False,
        "inputs": {"text": {"type": "string", "required": True}},
        "outputs": {
            "loud": {"source_reference": "steps.shout.out.text"},
            "summary": {"source_reference": "steps.summarize.summary"},
        },
        "steps": [
            {
                "step_id": "shout",
                "type": "python_tool",
                "tool": "shout",
                "input_mapping": {"text": "inputs.text"},
                "output_name": "out",
            },
            {
                "step_id": "summarize",
                "type": "llm_call",
                "tool": "brief",
                "prompt_template": prompt,
                "input_mapping": {"text": "inputs.text"},
                "output_name": "summary",
            },
        ],
        "tools": {"brief": {"type": "llm", "model": model}},
    }


class Project:
    """A user's project folder and ``doit`` runs in it."""

    def __init__(self, root: Path, builder: str) -> None:
        self.root = root
        self.builder = builder
        (root / "workflows").mkdir(parents=True, exist_ok=True)
        (root / "tools").mkdir(exist_ok=True)
        (root / "dodo.py").write_text(DODO)
        (root / "tools" / "shout.yaml").write_text(TOOL_YAML)
        (root / "tools" / "shout.py").write_text(TOOL_CODE)

    def write(self, name: str, data: dict) -> None:
        (self.root / "workflows" / f"{name}.json").write_text(json.dumps(data, indent=2))

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "DOCKER_WORKFLOW_CACHE"}
        env["DOCKER_WORKFLOW_BUILDER_IMAGE"] = self.builder
        env["PYTHONPATH"] = str(ROOT)
        return env

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "doit", f"platforms={PLATFORM}", *args]

    def doit(self, *args: str) -> tuple[set[str], set[str], str]:
        """Run doit; return (tasks run, tasks up to date, output)."""
        proc = subprocess.run(
            self.command(*args),
            cwd=self.root,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=1800,
        )
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, output[-3000:]
        return _ran(output), _uptodate(output), output

    def target_dir(self, name: str) -> Path:
        (folder,) = (self.root / "cache" / "targets").glob(f"{name}-*")
        return folder

    def reset(self) -> None:
        """The state every test starts from: alpha as first built, the tool's code unchanged."""
        self.write("alpha", workflow("graph-alpha"))
        (self.root / "tools" / "shout.py").write_text(TOOL_CODE)
        self.doit()

    def image(self, name: str) -> dict:
        out = subprocess.run(
            ["docker", "image", "inspect", f"workflow-{name}:latest"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return json.loads(out)[0]


def _ran(output: str) -> set[str]:
    return {line[2:].strip() for line in output.splitlines() if line.startswith(". ")}


def _uptodate(output: str) -> set[str]:
    return {line[3:].strip() for line in output.splitlines() if line.startswith("-- ")}


def layers(image: dict) -> list[str]:
    return image["RootFS"]["Layers"]


# The runtime image's layers, last first (rules/docker/build/Dockerfile.image): the SBOM, the
# bundle, the workflow's module layer, the compiled program, /tmp.
PROGRAM, MODULES, BUNDLE = -4, -3, -2


@pytest.fixture(scope="module")
def project(tmp_path_factory, builder_image) -> Project:
    """A project with workflow 'alpha', built once (first build: everything runs)."""
    project = Project(tmp_path_factory.mktemp("project"), builder_image)
    project.write("alpha", workflow("graph-alpha"))
    ran, _, _ = project.doit()
    assert {
        "analyze:alpha",
        "shake:alpha",
        "lock:alpha",
        "render:alpha",
        "compile:alpha-amd64",
        "layer:alpha-amd64",
        "image:alpha",
    } <= ran
    return project


@pytest.fixture
def built(project) -> Project:
    """The project in its known state, whatever ran before (tests run in any order)."""
    project.reset()
    return project


def test_doit_list_shows_steps_by_name(built):
    proc = subprocess.run(
        built.command("list", "--all"),
        cwd=built.root,
        env=built.env(),
        capture_output=True,
        text=True,
        check=True,
    )
    for task in (
        "analyze:alpha",
        "shake:alpha",
        "render:alpha",
        "compile:alpha-amd64",
        "image:alpha",
    ):
        assert task in proc.stdout


def test_no_op_rebuild_runs_nothing(built):
    ran, uptodate, _ = built.doit()
    assert ran == set()
    assert "image:alpha" in uptodate and "compile:alpha-amd64" in uptodate


def test_prompt_edit_rebuilds_only_the_data_layer(built):
    before = built.image("graph-alpha")
    built.write("alpha", workflow("graph-alpha", prompt="In one line: {text}"))
    ran, _, _ = built.doit()
    # The package lock depends on the requirements only: a prompt edit keeps it.
    assert ran == {"analyze:alpha", "shake:alpha", "render:alpha", "image:alpha"}
    after = built.image("graph-alpha")
    assert layers(after)[PROGRAM] == layers(before)[PROGRAM]  # the compiled program: same layer
    assert layers(after)[BUNDLE] != layers(before)[BUNDLE]


def test_model_edit_changes_labels_not_the_program(built):
    built.write("alpha", workflow("graph-alpha", model="qwen2"))
    ran, _, _ = built.doit()
    assert "compile:alpha-amd64" not in ran and "image:alpha" in ran
    assert built.image("graph-alpha")["Config"]["Labels"]["workflow.models"] == "qwen2"


def test_tool_code_edit_is_data_unless_its_imports_change(built):
    (built.root / "tools" / "shout.py").write_text(TOOL_CODE.replace(".upper()", ".title()"))
    ran, _, _ = built.doit()
    assert "compile:alpha-amd64" not in ran and "image:alpha" in ran

    # decimal: a standard module the shared program leaves out. It comes in the module layer:
    # the image is rebuilt, and the compile task is up to date (it did not run at all).
    before = built.image("graph-alpha")
    code = TOOL_CODE.replace(".upper()", ".upper() + str(decimal.Decimal('1.5'))")
    (built.root / "tools" / "shout.py").write_text("import decimal\n" + code)
    ran, uptodate, _ = built.doit()
    assert {"layer:alpha-amd64", "image:alpha"} <= ran
    assert "compile:alpha-amd64" in uptodate and "compile:alpha-amd64" not in ran
    after = built.image("graph-alpha")
    assert layers(after)[PROGRAM] == layers(before)[PROGRAM]
    assert layers(after)[MODULES] != layers(before)[MODULES]
    # The tool's step runs in the new image (the LLM step after it has no model here).
    result = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--network",
            "none",
            "workflow-graph-alpha:latest",
            '{"text": "hi"}',
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "[workflow] step shout: done" in result.stderr, result.stderr[-2000:]
    (built.root / "tools" / "shout.py").write_text(TOOL_CODE)
    built.doit()


def test_new_workflow_shares_the_compile_and_the_layer(built):
    # Another workflow whose code imports what alpha's does not: still the same program.
    beta = workflow("graph-beta", prompt="Other prompt: {text}")
    beta["steps"].append(
        {
            "step_id": "rows",
            "type": "python_tool",
            "code": "import sqlite3\nresult = sqlite3.sqlite_version",
            "input_mapping": {},
            "output_name": "version",
        }
    )
    built.write("beta", beta)
    started = time.monotonic()
    ran, _, output = built.doit()
    assert {"compile:beta-amd64", "image:beta"} <= ran
    assert time.monotonic() - started < 120, output  # no compile: a cache hit
    alpha = json.loads((built.target_dir("alpha") / "compile-amd64.json").read_text())
    beta = json.loads((built.target_dir("beta") / "compile-amd64.json").read_text())
    assert alpha["compiled"] == beta["compiled"]
    assert layers(built.image("graph-alpha"))[PROGRAM] == layers(built.image("graph-beta"))[PROGRAM]


def test_option_change_reruns_what_it_affects(built):
    ran, _, _ = built.doit("image:alpha", "compiler=none")
    assert "compile:alpha-amd64" in ran and "image:alpha" in ran
    assert "analyze:alpha" not in ran
    ran, _, _ = built.doit("image:alpha")  # back to nuitka: that compile is still cached
    assert "compile:alpha-amd64" in ran
    ran, _, _ = built.doit("image:alpha")
    assert ran == set()


def test_cli_build_and_doit_share_the_graph(built):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "docker_workflow.py"),
            "build",
            "workflows/alpha.json",
            "--platform",
            PLATFORM,
        ],
        cwd=built.root,
        env=built.env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "-- image:alpha" in proc.stderr  # up to date: built by doit before
    assert proc.stdout.strip() == "workflow-graph-alpha:latest"  # stdout: the result only


def test_two_concurrent_runs_do_not_corrupt_anything(built):
    built.write("gamma", workflow("graph-gamma", prompt="Gamma: {text}"))
    procs = [
        subprocess.Popen(
            built.command(),
            cwd=built.root,
            env=built.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=1800)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    ran, _, _ = built.doit()
    assert ran == set()


def _finished_compiles(project: Project) -> set[Path]:
    return {p for p in (project.root / "cache" / "compiled").glob("*/*") if (p / "app").is_dir()}


def test_interrupted_compile_leaves_nothing_that_looks_done(built):
    built.write("delta", workflow("graph-delta"))
    # onefile compiles the workflow's imports in: csv makes a new program of its own.
    (built.root / "tools" / "shout.py").write_text("import csv\n" + TOOL_CODE)
    finished_before = _finished_compiles(built)
    # No BuildKit cache: this engine may have been compiled on this machine before.
    env = {**built.env(), "DOCKER_WORKFLOW_NO_CACHE": "1"}
    proc = subprocess.Popen(
        built.command("image:delta", "compiler=onefile"),
        cwd=built.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    contexts = built.root / "cache" / "contexts"
    assert wait_until(lambda: contexts.exists() and any(contexts.iterdir()), timeout=120)
    time.sleep(3)  # inside the compile
    os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert not (built.target_dir("delta") / "compile-amd64.json").exists()
    assert _finished_compiles(built) == finished_before
    ran, _, _ = built.doit("image:delta", "compiler=onefile")  # the next run compiles for real
    assert "compile:delta-amd64" in ran
    assert len(_finished_compiles(built)) == len(finished_before) + 1
    (built.root / "tools" / "shout.py").write_text(TOOL_CODE)


def test_fresh_clone_with_restored_cache_rebuilds_nothing(built, tmp_path):
    built.doit()
    clone = tmp_path / "clone"
    shutil.copytree(built.root, clone, ignore=shutil.ignore_patterns("cache"))
    shutil.copytree(built.root / "cache", clone / "cache")  # what a CI cache restore does
    copy = Project.__new__(Project)
    copy.root, copy.builder = clone, built.builder
    ran, uptodate, _ = copy.doit()
    assert ran == set()
    assert "compile:alpha-amd64" in uptodate


def test_doit_clean_and_forget(built):
    built.doit()
    marker = built.target_dir("alpha") / "image.json"
    assert marker.exists()
    built.doit("clean", "image:alpha")
    assert not marker.exists()
    ran, _, _ = built.doit("image:alpha")
    assert "image:alpha" in ran and marker.exists()
    built.doit("forget", "image:alpha")
    ran, _, _ = built.doit("image:alpha")
    assert "image:alpha" in ran  # forgotten: checked again (the image itself is still current)
    ran, _, _ = built.doit("image:alpha")
    assert ran == set()
