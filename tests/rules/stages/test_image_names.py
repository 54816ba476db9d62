"""Image names are checked against Docker's grammar before anything runs."""

import os
import subprocess
import sys

import pytest
from helpers import ROOT, WORKFLOWS, run_cli

from rules.errors import UserError
from rules.stages.image_names import check_reference, default_tag


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "workflow-simple_summarizer:latest",
        "localhost:5000/team/flow:1.0",
        "registry.example.com/a/b",
        "flow@sha256:" + "a" * 64,
        "docker-workflow/builder:bookworm-8cd80c6967c1",
    ],
)
def test_docker_names_pass(name):
    assert check_reference(name) == name


@pytest.mark.parametrize(
    "name", ["Bad", "two words:latest", "flow:", "-flow", "flow:bad tag", "a" * 256, "a//b"]
)
def test_names_docker_would_refuse_are_one_line_errors(name):
    with pytest.raises(UserError, match="is not a valid image name"):
        check_reference(name)


def test_default_tags_are_valid_for_any_workflow_id():
    assert default_tag("simple_summarizer") == "workflow-simple_summarizer:latest"
    assert default_tag("Data Analysis Workflow") == "workflow-data-analysis-workflow:latest"
    for workflow_id in ["***", "a..b", "x_-y", "Ünïcode id", "a/b:c", "x" * 300]:
        check_reference(default_tag(workflow_id))


def test_a_bad_tag_stops_the_cli_before_any_work():
    proc = run_cli("build", str(WORKFLOWS / "simple_summarizer.json"), "-t", "Bad Tag")
    assert proc.returncode == 2
    assert "argument -t/--tag: 'Bad Tag' is not a valid image name" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_bad_declaration_is_doits_one_line_error(tmp_path):
    (tmp_path / "dodo.py").write_text(
        "from rules.graph.targets import workflow_image\n"
        "from rules.graph.tasks import *  # noqa\n"
        f"workflow_image('s', {str(WORKFLOWS / 'simple_summarizer.json')!r}, tag='Bad Tag')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "doit", "list"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 3
    assert proc.stderr.strip().splitlines() == [
        "ERROR: workflow_image('s'): 'Bad Tag' is not a valid image name: use lowercase"
        " letters, digits and separators (. _ -), optionally a registry host and a ':tag',"
        " e.g. my-flow:1.0"
    ]
