"""The task DSL and graph shape, without running builds (those are in tests/graph)."""

import subprocess
import sys

import pytest
from helpers import ROOT, minimal_workflow, write_json

import rules.graph.targets as targets
import rules.graph.tasks as tasks
from rules.errors import UserError
from rules.graph.targets import safe_target_name, workflow_image


@pytest.fixture(autouse=True)
def no_targets(monkeypatch):
    monkeypatch.setattr(targets, "TARGETS", {})  # the declarations of the dodo.py DSL


def test_declarations_and_defaults(tmp_path):
    (tmp_path / "workflows").mkdir()
    for name in ("one", "two"):
        (tmp_path / "workflows" / f"{name}.json").write_text("{}")
    workflow_image(
        "one",
        tmp_path / "workflows" / "one.json",
        platforms=["linux/arm64"],
        tag="edge/one:1",
        compiler="none",
    )
    targets.default_targets(tmp_path / "workflows")
    assert sorted(targets.TARGETS) == ["one", "two"]
    one, two = targets.TARGETS["one"], targets.TARGETS["two"]
    assert one.options.platforms == ["linux/arm64"] and one.options.compiler == "none"
    assert two.options.platforms == ["linux/amd64", "linux/arm64"]


def test_task_names_start_with_the_step(monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("DOCKER_WORKFLOW_CACHE")  # the default: cache/ in the project
    target = workflow_image(
        "calc", "workflows/calculator.json", platforms=["linux/amd64", "linux/arm64"]
    )
    graph = tasks.BuildGraph({target.name: target})
    names = {
        kind: [t["name"] for t in creator()] for kind, creator in graph.task_creators().items()
    }
    assert names == {
        "task_analyze": ["calc"],
        "task_shake": ["calc"],
        "task_lock": ["calc"],
        "task_render": ["calc"],
        "task_compile": ["calc-amd64", "calc-arm64"],
        "task_layer": ["calc-amd64", "calc-arm64"],
        "task_image": ["calc"],
    }
    compile_task = next(graph.task_compile())
    # The native compile first (it warms Nuitka's module cache for the emulated one), whatever
    # order doit's set of file_dep gives.
    for native, foreign in (("amd64", "arm64"), ("arm64", "amd64")):
        monkeypatch.setattr("rules.stages.toolchain.host_arch", lambda native=native: native)
        by_name = {t["name"]: t for t in graph.task_compile()}
        assert by_name[f"calc-{native}"]["task_dep"] == []
        assert by_name[f"calc-{foreign}"]["task_dep"] == [f"compile:calc-{native}"]
    assert all(not dep.startswith("/") for dep in compile_task["file_dep"])  # relocatable
    # The shared program only: nothing about the workflow (its imports, its lock) is an input.
    assert compile_task["file_dep"] == [f"cache/targets/{target.key}/runner/program/.digest"]
    assert compile_task["targets"] == [f"cache/targets/{target.key}/compile-amd64.json"]


def test_target_folders_are_unique_per_file_and_resolution_options(tmp_path):
    a = workflow_image("wf", tmp_path / "a" / "wf.json")
    b = workflow_image("wf", tmp_path / "b" / "wf.json")
    c = workflow_image("wf", tmp_path / "a" / "wf.json", model="qwen2")
    assert len({a.out, b.out, c.out}) == 3
    assert all(t.out.parent.name == "targets" for t in (a, b, c))


@pytest.mark.parametrize("stem", ["..", "...", ".hidden", "a/b", "[/]", "", "x" * 300])
def test_file_names_become_safe_target_names(stem):
    name = safe_target_name(stem)
    assert name not in ("", ".", "..") and "/" not in name and len(name) <= 100
    assert targets.TARGET_NAME_RE.match(name)


def test_unsafe_declared_names_are_refused():
    with pytest.raises(UserError, match=r"target name '\.\./x'"):
        workflow_image("../x", "w.json")


def test_doit_list_in_the_repository():
    proc = subprocess.run(
        [sys.executable, "-m", "doit", "list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    for step in ("analyze", "shake", "lock", "render", "compile", "image"):
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


def test_a_cold_prepare_loads_the_workflow_tree_once(tmp_path, monkeypatch):
    """The analysis ran outside the graph and twice inside it: three loads of one tree."""
    import rules.stages.pipeline as pipeline
    from rules.graph.build import prepare

    loads = []
    real = pipeline.load_tree
    monkeypatch.setattr(pipeline, "load_tree", lambda *a: loads.append(a) or real(*a))
    path = write_json(tmp_path / "wf.json", minimal_workflow())
    prepared = prepare(path, platforms=["linux/amd64"])
    assert prepared.bundle_path.is_file() and len(loads) == 1


def test_a_step_failure_is_the_graphs_own(tmp_path):
    """Failures come back on the graph that ran, not through a module global."""
    from rules.graph.build import target_for
    from rules.graph.options import BuildOptions
    from rules.graph.run import build_targets

    broken = write_json(tmp_path / "broken.json", minimal_workflow(steps="not a list"))
    target = target_for(broken, BuildOptions(platforms=["linux/amd64"]))
    with pytest.raises(UserError, match=r"broken\.json"):
        build_targets([target], step="analyze", quiet=True)
    assert not hasattr(tasks, "FAILURES") and not hasattr(tasks, "TARGETS")


def test_the_output_folder_is_the_commands_own_not_the_environments(tmp_path, monkeypatch):
    import os

    from rules.cli.convert import build_options as _build_options
    from rules.cli.parser import build_parser
    from rules.paths import cache_dir, cache_root

    before = dict(os.environ)
    args = build_parser().parse_args(["build", "wf.json", "-o", str(tmp_path / "out")])
    options = _build_options(args, ["linux/amd64"])
    assert dict(os.environ) == before and options.cache == (tmp_path / "out").resolve()
    default = cache_dir()
    with cache_root(options.cache):
        assert cache_dir() == options.cache
    assert cache_dir() == default


@pytest.mark.parametrize("size", ["64k", "200k"])
def test_a_full_cache_folder_is_one_line_not_a_doit_traceback(tmp_path, size):
    """Disk full while the graph writes (a step's file, or doit's sqlite database when the run
    ends): one line naming the cache folder, exit 1."""
    from helpers import WORKFLOWS, run_cli

    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(small)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        cache = small / "cache"
        proc = run_cli(
            "run", "--local", str(WORKFLOWS / "calculator.json"), '{"a": 1, "b": 2}',
            "-o", str(cache),
        )  # fmt: skip
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr == (
            f"error: the cache folder {cache} is full (No space left on device): free space"
            " there or choose another with -o\n"
        ) or proc.stderr.startswith(f"error: the cache folder {cache} is full (database or disk")
        assert "Traceback" not in proc.stderr
    finally:
        subprocess.run(["umount", str(small)], check=False)
