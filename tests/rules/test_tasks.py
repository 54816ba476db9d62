"""The task DSL and graph shape, without running builds (those are in tests/graph)."""

import subprocess
import sys

from helpers import ROOT

from rules import tasks
from rules.tasks import workflow_image


def test_declarations_and_defaults(monkeypatch, tmp_path):
    monkeypatch.setattr(tasks, "TARGETS", {})
    (tmp_path / "workflows").mkdir()
    for name in ("one", "two"):
        (tmp_path / "workflows" / f"{name}.json").write_text("{}")
    tasks.workflow_image(
        "one",
        tmp_path / "workflows" / "one.json",
        platforms=["linux/arm64"],
        tag="edge/one:1",
        compiler="none",
    )
    tasks.default_targets(tmp_path / "workflows")
    assert sorted(tasks.TARGETS) == ["one", "two"]
    one, two = tasks.TARGETS["one"], tasks.TARGETS["two"]
    assert one.options.platforms == ["linux/arm64"] and one.options.compiler == "none"
    assert two.options.platforms == ["linux/amd64", "linux/arm64"]


def test_task_names_start_with_the_step(monkeypatch):
    monkeypatch.setattr(tasks, "TARGETS", {})
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("DOCKER_WORKFLOW_CACHE")  # the default: cache/ in the project
    workflow_image("calc", "workflows/calculator.json", platforms=["linux/amd64", "linux/arm64"])
    names = {kind: [t["name"] for t in creator()] for kind, creator in tasks.TASK_CREATORS.items()}
    assert names == {
        "task_analyze": ["calc"],
        "task_shake": ["calc"],
        "task_render": ["calc"],
        "task_compile": ["calc-amd64", "calc-arm64"],
        "task_image": ["calc"],
    }
    compile_task = next(tasks.task_compile())
    assert all(not dep.startswith("/") for dep in compile_task["file_dep"])  # relocatable
    assert compile_task["targets"] == ["cache/targets/calc/compile-amd64.json"]


def test_doit_list_in_the_repository():
    proc = subprocess.run(
        [sys.executable, "-m", "doit", "list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    for step in ("analyze", "shake", "render", "compile", "image"):
        assert step in proc.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "doit", "list", "--all"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "compile:summarizer-edge-arm64" in proc.stdout
    assert "compile:summarizer-edge-amd64" not in proc.stdout
    assert "image:calculator" in proc.stdout
