"""The Docker engine's failures as one clear error: what failed, and the lines that matter."""

from __future__ import annotations

from rules.docker.engine import BUILDER_IMAGE_ENV, default_builder_image, docker_error
from rules.errors import UserError


class CommandFailed(Exception):
    """The shape of python_on_whales' DockerException: the CLI's stderr as an attribute."""

    def __init__(self, stderr: str) -> None:
        super().__init__("docker failed")
        self.stderr = stderr


def test_the_lines_that_say_what_went_wrong_are_kept():
    noise = [f"#{n} [internal] load metadata" for n in range(30)]
    stderr = "\n".join([*noise, "ERROR: failed to solve: image not found", "", "  "])
    error = docker_error("building x", CommandFailed(stderr), hint="run 'docker-workflow bases'")
    assert isinstance(error, UserError)
    text = str(error)
    assert text.startswith("building x failed:\n")
    assert "ERROR: failed to solve: image not found" in text and "#3 [internal]" not in text
    assert text.endswith("\nrun 'docker-workflow bases'")


def test_without_a_telling_line_the_last_lines_stand():
    lines = [f"step {n}" for n in range(20)]
    text = str(docker_error("running y", RuntimeError("\n".join(lines))))
    assert "step 19" in text and "step 7" not in text and "step 8" in text


def test_the_builder_image_option_then_the_environment(monkeypatch):
    monkeypatch.setenv(BUILDER_IMAGE_ENV, "local/builder:1")
    assert default_builder_image("mine:2") == "mine:2"
    assert default_builder_image(None) == "local/builder:1"
    monkeypatch.delenv(BUILDER_IMAGE_ENV)
    assert default_builder_image(None) is None
