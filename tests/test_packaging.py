"""A non-editable install works on its own: the tool registry ships inside the package."""

import json
import os
import shutil
import subprocess
import sys

from helpers import ROOT, WORKFLOWS


def test_a_plain_install_finds_the_builtin_tools(tmp_path):
    target = tmp_path / "site"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    shutil.copy(WORKFLOWS / "simple_summarizer.json", work / "wf.json")
    (work / "lite.json").write_text(
        json.dumps(
            {
                "workflow_id": "lite",
                "inputs": {"text": {"type": "string"}},
                "steps": [
                    {
                        "step_id": "s",
                        "type": "llm_call",
                        "tool": "summarizer",
                        "input_mapping": {"text": "inputs.text"},
                    }
                ],
            }
        )
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    proc = subprocess.run(
        [sys.executable, "-m", "rules.cli", "analyze", "lite.json", "--json"],
        cwd=work,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    origin = json.loads(proc.stdout)["tool_origins"]["summarizer"]
    assert origin.startswith(str(target / "docker_workflow_tools"))
