"""Regression tests for the trust issue: each sample an attacker or a clumsy user found.

Every case goes through the real command line (a real process): one line per problem on
stderr, exit 2 for bad input, no traceback, nothing half-written, bounded time.
"""

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fakes import closed_port_url
from helpers import CLI, ROOT, WORKFLOWS, minimal_workflow, run_cli, write_json


def assert_one_clean_line(proc, code=2):
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr


# -- 1. the cache ------------------------------------------------------------------------------


def echo_workflow(tmp_path, folder, marker):
    steps = [{"step_id": "s", "type": "python_tool", "code": f"result = {marker!r}"}]
    return write_json(tmp_path / folder / "wf.json", minimal_workflow(steps=steps, outputs={}))


def test_same_file_name_in_two_folders_never_mix_outputs(tmp_path):
    a = echo_workflow(tmp_path, "a", "from-a")
    b = echo_workflow(tmp_path, "b", "from-b")
    cache = tmp_path / "cache"

    def run(path):
        return run_cli(
            "run", "--local", str(path), '{"text": "x"}', env={"DOCKER_WORKFLOW_CACHE": str(cache)}
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run, [a, b] * 8))
    for path, proc in zip([a, b] * 8, results, strict=True):
        assert proc.returncode == 0, proc.stderr
        expected = "from-a" if path == a else "from-b"
        assert json.loads(proc.stdout) == {"output": expected}


