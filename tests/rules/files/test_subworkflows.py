"""Sub-workflows: loading, errors naming both files, confinement, cycles, bundling, running."""

import json

import pytest
from helpers import run_cli, write_json

from rules.errors import InvalidInput
from rules.stages.pipeline import analyze_file
from rules.stages.shake import shake


def child(workflow_id="doubler", code="result = {'double': n * 2}"):
    return {
        "workflow_id": workflow_id,
        "inputs": {"n": {"type": "integer", "required": True}},
        "outputs": {"value": {"source_reference": "steps.calc.output.double"}},
        "steps": [
            {
                "step_id": "calc",
                "type": "python_tool",
                "code": code,
                "input_mapping": {"n": "inputs.n"},
            }
        ],
    }


def parent(**first_step):
    step = {
        "step_id": "a",
        "type": "sub_workflow",
        "input_mapping": {"n": "inputs.x"},
        "output_name": "res",
        "parallel_group": 1,
        **first_step,
    }
    return {
        "workflow_id": "parent",
        "inputs": {"x": {"type": "integer", "default": 3}},
        "outputs": {
            "first": {"source_reference": "steps.a.res.value"},
            "second": {"source_reference": "steps.b.res.value"},
        },
        "steps": [
            step,
            {
                "step_id": "b",
                "type": "sub_workflow",
                "workflow_spec": child("tripler", "result = {'double': n * 3}"),
                "input_mapping": {"n": 10},
                "output_name": "res",
                "parallel_group": 1,
            },
        ],
    }


@pytest.fixture
def project(tmp_path):
    write_json(tmp_path / "children" / "doubler.json", child())
    return tmp_path


def test_a_parent_with_a_file_child_and_an_embedded_child(project):
    path = write_json(project / "parent.json", parent(workflow_path="children/doubler.json"))
    tree, analysis, tools = analyze_file(path)
    assert analysis.sub_workflows == ["doubler", "tripler"]
    assert analysis.files == [str(path), str((project / "children" / "doubler.json").resolve())]
    bundle = shake(tree, tools)
    keys = sorted(bundle["workflows"])
    assert [k.split("@")[0] for k in keys] == ["doubler", "tripler"]
    assert {s["workflow"] for s in bundle["workflow"]["steps"]} == set(keys)


def test_run_local_runs_both_children(project):
    path = write_json(project / "parent.json", parent(workflow_path="children/doubler.json"))
    proc = run_cli("run", "--local", str(path), '{"x": 4}')
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"first": 8, "second": 30}


def test_errors_in_a_child_name_the_child_and_the_parent(project):
    broken = child()
    broken["steps"][0]["input_mapping"]["n"] = "inputs.nope"
    write_json(project / "children" / "doubler.json", broken)
    path = write_json(project / "parent.json", parent(workflow_path="children/doubler.json"))
    with pytest.raises(InvalidInput) as caught:
        analyze_file(path)
    (problem,) = caught.value.problems
    assert problem.file.endswith("doubler.json")
    assert problem.path == "$.steps[0].input_mapping.n"
    assert f"(sub-workflow of {path} $.steps[0].workflow_path)" in problem.message


def test_errors_in_an_embedded_child_point_into_the_parent(project):
    spec = child()
    spec["steps"][0]["timeout"] = -1
    path = write_json(project / "parent.json", parent(workflow_spec=spec))
    with pytest.raises(InvalidInput) as caught:
        analyze_file(path)
    (problem,) = caught.value.problems
    assert (problem.file, problem.path) == (str(path), "$.steps[0].workflow_spec.steps[0].timeout")


@pytest.mark.parametrize(
    ("relative", "message"),
    [
        ("children/missing.json", "sub-workflow 'children/missing.json': not found"),
        ("/etc/passwd", "must be a path relative to parent.json"),
        ("../outside.json", "leads outside the root workflow's folder"),
        ("children", "not a regular file"),
    ],
)
def test_child_files_are_confined_and_must_exist(project, relative, message):
    write_json(project.parent / "outside.json", child())
    path = write_json(project / "parent.json", parent(workflow_path=relative))
    with pytest.raises(InvalidInput, match=message) as caught:
        analyze_file(path)
    assert caught.value.problems[0].path == "$.steps[0].workflow_path"


def test_a_cycle_of_workflows_is_an_error(project):
    loop = {
        "workflow_id": "loop",
        "steps": [{"step_id": "again", "type": "sub_workflow", "workflow_path": "../parent.json"}],
    }
    write_json(project / "children" / "loop.json", loop)
    path = write_json(project / "parent.json", parent(workflow_path="children/loop.json"))
    with pytest.raises(InvalidInput, match=r"cycle of sub-workflows: parent\.json -> loop\.json"):
        analyze_file(path)


def test_a_sub_workflow_step_needs_exactly_one_child(project):
    path = write_json(project / "parent.json", parent())
    with pytest.raises(InvalidInput, match="needs exactly one of 'workflow_path'"):
        analyze_file(path)


def test_cli_errors_for_children_are_one_line_each_exit_2(project):
    path = write_json(project / "parent.json", parent(workflow_path="children/missing.json"))
    proc = run_cli("analyze", str(path))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("relative", "message"),
    [
        ("loop1", "sub-workflow 'loop1' is a symbolic link loop"),
        ("a\0b.json", r"sub-workflow 'a\\x00b.json' contains a NUL byte"),
        ("x" * 300 + ".json", r"has a name of 305 bytes \(at most 255\)"),
        ("y" * 300 + "/a.json", r"has a name of 300 bytes \(at most 255\)"),
    ],
)
def test_hostile_child_names_are_one_line_everywhere(project, relative, message):
    """A link loop, a NUL or an over-long name in ``workflow_path``: one line for the loader,
    and for ``analyze``, ``run --local`` and ``export`` (exit 2, no traceback)."""
    (project / "loop1").symlink_to("loop2")
    (project / "loop2").symlink_to("loop1")
    path = write_json(project / "parent.json", parent(workflow_path=relative))
    with pytest.raises(InvalidInput, match=message) as caught:
        analyze_file(path)
    assert caught.value.problems[0].path == "$.steps[0].workflow_path"
    for command in (
        ["analyze", str(path)],
        ["run", "--local", str(path), "{}", "-o", str(project / "cache")],
        ["export", str(path), "-o", str(project / "out.json")],
    ):
        proc = run_cli(*command)
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
        assert "$.steps[0].workflow_path: sub-workflow" in proc.stderr
