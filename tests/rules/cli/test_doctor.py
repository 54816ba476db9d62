"""``docker-workflow doctor`` against this machine's real engine, and against missing pieces:
a closed loopback port for the LLM, a builder reference that does not exist, no docker command,
a builder image made for one platform only."""

from __future__ import annotations

import os
import re
import socket
import subprocess

import pytest
from helpers import ROOT, WORKFLOWS, run_cli


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the block ends


def _line(stdout: str, name: str) -> str:
    found = [line for line in stdout.splitlines() if re.match(rf"^\S+\s+{re.escape(name)}\s", line)]
    assert len(found) == 1, stdout
    return found[0]


def _fix_after(stdout: str, name: str) -> str:
    lines = stdout.splitlines()
    following = lines[lines.index(_line(stdout, name)) + 1]
    assert following.lstrip().startswith("fix: "), stdout
    return following.strip().removeprefix("fix: ")


def test_everything_there_is_ok_and_exit_0(llm_server, builder_image):
    proc = run_cli("doctor", "--endpoint", llm_server.url, "--builder-image", builder_image)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    server = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True
    ).stdout.strip()
    assert _line(proc.stdout, "docker engine").startswith("ok ")
    assert server in _line(proc.stdout, "docker engine")
    assert _line(proc.stdout, "buildx").startswith("ok ")
    assert _line(proc.stdout, "arm64 emulation").startswith("ok ")
    assert builder_image in _line(proc.stdout, "builder image")
    llm = _line(proc.stdout, "LLM endpoint")
    assert llm.startswith("ok ") and "smollm2:135m" in llm  # the models it serves
    assert re.search(r"\d+ GiB free for the cache", _line(proc.stdout, "free disk"))
    assert proc.stderr == ""


def test_missing_endpoint_and_builder_say_how_to_fix_and_exit_1():
    port = _closed_port()
    proc = run_cli(
        "doctor",
        "--endpoint",
        f"http://127.0.0.1:{port}",
        "--builder-image",
        "docker-workflow/builder:no-such-recipe",
    )
    assert proc.returncode == 1
    llm = _line(proc.stdout, "LLM endpoint")
    assert llm.startswith("missing ") and f"127.0.0.1:{port} does not answer" in llm
    assert "docker-workflow llm-server" in _fix_after(proc.stdout, "LLM endpoint")
    builder = _line(proc.stdout, "builder image")
    assert builder.startswith("missing ") and "no-such-recipe is not in the engine" in builder
    assert _fix_after(proc.stdout, "builder image").startswith("docker-workflow bases")
    assert _line(proc.stdout, "docker engine").startswith("ok ")
    assert "Traceback" not in proc.stderr


def test_a_missing_builder_asks_for_the_tools_that_make_it(tmp_path):
    """Without the builder image, the doctor says what ``bases`` needs and this machine lacks:
    here a PATH with docker only, so mmdebstrap, debootstrap and dpkg-dev (mmdebstrap's hook
    runs dpkg-architecture) are all missing."""
    import shutil

    (tmp_path / "docker").symlink_to(shutil.which("docker"))
    proc = run_cli(
        "doctor",
        "--builder-image",
        "docker-workflow/builder:no-such-recipe",
        env={"PATH": str(tmp_path)},
    )
    assert proc.returncode == 1
    line = _line(proc.stdout, "builder tools")
    assert line.startswith("missing ") and "debootstrap, dpkg-dev, mmdebstrap" in line, line
    assert _fix_after(proc.stdout, "builder tools").startswith(
        "apt-get install debootstrap dpkg-dev mmdebstrap"
    )
    everything = run_cli("doctor", "--builder-image", "docker-workflow/builder:no-such-recipe")
    assert _line(everything.stdout, "builder tools").startswith("ok "), everything.stdout


def test_no_docker_command_is_missing_and_the_rest_is_not_checked(tmp_path):
    proc = run_cli("doctor", env={"PATH": str(tmp_path)})
    assert proc.returncode == 1
    assert _line(proc.stdout, "docker engine").startswith("missing ")
    assert "scripts/setup.sh" in _fix_after(proc.stdout, "docker engine")
    assert "not checked" in _line(proc.stdout, "buildx")
    assert _line(proc.stdout, "free disk")  # still checked: it needs no engine


def test_errors_about_missing_pieces_point_to_the_doctor(tmp_path):
    workflow = str(WORKFLOWS / "simple_summarizer.json")
    proc = run_cli("build", workflow, "--platform", "linux/amd64", env={"PATH": str(tmp_path)})
    assert proc.returncode == 1 and "docker-workflow doctor" in proc.stderr
    proc = run_cli(
        "build",
        workflow,
        "--platform",
        "linux/amd64",
        "--builder-image",
        "docker-workflow/builder:gone",
    )
    assert proc.returncode == 1
    assert "builder image docker-workflow/builder:gone is not in the Docker engine" in proc.stderr
    assert "docker-workflow doctor" in proc.stderr


def test_a_run_whose_llm_does_not_answer_points_to_the_doctor():
    proc = run_cli(
        "run",
        "--local",
        str(WORKFLOWS / "simple_summarizer.json"),
        '{"text": "hello"}',
        "--endpoint",
        f"http://127.0.0.1:{_closed_port()}",
    )
    assert proc.returncode == 3  # the runner's "LLM unreachable"
    assert "hint: the LLM endpoint did not answer; docker-workflow doctor checks it" in proc.stderr


@pytest.fixture
def native_only_builder(tmp_path):
    """A real image labelled as a builder of linux/amd64 only (as `bases --platform
    linux/amd64` makes), removed afterwards."""
    tag = f"docker-workflow/builder:test-native-only-{os.getpid()}"
    (tmp_path / "Dockerfile").write_text(
        "FROM scratch\nLABEL docker-workflow.builder.platforms=linux/amd64\n"
    )
    subprocess.run(
        ["docker", "buildx", "build", "-q", "--load", "-t", tag, str(tmp_path)],
        check=True,
        capture_output=True,
    )
    yield tag
    subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True, check=False)


def test_a_native_only_builder_is_not_taken_for_a_two_platform_one(native_only_builder):
    proc = run_cli("doctor", "--builder-image", native_only_builder)
    builder = _line(proc.stdout, "builder image")
    assert builder.startswith("warn ") and "has linux/amd64 only" in builder
    proc = run_cli(
        "build",
        str(WORKFLOWS / "simple_summarizer.json"),
        "--platform",
        "linux/arm64",
        "--builder-image",
        native_only_builder,
        "-q",
    )
    assert proc.returncode == 1
    assert f"{native_only_builder} was made for linux/amd64 only, not linux/arm64" in proc.stderr
    assert "Traceback" not in proc.stderr and str(ROOT) not in proc.stdout