def test_doit_and_the_cli_agree_on_what_is_current(tmp_path):
    project = tmp_path / "proj"
    (project / "workflows").mkdir(parents=True)
    data = json.loads((WORKFLOWS / "simple_summarizer.json").read_text())
    del data["tools"]["summarizer_tool"]["model"]
    write_json(project / "workflows" / "x.json", data)
    (project / "dodo.py").write_text(
        "from rules.graph.targets import TARGETS, default_targets\n"
        "from rules.graph.tasks import BuildGraph, doit_config\n"
        "default_targets('workflows')\n"
        "globals().update(BuildGraph(TARGETS).task_creators())\n"
        "DOIT_CONFIG = doit_config()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OLLAMA_MODEL": ""}
    env.pop("DOCKER_WORKFLOW_CACHE", None)

    def doit_render():
        proc = subprocess.run(
            [sys.executable, "-m", "doit", "render:x"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr

    def facts():
        """Per target folder: (the analysis' models, the bundle's model)."""
        found = set()
        for folder in (project / "cache" / "targets").glob("x-*"):
            analysis = json.loads((folder / "analysis.json").read_text())
            bundle = json.loads((folder / "runner" / "bundle.json").read_text())
            found.add((tuple(analysis["models"]), bundle["tools"]["summarizer_tool"]["model"]))
        return found

    doit_render()
    assert facts() == {(("llama3",), "llama3")}
    proc = subprocess.run(
        [
            *CLI,
            "run",
            "--local",
            "workflows/x.json",
            '{"text": "t"}',
            "--model",
            "qwen2",
            "--endpoint",
            closed_port_url(),
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 3  # nothing listens: but the graph ran for qwen2
    doit_render()
    # Each variant has its own folder, and in each the analysis and the bundle agree.
    assert facts() == {(("llama3",), "llama3"), (("qwen2",), "qwen2")}


@pytest.mark.parametrize("name", ["...json", "..json", ".json", "[x].json"])
def test_odd_file_names_stay_inside_the_cache(tmp_path, name):
    path = tmp_path / name
    path.write_text(json.dumps(minimal_workflow()))
    cache = tmp_path / "cache"
    proc = run_cli(
        "run", "--local", str(path), '{"text": "a b"}', env={"DOCKER_WORKFLOW_CACHE": str(cache)}
    )
    assert proc.returncode == 0, proc.stderr
    assert not (cache / "analysis.json").exists() and not (cache / "bundle.json").exists()
    assert all(p.parent == cache / "targets" for p in (cache / "targets").iterdir())


def test_export_never_overwrites_its_source_and_keeps_pip_packages(tmp_path):
    data = minimal_workflow(dependencies={"pip_packages": [{"name": "PyYAML", "version": "6.0.2"}]})
    data["workflow_id"] = "wf"
    source = write_json(tmp_path / "wf.json", data)
    before = source.read_bytes()
    proc = run_cli("export", str(source), "-o", str(tmp_path))
    assert_one_clean_line(proc, code=1)
    assert "would overwrite the source" in proc.stderr and source.read_bytes() == before
    proc = run_cli("export", str(source), "-o", str(source))
    assert_one_clean_line(proc, code=1)
    assert "is a file" in proc.stderr
    out = tmp_path / "out"
    proc = run_cli("export", str(source), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    exported = json.loads((out / "wf.json").read_text())
    assert exported["dependencies"]["pip_packages"] == [{"name": "PyYAML", "version": "6.0.2"}]


def test_export_embeds_sub_workflows_and_tool_requirements(tmp_path):
    child = minimal_workflow(workflow_id="child")
    write_json(tmp_path / "kids" / "child.json", child)
    parent = minimal_workflow(
        workflow_id="parent",
        outputs={},
        steps=[
            {
                "step_id": "c",
                "type": "sub_workflow",
                "workflow_path": "kids/child.json",
                "input_mapping": {"text": "inputs.text"},
            }
        ],
    )
    path = write_json(tmp_path / "parent.json", parent)
    out = tmp_path / "out"
    assert run_cli("export", str(path), "-o", str(out)).returncode == 0
    exported = json.loads((out / "parent.json").read_text())
    spec = exported["steps"][0]["workflow_spec"]
    assert "workflow_path" not in exported["steps"][0]
    assert spec["portable"] is True and "word_counter" in spec["tools"]
    assert spec["tools"]["word_counter"]["source_code"].startswith('"""')
    again = run_cli("run", "--local", str(out / "parent.json"), '{"text": "one two"}')
    assert again.returncode == 0, again.stderr


# -- 2. hostile files -------------------------------------------------------------------------


def test_deeply_nested_workflow_and_inputs(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text('{"workflow_id": "d", "steps": ' + "[" * 6000 + "]" * 6000 + "}")
    started = time.monotonic()
    proc = run_cli("analyze", str(deep))
    assert_one_clean_line(proc)
    assert "nested more than 100 levels" in proc.stderr and time.monotonic() - started < 20
    proc = run_cli(
        "run",
        "--local",
        str(WORKFLOWS / "calculator.json"),
        '{"a": ' + "[" * 6000 + "]" * 6000 + "}",
    )
    assert proc.returncode == 2 and "nested more than 100 levels" in proc.stderr


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e400", "1e10"])
def test_timeouts_must_be_finite_and_bounded(tmp_path, value):
    text = json.dumps(minimal_workflow()).replace(
        '"output_name": "stats"', f'"output_name": "stats", "timeout": {value}'
    )
    path = tmp_path / "w.json"
    path.write_text(text)
    proc = run_cli("analyze", str(path))
    assert_one_clean_line(proc)


def test_a_catastrophic_pattern_default_does_not_hang_analyze(tmp_path):
    inputs = {"text": {"type": "string", "pattern": "^(a+)+$", "default": "a" * 40 + "!"}}
    path = write_json(tmp_path / "w.json", minimal_workflow(inputs=inputs))
    started = time.monotonic()
    proc = run_cli("analyze", str(path))
    assert_one_clean_line(proc)
    assert "the default breaks its own declaration" in proc.stderr
    assert time.monotonic() - started < 20


def test_a_catastrophic_pattern_input_does_not_hang_the_runner(tmp_path):
    inputs = {"text": {"type": "string", "pattern": "^(a+)+$"}}
    path = write_json(tmp_path / "w.json", minimal_workflow(inputs=inputs))
    started = time.monotonic()
    proc = run_cli("run", "--local", str(path), json.dumps({"text": "a" * 5000 + "!"}))
    assert proc.returncode == 2 and "does not match pattern" in proc.stderr
    assert time.monotonic() - started < 20


def test_lookaround_patterns_are_refused_at_load(tmp_path):
    inputs = {"text": {"type": "string", "pattern": "^(?=a)"}}
    proc = run_cli("analyze", str(write_json(tmp_path / "w.json", minimal_workflow(inputs=inputs))))
    assert_one_clean_line(proc)
    assert "cannot be matched in linear time" in proc.stderr


@pytest.mark.parametrize("field", ["workflow_id", "version", "path"])
def test_rich_markup_in_user_text_is_printed_as_text(tmp_path, field):
    data = minimal_workflow()
    folder = tmp_path
    if field == "workflow_id":
        data["workflow_id"] = "[/]"
    elif field == "version":
        data["version"] = "[/]"
    else:
        folder = tmp_path / "[/]" / "[bold]"
        data["steps"][0]["tool"] = "[red]nope"
    path = write_json(folder / "w.json", data)
    proc = run_cli("analyze", str(path))
    assert "Traceback" not in proc.stderr
    if field == "workflow_id":
        assert_one_clean_line(proc)
        assert "'[/]' is not a safe name" in proc.stderr
    elif field == "path":
        assert_one_clean_line(proc)
        assert f"{path}: $.steps[0].tool: unknown tool '[red]nope'" in proc.stderr
    else:
        assert proc.returncode == 0 and "[/]" in proc.stdout


def test_lone_surrogates_are_one_line_errors(tmp_path):
    path = tmp_path / "w.json"
    path.write_text(json.dumps(minimal_workflow(description="bad \ud800 text")))
    for args in (
        ("run", "--local", str(path), '{"text": "x"}'),
        ("export", str(path), "-o", str(tmp_path / "o")),
    ):
        proc = run_cli(*args)
        assert_one_clean_line(proc)
        assert "$.description: contains a lone surrogate" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_inputs_that_are_not_utf8(tmp_path):
    workflow = str(WORKFLOWS / "calculator.json")
    proc = subprocess.run(
        [*CLI, "run", "--local", workflow, "-f", "-"],
        input=b'{"a": "\xff"}',
        capture_output=True,
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 2 and b"not UTF-8" in proc.stderr and b"Traceback" not in proc.stderr
    proc = subprocess.run(
        [
            *(os.fsencode(a) for a in CLI),
            b"run",
            b"--local",
            os.fsencode(workflow),
            b'{"a": "\xff"}',
        ],
        capture_output=True,
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 2 and b"not UTF-8" in proc.stderr and b"Traceback" not in proc.stderr


def test_piped_inputs_are_read():
    proc = run_cli(
        "run",
        "--local",
        str(WORKFLOWS / "calculator.json"),
        input_text='{"a": 6, "b": 7, "operation": "multiply"}',
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["result"] == 42


def test_cli_input_errors_exit_2(tmp_path):
    workflow = str(WORKFLOWS / "calculator.json")
    proc = run_cli("run", "--local", workflow, "{}", "-f", "x.json")
    assert_one_clean_line(proc)
    proc = run_cli("run", "--local", workflow, "-f", str(tmp_path / "missing.json"))
    assert_one_clean_line(proc)


def test_credentials_in_the_endpoint_are_never_printed():
    url = closed_port_url().replace("http://", "http://alice:s3cret-pass@")
    proc = run_cli(
        "run",
        "--local",
        str(WORKFLOWS / "simple_summarizer.json"),
        '{"text": "x"}',
        "--endpoint",
        url,
    )
    assert proc.returncode == 3
    assert "s3cret" not in proc.stdout + proc.stderr and "alice" not in proc.stderr
    assert "***@127.0.0.1" in proc.stderr
