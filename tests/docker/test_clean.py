"""``clean`` removes exactly this tool's images: by workflow, or all, never anything else."""

from __future__ import annotations

import json
import subprocess
import uuid

from helpers import WORKFLOWS, write_json


def image_exists(tag: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0


def workflow_copy(tmp_path, workflow_id):
    data = json.loads((WORKFLOWS / "parallel_profile.json").read_text())
    data["workflow_id"] = workflow_id
    return write_json(tmp_path / "workflows" / f"{workflow_id}.json", data)


def test_clean_by_workflow_then_all(dw, tmp_path):
    # Every image of this test carries a label of its own, and "clean --all" is narrowed to it:
    # the other tests' images stay, whatever order the tests run in.
    mine = f"test-run={uuid.uuid4().hex}"
    first, second = workflow_copy(tmp_path, "clean-a"), workflow_copy(tmp_path, "clean-b")
    for workflow in (first, second):
        proc = dw("build", str(workflow), "--platform", "linux/amd64", "--label", mine)
        assert proc.returncode == 0, proc.stderr[-2000:]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "Dockerfile").write_text("FROM scratch\nCOPY Dockerfile /\n")
    subprocess.run(
        ["docker", "buildx", "build", "--load", "-t", "not-ours:1", str(foreign)],
        capture_output=True,
        check=True,
    )

    proc = dw("clean")
    assert proc.returncode == 2 and "say what to clean" in proc.stderr

    proc = dw("clean", str(first))  # no terminal, no --yes: refuses, removes nothing
    assert proc.returncode == 1 and "pass --yes" in proc.stderr
    assert image_exists("workflow-clean-a:latest")

    proc = dw("clean", str(first), "--yes")
    assert proc.returncode == 0, proc.stderr
    assert "removed 1 image(s)" in proc.stdout
    assert not image_exists("workflow-clean-a:latest")
    assert image_exists("workflow-clean-b:latest") and image_exists("not-ours:1")

    proc = dw("clean", "--all", "--label", mine, "-y")
    assert proc.returncode == 0, proc.stderr
    assert not image_exists("workflow-clean-b:latest")
    assert image_exists("not-ours:1")
    subprocess.run(["docker", "rmi", "not-ours:1"], capture_output=True, check=False)
