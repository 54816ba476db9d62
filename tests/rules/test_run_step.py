"""``python -m rules.run_step`` (scripts/setup.sh's long steps) as setup.sh runs it: a real
command, its output in the log, progress lines, the exit code passed on; the phase reader of
the llama-cpp-python wheel build on real lines of that build."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers import ROOT

from rules.progress import Phase
from rules.run_step import CmakeLog


def _run_step(tmp_path: Path, script: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "rules.run_step",
            "--what",
            "probe",
            "--log",
            str(tmp_path / "step.log"),
            *extra,
            "--",
            "sh",
            "-c",
            script,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def test_a_failing_command_passes_its_exit_code_and_shows_its_last_lines(tmp_path):
    proc = _run_step(
        tmp_path, "echo one; echo 'Setting up docker.io (26.1.5)'; exit 7", "--reader", "apt"
    )
    assert proc.returncode == 7 and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert lines[0] == "probe: starting, 0s"
    assert "probe: configuring (docker.io), 0s" in lines
    assert "probe: failed after 0s" in lines
    assert f"probe failed (exit 7); last lines of {tmp_path / 'step.log'}:" in lines
    assert lines[-2:] == ["  one", "  Setting up docker.io (26.1.5)"]
    assert (tmp_path / "step.log").read_text() == "one\nSetting up docker.io (26.1.5)\n"


def test_a_command_that_works_says_done_and_quiet_says_nothing(tmp_path):
    proc = _run_step(tmp_path, "echo fine")
    assert proc.returncode == 0
    assert proc.stderr.splitlines() == ["probe: starting, 0s", "probe: done after 0s"]
    quiet = subprocess.run(
        [
            sys.executable,
            "-m",
            "rules.run_step",
            "--what",
            "probe",
            "--log",
            str(tmp_path / "q.log"),
            "--",
            "sh",
            "-c",
            "echo fine; exit 3",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"DOCKER_WORKFLOW_QUIET": "1", "PATH": "/usr/bin:/bin"},
    )
    assert quiet.returncode == 3 and "probe failed (exit 3)" in quiet.stderr  # the error stays
    assert "starting" not in quiet.stderr


def test_wheel_build_phases_from_real_lines():
    """The first 400 characters of real lines of `pip wheel -v llama-cpp-python==0.3.36`."""
    lines = (Path(__file__).parent / "data" / "llama_wheel_build.log").read_text().splitlines()
    reader = CmakeLog()
    assert [reader.feed(line) for line in lines] == [
        Phase("downloading build tools"),
        Phase("downloading build tools"),
        Phase("configuring (cmake)"),
        Phase("C/C++ compile", "1 of 140"),
        Phase("linking", "15 of 140"),
        Phase("C/C++ compile", "16 of 140"),
    ]
